//! LLM providers behind one interface, the pricing table, and the chat service that wraps
//! every provider call in the GenAI span and records its metrics.

mod openai;
pub mod pricing;
mod service;
mod simulated;

use std::time::Duration;

use axum::http::StatusCode;

use crate::config::{ProviderKind, Settings};
use crate::error::ErrorType;

pub use openai::OpenAiCompatible;
pub use pricing::PriceTable;
pub use service::{CallRecord, ChatOutcome, ChatService};
pub use simulated::Simulated;

/// One chat request, validated, as every provider receives it.
#[derive(Debug, Clone)]
pub struct ChatParams {
    /// Model to ask.
    pub model: String,
    /// Optional system instructions.
    pub system: Option<String>,
    /// The user's prompt.
    pub prompt: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// Groq's extra timings (seconds) and request id, when the upstream sends them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroqExtras {
    /// `x_groq.id`.
    pub request_id: Option<String>,
    /// `usage.queue_time`.
    pub queue_time: Option<f64>,
    /// `usage.prompt_time`.
    pub prompt_time: Option<f64>,
    /// `usage.completion_time`.
    pub completion_time: Option<f64>,
    /// `usage.total_time`.
    pub total_time: Option<f64>,
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The completion id (`chatcmpl-…`).
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The generated text.
    pub content: String,
    /// Why generation stopped (`stop`, `length`, …).
    pub finish_reason: String,
    /// Token counts; `None` when the upstream sent none.
    pub usage: Option<Usage>,
    /// `system_fingerprint`, when sent.
    pub system_fingerprint: Option<String>,
    /// `service_tier`, when sent.
    pub service_tier: Option<String>,
    /// Groq's extras.
    pub groq: GroqExtras,
}

/// What the provider observed besides the answer: time spent waiting on the upstream (for the
/// gateway-overhead metric) and the upstream's remaining rate limits.
#[derive(Debug, Clone, Default)]
pub struct UpstreamReport {
    /// Time spent waiting on the upstream, retries and back-off included.
    pub wait: Duration,
    /// `x-ratelimit-remaining-requests` from the last answer.
    pub remaining_requests: Option<f64>,
    /// `x-ratelimit-remaining-tokens` from the last answer.
    pub remaining_tokens: Option<f64>,
}

/// A failed LLM call. `Display` is the detailed (logged) form; clients get
/// [`LlmError::client_message`].
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No answer within the deadline.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// 429 from the upstream, after any retries.
    #[error("the upstream rate-limited the request: {message}")]
    RateLimited {
        /// The upstream's message (scrubbed).
        message: String,
        /// Seconds to wait, from the upstream's `Retry-After`.
        retry_after: Option<u64>,
    },
    /// 401/403: the operator's key is wrong.
    #[error("the upstream refused the API key (HTTP {status})")]
    Authentication {
        /// 401 or 403.
        status: u16,
    },
    /// Another 4xx.
    #[error("the upstream rejected the request (HTTP {status}): {message}")]
    UpstreamClient {
        /// The upstream's status.
        status: u16,
        /// The upstream's message (scrubbed).
        message: String,
        /// The upstream's error code.
        code: Option<String>,
    },
    /// 5xx on every attempt.
    #[error("the upstream failed (HTTP {status})")]
    UpstreamServer {
        /// The last status seen.
        status: u16,
    },
    /// Could not connect, or the connection broke.
    #[error("could not reach the upstream: {0}")]
    Connection(String),
    /// An answer we cannot parse.
    #[error("the upstream's answer could not be parsed: {0}")]
    BadResponse(String),
}

impl LlmError {
    /// The error class.
    pub fn error_type(&self) -> ErrorType {
        match self {
            LlmError::Timeout(_) => ErrorType::Timeout,
            LlmError::RateLimited { .. } => ErrorType::RateLimited,
            LlmError::Authentication { .. } => ErrorType::Authentication,
            LlmError::UpstreamClient { .. } => ErrorType::UpstreamClientError,
            LlmError::UpstreamServer { .. } => ErrorType::UpstreamServerError,
            LlmError::Connection(_) => ErrorType::ConnectionError,
            LlmError::BadResponse(_) => ErrorType::BadResponse,
        }
    }

    /// The status the gateway answers with (DESIGN's mapping table).
    pub fn status_code(&self) -> StatusCode {
        match self {
            LlmError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            LlmError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            LlmError::Authentication { .. } => StatusCode::BAD_GATEWAY,
            LlmError::UpstreamClient { status, .. } => StatusCode::from_u16(*status)
                .ok()
                .filter(|s| s.is_client_error())
                .unwrap_or(StatusCode::BAD_REQUEST),
            LlmError::UpstreamServer { .. } => StatusCode::BAD_GATEWAY,
            LlmError::Connection(_) => StatusCode::BAD_GATEWAY,
            LlmError::BadResponse(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// What the client is told: the upstream's own words for its 4xx, and for our side's
    /// failures what failed without internal detail.
    pub fn client_message(&self) -> String {
        match self {
            LlmError::Timeout(d) => format!(
                "the LLM provider did not answer within {:.1} s",
                d.as_secs_f64()
            ),
            LlmError::RateLimited { message, .. } => message.clone(),
            LlmError::Authentication { .. } => {
                "the LLM provider refused the gateway's API key; the operator must fix it".into()
            }
            LlmError::UpstreamClient { message, .. } => message.clone(),
            LlmError::UpstreamServer { status } => {
                format!("the LLM provider failed (HTTP {status})")
            }
            LlmError::Connection(_) => "could not reach the LLM provider".into(),
            LlmError::BadResponse(_) => {
                "the LLM provider sent an answer that could not be parsed".into()
            }
        }
    }

    /// The upstream's error code, passed through to the client.
    pub fn upstream_code(&self) -> Option<String> {
        match self {
            LlmError::UpstreamClient { code, .. } => code.clone(),
            _ => None,
        }
    }

    /// Seconds the client should wait before retrying.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LlmError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The variant's name, for the `exception.type` span attribute.
    pub fn kind_name(&self) -> &'static str {
        match self {
            LlmError::Timeout(_) => "LlmError::Timeout",
            LlmError::RateLimited { .. } => "LlmError::RateLimited",
            LlmError::Authentication { .. } => "LlmError::Authentication",
            LlmError::UpstreamClient { .. } => "LlmError::UpstreamClient",
            LlmError::UpstreamServer { .. } => "LlmError::UpstreamServer",
            LlmError::Connection(_) => "LlmError::Connection",
            LlmError::BadResponse(_) => "LlmError::BadResponse",
        }
    }
}

/// The provider that answers LLM calls. An enum rather than a trait object: two
/// implementations, static dispatch, no boxing on the hot path.
#[derive(Debug)]
pub enum Provider {
    /// Groq or any other OpenAI-compatible API.
    Http(OpenAiCompatible),
    /// The offline simulated provider.
    Simulated(Simulated),
}

impl Provider {
    /// Builds the provider the settings ask for.
    pub fn from_settings(settings: &Settings) -> Result<Self, reqwest::Error> {
        Ok(match &settings.upstream {
            Some(upstream) => Provider::Http(OpenAiCompatible::new(
                settings.provider,
                upstream,
                settings.llm_timeout,
                settings.llm_max_retries,
            )?),
            None => Provider::Simulated(Simulated::new(settings.simulated_latency)),
        })
    }

    /// `gen_ai.provider.name` and the `provider` label.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Http(p) => p.kind(),
            Provider::Simulated(_) => ProviderKind::Simulated,
        }
    }

    /// `server.address` and `server.port` of the upstream, if there is one.
    pub fn server(&self) -> Option<(&str, u16)> {
        match self {
            Provider::Http(p) => Some(p.server()),
            Provider::Simulated(_) => None,
        }
    }

    /// Asks for a completion.
    pub async fn chat(
        &self,
        params: &ChatParams,
        report: &mut UpstreamReport,
    ) -> Result<Completion, LlmError> {
        match self {
            Provider::Http(p) => p.chat(params, report).await,
            Provider::Simulated(p) => p.chat(params, report).await,
        }
    }
}

/// Replaces anything that looks like an API key with `[redacted]`, so upstream messages that
/// echo a key never reach a client, a log or a span.
pub fn scrub_secrets(text: &str) -> String {
    let looks_like_key = |word: &str| {
        let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        w.starts_with("gsk_")
            || w.starts_with("sk-")
            || w.starts_with("Bearer")
            || (w.len() >= 32
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    };
    if !text.split_whitespace().any(looks_like_key) {
        return text.to_owned();
    }
    text.split(' ')
        .map(|word| {
            if looks_like_key(word) {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_key_like_words_and_keeps_the_rest() {
        assert_eq!(
            scrub_secrets("Invalid API Key: gsk_abc123XYZ, try again"),
            "Invalid API Key: [redacted] try again"
        );
        assert_eq!(
            scrub_secrets("model `foo` does not exist"),
            "model `foo` does not exist"
        );
    }
}
