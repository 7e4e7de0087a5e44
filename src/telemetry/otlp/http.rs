//! One OTLP/HTTP export attempt: the protobuf POSTed to the traces URL over hyper-util's pooled
//! client (`http_client`), the answer read up to a cap. And what the gRPC transport, HTTP/2
//! underneath, shares with it: how an attempt fails, the answer's cap, the `User-Agent`.

use std::time::{Duration, SystemTime};

use axum::http::header::{HeaderMap, RETRY_AFTER};
use axum::http::{Method, Uri};
use bytes::Bytes;

use crate::http_client::{HttpClient, Transport, collect_at_most, request, retry_after, within};

/// The `User-Agent` of every export, as the OTLP spec asks of exporters (the SDKs send
/// `OTel-OTLP-Exporter-<language>/<version>`): our product and version, then the exporter's
/// kind. An operator's own `User-Agent` in `OTEL_EXPORTER_OTLP_HEADERS` wins.
pub const EXPORTER_USER_AGENT: &str = concat!(
    "llm-observability/",
    env!("CARGO_PKG_VERSION"),
    " OTel-OTLP-Exporter-Rust"
);

/// The most of a collector's answer that is read. An `ExportTraceServiceResponse` is a count
/// and a message, a few hundred bytes; 64 KiB leaves room for a long message and keeps a
/// misbehaving collector (or whatever answers on its port) from making the export thread
/// buffer without bound.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// A failed attempt.
#[derive(Debug)]
pub struct Failure {
    /// Whether another attempt may succeed.
    pub retry: bool,
    /// How long the collector asked to wait (`Retry-After`, gRPC `RetryInfo`).
    pub delay: Option<Duration>,
    /// What to log.
    pub message: String,
}

/// How a transport step (`step`: what was being done) failed: a timeout used up the deadline;
/// anything else is worth another attempt.
pub fn failed(step: &'static str) -> impl Fn(Transport) -> Failure {
    move |failure| match failure {
        Transport::Timeout => Failure {
            retry: false,
            delay: None,
            message: "the collector did not answer in time".into(),
        },
        Transport::Broken(detail) => Failure {
            retry: true,
            delay: None,
            message: format!("{step}: {detail}"),
        },
    }
}

/// One POST, answered within `limit`: the collector's answer body (empty if too long to read).
pub async fn post(
    client: &HttpClient,
    endpoint: &Uri,
    headers: HeaderMap,
    body: Bytes,
    limit: Duration,
) -> Result<Bytes, Failure> {
    let response = within(
        limit,
        client.request(request(Method::POST, endpoint, headers, body)),
    )
    .await
    .map_err(failed("cannot reach the collector"))?;
    let status = response.status();
    let delay = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| retry_after(v, SystemTime::now()));
    // Read to the end (up to the cap): it may report refused spans, and the connection is
    // reused.
    let answer = within(
        limit,
        collect_at_most(response.into_body(), MAX_ANSWER_BYTES),
    )
    .await
    .map_err(failed("the collector's answer broke off"))?;
    if status.is_success() {
        // Too long to read: the status says the spans were taken, which is all we know.
        return Ok(answer.map(|(body, _)| body).unwrap_or_default());
    }
    Err(Failure {
        retry: matches!(status.as_u16(), 429 | 502 | 503 | 504),
        delay,
        message: format!("the collector answered {status}"),
    })
}
