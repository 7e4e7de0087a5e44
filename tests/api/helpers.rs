//! Test harness: the app on port 0, a fake Groq upstream speaking Groq's wire format, and an
//! OTLP/HTTP receiver decoding real protobuf. Everything is real HTTP on 127.0.0.1.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use llm_observability::Application;
use llm_observability::config::Settings;
use llm_observability::telemetry::{self, TelemetryGuard};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

/// The upstream key the tests configure; it must never appear anywhere but upstream.
pub const API_KEY: &str = "gsk_test_SECRET_0123456789abcdefghij";

// ---------------------------------------------------------------- OTLP receiver

/// One exported span with its resource attributes.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

/// An OTLP/HTTP receiver on its own thread and runtime, so it outlives every test's runtime.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

impl OtlpReceiver {
    /// Starts a receiver; it runs until the process ends.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a receiver on a given port (0: any).
    pub fn start_on(port: u16) -> Self {
        let spans: Arc<Mutex<Vec<ExportedSpan>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let state = spans.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/v1/traces", post(receive_traces))
                    .with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self {
            addr: rx.recv().unwrap(),
            spans,
        }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn all_spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (with a deadline) until at least `count` spans of the trace have arrived.
    pub async fn wait_for_trace(&self, trace_id: &str, count: usize) -> Vec<ExportedSpan> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<ExportedSpan> = self
                .all_spans()
                .into_iter()
                .filter(|s| hex(&s.span.trace_id) == trace_id)
                .collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id}: {} of {count} spans arrived: {:?}",
                spans.len(),
                spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive_traces(
    State(spans): State<Arc<Mutex<Vec<ExportedSpan>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-protobuf",
        "OTLP/HTTP must send protobuf"
    );
    // Collectors may compress (OTLP allows gzip); our service sends plain protobuf.
    let body = match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            use std::io::Read;
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .unwrap();
            Bytes::from(plain)
        }
        _ => body,
    };
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut store = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                store.push(ExportedSpan {
                    resource: resource.clone(),
                    span,
                });
            }
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute's value, as JSON for easy comparison.
pub fn attr(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_json)
}

fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_value_json).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

/// The receiver shared by every in-process app; telemetry is process-global.
pub fn otlp() -> &'static OtlpReceiver {
    static TELEMETRY: OnceLock<(OtlpReceiver, TelemetryGuard)> = OnceLock::new();
    &TELEMETRY
        .get_or_init(|| {
            let receiver = OtlpReceiver::start();
            let mut settings = base_settings(&[]).telemetry;
            settings.traces_endpoint = receiver.traces_endpoint();
            settings.batch_schedule_delay = Some(Duration::from_millis(50));
            // Thousands of injected faults would each log a warning; the binary tests cover logs.
            settings.log_filter = "error".into();
            let guard = telemetry::init(&settings).expect("telemetry init");
            (receiver, guard)
        })
        .0
}

// ---------------------------------------------------------------- fake Groq upstream

/// What the fake upstream answers to one request.
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
}

impl Reply {
    /// Groq's error body for a status.
    pub fn groq_error(status: u16, message: &str, code: &str) -> Self {
        Reply::Status {
            status,
            body: json!({"error": {"message": message, "type": "invalid_request_error", "code": code}})
                .to_string(),
            headers: vec![],
        }
    }
}

/// One request the fake upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    /// Streams whose body was dropped (the gateway closed the connection) before completing.
    abandoned_streams: std::sync::atomic::AtomicUsize,
}

/// A fake Groq: `POST /openai/v1/chat/completions` on port 0.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let state: Arc<FakeState> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/openai/v1/chat/completions", post(fake_chat))
            .route("/openai/v1/models", axum::routing::get(fake_models))
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

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many streams were dropped by the gateway before they completed.
    pub fn abandoned_streams(&self) -> usize {
        self.state
            .abandoned_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn fake_models(headers: HeaderMap) -> Response {
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("Bearer {API_KEY}")
    );
    axum::Json(json!({"object": "list", "data": [
        {"id": "llama-3.1-8b-instant", "object": "model", "created": 1693721698, "owned_by": "Meta", "active": true, "context_window": 131072}
    ]}))
    .into_response()
}

/// One Groq stream chunk as an SSE event.
pub fn chunk_event(delta: Value, finish_reason: Option<&str>, x_groq: Option<Value>) -> String {
    let mut chunk = json!({
        "id": "chatcmpl-stream-1", "object": "chat.completion.chunk", "created": 1_764_000_000,
        "model": "llama-3.1-8b-instant", "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    if let Some(x) = x_groq {
        chunk["x_groq"] = x;
    }
    format!("data: {chunk}\n\n")
}

/// The usage a fake stream reports.
pub const STREAM_USAGE: (u64, u64) = (9, 21);

/// Sets a flag when dropped before `done`: the gateway hung up mid-stream.
struct AbandonGuard {
    state: Arc<FakeState>,
    done: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state
                .abandoned_streams
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn sse(state: Arc<FakeState>, reply: Reply, include_usage: bool) -> Response {
    let (input, output) = STREAM_USAGE;
    let usage = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output, "queue_time": 0.01});
    let stream = async_stream_of(move |tx| async move {
        let mut guard = AbandonGuard { state, done: false };
        let send = |event: String| tx.send(Ok::<_, std::convert::Infallible>(Bytes::from(event)));
        if send(chunk_event(
            json!({"role": "assistant", "content": ""}),
            None,
            None,
        ))
        .await
        .is_err()
        {
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
                    let text = format!("w{i} ") + &"x".repeat(chunk_bytes.saturating_sub(4));
                    if send(chunk_event(json!({"content": text}), None, None))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let x_groq = json!({"id": "req_stream_1", "usage": usage});
                let _ = send(chunk_event(json!({}), Some("stop"), Some(x_groq))).await;
                if include_usage {
                    let chunk = json!({"id": "chatcmpl-stream-1", "object": "chat.completion.chunk", "created": 1_764_000_000,
                        "model": "llama-3.1-8b-instant", "choices": [], "usage": usage});
                    let _ = send(format!("data: {chunk}\n\n")).await;
                }
                let _ = send("data: [DONE]\n\n".to_owned()).await;
            }
            Reply::StreamThenError => {
                let _ = send(chunk_event(json!({"content": "partial "}), None, None)).await;
                let _ = send(chunk_event(json!({"content": "answer"}), None, None)).await;
                let error = json!({"error": {"message": "Service Unavailable", "type": "internal_server_error"}});
                let _ = send(format!("data: {error}\n\n")).await;
            }
            Reply::StreamThenHang => {
                let _ = send(chunk_event(json!({"content": "first"}), None, None)).await;
                tx.closed().await;
                return;
            }
            _ => unreachable!("not a stream reply"),
        }
        guard.done = true;
    });
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// A stream fed by a task through a small channel (the task ends when the receiver is dropped).
fn async_stream_of<F, Fut>(
    produce: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::convert::Infallible>>) -> Fut,
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
            body: json!({"error": {"message": "Rate limit reached for model `rate-limited`", "type": "tokens", "code": "rate_limit_exceeded"}}).to_string(),
            headers: vec![("retry-after", "30".into())],
        },
        _ => Reply::Ok,
    }
}

/// Faults chosen by the prompt, for concurrent load where a script's order is unknowable:
/// a last message `fault:500`, `fault:429`, `fault:400` or `fault:garbage`.
fn injected_fault(state: &FakeState) -> Option<Response> {
    let received = state.received.lock().unwrap();
    let content = received.last()?.body["messages"].as_array()?.last()?["content"]
        .as_str()?
        .to_owned();
    let fault = content.strip_prefix("fault:")?;
    let json_error = |status: u16| {
        let body = json!({"error": {"message": format!("injected {status}"), "type": "x", "code": "injected"}});
        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
    };
    Some(match fault {
        "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
        code => json_error(code.parse().unwrap_or(500)),
    })
}

/// Tool calls and JSON mode, answered from the request's content (non-streaming).
fn special_answer(state: &FakeState, model: &str) -> Option<Response> {
    let received = state.received.lock().unwrap();
    let body = &received.last()?.body;
    if body["stream"] == json!(true) {
        return None;
    }
    let last_role = body["messages"].as_array()?.last()?["role"].clone();
    let message = if body["tools"].is_array() && last_role == "user" {
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_fake_1", "type": "function",
            "function": {"name": body["tools"][0]["function"]["name"], "arguments": "{\"city\": \"Paris\"}"}}]})
    } else if body["response_format"]["type"] == "json_object" && last_role == "user" {
        json!({"role": "assistant", "content": "{\"answer\": 42}"})
    } else {
        return None;
    };
    let finish = if message["tool_calls"].is_array() {
        "tool_calls"
    } else {
        "stop"
    };
    let mut answer = groq_success(model);
    answer["choices"][0]["message"] = message;
    answer["choices"][0]["finish_reason"] = json!(finish);
    Some(axum::Json(answer).into_response())
}

/// Groq's success body for a request.
pub fn groq_success(model: &str) -> Value {
    json!({
        "id": "chatcmpl-fake-123",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Observability is knowing what your system does."},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "queue_time": 0.012, "prompt_tokens": 12, "prompt_time": 0.002,
            "completion_tokens": 34, "completion_time": 0.03, "total_tokens": 46, "total_time": 0.032
        },
        "usage_breakdown": null,
        "system_fingerprint": "fp_fake",
        "x_groq": {"id": "req_fake_1"},
        "service_tier": "on_demand"
    })
}

async fn fake_chat(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let streaming = body["stream"] == json!(true);
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    state
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = match scripted {
        Some(reply) => reply,
        None => {
            if let Some(special) = special_answer(&state, &model) {
                return special;
            }
            if let Some(fault) = injected_fault(&state) {
                return fault;
            }
            reply_for_content(&model)
        }
    };
    let reply = match reply {
        Reply::Ok if streaming => Reply::stream(),
        other => other,
    };
    if matches!(
        reply,
        Reply::Stream { .. } | Reply::StreamThenError | Reply::StreamThenHang
    ) {
        return sse(state.clone(), reply, include_usage);
    }
    let ok = |model: &str| {
        (
            [
                ("x-ratelimit-remaining-requests", "14399"),
                ("x-ratelimit-remaining-tokens", "5954"),
            ],
            axum::Json(groq_success(model)),
        )
            .into_response()
    };
    match reply {
        Reply::Ok => ok(&model),
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            ok(&model)
        }
        Reply::Stream { .. } | Reply::StreamThenError | Reply::StreamThenHang => unreachable!(),
        Reply::Large(bytes) => {
            let mut answer = groq_success(&model);
            answer["choices"][0]["message"]["content"] = json!("y".repeat(bytes));
            axum::Json(answer).into_response()
        }
        Reply::BodyThenHang | Reply::BodyThenReset => {
            let hang = matches!(reply, Reply::BodyThenHang);
            let head = Bytes::from_static(br#"{"id":"chatcmpl-partial","choices":[{"#);
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
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        Reply::Status {
            status,
            body,
            headers,
        } => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    }
}

// ---------------------------------------------------------------- the app

/// Settings as the binary would read them, from a map instead of the environment.
pub fn base_settings(vars: &[(&str, &str)]) -> Settings {
    let mut map: HashMap<String, String> = [
        ("APP_HOST", "127.0.0.1"),
        ("APP_PORT", "0"),
        ("METRICS_HOST", "127.0.0.1"),
        ("METRICS_PORT", "0"),
        ("SIMULATED_LATENCY_MS", "0"),
        ("LLM_TIMEOUT_SECS", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in vars {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|k| map.get(k).cloned()).expect("valid test settings")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub upstream: FakeUpstream,
    pub client: reqwest::Client,
}

/// The app against the fake Groq upstream, with extra settings.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    otlp();
    let upstream = FakeUpstream::start().await;
    let base_url = upstream.base_url();
    let mut all: Vec<(&str, &str)> = vec![("GROQ_API_KEY", API_KEY), ("GROQ_BASE_URL", &base_url)];
    all.extend_from_slice(vars);
    let app = Application::build(base_settings(&all))
        .await
        .expect("app builds");
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], app.metrics_port()));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        addr,
        metrics_addr,
        upstream,
        client: reqwest::Client::new(),
    }
}

/// The app against the fake Groq upstream with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/chat"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The value of one sample in a Prometheus text exposition, matched on its exact label set.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let mut got: Vec<(String, String)> = label_text
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect();
        got.sort();
        (got == wanted).then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------- the binary as a process

/// The service binary running as a child process, with its log lines captured.
pub struct ServiceProcess {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub log: Arc<Mutex<String>>,
}

/// Starts the real binary with `LOG_FORMAT=json` and ports 0, and reads its ports from the
/// start-up log line.
pub fn start_binary(vars: &[(&str, &str)]) -> ServiceProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-observability"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("APP_HOST", "127.0.0.1"),
            ("APP_PORT", "0"),
            ("METRICS_HOST", "127.0.0.1"),
            ("METRICS_PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("SIMULATED_LATENCY_MS", "0"),
        ])
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("binary starts");
    let log: Arc<Mutex<String>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let (Some(p), Some(m)) = (
                        v["fields"]["api_port"].as_u64(),
                        v["fields"]["metrics_port"].as_u64(),
                    )
                {
                    let _ = tx.send((p as u16, m as u16));
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let (port, metrics_port) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("binary did not start: {}", log.lock().unwrap()));
    ServiceProcess {
        child,
        port,
        metrics_port,
        log,
    }
}

impl ServiceProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// `POST /api/chat` with a JSON body.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/chat"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
