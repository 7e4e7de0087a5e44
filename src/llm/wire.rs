//! OpenAI's (and Groq's) chat wire format: reading answers and stream chunks, and rendering the
//! simulated provider's answers in the same shape. Splitting a stream into events is `sse`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Choice, Completion, GroqExtras, LlmError, ToolCall, Usage};

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    x_groq: Option<WireXGroq>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(alias = "delta")]
    message: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tokens_details: Option<WirePromptDetails>,
    completion_tokens_details: Option<WireCompletionDetails>,
    queue_time: Option<f64>,
    prompt_time: Option<f64>,
    completion_time: Option<f64>,
    total_time: Option<f64>,
}

/// `usage.prompt_tokens_details`: OpenAI and Groq send `cached_tokens`; providers that bill
/// cache writes report them as `cache_write_tokens` (OpenAI's newer models, OpenRouter).
#[derive(Deserialize, Clone, Copy)]
struct WirePromptDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

/// `usage.completion_tokens_details`.
#[derive(Deserialize, Clone, Copy)]
struct WireCompletionDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireXGroq {
    id: Option<String>,
    usage: Option<WireUsage>,
}

impl WireUsage {
    fn usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cache_read_input_tokens: self.prompt_tokens_details.and_then(|d| d.cached_tokens),
            cache_creation_input_tokens: self
                .prompt_tokens_details
                .and_then(|d| d.cache_write_tokens),
            reasoning_output_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens),
        }
    }
}

fn groq_extras(x_groq_id: Option<String>, usage: Option<WireUsage>) -> GroqExtras {
    GroqExtras {
        request_id: x_groq_id,
        queue_time: usage.and_then(|u| u.queue_time),
        prompt_time: usage.and_then(|u| u.prompt_time),
        completion_time: usage.and_then(|u| u.completion_time),
        total_time: usage.and_then(|u| u.total_time),
    }
}

fn tool_calls(calls: Vec<WireToolCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .map(|c| {
            let function = c.function.unwrap_or(WireFunction {
                name: None,
                arguments: None,
            });
            ToolCall {
                id: c.id.unwrap_or_default(),
                name: function.name.unwrap_or_default(),
                arguments: function.arguments.unwrap_or_default(),
            }
        })
        .collect()
}

/// Reads a non-streaming chat completion.
pub fn parse_completion(bytes: &[u8]) -> Result<Completion, LlmError> {
    let wire: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::BadResponse(format!("not a chat completion: {e}")))?;
    if wire.choices.is_empty() {
        return Err(LlmError::BadResponse("no choices in the answer".into()));
    }
    let choices = wire
        .choices
        .into_iter()
        .map(|c| {
            let message = c.message.unwrap_or(WireMessage {
                content: None,
                tool_calls: vec![],
            });
            Choice {
                content: message.content.unwrap_or_default(),
                tool_calls: tool_calls(message.tool_calls),
                finish_reason: c.finish_reason.unwrap_or_else(|| "unknown".into()),
            }
        })
        .collect();
    // Groq puts its timings in `usage`; an OpenAI-compatible upstream may send none.
    let usage = wire.usage.or(wire.x_groq.as_ref().and_then(|x| x.usage));
    Ok(Completion {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        choices,
        usage: usage.map(WireUsage::usage),
        system_fingerprint: wire.system_fingerprint,
        service_tier: wire.service_tier,
        groq: groq_extras(wire.x_groq.and_then(|x| x.id), usage),
        dimensions: None,
    })
}

/// What one stream chunk tells the observer.
#[derive(Debug, Default)]
pub struct ChunkInfo {
    /// `data: [DONE]`.
    pub done: bool,
    /// Content deltas, per choice index order.
    pub content: Option<String>,
    /// Finish reasons seen in this chunk.
    pub finish_reasons: Vec<String>,
    /// Usage, from `usage` (OpenAI's include_usage) or `x_groq.usage` (Groq).
    pub usage: Option<Usage>,
    /// Groq's timings and request id.
    pub groq: Option<GroqExtras>,
    /// Completion id and model, from any chunk.
    pub id: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// `system_fingerprint`.
    pub system_fingerprint: Option<String>,
    /// `service_tier`.
    pub service_tier: Option<String>,
    /// True for the usage-only chunk (no choices) that `include_usage` adds.
    pub usage_only: bool,
    /// An error the upstream sent inside the stream: its message.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct WireChunk {
    id: Option<String>,
    model: Option<String>,
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    x_groq: Option<WireXGroq>,
    error: Option<Value>,
}

/// Reads the `data:` payload of one SSE event.
pub fn parse_chunk(event: &[u8]) -> Result<ChunkInfo, LlmError> {
    let Some(data) = event_data(event) else {
        return Ok(ChunkInfo::default());
    };
    if data.trim() == "[DONE]" {
        return Ok(ChunkInfo {
            done: true,
            ..ChunkInfo::default()
        });
    }
    let chunk: WireChunk = serde_json::from_str(&data)
        .map_err(|e| LlmError::BadResponse(format!("not a chat completion chunk: {e}")))?;
    let mut info = ChunkInfo {
        id: chunk.id,
        model: chunk.model,
        system_fingerprint: chunk.system_fingerprint,
        service_tier: chunk.service_tier,
        ..ChunkInfo::default()
    };
    if let Some(error) = chunk.error {
        info.error = Some(
            error["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string()),
        );
        return Ok(info);
    }
    let choices = chunk.choices.unwrap_or_default();
    info.usage_only = choices.is_empty() && chunk.usage.is_some();
    for choice in choices {
        if let Some(text) = choice.message.and_then(|m| m.content)
            && !text.is_empty()
        {
            info.content.get_or_insert_with(String::new).push_str(&text);
        }
        if let Some(reason) = choice.finish_reason {
            info.finish_reasons.push(reason);
        }
    }
    let groq_usage = chunk.x_groq.as_ref().and_then(|x| x.usage);
    let usage = chunk.usage.or(groq_usage);
    info.usage = usage.map(WireUsage::usage);
    if chunk.x_groq.is_some() || usage.is_some() {
        info.groq = Some(groq_extras(chunk.x_groq.and_then(|x| x.id), usage));
    }
    Ok(info)
}

/// The `data:` lines of an event, joined as the SSE spec says.
pub(super) fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<String> = None;
    for line in super::sse::lines(text) {
        if let Some(rest) = line.strip_prefix("data:") {
            let d = data.get_or_insert_with(String::new);
            if !d.is_empty() {
                d.push('\n');
            }
            d.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    data
}

/// An OpenAI-shaped, Groq-flavoured completion body for the simulated provider.
pub fn render_completion(c: &Completion, created: u64) -> Bytes {
    let choices: Vec<Value> = c
        .choices
        .iter()
        .enumerate()
        .map(|(index, choice)| {
            json!({
                "index": index,
                "message": {"role": "assistant", "content": choice.content},
                "logprobs": null,
                "finish_reason": choice.finish_reason,
            })
        })
        .collect();
    let usage = c.usage.unwrap_or_default();
    Bytes::from(
        json!({
            "id": c.id,
            "object": "chat.completion",
            "created": created,
            "model": c.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
            "system_fingerprint": null,
        })
        .to_string(),
    )
}

/// One stream chunk for the simulated provider, as an SSE event.
pub fn render_chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish_reason: Option<&str>,
    usage: Option<Usage>,
) -> Bytes {
    let mut chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    if let Some(u) = usage {
        chunk["x_groq"] = json!({"id": id, "usage": {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
        }});
    }
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The stream terminator.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groq_answer_with_extras_and_ignores_unknown_fields() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"llama-3.1-8b-instant",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],
            "usage":{"queue_time":0.01,"prompt_tokens":12,"prompt_time":0.002,"completion_tokens":3,"completion_time":0.004,"total_tokens":15,"total_time":0.006},
            "usage_breakdown":null,"system_fingerprint":"fp_1","x_groq":{"id":"req_1"},"service_tier":"on_demand"}"#;
        let c = parse_completion(body).unwrap();
        assert_eq!(c.choices[0].content, "hi");
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 12,
                output_tokens: 3,
                ..Usage::default()
            })
        );
        assert_eq!(c.groq.request_id.as_deref(), Some("req_1"));
        assert_eq!(c.groq.queue_time, Some(0.01));
        assert_eq!(c.service_tier.as_deref(), Some("on_demand"));
    }

    #[test]
    fn reads_tool_calls() {
        let body = br#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            "finish_reason":"tool_calls"}]}"#;
        let c = parse_completion(body).unwrap();
        assert_eq!(c.choices[0].finish_reason, "tool_calls");
        assert_eq!(c.choices[0].tool_calls[0].name, "get_weather");
        assert_eq!(c.usage, None);
    }

    #[test]
    fn reads_groq_usage_from_the_final_chunk_and_openai_usage_chunks() {
        let groq = br#"data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_9","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"queue_time":0.1}}}

"#;
        let info = parse_chunk(groq).unwrap();
        assert_eq!(info.finish_reasons, ["stop"]);
        assert_eq!(info.usage.unwrap().output_tokens, 7);
        assert_eq!(info.groq.unwrap().request_id.as_deref(), Some("req_9"));
        let openai = b"data: {\"id\":\"c\",\"choices\":[],\"service_tier\":\"default\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n";
        let info = parse_chunk(openai).unwrap();
        assert!(info.usage_only);
        assert_eq!(info.service_tier.as_deref(), Some("default"));
        assert_eq!(info.usage.unwrap().input_tokens, 5);
        assert!(parse_chunk(b"data: [DONE]\n\n").unwrap().done);
    }

    #[test]
    fn reads_cache_and_reasoning_token_details_from_answers_and_chunks() {
        let details = r#""prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":10,"audio_tokens":0}"#;
        let expected = Some(Usage {
            input_tokens: 12,
            output_tokens: 34,
            cache_read_input_tokens: Some(4),
            cache_creation_input_tokens: None,
            reasoning_output_tokens: Some(10),
        });
        let body = format!(
            r#"{{"id":"x","model":"m","choices":[{{"index":0,"message":{{"content":"hi"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":12,"completion_tokens":34,{details}}}}}"#
        );
        assert_eq!(parse_completion(body.as_bytes()).unwrap().usage, expected);
        let openai = format!(
            "data: {{\"id\":\"c\",\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":34,{details}}}}}\n\n"
        );
        assert_eq!(parse_chunk(openai.as_bytes()).unwrap().usage, expected);
        let groq = format!(
            "data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"x_groq\":{{\"id\":\"r\",\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":34,{details}}}}}}}\n\n"
        );
        assert_eq!(parse_chunk(groq.as_bytes()).unwrap().usage, expected);
        // A provider that reports cache writes.
        let writes = br#"{"id":"x","model":"m","choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":8}}}"#;
        let usage = parse_completion(writes).unwrap().usage.unwrap();
        assert_eq!(usage.cache_read_input_tokens, Some(0));
        assert_eq!(usage.cache_creation_input_tokens, Some(8));
        assert_eq!(usage.reasoning_output_tokens, None);
    }
}
