//! Anthropic's Messages API: its wire format (the one place its answers are written) and
//! [`FakeAnthropic`], a scripted fake of `api.anthropic.com` on 127.0.0.1 port 0.
//!
//! Shapes follow the official SDK's types (anthropic-sdk-python `types/message.py`,
//! `usage.py`, `raw_message_stream_event.py` and its members, `shared/error_response.py`) and
//! the streaming documentation: named SSE events (`event: message_start` ...), each payload
//! carrying the same `type`.
//!
//! # The fake
//!
//! * `POST /v1/messages` ([`MESSAGES_PATH`]): first the checks the real API makes: the API
//!   key, in `x-api-key` (or `Authorization: Bearer`, as the anthropic SDK sends it from 2.0
//!   on; see [`api_key_of`]), must equal [`ANTHROPIC_API_KEY`] (else 401
//!   `authentication_error`), an
//!   `anthropic-version` header must be present (else 400 `invalid_request_error`), the body
//!   must be a JSON object with `model`, `max_tokens` and `messages` (else 400
//!   `invalid_request_error`, e.g. `max_tokens: Field required`). A request failing a check
//!   takes no scripted reply. Then the next [`AnthropicReply`] of the script, else `Ok`:
//!   * a Message ([`message`]): `id` [`MESSAGE_ID`], `model` the requested one, one text block
//!     [`ANTHROPIC_TEXT`], `stop_reason` "end_turn", usage [`ANTHROPIC_USAGE`];
//!   * with `"stream": true`, the event sequence of [`stream_events`]: `message_start`
//!     (usage: input and cache tokens of [`ANTHROPIC_STREAM_USAGE`], `output_tokens` 1),
//!     `content_block_start`, `ping`, one `text_delta` per [`ANTHROPIC_STREAM_DELTAS`]
//!     piece, `content_block_stop`, `message_delta` (`stop_reason`, `usage.output_tokens`
//!     the total), `message_stop`;
//!   * tool use, when [`tool_to_call`] names a tool (the request has a non-empty `tools`,
//!     its `tool_choice` is not `{"type": "none"}`, and its last message is the user's and
//!     holds no `tool_result` block): the content is a text block [`TOOL_PREAMBLE`] then a
//!     `tool_use` block (`id` [`TOOL_USE_ID`], `name` the tool, `input` [`TOOL_INPUT`]),
//!     `stop_reason` "tool_use"; streamed, the tool block (index 1) starts with `input: {}`
//!     and its input comes as `input_json_delta` pieces [`TOOL_INPUT_DELTAS`].
//! * `POST /v1/messages/count_tokens` ([`COUNT_TOKENS_PATH`]): the same header checks, then
//!   `{"input_tokens": n}` with n = [`count_input_tokens`] (words); it takes a scripted reply
//!   too (a `Status` or `Delay` applies; anything else answers the count).
//! * `GET /v1/models` ([`MODELS_PATH`]): one model, [`ANTHROPIC_MODEL`].
//!
//! Every request to the three is recorded ([`FakeAnthropic::received`]: path, headers, JSON
//! body), checks failed or not. Answers carry a `request-id` header ([`REQUEST_ID`]) and, on
//! success, [`ANTHROPIC_RATELIMIT_HEADERS`]. Usage is Anthropic's: `input_tokens` excludes
//! the cache tokens (the prompt is input + cache_creation + cache_read).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::upstream::{Received, StreamGuard, async_stream_of};

/// The Messages path, under the base URL `http://ADDR` (the gateway appends it).
pub const MESSAGES_PATH: &str = "/v1/messages";
/// The token-counting path.
pub const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";
/// The model list path.
pub const MODELS_PATH: &str = "/v1/models";

/// The only API key the fake accepts; it must never appear anywhere but upstream.
pub const ANTHROPIC_API_KEY: &str = "sk-ant-api03-test-SECRET-0123456789abcdefghij";

/// The `anthropic-version` the SDKs send (any value is accepted; the header is required).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The model of the fake's model list.
pub const ANTHROPIC_MODEL: &str = "claude-haiku-4-5";

/// The text of a non-streaming answer.
pub const ANTHROPIC_TEXT: &str = "Observability is knowing what your system does.";

/// The `text_delta`s of a streamed answer; joined, they are [`ANTHROPIC_TEXT`].
pub const ANTHROPIC_STREAM_DELTAS: [&str; 5] = [
    "Observability ",
    "is ",
    "knowing ",
    "what your ",
    "system does.",
];

/// The text block before a `tool_use` block.
pub const TOOL_PREAMBLE: &str = "Let me look that up.";
/// The `text_delta`s of [`TOOL_PREAMBLE`] in a stream.
pub const TOOL_PREAMBLE_DELTAS: [&str; 2] = ["Let me ", "look that up."];
/// The `id` of the `tool_use` block.
pub const TOOL_USE_ID: &str = "toolu_fake_01";
/// The `input` of the `tool_use` block, as JSON text.
pub const TOOL_INPUT: &str = r#"{"city": "Paris"}"#;
/// The `input_json_delta` pieces of [`TOOL_INPUT`] in a stream.
pub const TOOL_INPUT_DELTAS: [&str; 3] = [r#"{"city""#, r#": "Pa"#, r#"ris"}"#];

/// `id` of a non-streaming answer, and of a streamed one.
pub const MESSAGE_ID: &str = "msg_fake_01";
pub const STREAM_MESSAGE_ID: &str = "msg_fake_stream_01";

/// The `request-id` header of every answer, and `request_id` of error bodies.
pub const REQUEST_ID: &str = "req_fake_anthropic_01";

/// Anthropic's rate-limit headers, with the values the fake sends on success.
pub const ANTHROPIC_RATELIMIT_HEADERS: [(&str, &str); 8] = [
    ("anthropic-ratelimit-requests-limit", "4000"),
    ("anthropic-ratelimit-requests-remaining", "3999"),
    ("anthropic-ratelimit-requests-reset", "2025-11-24T16:00:01Z"),
    ("anthropic-ratelimit-tokens-limit", "480000"),
    ("anthropic-ratelimit-tokens-remaining", "479000"),
    ("anthropic-ratelimit-tokens-reset", "2025-11-24T16:00:01Z"),
    ("anthropic-ratelimit-input-tokens-remaining", "399000"),
    ("anthropic-ratelimit-output-tokens-remaining", "80000"),
];

/// Token counts as Anthropic reports them: `input_tokens` excludes the cache tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens written to the cache (all 5-minute writes here).
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: u64,
}

impl AnthropicUsage {
    /// The whole prompt: input + cache creation + cache read.
    pub const fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    /// A Message's `usage`, with `output_tokens` as given (1 in `message_start`).
    pub fn to_json_with_output(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0
            },
            "output_tokens": output_tokens,
            "service_tier": "standard"
        })
    }

    /// A Message's `usage`.
    pub fn to_json(&self) -> Value {
        self.to_json_with_output(self.output_tokens)
    }
}

/// The usage of every non-streaming answer: 25 input, 7 cache creation, 11 cache read (43
/// prompt tokens), 18 output.
pub const ANTHROPIC_USAGE: AnthropicUsage = AnthropicUsage {
    input_tokens: 25,
    output_tokens: 18,
    cache_creation_input_tokens: 7,
    cache_read_input_tokens: 11,
};

/// The usage of every stream: 13 input, 5 cache creation, 9 cache read (27 prompt tokens)
/// in `message_start`, 21 output in `message_delta`.
pub const ANTHROPIC_STREAM_USAGE: AnthropicUsage = AnthropicUsage {
    input_tokens: 13,
    output_tokens: 21,
    cache_creation_input_tokens: 5,
    cache_read_input_tokens: 9,
};

// ---------------------------------------------------------------- wire format

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": REQUEST_ID})
}

/// A `text` content block.
pub fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// A `tool_use` content block.
pub fn tool_use_block(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// A Message.
pub fn message(
    id: &str,
    model: &str,
    content: Vec<Value>,
    stop_reason: Option<&str>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage,
    })
}

/// The content of an answer: [`ANTHROPIC_TEXT`], or with `tool` the [`TOOL_PREAMBLE`] text
/// and a `tool_use` block calling it.
pub fn answer_content(tool: Option<&str>) -> Vec<Value> {
    match tool {
        None => vec![text_block(ANTHROPIC_TEXT)],
        Some(name) => vec![
            text_block(TOOL_PREAMBLE),
            tool_use_block(TOOL_USE_ID, name, serde_json::from_str(TOOL_INPUT).unwrap()),
        ],
    }
}

/// The fake's non-streaming answer: [`MESSAGE_ID`], [`answer_content`], [`ANTHROPIC_USAGE`].
pub fn message_success(model: &str, tool: Option<&str>) -> Value {
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    message(
        MESSAGE_ID,
        model,
        answer_content(tool),
        Some(stop),
        ANTHROPIC_USAGE.to_json(),
    )
}

/// The tool the answer calls, if any: with a non-empty `tools`, a `tool_choice` other than
/// `{"type": "none"}`, and a last message from the user that holds no `tool_result` block,
/// the tool `tool_choice` names (`{"type": "tool", "name"}`), else the first tool's `name`.
pub fn tool_to_call(body: &Value) -> Option<String> {
    let tools = body["tools"].as_array().filter(|t| !t.is_empty())?;
    if body["tool_choice"]["type"] == "none" {
        return None;
    }
    let last = body["messages"].as_array()?.last()?;
    if last["role"] != "user" {
        return None;
    }
    let holds_result = last["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    if holds_result {
        return None;
    }
    let name = if body["tool_choice"]["type"] == "tool" {
        &body["tool_choice"]["name"]
    } else {
        &tools[0]["name"]
    };
    name.as_str().map(str::to_owned)
}

/// The fake's token count of a request (count_tokens): the whitespace-separated words of
/// `system` (a string or text blocks) and of every message's content: a string, the `text`
/// of `text` blocks, and a `tool_result` block's `content` (a string or text blocks). Tools,
/// tool_use inputs, images and roles count nothing.
pub fn count_input_tokens(body: &Value) -> u64 {
    fn words(content: &Value) -> u64 {
        match content {
            Value::String(text) => text.split_whitespace().count() as u64,
            Value::Array(blocks) => blocks
                .iter()
                .map(|block| match block["type"].as_str() {
                    Some("text") => words(&block["text"]),
                    Some("tool_result") => words(&block["content"]),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        }
    }
    let messages = body["messages"].as_array().map_or(0, |messages| {
        messages.iter().map(|m| words(&m["content"])).sum()
    });
    words(&body["system"]) + messages
}

/// One named SSE event: `event: TYPE`, `data: {json}` and a blank line.
pub fn event(data: &Value) -> String {
    let kind = data["type"].as_str().unwrap_or("message");
    format!("event: {kind}\ndata: {data}\n\n")
}

/// `message_start`: the Message with empty content, no stop reason, and usage with the input
/// and cache tokens and `output_tokens` 1.
pub fn message_start(id: &str, model: &str, usage: AnthropicUsage) -> Value {
    let message = message(id, model, vec![], None, usage.to_json_with_output(1));
    json!({"type": "message_start", "message": message})
}

pub fn content_block_start(index: usize, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

pub fn ping() -> Value {
    json!({"type": "ping"})
}

pub fn text_delta(index: usize, text: &str) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})
}

pub fn input_json_delta(index: usize, partial_json: &str) -> Value {
    json!({"type": "content_block_delta", "index": index,
           "delta": {"type": "input_json_delta", "partial_json": partial_json}})
}

pub fn content_block_stop(index: usize) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

/// `message_delta` with the stop reason and the total `output_tokens`; with `cumulative`,
/// its usage also repeats the input and cache counts, as the current API does.
pub fn message_delta(stop_reason: &str, usage: AnthropicUsage, cumulative: bool) -> Value {
    let usage = if cumulative {
        json!({
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": usage.output_tokens,
        })
    } else {
        json!({"output_tokens": usage.output_tokens})
    };
    json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
           "usage": usage})
}

pub fn message_stop() -> Value {
    json!({"type": "message_stop"})
}

/// The `error` event of a failing stream: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_event(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The events of a whole streamed answer (with `tool`, calling it), in order: message_start,
/// content_block_start, ping, text deltas, content_block_stop, [tool_use block start, ≥3
/// input_json_delta, stop,] message_delta, message_stop. The text deltas are
/// [`ANTHROPIC_STREAM_DELTAS`], or [`TOOL_PREAMBLE_DELTAS`] before a tool call.
pub fn stream_events(
    id: &str,
    model: &str,
    tool: Option<&str>,
    usage: AnthropicUsage,
    cumulative_usage: bool,
) -> Vec<Value> {
    let deltas: &[&str] = match tool {
        None => &ANTHROPIC_STREAM_DELTAS,
        Some(_) => &TOOL_PREAMBLE_DELTAS,
    };
    let mut events = vec![
        message_start(id, model, usage),
        content_block_start(0, text_block("")),
        ping(),
    ];
    events.extend(deltas.iter().map(|d| text_delta(0, d)));
    events.push(content_block_stop(0));
    if let Some(name) = tool {
        events.push(content_block_start(
            1,
            tool_use_block(TOOL_USE_ID, name, json!({})),
        ));
        events.extend(TOOL_INPUT_DELTAS.iter().map(|d| input_json_delta(1, d)));
        events.push(content_block_stop(1));
    }
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    events.push(message_delta(stop, usage, cumulative_usage));
    events.push(message_stop());
    events
}

/// `GET /v1/models`: one model.
pub fn models() -> Value {
    json!({
        "data": [{"type": "model", "id": ANTHROPIC_MODEL, "display_name": "Claude Haiku 4.5",
                  "created_at": "2025-10-01T00:00:00Z", "lifecycle": "active",
                  "max_input_tokens": 200000, "max_tokens": 64000}],
        "has_more": false,
        "first_id": ANTHROPIC_MODEL,
        "last_id": ANTHROPIC_MODEL,
    })
}

// ---------------------------------------------------------------- scripted fake

/// What the fake answers to one request (that passed the checks; see the module docs).
#[derive(Clone, Debug)]
pub enum AnthropicReply {
    /// A Message, or its stream if the request asked (tool use if [`tool_to_call`]).
    Ok,
    /// Any status with a body (sent as JSON) and extra headers; see the helpers
    /// [`rate_limited`](Self::rate_limited), [`overloaded`](Self::overloaded),
    /// [`unauthorized`](Self::unauthorized), [`invalid_request`](Self::invalid_request),
    /// [`error`](Self::error).
    Status {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// Waits, then answers as `Ok`.
    Delay(Duration),
    /// The stream of `Ok` (whether or not the request asked for one), `delay` before each
    /// text delta; with `cumulative_usage`, `message_delta`'s usage repeats the input and
    /// cache counts (as the current API does) besides `output_tokens`.
    Stream {
        delay: Duration,
        cumulative_usage: bool,
    },
    /// message_start, content_block_start, ping, two text deltas ("partial ", "answer"),
    /// then an `error` event (`overloaded_error`, "Overloaded"), and the end of the body.
    StreamThenError,
    /// message_start, then nothing until the client goes away (an abandoned stream).
    StreamThenHang,
}

impl AnthropicReply {
    /// The stream of `Ok`, without delay, `message_delta` carrying `output_tokens` only.
    pub fn stream() -> Self {
        AnthropicReply::Stream {
            delay: Duration::ZERO,
            cumulative_usage: false,
        }
    }

    /// A status with Anthropic's error body ([`error_body`]) and extra headers.
    pub fn error(
        status: u16,
        kind: &str,
        message: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Self {
        AnthropicReply::Status {
            status,
            body: error_body(kind, message).to_string(),
            headers,
        }
    }

    /// 429 `rate_limit_error` with `retry-after: SECONDS` and the requests limit exhausted.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self::error(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute.",
            vec![
                ("retry-after", retry_after_seconds.to_string()),
                ("anthropic-ratelimit-requests-limit", "50".into()),
                ("anthropic-ratelimit-requests-remaining", "0".into()),
                (
                    "anthropic-ratelimit-requests-reset",
                    "2025-11-24T16:00:30Z".into(),
                ),
            ],
        )
    }

    /// 529 `overloaded_error`, "Overloaded".
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded_error", "Overloaded", vec![])
    }

    /// 401 `authentication_error`, "invalid x-api-key".
    pub fn unauthorized() -> Self {
        Self::error(401, "authentication_error", "invalid x-api-key", vec![])
    }

    /// 400 `invalid_request_error` with `message`.
    pub fn invalid_request(message: &str) -> Self {
        Self::error(400, "invalid_request_error", message, vec![])
    }
}

#[derive(Default)]
struct AnthropicState {
    script: Mutex<VecDeque<AnthropicReply>>,
    received: Mutex<Vec<Received>>,
    abandoned_streams: Arc<AtomicUsize>,
}

/// A fake Anthropic API (see the module docs for what it answers).
pub struct FakeAnthropic {
    pub addr: SocketAddr,
    state: Arc<AnthropicState>,
}

impl FakeAnthropic {
    /// Starts on the current tokio runtime; it runs as long as that runtime.
    pub async fn start() -> Self {
        let state: Arc<AnthropicState> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(MESSAGES_PATH, post(fake_messages))
            .route(COUNT_TOKENS_PATH, post(fake_count_tokens))
            .route(MODELS_PATH, get(fake_models))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    /// The base URL to configure (`http://ADDR`; the API's paths start with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues replies; once the queue is empty the fake answers `Ok`.
    pub fn script(&self, replies: impl IntoIterator<Item = AnthropicReply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Every request received, all paths, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests received on one path ([`MESSAGES_PATH`], [`COUNT_TOKENS_PATH`]).
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        let received = self.state.received.lock().unwrap();
        received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many streams were dropped by the client before they completed.
    pub fn abandoned_streams(&self) -> usize {
        self.state.abandoned_streams.load(Ordering::SeqCst)
    }
}

impl AnthropicState {
    fn record(&self, path: &str, headers: HeaderMap, body: &Bytes) -> Value {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.received.lock().unwrap().push(Received {
            path: path.to_owned(),
            headers,
            body: body.clone(),
        });
        body
    }
}

/// An error answer as Anthropic sends it.
fn error_response(status: u16, kind: &str, message: &str) -> Response {
    status_response(status, error_body(kind, message).to_string(), vec![])
}

fn status_response(status: u16, body: String, headers: Vec<(&'static str, String)>) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    let h = response.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("request-id", REQUEST_ID.parse().unwrap());
    for (name, value) in headers {
        h.insert(name, value.parse().unwrap());
    }
    response
}

/// The API key a request carries: `x-api-key`, else `Authorization: Bearer` (the anthropic
/// Python SDK sends `X-Api-Key` before 2.0, `Authorization: Bearer` from 2.0 on).
pub fn api_key_of(headers: &HeaderMap) -> Option<&str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-api-key").or_else(|| header("authorization")?.strip_prefix("Bearer "))
}

/// The header checks: the API key, then `anthropic-version`.
fn check_headers(headers: &HeaderMap) -> Option<Response> {
    if api_key_of(headers) != Some(ANTHROPIC_API_KEY) {
        return Some(error_response(
            401,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    if !headers.contains_key("anthropic-version") {
        return Some(error_response(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    None
}

/// The body checks: a JSON object with each of `fields`.
fn check_body(body: &Value, fields: &[&str]) -> Option<Response> {
    if !body.is_object() {
        return Some(error_response(
            400,
            "invalid_request_error",
            "There was an error parsing the body of your request: expected a JSON object",
        ));
    }
    let missing = fields
        .iter()
        .find(|f| body.get(**f).is_none_or(Value::is_null))?;
    Some(error_response(
        400,
        "invalid_request_error",
        &format!("{missing}: Field required"),
    ))
}

fn ok_json(body: Value) -> Response {
    (
        ANTHROPIC_RATELIMIT_HEADERS,
        [("request-id", REQUEST_ID)],
        axum::Json(body),
    )
        .into_response()
}

async fn fake_messages(
    State(state): State<Arc<AnthropicState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let checked = check_headers(&headers);
    let body = state.record(MESSAGES_PATH, headers, &body);
    if let Some(rejected) =
        checked.or_else(|| check_body(&body, &["model", "max_tokens", "messages"]))
    {
        return rejected;
    }
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let streaming = body["stream"] == json!(true);
    let tool = tool_to_call(&body);
    let reply = state.script.lock().unwrap().pop_front();
    let reply = match reply.unwrap_or(AnthropicReply::Ok) {
        AnthropicReply::Delay(d) => {
            tokio::time::sleep(d).await;
            AnthropicReply::Ok
        }
        other => other,
    };
    match reply {
        AnthropicReply::Ok if !streaming => ok_json(message_success(&model, tool.as_deref())),
        AnthropicReply::Status {
            status,
            body,
            headers,
        } => status_response(status, body, headers),
        AnthropicReply::Ok => sse(&state, AnthropicReply::stream(), model, tool),
        stream => sse(&state, stream, model, tool),
    }
}

/// A streamed answer for a stream reply.
fn sse(
    state: &AnthropicState,
    reply: AnthropicReply,
    model: String,
    tool: Option<String>,
) -> Response {
    let abandoned = state.abandoned_streams.clone();
    let stream = async_stream_of(move |tx| async move {
        let mut guard = StreamGuard::new(abandoned);
        let send = |data: Value| tx.send(Ok::<_, Infallible>(Bytes::from(event(&data))));
        let usage = ANTHROPIC_STREAM_USAGE;
        let id = STREAM_MESSAGE_ID;
        match reply {
            AnthropicReply::Stream {
                delay,
                cumulative_usage,
            } => {
                let events = stream_events(id, &model, tool.as_deref(), usage, cumulative_usage);
                for data in events {
                    if !delay.is_zero() && data["type"] == "content_block_delta" {
                        tokio::time::sleep(delay).await;
                    }
                    if send(data).await.is_err() {
                        return;
                    }
                }
            }
            AnthropicReply::StreamThenError => {
                let events = [
                    message_start(id, &model, usage),
                    content_block_start(0, text_block("")),
                    ping(),
                    text_delta(0, "partial "),
                    text_delta(0, "answer"),
                    error_event("overloaded_error", "Overloaded"),
                ];
                for data in events {
                    if send(data).await.is_err() {
                        return;
                    }
                }
            }
            AnthropicReply::StreamThenHang => {
                if send(message_start(id, &model, usage)).await.is_ok() {
                    tx.closed().await;
                }
                return;
            }
            AnthropicReply::Ok | AnthropicReply::Status { .. } | AnthropicReply::Delay(_) => {
                unreachable!("not a stream reply")
            }
        }
        guard.done = true;
    });
    (
        ANTHROPIC_RATELIMIT_HEADERS,
        [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("request-id", REQUEST_ID),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn fake_count_tokens(
    State(state): State<Arc<AnthropicState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let checked = check_headers(&headers);
    let body = state.record(COUNT_TOKENS_PATH, headers, &body);
    if let Some(rejected) = checked.or_else(|| check_body(&body, &["model", "messages"])) {
        return rejected;
    }
    let reply = state.script.lock().unwrap().pop_front();
    match reply {
        Some(AnthropicReply::Status {
            status,
            body,
            headers,
        }) => return status_response(status, body, headers),
        Some(AnthropicReply::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    ok_json(json!({"input_tokens": count_input_tokens(&body)}))
}

async fn fake_models(headers: HeaderMap) -> Response {
    if let Some(rejected) = check_headers(&headers) {
        return rejected;
    }
    ok_json(models())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_sse(text: &str) -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_text_stream_has_the_documented_sequence_and_usage() {
        let events = stream_events("msg_1", "claude-x", None, ANTHROPIC_STREAM_USAGE, false);
        let text: String = events.iter().map(event).collect();
        let parsed = parse_sse(&text);
        let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let start = &parsed[0].1["message"];
        assert_eq!(start["model"], "claude-x");
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["usage"]["input_tokens"], 13);
        assert_eq!(start["usage"]["cache_read_input_tokens"], 9);
        assert_eq!(start["usage"]["cache_creation_input_tokens"], 5);
        assert_eq!(start["usage"]["output_tokens"], 1);
        let text: String = parsed
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, ANTHROPIC_TEXT);
        let delta = &parsed[9].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"], json!({"output_tokens": 21}));
    }

    #[test]
    fn a_tool_stream_streams_the_input_in_pieces() {
        let events = stream_events("m", "c", Some("get_weather"), ANTHROPIC_STREAM_USAGE, true);
        let block = events
            .iter()
            .find(|e| e["type"] == "content_block_start" && e["index"] == 1)
            .unwrap();
        assert_eq!(block["content_block"]["type"], "tool_use");
        assert_eq!(block["content_block"]["name"], "get_weather");
        assert_eq!(block["content_block"]["input"], json!({}));
        let pieces: Vec<&str> = events
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert!(pieces.len() >= 3);
        let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
        assert_eq!(input, json!({"city": "Paris"}));
        let delta = &events[events.len() - 2];
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["input_tokens"], 13);
        assert_eq!(delta["usage"]["output_tokens"], 21);
    }

    #[test]
    fn tool_use_is_triggered_as_documented() {
        let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}},
                           {"name": "other", "input_schema": {"type": "object"}}]);
        let ask = json!({"role": "user", "content": "Weather in Paris?"});
        let body = json!({"tools": tools, "messages": [ask]});
        assert_eq!(tool_to_call(&body).as_deref(), Some("get_weather"));
        let named = json!({"tools": tools, "tool_choice": {"type": "tool", "name": "other"}, "messages": [ask]});
        assert_eq!(tool_to_call(&named).as_deref(), Some("other"));
        let none = json!({"tools": tools, "tool_choice": {"type": "none"}, "messages": [ask]});
        assert_eq!(tool_to_call(&none), None);
        let result = json!({"tools": tools, "messages": [ask,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]}]});
        assert_eq!(tool_to_call(&result), None);
        assert_eq!(tool_to_call(&json!({"messages": [ask]})), None);
        assert_eq!(tool_to_call(&json!({"tools": [], "messages": [ask]})), None);

        let answer = message_success("claude-x", Some("get_weather"));
        assert_eq!(answer["stop_reason"], "tool_use");
        assert_eq!(answer["content"][1]["type"], "tool_use");
        assert_eq!(answer["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(
            message_success("c", None)["content"][0]["text"],
            ANTHROPIC_TEXT
        );
    }

    #[test]
    fn tokens_are_counted_as_words() {
        let body = json!({
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "one two three"},
                {"role": "assistant", "content": [{"type": "text", "text": "four"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": "b c"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": [{"type": "text", "text": "five six"}]}]}
            ]
        });
        assert_eq!(count_input_tokens(&body), 8);
        assert_eq!(
            count_input_tokens(&json!({"system": "a b", "messages": []})),
            2
        );
    }

    #[test]
    fn usage_and_errors_have_anthropics_shape() {
        let usage = ANTHROPIC_USAGE.to_json();
        assert_eq!(usage["cache_creation"]["ephemeral_5m_input_tokens"], 7);
        assert_eq!(ANTHROPIC_USAGE.prompt_tokens(), 43);
        let error = error_body("overloaded_error", "Overloaded");
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "overloaded_error");
        let AnthropicReply::Status {
            status, headers, ..
        } = AnthropicReply::rate_limited(7)
        else {
            unreachable!()
        };
        assert_eq!(status, 429);
        assert!(headers.contains(&("retry-after", "7".to_owned())));
    }
}
