//! Fake Groq/OpenAI upstreams, both speaking the wire format of [`crate::groq`]:
//!
//! * [`FakeUpstream`], scriptable, for the tests: each request is parsed and recorded, and
//!   answered by the next scripted [`Reply`], else by a fault or special answer the request
//!   asks for, else by a success (a stream if the request asked for one). Streams the gateway
//!   abandons are counted. Besides chat completions it serves OpenAI's Responses API and
//!   Embeddings in OpenAI's own wire format ([`crate::openai`]), on the same base URL and
//!   from the same script (see [`FakeUpstream`]).
//! * [`FastUpstream`], for the benchmark: precomputed bytes, no parsing of the request beyond
//!   a byte scan for `"stream": true` and `include_usage`, nothing recorded but counters. It
//!   answers chat completions, the Responses API and embeddings like Groq/OpenAI, and the
//!   Messages API like Anthropic ([`crate::anthropic`]), each in its real wire format.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, IntoResponseParts, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::anthropic::{self, AnthropicUsage};
use crate::groq::{self, Completion, Usage};
use crate::openai::{self, ResponseStream};

/// The chat completions path, under the base URL `http://ADDR/openai/v1` (Groq's).
pub const CHAT_PATH: &str = "/openai/v1/chat/completions";
/// The model list path.
pub const MODELS_PATH: &str = "/openai/v1/models";
/// OpenAI's Responses API, under the same base URL.
pub const RESPONSES_PATH: &str = "/openai/v1/responses";
/// OpenAI's Embeddings, under the same base URL.
pub const EMBEDDINGS_PATH: &str = "/openai/v1/embeddings";

/// The upstream key the tests configure; it must never appear anywhere but upstream.
pub const API_KEY: &str = "gsk_test_SECRET_0123456789abcdefghij";

/// The usage a scripted fake's stream reports: (prompt, completion) tokens.
pub const STREAM_USAGE: (u64, u64) = (9, 21);

// ---------------------------------------------------------------- the scripted fake's answers

/// The scripted fake's success body for a request.
pub fn groq_success(model: &str) -> Value {
    Completion {
        id: "chatcmpl-fake-123",
        model,
        content: "Observability is knowing what your system does.",
        usage: Usage {
            prompt_tokens: 12,
            completion_tokens: 34,
            cached_tokens: 4,
            reasoning_tokens: 10,
            queue_time: 0.012,
            timings: Some(groq::Timings {
                prompt_time: 0.002,
                completion_time: 0.03,
                total_time: 0.032,
            }),
        },
        system_fingerprint: "fp_fake",
        request_id: "req_fake_1",
    }
    .to_json()
}

/// The scripted fake's streams.
const STREAM: groq::Stream<'static> = groq::Stream {
    id: "chatcmpl-stream-1",
    model: groq::MODEL,
    system_fingerprint: "fp_fake",
};

const STREAM_USAGE_JSON: Usage = Usage {
    prompt_tokens: STREAM_USAGE.0,
    completion_tokens: STREAM_USAGE.1,
    cached_tokens: 3,
    reasoning_tokens: 5,
    queue_time: 0.01,
    timings: None,
};

// ---------------------------------------------------------------- scripted fake

/// What the fake upstream answers to one request (chat, Responses or Embeddings: one queue).
///
/// On `POST /responses` each reply means the same in the Responses API's terms: the stream
/// replies send its typed events (`response.output_text.delta` for a content chunk, an `error`
/// event `{"type": "error", "code": "server_error", "message", "param": null}` for an error,
/// after the opening events), `Large` is the output text's size, and `Delay` then answers as
/// `Ok` would (a stream if the request asked; on chat it is always a JSON answer). On
/// `POST /embeddings`, which never streams, the stream replies answer as `Ok`, and `Large(n)`
/// gives each vector `n / 4 + 1` dimensions. Requests the fake rejects as invalid (a
/// Responses request without `model`, an invalid embeddings request) take no reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A Groq-shaped success for the requested model.
    Ok,
    /// Any status with a body and extra headers.
    Status {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// Waits, then answers as `Ok`.
    Delay(Duration),
    /// A Groq-style SSE stream of `chunks` content chunks of `chunk_bytes` each, `delay` apart,
    /// with usage in the final chunk's `x_groq` (and a usage chunk if the request asked).
    Stream {
        chunks: usize,
        chunk_bytes: usize,
        delay: Duration,
    },
    /// Two content chunks, then an error event in the stream.
    StreamThenError,
    /// One content chunk, then an error event in the stream carrying this message.
    StreamThenErrorMessage(String),
    /// One content chunk, then a content chunk whose text is this many bytes (one SSE event
    /// larger than the gateway accepts, for the cap), then the usual end.
    StreamHugeEvent(usize),
    /// The answer of `Reply::stream()` (5 content chunks, usage, `[DONE]`) with its line
    /// endings rewritten, event by event in turn from `endings` (`"\r"`, `"\r\n"`, `"\n"`),
    /// and sent in pieces of `piece_bytes` so that terminators fall across pieces.
    StreamLineEndings {
        endings: &'static [&'static str],
        piece_bytes: usize,
    },
    /// One content chunk, then nothing until the client goes away.
    StreamThenHang,
    /// A 200 whose body stops halfway and never finishes.
    BodyThenHang,
    /// A 200 whose body stops halfway and the connection is dropped.
    BodyThenReset,
    /// A 200 with a valid answer whose content is this many bytes.
    Large(usize),
}

impl Reply {
    /// A short stream: 5 chunks, no delay.
    pub fn stream() -> Self {
        Reply::Stream {
            chunks: 5,
            chunk_bytes: 8,
            delay: Duration::ZERO,
        }
    }

    /// Whether the reply is one of the stream replies.
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            Reply::Stream { .. }
                | Reply::StreamThenError
                | Reply::StreamThenErrorMessage(_)
                | Reply::StreamHugeEvent(_)
                | Reply::StreamLineEndings { .. }
                | Reply::StreamThenHang
        )
    }

    /// Groq's error body for a status.
    pub fn groq_error(status: u16, message: &str, code: &str) -> Self {
        Reply::Status {
            status,
            body: groq::error(message, "invalid_request_error", Some(code)).to_string(),
            headers: vec![],
        }
    }
}

/// One request the fake upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request's path: [`CHAT_PATH`], [`RESPONSES_PATH`] or [`EMBEDDINGS_PATH`].
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body (`null` if it was not JSON).
    pub body: Value,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    /// Streams whose body was dropped (the gateway closed the connection) before completing.
    abandoned_streams: Arc<AtomicUsize>,
}

impl FakeState {
    /// Records a request; returns its parsed body.
    fn record(&self, path: &str, headers: HeaderMap, body: &Bytes) -> Value {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.received.lock().unwrap().push(Received {
            path: path.to_owned(),
            headers,
            body: body.clone(),
        });
        body
    }

    fn next_scripted(&self) -> Option<Reply> {
        self.script.lock().unwrap().pop_front()
    }

    fn guard(&self) -> StreamGuard {
        StreamGuard::new(self.abandoned_streams.clone())
    }
}

/// A fake Groq, and OpenAI's Responses and Embeddings, on 127.0.0.1 port 0:
///
/// * `POST /openai/v1/chat/completions` ([`CHAT_PATH`]) and `GET /openai/v1/models`: Groq's
///   chat completions ([`crate::groq`]).
/// * `POST /openai/v1/responses` ([`RESPONSES_PATH`]): OpenAI's `Response` object
///   ([`openai::responses_success`]: text [`openai::RESPONSE_TEXT`], usage
///   [`openai::RESPONSES_USAGE`], `model` the requested one); with `"stream": true` its typed
///   events ([`openai::ResponseStream`]) `event: TYPE` / `data: {...}`: created, in_progress,
///   output_item.added, content_part.added, one `response.output_text.delta` per chunk of
///   [`Reply::stream`] (the same `w0 xxxx` chunks as chat), output_text.done,
///   content_part.done, output_item.done, then `response.completed` with usage
///   [`openai::RESPONSES_STREAM_USAGE`]; no `[DONE]`. A request without `model` gets a 400
///   (before the script). Answers carry Groq's (= OpenAI's) `x-ratelimit-remaining-*`
///   headers, like chat.
/// * `POST /openai/v1/embeddings` ([`EMBEDDINGS_PATH`]): one deterministic unit vector per
///   input ([`openai::embedding_vector`] of [`openai::EmbeddingInput::key`]), of `dimensions`
///   floats (default [`openai::DEFAULT_EMBEDDING_DIMENSIONS`]), base64 of little-endian f32s
///   when `encoding_format` is "base64" (the openai-python SDK's default); usage by
///   [`openai::embedding_input_tokens`] (words per string, ids per token array). Invalid
///   requests get OpenAI's 400 ([`openai::embeddings_request`]), before the script.
///
/// Every request to the three is recorded, in arrival order, in [`received`](Self::received)
/// (each with its [`Received::path`]; [`received_at`](Self::received_at) filters by path),
/// and takes the next [`Reply`] of the one script queue. Without a script, a model named
/// `rate-limited` gets a 429, and a prompt `fault:500` (`fault:429`, `fault:400`,
/// `fault:garbage`) gets that fault: the last chat message's content, or a Responses
/// `input` string (or its last item's string content), or an embeddings `input` string.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeUpstream {
    /// Starts on the current tokio runtime; it runs as long as that runtime.
    pub async fn start() -> Self {
        let state: Arc<FakeState> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route(CHAT_PATH, post(fake_chat))
            .route(RESPONSES_PATH, post(fake_responses))
            .route(EMBEDDINGS_PATH, post(fake_embeddings))
            .route(MODELS_PATH, get(fake_models))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    /// The base URL to configure as `GROQ_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/openai/v1", self.addr)
    }

    /// Queues replies; once the queue is empty the upstream answers `Ok`.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Every request received, all paths, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests received on one path ([`CHAT_PATH`], [`RESPONSES_PATH`],
    /// [`EMBEDDINGS_PATH`]), in arrival order.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        let received = self.state.received.lock().unwrap();
        received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many streams (chat or Responses) were dropped by the gateway before they completed.
    pub fn abandoned_streams(&self) -> usize {
        self.state.abandoned_streams.load(Ordering::SeqCst)
    }
}

async fn fake_models(headers: HeaderMap) -> Response {
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("Bearer {API_KEY}")
    );
    axum::Json(groq::models()).into_response()
}

/// Counts a stream as abandoned when dropped before `done`: the gateway hung up mid-stream.
pub(crate) struct StreamGuard {
    abandoned: Arc<AtomicUsize>,
    pub(crate) done: bool,
}

impl StreamGuard {
    pub(crate) fn new(abandoned: Arc<AtomicUsize>) -> Self {
        Self {
            abandoned,
            done: false,
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.done {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The text of a stream's `i`th content chunk of `chunk_bytes` bytes (`w0 xxxx`, ...).
fn chunk_text(i: usize, chunk_bytes: usize) -> String {
    format!("w{i} ") + &"x".repeat(chunk_bytes.saturating_sub(4))
}

fn sse(state: Arc<FakeState>, reply: Reply, include_usage: bool) -> Response {
    let stream = async_stream_of(move |tx| async move {
        let mut guard = state.guard();
        let send = |chunk: Value| tx.send(Ok::<_, Infallible>(Bytes::from(groq::event(&chunk))));
        // Every stream opens with the role chunk (the line-endings one writes its own).
        let own_role_chunk = matches!(reply, Reply::StreamLineEndings { .. });
        if !own_role_chunk && send(STREAM.role_chunk(None)).await.is_err() {
            return;
        }
        match reply {
            Reply::Stream {
                chunks,
                chunk_bytes,
                delay,
            } => {
                for i in 0..chunks {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if send(STREAM.content_chunk(&chunk_text(i, chunk_bytes)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = send(STREAM.final_chunk("req_stream_1", STREAM_USAGE_JSON)).await;
                if include_usage {
                    let _ = send(STREAM.usage_chunk(STREAM_USAGE_JSON)).await;
                }
                let _ = tx.send(Ok(Bytes::from_static(groq::DONE.as_bytes()))).await;
            }
            Reply::StreamThenError => {
                let _ = send(STREAM.content_chunk("partial ")).await;
                let _ = send(STREAM.content_chunk("answer")).await;
                let _ = send(groq::error(
                    "Service Unavailable",
                    "internal_server_error",
                    None,
                ))
                .await;
            }
            Reply::StreamThenErrorMessage(message) => {
                let _ = send(STREAM.content_chunk("partial ")).await;
                let _ = send(groq::error(&message, "internal_server_error", None)).await;
            }
            Reply::StreamHugeEvent(bytes) => {
                let _ = send(STREAM.content_chunk("first ")).await;
                if send(STREAM.content_chunk(&"x".repeat(bytes)))
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = send(STREAM.final_chunk("req_stream_1", STREAM_USAGE_JSON)).await;
                let _ = tx.send(Ok(Bytes::from_static(groq::DONE.as_bytes()))).await;
            }
            Reply::StreamLineEndings {
                endings,
                piece_bytes,
            } => {
                let mut events = vec![STREAM.role_chunk(None)];
                events.extend((0..5).map(|i| STREAM.content_chunk(&format!("w{i} xxxx"))));
                events.push(STREAM.final_chunk("req_stream_1", STREAM_USAGE_JSON));
                if include_usage {
                    events.push(STREAM.usage_chunk(STREAM_USAGE_JSON));
                }
                let mut texts: Vec<String> = events.iter().map(groq::event).collect();
                texts.push(groq::DONE.to_owned());
                let body: String = texts
                    .iter()
                    .enumerate()
                    .map(|(i, text)| text.replace('\n', endings[i % endings.len()]))
                    .collect();
                for piece in body.as_bytes().chunks(piece_bytes.max(1)) {
                    if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                        return;
                    }
                }
            }
            Reply::StreamThenHang => {
                let _ = send(STREAM.content_chunk("first")).await;
                tx.closed().await;
                return;
            }
            _ => unreachable!("not a stream reply"),
        }
        guard.done = true;
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A stream fed by a task through a small channel (the task ends when the receiver is dropped).
pub(crate) fn async_stream_of<F, Fut>(
    produce: F,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(produce(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Unscripted replies chosen by the request, for clients (the SDK tests) that cannot script:
/// model `rate-limited` answers 429 with a Retry-After too long to wait out.
fn reply_for_content(model: &str) -> Reply {
    match model {
        "rate-limited" => Reply::Status {
            status: 429,
            body: groq::error(
                "Rate limit reached for model `rate-limited`",
                "tokens",
                Some("rate_limit_exceeded"),
            )
            .to_string(),
            headers: vec![("retry-after", "30".into())],
        },
        _ => Reply::Ok,
    }
}

/// The prompt a fault may be injected by: the last chat message's content, a Responses or
/// Embeddings `input` string, or the string content of a Responses `input`'s last item.
fn prompt_text(body: &Value) -> Option<&str> {
    if let Some(messages) = body["messages"].as_array() {
        return messages.last()?["content"].as_str();
    }
    match &body["input"] {
        Value::String(text) => Some(text),
        Value::Array(items) => items.last()?["content"].as_str(),
        _ => None,
    }
}

/// Faults chosen by the prompt, for concurrent load where a script's order is unknowable:
/// a prompt ([`prompt_text`]) `fault:500`, `fault:429`, `fault:400` or `fault:garbage`.
fn injected_fault(body: &Value) -> Option<Response> {
    let fault = prompt_text(body)?.strip_prefix("fault:")?;
    let json_error = |status: u16| {
        let body = groq::error(&format!("injected {status}"), "x", Some("injected"));
        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
    };
    Some(match fault {
        "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
        code => json_error(code.parse().unwrap_or(500)),
    })
}

/// Tool calls and JSON mode, answered from the request's content (non-streaming).
fn special_answer(body: &Value, model: &str) -> Option<Response> {
    if body["stream"] == json!(true) {
        return None;
    }
    let last_role = body["messages"].as_array()?.last()?["role"].clone();
    let (message, finish) = if body["tools"].is_array() && last_role == "user" {
        let function = body["tools"][0]["function"]["name"].clone();
        (
            groq::tool_call_message("call_fake_1", function, "{\"city\": \"Paris\"}"),
            "tool_calls",
        )
    } else if body["response_format"]["type"] == "json_object" && last_role == "user" {
        (
            json!({"role": "assistant", "content": "{\"answer\": 42}"}),
            "stop",
        )
    } else {
        return None;
    };
    let answer = groq::with_message(groq_success(model), message, finish);
    Some(axum::Json(answer).into_response())
}

async fn fake_chat(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = state.record(CHAT_PATH, headers, &body);
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let streaming = body["stream"] == json!(true);
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    let reply = match state.next_scripted() {
        Some(reply) => reply,
        None => {
            if let Some(special) = special_answer(&body, &model) {
                return special;
            }
            if let Some(fault) = injected_fault(&body) {
                return fault;
            }
            reply_for_content(&model)
        }
    };
    let reply = match reply {
        Reply::Ok if streaming => Reply::stream(),
        other => other,
    };
    if reply.is_stream() {
        return sse(state.clone(), reply, include_usage);
    }
    let ok =
        |model: &str| (groq::RATELIMIT_HEADERS, axum::Json(groq_success(model))).into_response();
    match reply {
        Reply::Ok => ok(&model),
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            ok(&model)
        }
        Reply::Stream { .. }
        | Reply::StreamThenError
        | Reply::StreamThenErrorMessage(_)
        | Reply::StreamHugeEvent(_)
        | Reply::StreamLineEndings { .. }
        | Reply::StreamThenHang => unreachable!(),
        Reply::Large(bytes) => {
            let mut answer = groq_success(&model);
            answer["choices"][0]["message"]["content"] = json!("y".repeat(bytes));
            axum::Json(answer).into_response()
        }
        Reply::BodyThenHang => broken_body(br#"{"id":"chatcmpl-partial","choices":[{"#, true),
        Reply::BodyThenReset => broken_body(br#"{"id":"chatcmpl-partial","choices":[{"#, false),
        Reply::Status {
            status,
            body,
            headers,
        } => status_reply(status, body, headers),
    }
}

async fn fake_responses(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = state.record(RESPONSES_PATH, headers, &body);
    let Some(model) = body["model"].as_str().map(str::to_owned) else {
        let error = openai::error(
            "Missing required parameter: 'model'.",
            "invalid_request_error",
            Some("model"),
            Some("missing_required_parameter"),
        );
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    };
    let streaming = body["stream"] == json!(true);
    let reply = match state.next_scripted() {
        Some(reply) => reply,
        None => match injected_fault(&body) {
            Some(fault) => return fault,
            None => reply_for_content(&model),
        },
    };
    let reply = match reply {
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            Reply::Ok
        }
        other => other,
    };
    let reply = match reply {
        Reply::Ok if streaming => Reply::stream(),
        other => other,
    };
    if reply.is_stream() {
        return responses_sse(state.clone(), reply, body);
    }
    let ok = |answer: Value| (groq::RATELIMIT_HEADERS, axum::Json(answer)).into_response();
    let partial = br#"{"id":"resp_partial","object":"response","output":[{"#;
    match reply {
        Reply::Large(bytes) => ok(openai::completed_response(
            openai::RESPONSE_ID,
            openai::RESPONSE_MESSAGE_ID,
            &body,
            &"y".repeat(bytes),
            openai::RESPONSES_USAGE,
        )),
        Reply::BodyThenHang => broken_body(partial, true),
        Reply::BodyThenReset => broken_body(partial, false),
        Reply::Status {
            status,
            body,
            headers,
        } => status_reply(status, body, headers),
        _ => ok(openai::responses_success(&body)),
    }
}

/// Sends each event as a typed SSE event; false once the client is gone.
async fn send_typed(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>,
    events: Vec<Value>,
) -> bool {
    for event in events {
        let text = Bytes::from(openai::typed_event(&event));
        if tx.send(Ok(text)).await.is_err() {
            return false;
        }
    }
    true
}

/// A Responses API stream for a stream reply (see [`Reply`]).
fn responses_sse(state: Arc<FakeState>, reply: Reply, request: Value) -> Response {
    let stream = async_stream_of(move |tx| async move {
        let mut guard = state.guard();
        let mut events = ResponseStream::new(
            openai::RESPONSE_STREAM_ID,
            openai::RESPONSE_STREAM_MESSAGE_ID,
            &request,
        );
        let usage = openai::RESPONSES_STREAM_USAGE;
        match reply {
            Reply::Stream {
                chunks,
                chunk_bytes,
                delay,
            } => {
                if !send_typed(&tx, events.opening()).await {
                    return;
                }
                let mut text = String::new();
                for i in 0..chunks {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let piece = chunk_text(i, chunk_bytes);
                    text.push_str(&piece);
                    if !send_typed(&tx, vec![events.delta(&piece)]).await {
                        return;
                    }
                }
                if !send_typed(&tx, events.closing(&text, usage)).await {
                    return;
                }
            }
            Reply::StreamThenError | Reply::StreamThenErrorMessage(_) => {
                let (pieces, message): (&[&str], String) = match reply {
                    Reply::StreamThenErrorMessage(message) => (&["partial "], message),
                    _ => (&["partial ", "answer"], "Service Unavailable".to_owned()),
                };
                let mut sent = events.opening();
                sent.extend(pieces.iter().map(|p| events.delta(p)));
                sent.push(events.error("server_error", &message));
                if !send_typed(&tx, sent).await {
                    return;
                }
            }
            Reply::StreamHugeEvent(bytes) => {
                let huge = "x".repeat(bytes);
                let mut sent = events.opening();
                sent.push(events.delta("first "));
                sent.push(events.delta(&huge));
                sent.extend(events.closing(&format!("first {huge}"), usage));
                if !send_typed(&tx, sent).await {
                    return;
                }
            }
            Reply::StreamLineEndings {
                endings,
                piece_bytes,
            } => {
                let deltas: Vec<String> = (0..5).map(|i| chunk_text(i, 8)).collect();
                let body: String = events
                    .events(&deltas, usage)
                    .iter()
                    .enumerate()
                    .map(|(i, event)| {
                        openai::typed_event(event).replace('\n', endings[i % endings.len()])
                    })
                    .collect();
                for piece in body.as_bytes().chunks(piece_bytes.max(1)) {
                    if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                        return;
                    }
                }
            }
            Reply::StreamThenHang => {
                let mut sent = events.opening();
                sent.push(events.delta("first"));
                if send_typed(&tx, sent).await {
                    tx.closed().await;
                }
                return;
            }
            _ => unreachable!("not a stream reply"),
        }
        guard.done = true;
    });
    (
        [("content-type", "text/event-stream; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn fake_embeddings(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = state.record(EMBEDDINGS_PATH, headers, &body);
    let (inputs, dimensions, base64) = match openai::embeddings_request(&body) {
        Ok(asked) => asked,
        Err(error) => return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response(),
    };
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let reply = match state.next_scripted() {
        Some(reply) => reply,
        None => match injected_fault(&body) {
            Some(fault) => return fault,
            None => reply_for_content(&model),
        },
    };
    let ok = |dimensions: usize| {
        let answer = openai::embeddings_response(&model, &inputs, dimensions, base64);
        (groq::RATELIMIT_HEADERS, axum::Json(answer)).into_response()
    };
    let partial = br#"{"object":"list","data":[{"#;
    match reply {
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            ok(dimensions)
        }
        Reply::Large(bytes) => ok(bytes / 4 + 1),
        Reply::BodyThenHang => broken_body(partial, true),
        Reply::BodyThenReset => broken_body(partial, false),
        Reply::Status {
            status,
            body,
            headers,
        } => status_reply(status, body, headers),
        _ => ok(dimensions),
    }
}

/// A 200 whose JSON body stops after `head`, then hangs (`hang`) or is reset.
fn broken_body(head: &'static [u8], hang: bool) -> Response {
    let head = Bytes::from_static(head);
    let body = futures_util::stream::unfold(0, move |step| {
        let head = head.clone();
        async move {
            match step {
                0 => Some((Ok(head), 1)),
                _ if hang => {
                    std::future::pending::<()>().await;
                    None
                }
                _ => Some((
                    Err(std::io::Error::other("connection reset by the fake")),
                    2,
                )),
            }
        }
    });
    (
        [
            ("content-type", "application/json"),
            ("content-length", "4096"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// [`Reply::Status`]: the status, the body as JSON, the extra headers.
fn status_reply(status: u16, body: String, headers: Vec<(&'static str, String)>) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

// ---------------------------------------------------------------- fast fake (benchmark)

/// How the fast upstream answers (`fake_upstream`'s flags).
#[derive(Clone, Debug)]
pub struct FastOptions {
    /// Before a non-streaming answer (every API's).
    pub delay: Duration,
    /// Content chunks (text deltas) in a stream (every API's).
    pub chunks: usize,
    /// Between a stream's chunks (the first goes out at once: chat's role chunk, the
    /// Responses and Messages APIs' opening events).
    pub chunk_delay: Duration,
}

impl Default for FastOptions {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            chunks: 20,
            chunk_delay: Duration::ZERO,
        }
    }
}

/// The fast fake's answer text, in every API's whole answer.
pub const BENCH_TEXT: &str = "Observability is the ability to understand a system's internal \
    state from the signals it emits: traces, metrics and logs. It lets engineers ask new \
    questions about production behaviour without shipping new code. For LLM applications it \
    adds token usage, cost and latency per call.";

/// The fast fake's token counts, in every API's terms: a 16-token prompt, a 62-token answer.
pub const BENCH_TOKENS: (u64, u64) = (16, 62);

/// The model of the fast fake's embeddings answer (its Responses answers name [`groq::MODEL`]).
pub const BENCH_EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// The texts the fast fake's embedding vectors are derived from, one vector each ...
pub const BENCH_EMBEDDING_INPUTS: [&str; 2] = [
    "Explain observability in 3 sentences",
    "What does a gateway add to every LLM call?",
];
/// ... of this many floats each (JSON numbers, `encoding_format` "float").
pub const BENCH_EMBEDDING_DIMENSIONS: usize = 256;

/// The model of the fast fake's Anthropic Messages answers.
pub const BENCH_ANTHROPIC_MODEL: &str = crate::anthropic::ANTHROPIC_MODEL;

/// The fast fake's answer: a longer text, and usage for a 16-token prompt.
fn bench_completion(model: &str) -> Completion<'_> {
    Completion {
        id: "chatcmpl-bench-0001",
        model,
        content: BENCH_TEXT,
        usage: Usage {
            prompt_tokens: BENCH_TOKENS.0,
            completion_tokens: BENCH_TOKENS.1,
            cached_tokens: 0,
            reasoning_tokens: 0,
            queue_time: 0.012,
            timings: Some(groq::Timings {
                prompt_time: 0.002,
                completion_time: 0.05,
                total_time: 0.052,
            }),
        },
        system_fingerprint: "fp_bench",
        request_id: "req_bench",
    }
}

/// The fast fake's stream events: role chunk, `chunks` content deltas, the final chunk with
/// Groq's usage, the usage chunk if asked, `[DONE]`.
fn bench_events(chunks: usize, include_usage: bool) -> Vec<Bytes> {
    let stream = groq::Stream {
        id: "chatcmpl-bench-0001",
        model: groq::MODEL,
        system_fingerprint: "fp_bench",
    };
    let usage = bench_completion(groq::MODEL).usage;
    let event = |chunk: Value| Bytes::from(groq::event(&chunk));
    let mut events = Vec::with_capacity(chunks + 4);
    events.push(event(stream.role_chunk(Some(json!({"id": "req_x"})))));
    for i in 0..chunks {
        events.push(event(stream.content_chunk(&format!("word{i} "))));
    }
    events.push(event(stream.final_chunk("req_x", usage)));
    if include_usage {
        events.push(event(stream.usage_chunk(usage)));
    }
    events.push(Bytes::from_static(groq::DONE.as_bytes()));
    events
}

/// The text deltas of every fast stream: `word0 `, `word1 `, ...
fn bench_deltas(chunks: usize) -> Vec<String> {
    (0..chunks).map(|i| format!("word{i} ")).collect()
}

/// The Responses request the fast fake's answers echo (`bench/bodies/responses.json`).
fn bench_responses_request() -> Value {
    json!({
        "model": groq::MODEL,
        "input": "Explain observability in 3 sentences",
        "max_output_tokens": 100,
        "temperature": 0.7,
    })
}

const BENCH_RESPONSES_USAGE: openai::ResponsesUsage = openai::ResponsesUsage {
    input_tokens: BENCH_TOKENS.0,
    cached_tokens: 0,
    output_tokens: BENCH_TOKENS.1,
    reasoning_tokens: 0,
};

const BENCH_ANTHROPIC_USAGE: AnthropicUsage = AnthropicUsage {
    input_tokens: BENCH_TOKENS.0,
    output_tokens: BENCH_TOKENS.1,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
};

/// The fast fake's Responses answer: a completed `Response` saying [`BENCH_TEXT`].
fn bench_response() -> Value {
    openai::completed_response(
        "resp_bench_0001",
        "msg_bench_0001",
        &bench_responses_request(),
        BENCH_TEXT,
        BENCH_RESPONSES_USAGE,
    )
}

/// The fast fake's Responses stream, in pieces: the four opening events (created,
/// in_progress, output_item.added, content_part.added) as one piece, one
/// `response.output_text.delta` per chunk, then the four closing events (output_text.done,
/// content_part.done, output_item.done, `response.completed` with usage) as one piece.
fn bench_response_events(chunks: usize) -> Vec<Bytes> {
    let request = bench_responses_request();
    let mut stream =
        openai::ResponseStream::new("resp_bench_stream_0001", "msg_bench_stream_0001", &request);
    let typed = |events: Vec<Value>| -> Bytes {
        Bytes::from(events.iter().map(openai::typed_event).collect::<String>())
    };
    let deltas = bench_deltas(chunks);
    let mut pieces = vec![typed(stream.opening())];
    pieces.extend(deltas.iter().map(|d| typed(vec![stream.delta(d)])));
    pieces.push(typed(
        stream.closing(&deltas.concat(), BENCH_RESPONSES_USAGE),
    ));
    pieces
}

/// The fast fake's embeddings answer: [`BENCH_EMBEDDING_INPUTS`] vectors of
/// [`BENCH_EMBEDDING_DIMENSIONS`] floats.
fn bench_embeddings() -> Value {
    let inputs: Vec<openai::EmbeddingInput> = BENCH_EMBEDDING_INPUTS
        .iter()
        .map(|text| openai::EmbeddingInput::Text((*text).to_owned()))
        .collect();
    openai::embeddings_response(
        BENCH_EMBEDDING_MODEL,
        &inputs,
        BENCH_EMBEDDING_DIMENSIONS,
        false,
    )
}

/// The fast fake's Anthropic Message: one text block [`BENCH_TEXT`], `end_turn`.
fn bench_message() -> Value {
    anthropic::message(
        "msg_bench_0001",
        BENCH_ANTHROPIC_MODEL,
        vec![anthropic::text_block(BENCH_TEXT)],
        Some("end_turn"),
        BENCH_ANTHROPIC_USAGE.to_json(),
    )
}

/// The fast fake's Anthropic stream, in pieces: message_start, content_block_start and ping
/// as one piece, one `text_delta` per chunk, then content_block_stop, message_delta (usage)
/// and message_stop as one piece.
fn bench_message_events(chunks: usize) -> Vec<Bytes> {
    let named =
        |events: &[Value]| Bytes::from(events.iter().map(anthropic::event).collect::<String>());
    let mut pieces = vec![named(&[
        anthropic::message_start(
            "msg_bench_stream_0001",
            BENCH_ANTHROPIC_MODEL,
            BENCH_ANTHROPIC_USAGE,
        ),
        anthropic::content_block_start(0, anthropic::text_block("")),
        anthropic::ping(),
    ])];
    pieces.extend(
        bench_deltas(chunks)
            .iter()
            .map(|d| named(&[anthropic::text_delta(0, d)])),
    );
    pieces.push(named(&[
        anthropic::content_block_stop(0),
        anthropic::message_delta("end_turn", BENCH_ANTHROPIC_USAGE, false),
        anthropic::message_stop(),
    ]));
    pieces
}

/// A precomputed event stream: its pieces (the first sent at once, each later one after the
/// chunk delay) and, for a zero delay, all of them as one body.
struct FastStream {
    pieces: Arc<[Bytes]>,
    whole: Bytes,
}

impl FastStream {
    fn new(pieces: Vec<Bytes>) -> Self {
        Self {
            whole: Bytes::from(pieces.concat()),
            pieces: pieces.into(),
        }
    }

    fn body(&self, delay: Duration) -> Body {
        if delay.is_zero() {
            return Body::from(self.whole.clone());
        }
        let pieces = self.pieces.clone();
        Body::from_stream(futures_util::stream::unfold(0usize, move |i| {
            let pieces = pieces.clone();
            async move {
                let piece = pieces.get(i)?.clone();
                if i > 0 {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<_, Infallible>(piece), i + 1))
            }
        }))
    }
}

/// A fast fake Groq (chat completions, the Responses API, embeddings) and Anthropic (the
/// Messages API) for load: every answer precomputed at start, the request only byte-scanned.
pub struct FastUpstream {
    completion: Bytes,
    /// The SSE events without and with the `include_usage` chunk.
    events: [Arc<[Bytes]>; 2],
    /// The same events concatenated, for a zero chunk delay.
    whole: [Bytes; 2],
    response: Bytes,
    response_stream: FastStream,
    embeddings: Bytes,
    message: Bytes,
    message_stream: FastStream,
    delay: Duration,
    chunk_delay: Duration,
    chat_requests: AtomicU64,
    stream_requests: AtomicU64,
    responses_requests: AtomicU64,
    responses_stream_requests: AtomicU64,
    embeddings_requests: AtomicU64,
    messages_requests: AtomicU64,
    messages_stream_requests: AtomicU64,
}

/// Requests the fast fake received, by endpoint (`GET /stats` of `fake_upstream`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastCounts {
    /// `POST /openai/v1/chat/completions`, all kinds.
    pub chat: u64,
    /// ... of which asked for a stream.
    pub chat_streams: u64,
    /// `POST /openai/v1/responses`, all kinds.
    pub responses: u64,
    /// ... of which asked for a stream.
    pub responses_streams: u64,
    /// `POST /openai/v1/embeddings`.
    pub embeddings: u64,
    /// `POST /v1/messages`, all kinds.
    pub messages: u64,
    /// ... of which asked for a stream.
    pub messages_streams: u64,
}

impl FastUpstream {
    pub fn new(options: &FastOptions) -> Arc<Self> {
        let plain = bench_events(options.chunks, false);
        let usage = bench_events(options.chunks, true);
        let whole = |events: &[Bytes]| Bytes::from(events.concat());
        let json = |value: Value| Bytes::from(value.to_string());
        Arc::new(Self {
            completion: Bytes::from(bench_completion(groq::MODEL).to_json().to_string()),
            whole: [whole(&plain), whole(&usage)],
            events: [plain.into(), usage.into()],
            response: json(bench_response()),
            response_stream: FastStream::new(bench_response_events(options.chunks)),
            embeddings: json(bench_embeddings()),
            message: json(bench_message()),
            message_stream: FastStream::new(bench_message_events(options.chunks)),
            delay: options.delay,
            chunk_delay: options.chunk_delay,
            chat_requests: AtomicU64::default(),
            stream_requests: AtomicU64::default(),
            responses_requests: AtomicU64::default(),
            responses_stream_requests: AtomicU64::default(),
            embeddings_requests: AtomicU64::default(),
            messages_requests: AtomicU64::default(),
            messages_stream_requests: AtomicU64::default(),
        })
    }

    /// `POST /openai/v1/chat/completions`, `/openai/v1/responses`, `/openai/v1/embeddings`
    /// (base URL `http://ADDR/openai/v1`) and `POST /v1/messages` (base URL `http://ADDR`).
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(CHAT_PATH, post(fast_chat))
            .route(RESPONSES_PATH, post(fast_responses))
            .route(EMBEDDINGS_PATH, post(fast_embeddings))
            .route(anthropic::MESSAGES_PATH, post(fast_messages))
            .with_state(self.clone())
    }

    /// Chat requests received, all kinds.
    pub fn chat_requests(&self) -> u64 {
        self.chat_requests.load(Ordering::Relaxed)
    }

    /// Chat requests that asked for a stream.
    pub fn stream_requests(&self) -> u64 {
        self.stream_requests.load(Ordering::Relaxed)
    }

    /// Requests received on every endpoint.
    pub fn counts(&self) -> FastCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FastCounts {
            chat: load(&self.chat_requests),
            chat_streams: load(&self.stream_requests),
            responses: load(&self.responses_requests),
            responses_streams: load(&self.responses_stream_requests),
            embeddings: load(&self.embeddings_requests),
            messages: load(&self.messages_requests),
            messages_streams: load(&self.messages_stream_requests),
        }
    }

    /// A whole JSON answer with `headers`, after the configured delay.
    async fn json(&self, headers: impl IntoResponseParts, body: &Bytes) -> Response {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            headers,
            body.clone(),
        )
            .into_response()
    }

    /// An event stream with `headers`, its pieces `chunk_delay` apart.
    fn sse(&self, headers: impl IntoResponseParts, stream: &FastStream) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            headers,
            stream.body(self.chunk_delay),
        )
            .into_response()
    }
}

async fn fast_chat(State(fake): State<Arc<FastUpstream>>, body: Bytes) -> Response {
    fake.chat_requests.fetch_add(1, Ordering::Relaxed);
    let ratelimit = groq::RATELIMIT_HEADERS.map(|(k, v)| (k, HeaderValue::from_static(v)));
    if json_flag(&body, b"\"stream\"") {
        fake.stream_requests.fetch_add(1, Ordering::Relaxed);
        let usage = usize::from(json_flag(&body, b"\"include_usage\""));
        let body = if fake.chunk_delay.is_zero() {
            Body::from(fake.whole[usage].clone())
        } else {
            let events = fake.events[usage].clone();
            let delay = fake.chunk_delay;
            Body::from_stream(futures_util::stream::unfold(0usize, move |i| {
                let events = events.clone();
                async move {
                    let event = events.get(i)?.clone();
                    // The role chunk goes out at once; every later chunk after the delay.
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<_, Infallible>(event), i + 1))
                }
            }))
        };
        return (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            ratelimit,
            body,
        )
            .into_response();
    }
    if !fake.delay.is_zero() {
        tokio::time::sleep(fake.delay).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ratelimit,
        fake.completion.clone(),
    )
        .into_response()
}

/// `POST /openai/v1/responses`: the `Response`, or its typed events for `"stream": true`.
async fn fast_responses(State(fake): State<Arc<FastUpstream>>, body: Bytes) -> Response {
    fake.responses_requests.fetch_add(1, Ordering::Relaxed);
    if json_flag(&body, b"\"stream\"") {
        fake.responses_stream_requests
            .fetch_add(1, Ordering::Relaxed);
        return fake.sse(groq::RATELIMIT_HEADERS, &fake.response_stream);
    }
    fake.json(groq::RATELIMIT_HEADERS, &fake.response).await
}

/// `POST /openai/v1/embeddings`: the same vectors whatever the input.
async fn fast_embeddings(State(fake): State<Arc<FastUpstream>>) -> Response {
    fake.embeddings_requests.fetch_add(1, Ordering::Relaxed);
    fake.json(groq::RATELIMIT_HEADERS, &fake.embeddings).await
}

/// `POST /v1/messages`: Anthropic's Message, or its events for `"stream": true`; no key or
/// header checked.
async fn fast_messages(State(fake): State<Arc<FastUpstream>>, body: Bytes) -> Response {
    fake.messages_requests.fetch_add(1, Ordering::Relaxed);
    let headers = (
        anthropic::ANTHROPIC_RATELIMIT_HEADERS,
        [("request-id", anthropic::REQUEST_ID)],
    );
    if json_flag(&body, b"\"stream\"") {
        fake.messages_stream_requests
            .fetch_add(1, Ordering::Relaxed);
        return fake.sse(headers, &fake.message_stream);
    }
    fake.json(headers, &fake.message).await
}

/// Whether `"key"` is followed (after whitespace and a colon) by `true`, anywhere in `body`.
fn json_flag(body: &[u8], key: &[u8]) -> bool {
    let mut rest = body;
    while let Some(at) = find(rest, key) {
        rest = &rest[at + key.len()..];
        let mut i = 0;
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        if rest.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        if rest[i..].starts_with(b"true") {
            return true;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_flag_with_any_spacing() {
        assert!(json_flag(br#"{"a":1,"stream" : true}"#, b"\"stream\""));
        assert!(!json_flag(
            br#"{"stream":false,"stream_options":{"x":true}}"#,
            b"\"stream\""
        ));
        assert!(json_flag(
            br#"{"stream_options":{"include_usage":true}}"#,
            b"\"include_usage\""
        ));
    }

    use http_body_util::BodyExt;

    async fn answer(response: Response) -> (String, String) {
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    /// `event: TYPE` / `data: {json}` events, checking that each payload's `type` is its name.
    fn named_events(text: &str) -> Vec<Value> {
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(
                    Some(data["type"].as_str().unwrap()),
                    name.strip_prefix("event: ")
                );
                data
            })
            .collect()
    }

    fn fast(chunks: usize) -> Arc<FastUpstream> {
        FastUpstream::new(&FastOptions {
            chunks,
            ..FastOptions::default()
        })
    }

    #[tokio::test]
    async fn the_fast_responses_answer_is_a_response_or_its_typed_events() {
        let fake = fast(3);
        let body = Bytes::from_static(br#"{"model":"m","input":"x"}"#);
        let (kind, text) = answer(fast_responses(State(fake.clone()), body).await).await;
        assert_eq!(kind, "application/json");
        let response: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["model"], groq::MODEL);
        assert_eq!(response["output"][0]["content"][0]["text"], BENCH_TEXT);
        assert_eq!(response["usage"]["total_tokens"], 78);

        let body = Bytes::from_static(br#"{"model":"m","input":"x","stream": true}"#);
        let (kind, text) = answer(fast_responses(State(fake.clone()), body).await).await;
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        let events = named_events(&text);
        assert_eq!(events.len(), 4 + 3 + 4);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
        }
        let done = &events[10]["response"];
        assert_eq!(events[10]["type"], "response.completed");
        assert_eq!(
            done["output"][0]["content"][0]["text"],
            "word0 word1 word2 "
        );
        assert_eq!(done["usage"]["output_tokens"], 62);
        let counts = fake.counts();
        assert_eq!((counts.responses, counts.responses_streams), (2, 1));
        assert_eq!(counts.chat, 0);
    }

    #[tokio::test]
    async fn the_fast_embeddings_are_two_vectors_of_256_floats() {
        let fake = fast(20);
        let (kind, text) = answer(fast_embeddings(State(fake.clone())).await).await;
        assert_eq!(kind, "application/json");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["model"], BENCH_EMBEDDING_MODEL);
        let data = answer["data"].as_array().unwrap();
        assert_eq!(data.len(), BENCH_EMBEDDING_INPUTS.len());
        for (i, item) in data.iter().enumerate() {
            assert_eq!(item["index"], i);
            let floats = item["embedding"].as_array().unwrap();
            assert_eq!(floats.len(), BENCH_EMBEDDING_DIMENSIONS);
            assert!(floats.iter().all(Value::is_f64));
        }
        assert_eq!(answer["usage"]["prompt_tokens"], 14);
        assert_eq!(fake.counts().embeddings, 1);
    }

    #[tokio::test]
    async fn the_fast_messages_answer_is_a_message_or_its_events() {
        let fake = fast(2);
        let body = Bytes::from_static(br#"{"model":"claude","max_tokens":9,"messages":[]}"#);
        let response = fast_messages(State(fake.clone()), body).await;
        assert_eq!(response.headers()["request-id"], anthropic::REQUEST_ID);
        assert!(
            response
                .headers()
                .contains_key("anthropic-ratelimit-tokens-remaining")
        );
        let (kind, text) = answer(response).await;
        assert_eq!(kind, "application/json");
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["type"], "message");
        assert_eq!(message["model"], BENCH_ANTHROPIC_MODEL);
        assert_eq!(message["content"][0]["text"], BENCH_TEXT);
        assert_eq!(message["stop_reason"], "end_turn");
        assert_eq!(message["usage"]["input_tokens"], 16);
        assert_eq!(message["usage"]["output_tokens"], 62);

        let body =
            Bytes::from_static(br#"{"model":"claude","max_tokens":9,"messages":[],"stream":true}"#);
        let (kind, text) = answer(fast_messages(State(fake.clone()), body).await).await;
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        let kinds: Vec<String> = named_events(&text)
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let counts = fake.counts();
        assert_eq!((counts.messages, counts.messages_streams), (2, 1));
    }

    #[tokio::test]
    async fn with_a_chunk_delay_the_pieces_come_one_by_one() {
        let fake = FastUpstream::new(&FastOptions {
            chunks: 2,
            chunk_delay: Duration::from_millis(1),
            ..FastOptions::default()
        });
        let body = Bytes::from_static(br#"{"stream":true}"#);
        let mut body = fast_messages(State(fake.clone()), body).await.into_body();
        let mut pieces = 0;
        while let Some(frame) = body.frame().await {
            assert!(frame.unwrap().is_data());
            pieces += 1;
        }
        assert_eq!(pieces, 1 + 2 + 1);
        let (_, whole) = answer(fake.sse((), &fake.message_stream)).await;
        assert_eq!(
            whole.as_bytes(),
            &fake.message_stream.pieces.concat()[..],
            "the same bytes either way"
        );
    }
}
