//! An OTLP trace receiver: OTLP/HTTP (`POST /v1/traces`, protobuf) or OTLP/gRPC
//! (`TraceService/Export` over HTTP/2 without TLS), answering full success unless scripted.
//!
//! It counts every export (requests, bytes, spans, bodies it could not parse) and, unless it
//! only counts, decodes each into [`ExportedSpan`]s and keeps them:
//!
//! * [`OtlpReceiver`], decoding, for the tests: on its own thread and runtime, so it outlives
//!   every test's runtime. It records each export's headers and arrival time
//!   ([`ExportRequest`]) and answers as scripted ([`Answer`]: partial success, an error status
//!   with `Retry-After` or gRPC `RetryInfo`, an answer that never ends).
//! * [`Sink::counting`] mounted with [`Sink::routes`], for the benchmark: spans are counted by
//!   walking the protobuf by hand, nothing is kept, so memory stays flat under any load.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

/// The OTLP/gRPC method path.
pub const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The largest export body accepted.
const BODY_LIMIT: usize = 64 << 20;

/// How long [`Answer::Endless`] goes on: far more than any client should read.
const ENDLESS_BYTES: usize = 1 << 30;

/// How the receiver answers one export. Exports beyond the script get [`Answer::Success`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Full success: an empty `ExportTraceServiceResponse`; the spans are kept.
    Success,
    /// OTLP partial success: `rejected` spans (`None`: all of the request's) refused with
    /// `message`, which may come alone (`Some(0)`): a warning. The spans are kept.
    PartialSuccess {
        rejected: Option<i64>,
        message: String,
    },
    /// An HTTP error status, with a `Retry-After` value if given; over gRPC the same HTTP
    /// status without any gRPC header. The spans are not kept.
    HttpStatus {
        status: u16,
        retry_after: Option<String>,
    },
    /// gRPC only: a trailers-only answer with this `grpc-status` (non-zero) and message, and a
    /// `google.rpc.RetryInfo` delay in `grpc-status-details-bin` if given. Spans not kept.
    GrpcStatus {
        code: i32,
        message: String,
        retry_delay: Option<Duration>,
    },
    /// Success (200, and `grpc-status` 0 if it ever ended) with an answer that goes on for a
    /// gigabyte, trickled for minutes: a client must stop reading it. The spans are kept.
    Endless,
}

/// One export as the receiver saw it.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// When it arrived.
    pub at: Instant,
    /// Its headers (gRPC: its metadata; HTTP/2 pseudo-headers are not included).
    pub headers: HeaderMap,
    /// The spans in it.
    pub spans: usize,
    /// How it was answered.
    pub answer: Answer,
}

/// One exported span with its resource attributes.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name and its `ScopeSpans.schema_url`.
    pub scope_name: String,
    pub scope_schema_url: String,
    pub span: Span,
}

/// What a receiver has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Export requests.
    pub requests: u64,
    /// Their body bytes, as sent (compressed or not).
    pub bytes: u64,
    /// Spans in the requests that could be parsed.
    pub spans: u64,
    /// Requests whose body could not be parsed.
    pub unparsed: u64,
}

/// A receiver's state: its counters, and the spans if it decodes.
pub struct Sink {
    decode: bool,
    spans: Mutex<Vec<ExportedSpan>>,
    /// Answers for the next exports, in order (decoding receivers only).
    script: Mutex<VecDeque<Answer>>,
    /// Every decoded export (decoding receivers only).
    received: Mutex<Vec<ExportRequest>>,
    requests: AtomicU64,
    bytes: AtomicU64,
    span_count: AtomicU64,
    unparsed: AtomicU64,
}

impl Sink {
    fn new(decode: bool) -> Arc<Self> {
        Arc::new(Self {
            decode,
            spans: Mutex::default(),
            script: Mutex::default(),
            received: Mutex::default(),
            requests: AtomicU64::default(),
            bytes: AtomicU64::default(),
            span_count: AtomicU64::default(),
            unparsed: AtomicU64::default(),
        })
    }

    /// Decodes every export (plain or gzip protobuf; anything but protobuf fails the handler)
    /// and keeps its spans; a body that does not decode is answered 400.
    pub fn decoding() -> Arc<Self> {
        Self::new(true)
    }

    /// Only counts: spans are counted in plain protobuf bodies without decoding them; a
    /// compressed or malformed body counts as unparsed, and is answered 200 all the same.
    pub fn counting() -> Arc<Self> {
        Self::new(false)
    }

    /// `POST /v1/traces`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                TRACES_PATH,
                post(receive_traces).layer(DefaultBodyLimit::max(BODY_LIMIT)),
            )
            .with_state(self.clone())
    }

    /// Every span kept so far (none when counting only).
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            requests: self.requests.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            spans: self.span_count.load(Relaxed),
            unparsed: self.unparsed.load(Relaxed),
        }
    }

    /// Takes a decoded export: records it, picks its answer and keeps its spans if the answer
    /// accepts them.
    fn accept(&self, headers: &HeaderMap, request: ExportTraceServiceRequest) -> Answer {
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Success);
        let keep = matches!(
            answer,
            Answer::Success | Answer::PartialSuccess { .. } | Answer::Endless
        );
        let mut spans = 0;
        let mut store = self.spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans += scope.spans.len();
                if !keep {
                    continue;
                }
                let scope_name = scope.scope.map(|s| s.name).unwrap_or_default();
                for span in scope.spans {
                    store.push(ExportedSpan {
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        scope_schema_url: scope.schema_url.clone(),
                        span,
                    });
                }
            }
        }
        drop(store);
        self.span_count.fetch_add(spans as u64, Relaxed);
        // For a partial success of "every span", the count goes in the answer.
        let answer = match answer {
            Answer::PartialSuccess {
                rejected: None,
                message,
            } => Answer::PartialSuccess {
                rejected: Some(spans as i64),
                message,
            },
            other => other,
        };
        self.received.lock().unwrap().push(ExportRequest {
            at: Instant::now(),
            headers: headers.clone(),
            spans,
            answer: answer.clone(),
        });
        answer
    }
}

/// A decoding OTLP/HTTP receiver on its own thread and runtime, so it outlives every test's
/// runtime.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    sink: Arc<Sink>,
    /// The open gRPC connections' tasks (gRPC receivers only).
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl OtlpReceiver {
    /// Starts a receiver; it runs until the process ends.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a receiver on a given port (0: any).
    pub fn start_on(port: u16) -> Self {
        let sink = Sink::decoding();
        let app = sink.routes();
        let addr = serve_on_own_thread(port, move |listener| async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            sink,
            connections: Arc::default(),
        }
    }

    /// Starts an OTLP/gRPC receiver (HTTP/2 without TLS) on any port; it runs until the
    /// process ends. Its endpoint is [`OtlpReceiver::grpc_endpoint`].
    pub fn start_grpc() -> Self {
        Self::start_grpc_on(0)
    }

    /// Starts an OTLP/gRPC receiver on a given port (0: any).
    pub fn start_grpc_on(port: u16) -> Self {
        let sink = Sink::decoding();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (served, open) = (sink.clone(), connections.clone());
        let addr = serve_on_own_thread(port, move |listener| async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = served.clone();
                let connection = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        grpc_export(sink.clone(), request)
                    });
                    // A client going away mid-answer (Answer::Endless) is no error here.
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                open.lock().unwrap().push(connection.abort_handle());
            }
        });
        Self {
            addr,
            sink,
            connections,
        }
    }

    /// gRPC receivers: closes every open connection at once, without a word (no GOAWAY), as a
    /// collector that restarts or an idle timeout in between would. New ones are accepted.
    pub fn close_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_endpoint(&self) -> String {
        format!("http://{}{TRACES_PATH}", self.addr)
    }

    /// `http://127.0.0.1:PORT`, the endpoint of a receiver started with
    /// [`OtlpReceiver::start_grpc`].
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next exports so, in order; later ones get [`Answer::Success`].
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.sink.script.lock().unwrap().extend(answers);
    }

    /// Every export received so far, in order of arrival.
    pub fn requests(&self) -> Vec<ExportRequest> {
        self.sink.received.lock().unwrap().clone()
    }

    /// Waits (with a deadline) until at least `count` exports have arrived.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<ExportRequest> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} exports arrived: {requests:?}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every span received so far.
    pub fn all_spans(&self) -> Vec<ExportedSpan> {
        self.sink.spans()
    }

    /// What the receiver has counted.
    pub fn counts(&self) -> Counts {
        self.sink.counts()
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
    State(sink): State<Arc<Sink>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sink.requests.fetch_add(1, Relaxed);
    sink.bytes.fetch_add(body.len() as u64, Relaxed);
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes());
    if !sink.decode {
        let plain = encoding.is_none_or(|e| e == b"identity");
        match plain.then(|| count_spans(&body)).flatten() {
            Some(n) => sink.span_count.fetch_add(n, Relaxed),
            None => sink.unparsed.fetch_add(1, Relaxed),
        };
        return success();
    }
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/x-protobuf",
        "OTLP/HTTP must send protobuf"
    );
    // Collectors may compress (OTLP allows gzip); our service sends plain protobuf.
    let body = match encoding {
        Some(b"gzip") => {
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
        Err(e) => {
            sink.unparsed.fetch_add(1, Relaxed);
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    match sink.accept(&headers, request) {
        Answer::Success => success(),
        Answer::PartialSuccess { rejected, message } => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            partial_success(rejected.unwrap_or_default(), message).encode_to_vec(),
        )
            .into_response(),
        Answer::HttpStatus {
            status,
            retry_after,
        } => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value.parse().unwrap());
            }
            response
        }
        Answer::GrpcStatus { .. } => panic!("Answer::GrpcStatus is for gRPC receivers"),
        Answer::Endless => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Body::from_stream(endless(Vec::new()).map(Ok::<_, Infallible>)),
        )
            .into_response(),
    }
}

/// Runs `serve` with a listener on 127.0.0.1:`port` on its own thread and runtime.
fn serve_on_own_thread<F: Future<Output = ()> + 'static>(
    port: u16,
    serve: impl FnOnce(tokio::net::TcpListener) -> F + Send + 'static,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
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
            serve(listener).await;
        });
    });
    rx.recv().unwrap()
}

fn partial_success(rejected: i64, message: String) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: message,
        }),
    }
}

/// `first`, then zeros trickled in 64 KiB chunks, one per 10 ms, up to [`ENDLESS_BYTES`]:
/// minutes, and a client reading it all keeps buffering.
fn endless(first: Vec<u8>) -> impl futures_util::Stream<Item = Bytes> + Send {
    let zeros = Bytes::from(vec![0u8; 64 << 10]);
    let chunks = futures_util::stream::unfold(0, move |sent| {
        let zeros = zeros.clone();
        async move {
            if sent >= ENDLESS_BYTES {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((zeros, sent + (64 << 10)))
        }
    });
    futures_util::stream::once(async move { Bytes::from(first) }).chain(chunks)
}

/// An empty `ExportTraceServiceResponse`: full success.
fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

// ---------------------------------------------------------------- OTLP/gRPC

type GrpcBody = BoxBody<Bytes, Infallible>;

/// `TraceService/Export`, by hand over hyper's HTTP/2 server: a gRPC message is a 5-byte
/// prefix (compressed flag, big-endian length) and the protobuf, the status comes in trailers,
/// or alone in the headers ("trailers-only").
async fn grpc_export(
    sink: Arc<Sink>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<GrpcBody>, Infallible> {
    if request.uri().path() != GRPC_EXPORT_PATH {
        return Ok(trailers_only(12, "unknown method", None));
    }
    let headers = request.headers().clone();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    sink.requests.fetch_add(1, Relaxed);
    sink.bytes.fetch_add(body.len() as u64, Relaxed);
    assert!(
        headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")),
        "gRPC must send application/grpc: {headers:?}"
    );
    assert_eq!(body.first(), Some(&0), "an uncompressed gRPC message");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(body.len(), 5 + len, "one whole gRPC message");
    let request = match ExportTraceServiceRequest::decode(body.slice(5..)) {
        Ok(r) => r,
        Err(e) => {
            sink.unparsed.fetch_add(1, Relaxed);
            return Ok(trailers_only(13, &e.to_string(), None));
        }
    };
    Ok(match sink.accept(&headers, request) {
        Answer::Success => grpc_message(&ExportTraceServiceResponse::default()),
        Answer::PartialSuccess { rejected, message } => {
            grpc_message(&partial_success(rejected.unwrap_or_default(), message))
        }
        Answer::HttpStatus {
            status,
            retry_after,
        } => {
            let mut response = hyper::Response::new(BoxBody::new(Empty::new()));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value.parse().unwrap());
            }
            response
        }
        Answer::GrpcStatus {
            code,
            message,
            retry_delay,
        } => trailers_only(code, &message, retry_delay),
        Answer::Endless => {
            let mut prefix = vec![0];
            prefix.extend_from_slice(&(ENDLESS_BYTES as u32).to_be_bytes());
            let frames = endless(prefix).map(|data| Ok(Frame::data(data)));
            grpc_response(BoxBody::new(StreamBody::new(frames)))
        }
    })
}

/// A 200 with gRPC's content type.
fn grpc_response(body: GrpcBody) -> hyper::Response<GrpcBody> {
    let mut response = hyper::Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// One message, then `grpc-status: 0` in the trailers.
fn grpc_message(message: &ExportTraceServiceResponse) -> hyper::Response<GrpcBody> {
    let encoded = message.encode_to_vec();
    let mut data = vec![0];
    data.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    data.extend_from_slice(&encoded);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [Frame::data(Bytes::from(data)), Frame::trailers(trailers)];
    grpc_response(BoxBody::new(StreamBody::new(futures_util::stream::iter(
        frames.map(Ok),
    ))))
}

/// An error status alone in the headers (no message, no trailers), with a
/// `google.rpc.RetryInfo` if given.
fn trailers_only(
    code: i32,
    message: &str,
    retry_delay: Option<Duration>,
) -> hyper::Response<GrpcBody> {
    let mut response = grpc_response(BoxBody::new(Empty::new()));
    let headers = response.headers_mut();
    headers.insert("grpc-status", code.into());
    // gRPC percent-encodes the message; ours are plain ASCII.
    assert!(
        message
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'%')
    );
    headers.insert("grpc-message", message.parse().unwrap());
    if let Some(delay) = retry_delay {
        let retry_info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: delay.as_secs() as i64,
                nanos: delay.subsec_nanos() as i32,
            }),
        };
        let status = RpcStatus {
            code,
            message: message.to_owned(),
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: retry_info.encode_to_vec(),
            }],
        };
        let encoded = base64(&status.encode_to_vec());
        headers.insert("grpc-status-details-bin", encoded.parse().unwrap());
    }
    response
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// Standard base64 without padding, as gRPC sends binary headers.
fn base64(bytes: &[u8]) -> String {
    let mut text = crate::openai::base64_encode(bytes);
    text.truncate(text.trim_end_matches('=').len());
    text
}

/// Bytes (trace and span ids) as lowercase hex.
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

// ---------------------------------------------------------------- counting without decoding

/// Reads one protobuf field: (field number, wire type, the LEN payload if any, rest).
fn field(buf: &[u8]) -> Option<(u64, u8, &[u8], &[u8])> {
    let (key, mut rest) = varint(buf)?;
    let wire = (key & 7) as u8;
    let mut payload: &[u8] = &[];
    match wire {
        0 => rest = varint(rest)?.1,
        1 => rest = rest.get(8..)?,
        2 => {
            let (len, r) = varint(rest)?;
            let len = usize::try_from(len).ok()?;
            payload = r.get(..len)?;
            rest = &r[len..];
        }
        5 => rest = rest.get(4..)?,
        _ => return None,
    }
    Some((key >> 3, wire, payload, rest))
}

fn varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

/// Calls `each` with every LEN field numbered `number` in `msg`.
fn for_each_len(
    mut msg: &[u8],
    number: u64,
    mut each: impl FnMut(&[u8]) -> Option<()>,
) -> Option<()> {
    while !msg.is_empty() {
        let (n, wire, payload, rest) = field(msg)?;
        if n == number && wire == 2 {
            each(payload)?;
        }
        msg = rest;
    }
    Some(())
}

/// Spans in an ExportTraceServiceRequest: resource_spans(1) > scope_spans(2) > spans(2).
fn count_spans(request: &[u8]) -> Option<u64> {
    let mut spans = 0u64;
    for_each_len(request, 1, |resource_spans| {
        for_each_len(resource_spans, 2, |scope_spans| {
            for_each_len(scope_spans, 2, |_span| {
                spans += 1;
                Some(())
            })
        })
    })?;
    Some(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_spans_in_a_hand_made_request() {
        // Two empty spans (field 2) in a scope_spans (field 2) in a resource_spans (field 1).
        let scope_spans = [0x12, 0x00, 0x12, 0x00];
        let mut resource = vec![0x12, scope_spans.len() as u8];
        resource.extend_from_slice(&scope_spans);
        let mut request = vec![0x0a, resource.len() as u8];
        request.extend_from_slice(&resource);
        assert_eq!(count_spans(&request), Some(2));
        assert_eq!(count_spans(&[0x0a, 0x05, 0x00]), None);
    }

    #[test]
    fn base64_without_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg");
        assert_eq!(base64(b"fo"), "Zm8");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8");
    }
}
