//! Client for Groq and any other OpenAI-compatible chat API.
//!
//! One pooled client for the process (`crate::http_client`). Each attempt is its own HTTP
//! client span carrying `traceparent` upstream; retries (connection errors, 429, 5xx) back off
//! exponentially with jitter and all fit inside one overall deadline.

use std::time::{Duration, Instant};

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, Uri};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use opentelemetry::trace::TraceContextExt;
use serde::Deserialize;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::wire::parse_completion;
use super::{ByteStream, Completion, LlmError, UpstreamReport, UpstreamRequest, scrub_secrets};
use crate::config::{ProviderKind, Settings, UpstreamSettings};
use crate::http_client::{HttpClient, Transport, collect, describe, request, within};

/// Longest `Retry-After` we wait out ourselves; beyond it the 429 goes to the client.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// First back-off step; doubled on each retry, plus up to 100% jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// An OpenAI-compatible upstream.
#[derive(Debug)]
pub struct OpenAiCompatible {
    kind: ProviderKind,
    client: HttpClient,
    /// Parsed once: parsing a URL string on every request showed in profiles.
    chat_url: Uri,
    models_url: Uri,
    auth: HeaderValue,
    host: String,
    port: u16,
    timeout: Duration,
    max_retries: u32,
}

/// A successful attempt: a whole answer, or an open stream.
#[expect(
    clippy::large_enum_variant,
    reason = "one per attempt, moved once; boxing would only add an allocation"
)]
enum Answer {
    Complete(Bytes, Completion),
    Stream(Incoming),
}

/// One failed attempt, and whether another may follow.
struct AttemptError {
    error: LlmError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl OpenAiCompatible {
    /// Builds the client; the key goes into a sensitive header value once.
    pub fn new(
        kind: ProviderKind,
        upstream: &UpstreamSettings,
        settings: &Settings,
    ) -> Result<Self, String> {
        let timeout = settings.llm_timeout;
        let endpoint = |path: &str| {
            format!("{}/{path}", upstream.base_url)
                .parse::<Uri>()
                .map_err(|e| format!("invalid upstream URL {}: {e}", upstream.base_url))
        };
        let url = upstream.base_url.parse::<Uri>().ok();
        let host = url
            .as_ref()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        let port = url.as_ref().map_or(443, |u| {
            u.port_u16().unwrap_or(if u.scheme_str() == Some("http") {
                80
            } else {
                443
            })
        });
        // A key with characters no header can carry can never authenticate; sending it
        // without Authorization makes the upstream answer 401, which maps to `authentication`.
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", upstream.api_key.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        auth.set_sensitive(true);
        let client = crate::http_client::client(settings.llm_connect_timeout.min(timeout))?;
        Ok(Self {
            kind,
            client,
            chat_url: endpoint("chat/completions")?,
            models_url: endpoint("models")?,
            auth,
            host,
            port,
            timeout,
            max_retries: settings.llm_max_retries,
        })
    }

    /// Groq or OpenAI.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The upstream's host and port.
    pub fn server(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// A whole completion: the raw body (relayed as is) and what it says.
    pub async fn complete(
        &self,
        request: &UpstreamRequest,
        parent: &Span,
        report: &mut UpstreamReport,
    ) -> Result<(Bytes, Completion), LlmError> {
        match self.send(request, false, parent, report).await? {
            Answer::Complete(raw, completion) => Ok((raw, completion)),
            Answer::Stream(_) => Err(LlmError::BadResponse("unexpected stream".into())),
        }
    }

    /// An open stream of SSE bytes. The deadline covers the wait for the first byte; after
    /// that each chunk may take up to the timeout (a long answer is not cut off).
    pub async fn stream(
        &self,
        request: &UpstreamRequest,
        parent: &Span,
        report: &mut UpstreamReport,
    ) -> Result<ByteStream, LlmError> {
        let response = match self.send(request, true, parent, report).await? {
            Answer::Stream(response) => response,
            Answer::Complete(..) => return Err(LlmError::BadResponse("expected a stream".into())),
        };
        let idle = self.timeout;
        let body = BodyDataStream::new(response);
        Ok(Box::pin(futures_util::stream::unfold(
            body,
            move |mut body| async move {
                let next = match tokio::time::timeout(idle, body.next()).await {
                    Err(_) => Some(Err(LlmError::Timeout(idle))),
                    Ok(None) => None,
                    Ok(Some(Ok(bytes))) => Some(Ok(bytes)),
                    Ok(Some(Err(e))) => Some(Err(LlmError::Connection(format!(
                        "the stream broke: {}",
                        describe(&e)
                    )))),
                };
                next.map(|item| (item, body))
            },
        )))
    }

    /// `GET {base}/models`, relayed as is.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        let request = request(Method::GET, &self.models_url, headers, Bytes::new());
        let failed = |failure| match failure {
            Transport::Timeout => LlmError::Timeout(self.timeout),
            Transport::Broken(detail) => LlmError::Connection(detail),
        };
        let response = within(self.timeout, self.client.request(request))
            .await
            .map_err(failed)?;
        let status = response.status();
        let bytes = within(self.timeout, collect(response.into_body()))
            .await
            .map_err(failed)?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(error_for_status(status.as_u16(), &bytes, None).0)
    }

    /// Sends the chat request, retrying what is worth retrying within the deadline.
    async fn send(
        &self,
        request: &UpstreamRequest,
        stream: bool,
        parent: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Answer, LlmError> {
        let body = Bytes::from(request.body.to_string());
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut attempt: u32 = 0;
        let result = loop {
            // Never entered: it ends when dropped, after the attempt.
            let span = tracing::info_span!(
                parent: parent,
                "POST",
                otel.name = "POST",
                otel.kind = "client",
                otel.status_code = Empty,
                http.request.method = "POST",
                http.request.resend_count = (attempt > 0).then_some(i64::from(attempt)),
                http.response.status_code = Empty,
                server.address = %self.host,
                server.port = i64::from(self.port),
                url.full = %self.chat_url,
                error.type = Empty,
            );
            let outcome = self
                .attempt(body.clone(), stream, deadline, &span, report)
                .await;
            let failure = match outcome {
                Ok(answer) => break Ok(answer),
                Err(failure) => failure,
            };
            span.record("otel.status_code", "error");
            if !failure.retryable || attempt >= self.max_retries {
                break Err(failure.error);
            }
            let backoff = failure.retry_after.unwrap_or_else(|| {
                let step = BASE_BACKOFF * 2u32.saturating_pow(attempt);
                step + step.mul_f64(fastrand::f64())
            });
            if failure.retry_after.is_some_and(|d| d > MAX_RETRY_AFTER)
                || Instant::now() + backoff >= deadline
            {
                break Err(failure.error);
            }
            tracing::debug!(parent: &span, attempt, ?backoff, error = %failure.error, "retrying the upstream");
            report.retries.push(match failure.error {
                LlmError::RateLimited { .. } => "429",
                LlmError::UpstreamServer { .. } => "5xx",
                _ => "connection",
            });
            tokio::time::sleep(backoff).await;
            attempt += 1;
        };
        report.wait = started.elapsed();
        result
    }

    async fn attempt(
        &self,
        body: Bytes,
        stream: bool,
        deadline: Instant,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Answer, AttemptError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        inject_trace_context(span, &mut headers);
        let transport_failure = |failure: Transport| {
            let (kind, error, retryable) = match failure {
                // A timeout used up the deadline: nothing is left for a retry.
                Transport::Timeout => ("timeout", LlmError::Timeout(self.timeout), false),
                Transport::Broken(detail) => {
                    ("connection_error", LlmError::Connection(detail), true)
                }
            };
            span.record("error.type", kind);
            AttemptError {
                error,
                retryable,
                retry_after: None,
            }
        };

        let request = request(Method::POST, &self.chat_url, headers, body);
        // Only the wait for a stream's headers is bounded here; its chunks have an idle timeout.
        let response = within(remaining, self.client.request(request))
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        let failed = status.is_client_error() || status.is_server_error();
        tracing::record_all!(
            span,
            http.response.status_code = i64::from(status.as_u16()),
            error.type = failed.then(|| status.as_str()),
        );
        record_rate_limits(response.headers(), report);
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if stream && status.is_success() {
            return Ok(Answer::Stream(response.into_body()));
        }
        let bytes = within(remaining, collect(response.into_body()))
            .await
            .map_err(transport_failure)?;

        if status.is_success() {
            return parse_completion(&bytes)
                .map(|completion| Answer::Complete(bytes, completion))
                .map_err(|error| {
                    span.record("error.type", "bad_response");
                    AttemptError {
                        error,
                        retryable: false,
                        retry_after: None,
                    }
                });
        }
        let (error, retryable) = error_for_status(status.as_u16(), &bytes, retry_after);
        Err(AttemptError {
            error,
            retryable,
            retry_after: retry_after.map(Duration::from_secs),
        })
    }
}

/// W3C `traceparent` (and `tracestate`, if any) naming `span` as the parent: what the
/// TraceContext propagator writes, without the `format!` machinery it runs per call (a profile
/// showed 4,600 instructions per request there).
fn inject_trace_context(span: &Span, headers: &mut HeaderMap) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    if !span_context.is_valid() {
        return;
    }
    // 00-{32 hex trace id}-{16 hex span id}-{2 hex flags}
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let trace_id = span_context.trace_id().to_bytes();
    let span_id = span_context.span_id().to_bytes();
    let flags = [span_context.trace_flags().to_u8()];
    for (bytes, start) in [(&trace_id[..], 3), (&span_id[..], 36), (&flags[..], 53)] {
        for (i, byte) in bytes.iter().enumerate() {
            value[start + 2 * i] = HEX[usize::from(byte >> 4)];
            value[start + 2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert("traceparent", value);
    }
    let state = span_context.trace_state().header();
    if !state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&state)
    {
        headers.insert("tracestate", value);
    }
}

/// Maps an upstream error status to our error and whether it is worth retrying.
fn error_for_status(status: u16, body: &[u8], retry_after: Option<u64>) -> (LlmError, bool) {
    let (message, code) = parse_error_body(body, status);
    match status {
        429 => (
            LlmError::RateLimited {
                message,
                retry_after,
            },
            true,
        ),
        401 | 403 => (LlmError::Authentication { status }, false),
        400..=499 => (
            LlmError::UpstreamClient {
                status,
                message,
                code,
            },
            false,
        ),
        _ => (LlmError::UpstreamServer { status }, true),
    }
}

fn record_rate_limits(headers: &HeaderMap, report: &mut UpstreamReport) {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(n) = number("x-ratelimit-remaining-requests") {
        report.remaining_requests = Some(n);
    }
    if let Some(n) = number("x-ratelimit-remaining-tokens") {
        report.remaining_tokens = Some(n);
    }
}

/// Reads OpenAI's/Groq's `{"error": {"message", "type", "code"}}`, scrubbing key-like text.
fn parse_error_body(bytes: &[u8], status: u16) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: Option<String>,
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(body) => (
            scrub_secrets(
                &body
                    .error
                    .message
                    .unwrap_or_else(|| format!("upstream answered HTTP {status}")),
            ),
            body.error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(scrub_secrets(&s)),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        ),
        Err(_) => (format!("the LLM provider answered HTTP {status}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_what_the_w3c_propagator_writes() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
        use opentelemetry::{Context, trace::SpanId, trace::TraceId};
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let remote = SpanContext::new(
                TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
                SpanId::from(0xb7ad_6b71_6920_3331),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("vendor", "x")]).unwrap(),
            );
            let span = tracing::info_span!("attempt");
            span.set_parent(Context::new().with_remote_span_context(remote))
                .unwrap();
            let mut ours = HeaderMap::new();
            inject_trace_context(&span, &mut ours);
            let mut reference = HeaderMap::new();
            opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(
                &span.context(),
                &mut opentelemetry_http::HeaderInjector(&mut reference),
            );
            assert_eq!(ours, reference);
            let traceparent = ours["traceparent"].to_str().unwrap();
            assert!(
                traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{traceparent}"
            );
            assert!(traceparent.ends_with("-01"), "{traceparent}");
            assert_eq!(ours["tracestate"], "vendor=x");
        });
    }

    #[test]
    fn error_body_message_and_code_are_read_and_scrubbed() {
        let (message, code) = parse_error_body(
            br#"{"error":{"message":"Invalid API Key gsk_live_abcdef","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            401,
        );
        assert_eq!(message, "Invalid API Key [redacted]");
        assert_eq!(code.as_deref(), Some("invalid_api_key"));
    }
}
