//! An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf), answering full success.
//!
//! It counts every export (requests, bytes, spans, bodies it could not parse) and, unless it
//! only counts, decodes each into [`ExportedSpan`]s and keeps them:
//!
//! * [`OtlpReceiver`], decoding, for the tests: on its own thread and runtime, so it outlives
//!   every test's runtime.
//! * [`Sink::counting`] mounted with [`Sink::routes`], for the benchmark: spans are counted by
//!   walking the protobuf by hand, nothing is kept, so memory stays flat under any load.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

/// The largest export body accepted.
const BODY_LIMIT: usize = 64 << 20;

/// One exported span with its resource attributes.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    pub resource: Vec<KeyValue>,
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
}

/// A decoding OTLP/HTTP receiver on its own thread and runtime, so it outlives every test's
/// runtime.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    sink: Arc<Sink>,
}

impl OtlpReceiver {
    /// Starts a receiver; it runs until the process ends.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a receiver on a given port (0: any).
    pub fn start_on(port: u16) -> Self {
        let sink = Sink::decoding();
        let (tx, rx) = std::sync::mpsc::channel();
        let app = sink.routes();
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
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self {
            addr: rx.recv().unwrap(),
            sink,
        }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_endpoint(&self) -> String {
        format!("http://{}{TRACES_PATH}", self.addr)
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
    let mut store = sink.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            sink.span_count.fetch_add(scope.spans.len() as u64, Relaxed);
            for span in scope.spans {
                store.push(ExportedSpan {
                    resource: resource.clone(),
                    span,
                });
            }
        }
    }
    success()
}

/// An empty `ExportTraceServiceResponse`: full success.
fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
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
}
