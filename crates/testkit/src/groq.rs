//! Groq's OpenAI-compatible wire format, the one place its answers are written: the chat
//! completion (with Groq's `x_groq`), stream chunks, the usage chunk, `[DONE]`, error bodies,
//! the model list and the rate-limit headers. Both fake upstreams build their answers here:
//! the scripted one per request, the fast one once at start.

use serde_json::{Value, json};

/// The model the fakes' streams and model list name.
pub const MODEL: &str = "llama-3.1-8b-instant";

/// `created` of every fake answer.
pub const CREATED: u64 = 1_764_000_000;

/// Groq's `x-ratelimit-remaining-*` headers, with the values the fakes send.
pub const RATELIMIT_HEADERS: [(&str, &str); 2] = [
    ("x-ratelimit-remaining-requests", "14399"),
    ("x-ratelimit-remaining-tokens", "5954"),
];

/// The end of an SSE stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// Token counts and Groq's timings, as in `usage` (and a stream's `x_groq.usage`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`: the part of the prompt served from cache.
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`: the part of the completion spent reasoning.
    pub reasoning_tokens: u64,
    /// Seconds.
    pub queue_time: f64,
    /// The other timings, when the answer reports them.
    pub timings: Option<Timings>,
}

/// Groq's `prompt_time`, `completion_time` and `total_time`, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timings {
    pub prompt_time: f64,
    pub completion_time: f64,
    pub total_time: f64,
}

impl Usage {
    /// The `usage` object; `total_tokens` is the sum of the two counts.
    pub fn to_json(&self) -> Value {
        let mut usage = json!({
            "queue_time": self.queue_time,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        });
        if let Some(t) = self.timings {
            usage["prompt_time"] = json!(t.prompt_time);
            usage["completion_time"] = json!(t.completion_time);
            usage["total_time"] = json!(t.total_time);
        }
        usage
    }
}

/// A non-streaming chat completion: one choice, `finish_reason: stop`.
#[derive(Clone, Copy, Debug)]
pub struct Completion<'a> {
    pub id: &'a str,
    pub model: &'a str,
    /// The assistant's text.
    pub content: &'a str,
    pub usage: Usage,
    pub system_fingerprint: &'a str,
    /// Groq's request id, `x_groq.id`.
    pub request_id: &'a str,
}

impl Completion<'_> {
    /// The answer's JSON body, as Groq sends it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.content},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": self.usage.to_json(),
            "usage_breakdown": null,
            "system_fingerprint": self.system_fingerprint,
            "x_groq": {"id": self.request_id},
            "service_tier": "on_demand"
        })
    }
}

/// `completion` with its first choice's message and finish reason replaced (tool calls, JSON).
pub fn with_message(mut completion: Value, message: Value, finish_reason: &str) -> Value {
    completion["choices"][0]["message"] = message;
    completion["choices"][0]["finish_reason"] = json!(finish_reason);
    completion
}

/// An assistant message that calls one function (`content` null, one `tool_calls` entry).
pub fn tool_call_message(call_id: &str, function: Value, arguments: &str) -> Value {
    json!({"role": "assistant", "content": null, "tool_calls": [{
        "id": call_id, "type": "function",
        "function": {"name": function, "arguments": arguments}}]})
}

/// What every chunk of one stream repeats.
#[derive(Clone, Copy, Debug)]
pub struct Stream<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub system_fingerprint: &'a str,
}

impl Stream<'_> {
    fn head(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
        })
    }

    /// One `chat.completion.chunk` with one choice, and Groq's `x_groq` if given.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>, x_groq: Option<Value>) -> Value {
        let mut chunk = self.head();
        chunk["choices"] =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]);
        if let Some(x) = x_groq {
            chunk["x_groq"] = x;
        }
        chunk
    }

    /// The first chunk: the assistant role with empty content.
    pub fn role_chunk(&self, x_groq: Option<Value>) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None, x_groq)
    }

    /// A content delta.
    pub fn content_chunk(&self, text: &str) -> Value {
        self.chunk(json!({"content": text}), None, None)
    }

    /// The last choice chunk: an empty delta, `finish_reason: stop`, and Groq's usage in
    /// `x_groq.usage` (Groq reports usage there whether or not the client asked).
    pub fn final_chunk(&self, request_id: &str, usage: Usage) -> Value {
        let x_groq = json!({"id": request_id, "usage": usage.to_json()});
        self.chunk(json!({}), Some("stop"), Some(x_groq))
    }

    /// The chunk without choices that carries `usage`, sent when the request asked
    /// `stream_options.include_usage`.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let mut chunk = self.head();
        chunk["choices"] = json!([]);
        chunk["usage"] = usage.to_json();
        chunk
    }
}

/// One SSE event carrying a JSON payload: `data: {...}` and a blank line.
pub fn event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

/// An error body, `{"error": {"message", "type", "code"}}` (`code` left out when `None`); the
/// same shape is sent as a whole answer and as an SSE event in a failing stream.
pub fn error(message: &str, kind: &str, code: Option<&str>) -> Value {
    let mut error = json!({"message": message, "type": kind});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    json!({ "error": error })
}

/// `GET /openai/v1/models`: one model, with Groq's extra fields.
pub fn models() -> Value {
    json!({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": 1693721698, "owned_by": "Meta", "active": true, "context_window": 131072}
    ]})
}
