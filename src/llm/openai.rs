//! Client for Groq and any other OpenAI-compatible chat API.
//!
//! One pooled `reqwest::Client` for the process. Each attempt is its own HTTP client span
//! carrying `traceparent` upstream; retries (connection errors, 429, 5xx) back off
//! exponentially with jitter and all fit inside one overall deadline.

use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::global;
use opentelemetry_http::HeaderInjector;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{ChatParams, Completion, GroqExtras, LlmError, UpstreamReport, Usage, scrub_secrets};
use crate::config::{ProviderKind, UpstreamSettings};

/// Longest `Retry-After` we wait out ourselves; beyond it the 429 goes to the client.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// First back-off step; doubled on each retry, plus up to 100% jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// An OpenAI-compatible upstream.
#[derive(Debug)]
pub struct OpenAiCompatible {
    kind: ProviderKind,
    client: reqwest::Client,
    chat_url: String,
    auth: HeaderValue,
    host: String,
    port: u16,
    timeout: Duration,
    max_retries: u32,
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
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, reqwest::Error> {
        let url = reqwest::Url::parse(&upstream.base_url).ok();
        let host = url
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let port = url
            .as_ref()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(443);
        // A key with characters no header can carry can never authenticate; sending it
        // without Authorization makes the upstream answer 401, which maps to `authentication`.
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", upstream.api_key.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        auth.set_sensitive(true);
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(Self {
            kind,
            client,
            chat_url: format!("{}/chat/completions", upstream.base_url),
            auth,
            host,
            port,
            timeout,
            max_retries,
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

    /// Sends the chat request, retrying what is worth retrying within the deadline.
    pub async fn chat(
        &self,
        params: &ChatParams,
        report: &mut UpstreamReport,
    ) -> Result<Completion, LlmError> {
        let body = Bytes::from(request_body(params).to_string());
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut attempt: u32 = 0;
        let result = loop {
            let span = tracing::info_span!(
                "POST",
                otel.name = "POST",
                otel.kind = "client",
                otel.status_code = Empty,
                http.request.method = "POST",
                http.request.resend_count = Empty,
                http.response.status_code = Empty,
                server.address = %self.host,
                server.port = i64::from(self.port),
                url.full = %self.chat_url,
                error.type = Empty,
            );
            if attempt > 0 {
                span.record("http.request.resend_count", i64::from(attempt));
            }
            let outcome = self
                .attempt(body.clone(), deadline, report)
                .instrument(span.clone())
                .await;
            let failure = match outcome {
                Ok(completion) => break Ok(completion),
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
            tracing::debug!(attempt, ?backoff, error = %failure.error, "retrying the upstream");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        };
        report.wait = started.elapsed();
        result
    }

    async fn attempt(
        &self,
        body: Bytes,
        deadline: Instant,
        report: &mut UpstreamReport,
    ) -> Result<Completion, AttemptError> {
        let span = tracing::Span::current();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&span.context(), &mut HeaderInjector(&mut headers))
        });
        let timeout_error = |retryable| AttemptError {
            error: LlmError::Timeout(self.timeout),
            retryable,
            retry_after: None,
        };
        let sent = self
            .client
            .post(&self.chat_url)
            .headers(headers)
            .body(body)
            .timeout(remaining)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                span.record("error.type", "timeout");
                return Err(timeout_error(false));
            }
            Err(e) => {
                span.record("error.type", "connection_error");
                return Err(AttemptError {
                    error: LlmError::Connection(describe(&e)),
                    retryable: true,
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_client_error() || status.is_server_error() {
            span.record("error.type", status.as_str());
        }
        record_rate_limits(response.headers(), report);
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) if e.is_timeout() => {
                span.record("error.type", "timeout");
                return Err(timeout_error(false));
            }
            Err(e) => {
                span.record("error.type", "connection_error");
                return Err(AttemptError {
                    error: LlmError::Connection(describe(&e)),
                    retryable: true,
                    retry_after: None,
                });
            }
        };

        if status.is_success() {
            return parse_completion(&bytes).map_err(|error| {
                span.record("error.type", "bad_response");
                AttemptError {
                    error,
                    retryable: false,
                    retry_after: None,
                }
            });
        }
        let (message, code) = parse_error_body(&bytes, status.as_u16());
        let (error, retryable) = match status.as_u16() {
            429 => (
                LlmError::RateLimited {
                    message,
                    retry_after,
                },
                true,
            ),
            401 | 403 => (
                LlmError::Authentication {
                    status: status.as_u16(),
                },
                false,
            ),
            s if status.is_client_error() => (
                LlmError::UpstreamClient {
                    status: s,
                    message,
                    code,
                },
                false,
            ),
            s => (LlmError::UpstreamServer { status: s }, true),
        };
        Err(AttemptError {
            error,
            retryable,
            retry_after: retry_after.map(Duration::from_secs),
        })
    }
}

/// The OpenAI chat request body.
fn request_body(params: &ChatParams) -> serde_json::Value {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &params.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": params.prompt}));
    json!({
        "model": params.model,
        "messages": messages,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "stream": false,
    })
}

/// A transport error with its cause chain (reqwest's top-level message alone says little).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    message: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    queue_time: Option<f64>,
    prompt_time: Option<f64>,
    completion_time: Option<f64>,
    total_time: Option<f64>,
}

#[derive(Deserialize)]
struct WireXGroq {
    id: Option<String>,
}

fn parse_completion(bytes: &[u8]) -> Result<Completion, LlmError> {
    let wire: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::BadResponse(format!("not a chat completion: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::BadResponse("no choices in the answer".into()))?;
    let groq = GroqExtras {
        request_id: wire.x_groq.and_then(|x| x.id),
        queue_time: wire.usage.as_ref().and_then(|u| u.queue_time),
        prompt_time: wire.usage.as_ref().and_then(|u| u.prompt_time),
        completion_time: wire.usage.as_ref().and_then(|u| u.completion_time),
        total_time: wire.usage.as_ref().and_then(|u| u.total_time),
    };
    Ok(Completion {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        content: choice.message.and_then(|m| m.content).unwrap_or_default(),
        finish_reason: choice.finish_reason.unwrap_or_else(|| "unknown".into()),
        usage: wire.usage.map(|u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        }),
        system_fingerprint: wire.system_fingerprint,
        service_tier: wire.service_tier,
        groq,
    })
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
    fn parses_groq_answer_with_extras_and_ignores_unknown_fields() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"llama-3.1-8b-instant",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],
            "usage":{"queue_time":0.01,"prompt_tokens":12,"prompt_time":0.002,"completion_tokens":3,"completion_time":0.004,"total_tokens":15,"total_time":0.006},
            "usage_breakdown":null,"system_fingerprint":"fp_1","x_groq":{"id":"req_1"},"service_tier":"on_demand"}"#;
        let c = parse_completion(body).unwrap();
        assert_eq!(c.content, "hi");
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 12,
                output_tokens: 3
            })
        );
        assert_eq!(c.groq.request_id.as_deref(), Some("req_1"));
        assert_eq!(c.groq.queue_time, Some(0.01));
        assert_eq!(c.service_tier.as_deref(), Some("on_demand"));
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
