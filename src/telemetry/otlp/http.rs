//! OTLP/HTTP protobuf span export, encoded straight from the SDK's `SpanData` (`wire`).
//!
//! Why not opentelemetry-otlp's HTTP exporter: it converts each span into opentelemetry-proto's
//! structs (every attribute cloned), encodes those with prost and drops them, about 25,000
//! instructions a span and a fifth of the gateway's CPU per request (BENCHMARKS.md). gRPC still
//! uses opentelemetry-otlp.
//!
//! Delivery follows the OTLP/HTTP spec: 429, 502, 503 and 504 and connection failures are
//! retried with exponential back-off (100 ms doubling to 1.6 s, jittered; a `Retry-After`, in
//! seconds or as an HTTP date, is honoured), at most 3 times and never past the export
//! timeout: a `Retry-After` beyond it ends the export at once. Spans the collector
//! refuses in an OTLP partial success are reported, not counted as exported, and a partial
//! success refusing none but with a message is reported as the collector's warning. Every export
//! says who sends it in `User-Agent` ([`EXPORTER_USER_AGENT`]). The collector's answer is
//! read up to [`MAX_ANSWER_BYTES`]; a longer one is not read further (nor its connection
//! reused): with a success status the spans count as exported (a partial success in it is
//! lost, as with an unreadable answer, which the spec says means full success), with an error
//! status the status decides. This runs on the batch processor's own thread: a request never
//! waits for it.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use axum::http::{Method, Uri, header::RETRY_AFTER};
use bytes::Bytes;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::wire::{PartialSuccess, encode_request, encode_resource, partial_success};
use crate::config::{TelemetrySettings, http_uri};
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

/// Retries after the first attempt, as opentelemetry-otlp's recommended policy.
const MAX_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);

/// Sends batches of spans to an OTLP/HTTP collector as protobuf.
#[derive(Debug)]
pub struct OtlpHttpExporter {
    client: HttpClient,
    /// A single-threaded runtime that the batch processor's own thread drives while it exports:
    /// no hand-off to another thread and back per batch. `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: Uri,
    /// User agent, content type, encoding and the operator's headers: the same for every
    /// export.
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
    /// The encoded `Resource` message, set once by the SDK through `set_resource`.
    resource: Vec<u8>,
    resource_schema_url: String,
    /// The last body's size: the next one is allocated at once.
    size_hint: std::sync::atomic::AtomicUsize,
}

/// A failed POST: whether to retry, the collector's `Retry-After`, what to log.
type PostError = (bool, Option<Duration>, String);

impl OtlpHttpExporter {
    /// An exporter for `settings`; fails on a malformed endpoint or header.
    pub fn new(settings: &TelemetrySettings) -> Result<Self, String> {
        let endpoint = http_uri(&settings.traces_endpoint).ok_or_else(|| {
            format!(
                "OTLP endpoint {:?} is not an http(s) URL",
                settings.traces_endpoint
            )
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.export_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("OTLP header name {name:?} is not a valid header name"))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                format!("OTLP header {name}: the value is not a valid header value")
            })?;
            // Usually an access token: kept out of any debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(EXPORTER_USER_AGENT));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        if settings.export_gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otlp-export")
            .build()
            .map_err(|e| format!("cannot start the OTLP exporter's runtime: {e}"))?;
        Ok(Self {
            client: crate::http_client::client(settings.export_timeout)?,
            runtime: Some(runtime),
            endpoint,
            headers,
            gzip: settings.export_gzip,
            timeout: settings.export_timeout,
            resource: Vec::new(),
            resource_schema_url: String::new(),
            size_hint: std::sync::atomic::AtomicUsize::new(4096),
        })
    }

    /// Exports a batch, retrying as the OTLP spec says; `Ok(Some(_))` if the collector took the
    /// request but refused some spans or warned (partial success).
    pub async fn send(&self, batch: Vec<SpanData>) -> Result<Option<PartialSuccess>, OTelSdkError> {
        let body = self.body(&batch)?;
        drop(batch);
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let limit = deadline.saturating_duration_since(Instant::now());
            let (retryable, server_delay, message) = match self.post(&body, limit) {
                Ok(answer) => return Ok(partial_success(&answer)),
                Err(failure) => failure,
            };
            let delay = server_delay
                .unwrap_or_else(|| backoff + FIRST_BACKOFF.mul_f64(fastrand::f64()))
                .max(backoff);
            if !retryable || retries == MAX_RETRIES || Instant::now() + delay >= deadline {
                return Err(OTelSdkError::InternalFailure(message));
            }
            // The batch processor's own thread: sleeping here delays no request.
            std::thread::sleep(delay);
            retries += 1;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The request body for `spans`, gzipped if configured.
    fn body(&self, spans: &[SpanData]) -> Result<Bytes, OTelSdkError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut buf = Vec::with_capacity(self.size_hint.load(Relaxed));
        encode_request(&mut buf, &self.resource, &self.resource_schema_url, spans);
        self.size_hint.store(buf.len(), Relaxed);
        if !self.gzip {
            return Ok(buf.into());
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(buf.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&buf)
            .and_then(|()| gz.finish())
            .map(Bytes::from)
            .map_err(|e| OTelSdkError::InternalFailure(format!("gzip: {e}")))
    }

    /// One POST, answered within `limit`: the collector's answer body.
    fn post(&self, body: &Bytes, limit: Duration) -> Result<Bytes, PostError> {
        let Some(runtime) = &self.runtime else {
            return Err((false, None, "the exporter is shut down".into()));
        };
        let request = request(
            Method::POST,
            &self.endpoint,
            self.headers.clone(),
            body.clone(),
        );
        // A timeout used up the deadline; anything else is worth another attempt.
        let failed = |step: &'static str| {
            move |failure| match failure {
                Transport::Timeout => (false, None, "the collector did not answer in time".into()),
                Transport::Broken(detail) => (true, None, format!("{step}: {detail}")),
            }
        };
        runtime.block_on(async {
            let response = within(limit, self.client.request(request))
                .await
                .map_err(failed("cannot reach the collector"))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| retry_after(v, SystemTime::now()));
            // Read to the end (up to the cap): it may report refused spans, and the connection
            // is reused.
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
            let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
            Err((
                retryable,
                retry_after,
                format!("the collector answered {status}"),
            ))
        })
    }
}

impl Drop for OtlpHttpExporter {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code (a failed `init`).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SpanExporter for OtlpHttpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.send(batch).await.map(|_| ())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = encode_resource(resource);
        self.resource_schema_url = resource.schema_url().unwrap_or_default().to_owned();
    }
}
