//! OTLP span export, encoded straight from the SDK's `SpanData` (`wire`) and sent over
//! OTLP/HTTP (a protobuf POST, `http`) or OTLP/gRPC (the same protobuf in a unary call,
//! `grpc`).
//!
//! Why not opentelemetry-otlp's exporters: they convert each span into opentelemetry-proto's
//! structs (every attribute cloned), encode those with prost and drop them, about 25,000
//! instructions a span and a fifth of the gateway's CPU per request (BENCHMARKS.md). Its gRPC
//! exporter also only logs a partial success and reports success, so spans a collector
//! refused were counted exported (`grpc` says why gRPC is done by hand, not with tonic).
//!
//! Delivery follows the OTLP spec:
//!
//! - **Retries**: with exponential back-off (100 ms doubling to 1.6 s, jittered), at most 3
//!   times and never past the export timeout; over HTTP 429, 502, 503 and 504, over gRPC the
//!   codes the spec calls retryable, and connection failures. The collector's own delay wins
//!   when longer: `Retry-After` (seconds or an HTTP date) or gRPC's `RetryInfo`; one beyond
//!   the export timeout ends the export at once.
//! - **Partial success**: spans the collector refuses are reported, not counted as exported;
//!   a partial success refusing none but with a message is reported as the collector's
//!   warning.
//! - **`User-Agent`** on every export ([`EXPORTER_USER_AGENT`](super::http::EXPORTER_USER_AGENT)).
//! - **The answer is read up to 64 KiB** ([`MAX_ANSWER_BYTES`](super::http::MAX_ANSWER_BYTES));
//!   a longer one is not read further. With a success status the spans count as exported (a
//!   partial success in it is lost, as with an unreadable answer, which the spec says means
//!   full success); with an error status the status decides. Over gRPC, whose status comes
//!   after the answer, an answer message at all means success: a server sends one only for a
//!   successful call.
//!
//! This runs on the batch processor's own thread: a request never waits for it.

use std::io::Write as _;
use std::time::{Duration, Instant};

use axum::http::Uri;
use axum::http::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, TE, USER_AGENT,
};
use bytes::Bytes;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::grpc;
use super::http::{self, EXPORTER_USER_AGENT, Failure};
use super::wire::{PartialSuccess, encode_request, encode_resource, partial_success};
use crate::config::{OtlpProtocol, TelemetrySettings, http_uri};
use crate::http_client::HttpClient;

/// Retries after the first attempt, as opentelemetry-otlp's recommended policy.
const MAX_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);

/// Sends batches of spans to an OTLP collector as protobuf, over HTTP or gRPC.
#[derive(Debug)]
pub struct OtlpExporter {
    transport: Transport,
    /// A single-threaded runtime that the batch processor's own thread drives while it exports:
    /// no hand-off to another thread and back per batch. `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// User agent, content type, encoding and the operator's headers (gRPC: metadata): the
    /// same for every export.
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
    /// The encoded `Resource` message, set once by the SDK through `set_resource`.
    resource: Vec<u8>,
    resource_schema_url: String,
    /// The last body's size: the next one is allocated at once.
    size_hint: std::sync::atomic::AtomicUsize,
}

/// Where exports go.
#[derive(Debug)]
enum Transport {
    /// OTLP/HTTP: a POST to the traces URL, over hyper-util's pooled HTTP/1.1 client.
    Http { client: HttpClient, endpoint: Uri },
    /// OTLP/gRPC: `TraceService/Export` over one HTTP/2 connection.
    Grpc(grpc::Channel),
}

impl OtlpExporter {
    /// An exporter for `settings`; fails on a malformed endpoint or header.
    pub fn new(settings: &TelemetrySettings) -> Result<Self, String> {
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
        let transport = match settings.protocol {
            OtlpProtocol::HttpProtobuf => {
                let endpoint = http_uri(&settings.traces_endpoint).ok_or_else(|| {
                    format!(
                        "OTLP endpoint {:?} is not an http(s) URL",
                        settings.traces_endpoint
                    )
                })?;
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                if settings.export_gzip {
                    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                Transport::Http {
                    client: crate::http_client::client(settings.export_timeout)?,
                    endpoint,
                }
            }
            OtlpProtocol::Grpc => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert(TE, HeaderValue::from_static("trailers"));
                Transport::Grpc(grpc::Channel::new(
                    &settings.traces_endpoint,
                    settings.export_timeout,
                )?)
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otlp-export")
            .build()
            .map_err(|e| format!("cannot start the OTLP exporter's runtime: {e}"))?;
        Ok(Self {
            transport,
            runtime: Some(runtime),
            headers,
            // The settings allow gzip with OTLP/HTTP only.
            gzip: settings.export_gzip && settings.protocol == OtlpProtocol::HttpProtobuf,
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
            let failure = match self.attempt(&body, limit) {
                Ok(answer) => return Ok(partial_success(&answer)),
                Err(failure) => failure,
            };
            let delay = failure
                .delay
                .unwrap_or_else(|| backoff + FIRST_BACKOFF.mul_f64(fastrand::f64()))
                .max(backoff);
            if !failure.retry || retries == MAX_RETRIES || Instant::now() + delay >= deadline {
                return Err(OTelSdkError::InternalFailure(failure.message));
            }
            // The batch processor's own thread: sleeping here delays no request.
            std::thread::sleep(delay);
            retries += 1;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The request body for `spans`: gzipped if configured, framed as a gRPC message for gRPC.
    fn body(&self, spans: &[SpanData]) -> Result<Bytes, OTelSdkError> {
        use std::sync::atomic::Ordering::Relaxed;
        let grpc = matches!(self.transport, Transport::Grpc(_));
        let mut buf = Vec::with_capacity(self.size_hint.load(Relaxed));
        if grpc {
            buf.resize(grpc::MESSAGE_PREFIX, 0);
        }
        encode_request(&mut buf, &self.resource, &self.resource_schema_url, spans);
        self.size_hint.store(buf.len(), Relaxed);
        if grpc {
            grpc::frame(&mut buf).map_err(OTelSdkError::InternalFailure)?;
        }
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

    /// One attempt, answered within `limit`: the collector's answer message (`ExportTraceServiceResponse`).
    fn attempt(&self, body: &Bytes, limit: Duration) -> Result<Bytes, Failure> {
        let Some(runtime) = &self.runtime else {
            return Err(Failure {
                retry: false,
                delay: None,
                message: "the exporter is shut down".into(),
            });
        };
        let headers = self.headers.clone();
        match &self.transport {
            Transport::Http { client, endpoint } => {
                runtime.block_on(http::post(client, endpoint, headers, body.clone(), limit))
            }
            Transport::Grpc(channel) => {
                runtime.block_on(channel.export(headers, body.clone(), limit))
            }
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code (a failed `init`).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.send(batch).await.map(|_| ())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = encode_resource(resource);
        self.resource_schema_url = resource.schema_url().unwrap_or_default().to_owned();
    }
}
