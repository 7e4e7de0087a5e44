//! LLM providers behind one interface, the pricing table, and the chat service that wraps
//! every provider call in the GenAI span and records its metrics.

mod limiter;
mod openai;
pub mod pricing;
mod service;
mod simulated;
pub mod wire;

use std::pin::Pin;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tracing::Span;

use crate::config::{ProviderKind, Settings};
use crate::error::ErrorType;

pub use limiter::ConcurrencyLimit;
pub use openai::OpenAiCompatible;
pub use pricing::PriceTable;
pub use service::{CallRecord, ChatOutcome, ChatService, StreamEvent, StreamSummary};
pub use simulated::Simulated;

/// One `/api/chat` request, validated.
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

/// The request attributes the GenAI span records, read once from the request body.
#[derive(Debug, Clone, Default)]
pub struct RequestSummary {
    /// `gen_ai.request.model`.
    pub model: String,
    /// `gen_ai.request.max_tokens` (`max_completion_tokens` or `max_tokens`).
    pub max_tokens: Option<i64>,
    /// `gen_ai.request.temperature`.
    pub temperature: Option<f64>,
    /// `gen_ai.request.top_p`.
    pub top_p: Option<f64>,
    /// `gen_ai.request.frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `gen_ai.request.presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `gen_ai.request.seed`.
    pub seed: Option<i64>,
    /// `gen_ai.request.choice.count`, recorded when not 1.
    pub choice_count: Option<i64>,
    /// `gen_ai.request.stop_sequences`.
    pub stop_sequences: Vec<String>,
    /// `gen_ai.request.stream`.
    pub stream: bool,
    /// `gen_ai.output.type`: `json` or `text` when the request sets a response format.
    pub output_type: Option<&'static str>,
}

/// A chat request as it goes upstream: the OpenAI JSON body and what telemetry reads of it.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The OpenAI chat request, forwarded as is (unknown fields included).
    pub body: Value,
    /// What the GenAI span records.
    pub summary: RequestSummary,
    /// We added `stream_options.include_usage` ourselves, so its usage-only chunk is ours to
    /// consume, not the client's to receive.
    pub usage_injected: bool,
    /// System instructions given separately from the messages (`/api/chat`'s `system`).
    pub system_instructions: Option<String>,
}

impl UpstreamRequest {
    /// The upstream request for an `/api/chat` call.
    pub fn from_params(params: &ChatParams, stream: bool) -> Self {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &params.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": params.prompt}));
        let body = json!({
            "model": params.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": stream,
        });
        let mut request = Self::from_body(body);
        request.system_instructions = params.system.clone();
        request
    }

    /// Validates an OpenAI chat request body; the error message names the field.
    pub fn from_openai(mut body: Value, default_model: &str) -> Result<Self, String> {
        let object = body
            .as_object_mut()
            .ok_or("the body must be a JSON object")?;
        match object.get("model") {
            None | Some(Value::Null) => {
                object.insert("model".into(), Value::from(default_model));
            }
            Some(Value::String(m)) if !m.is_empty() && m.len() <= 256 => {}
            Some(_) => return Err("model: must be a string of 1 to 256 characters".into()),
        }
        match object.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {
                if messages.iter().any(|m| !m["role"].is_string()) {
                    return Err("messages: every message needs a string `role`".into());
                }
            }
            _ => return Err("messages: must be a non-empty array".into()),
        }
        if let Some(stream) = object.get("stream")
            && !(stream.is_boolean() || stream.is_null())
        {
            return Err("stream: must be a boolean".into());
        }
        for (field, range) in [("temperature", 0.0..=2.0), ("top_p", 0.0..=1.0)] {
            if let Some(v) = object.get(field)
                && !v.is_null()
                && !v.as_f64().is_some_and(|x| range.contains(&x))
            {
                return Err(format!(
                    "{field}: must be a number between {} and {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        Ok(Self::from_body(body))
    }

    fn from_body(body: Value) -> Self {
        let number = |field: &str| body.get(field).and_then(Value::as_f64);
        let integer = |field: &str| body.get(field).and_then(Value::as_i64);
        let stop_sequences = match body.get("stop") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        };
        let output_type = body
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .map(|t| if t == "text" { "text" } else { "json" });
        let summary = RequestSummary {
            model: body["model"].as_str().unwrap_or_default().to_owned(),
            max_tokens: integer("max_completion_tokens").or_else(|| integer("max_tokens")),
            temperature: number("temperature"),
            top_p: number("top_p"),
            frequency_penalty: number("frequency_penalty"),
            presence_penalty: number("presence_penalty"),
            seed: integer("seed"),
            choice_count: integer("n").filter(|n| *n != 1),
            stop_sequences,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            output_type,
        };
        Self {
            body,
            summary,
            usage_injected: false,
            system_instructions: None,
        }
    }

    /// For streams: ask for the usage chunk (token counts for telemetry) unless the client
    /// already decided about it.
    pub fn request_stream_usage(&mut self) {
        if let Some(object) = self.body.as_object_mut()
            && !object.contains_key("stream_options")
        {
            object.insert("stream_options".into(), json!({"include_usage": true}));
            self.usage_injected = true;
        }
    }

    /// The text of the last user message and the first system message (simulated provider).
    pub fn prompt_and_system(&self) -> (String, Option<String>) {
        let messages = self.body["messages"].as_array();
        let text_of = |m: &Value| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        let find = |role: &str| {
            messages.and_then(|ms| ms.iter().rev().find(|m| m["role"] == role).map(text_of))
        };
        (find("user").unwrap_or_default(), find("system"))
    }
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

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call id.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments, as the JSON text the model produced.
    pub arguments: String,
}

/// One generated choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The generated text.
    pub content: String,
    /// Tool calls, if the model made any.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …).
    pub finish_reason: String,
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The completion id (`chatcmpl-…`).
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The choices; at least one.
    pub choices: Vec<Choice>,
    /// Token counts; `None` when the upstream sent none.
    pub usage: Option<Usage>,
    /// `system_fingerprint`, when sent.
    pub system_fingerprint: Option<String>,
    /// `service_tier`, when sent.
    pub service_tier: Option<String>,
    /// Groq's extras.
    pub groq: GroqExtras,
}

impl Completion {
    /// The first choice's text and finish reason.
    pub fn first(&self) -> (&str, &str) {
        self.choices.first().map_or(("", "unknown"), |c| {
            (c.content.as_str(), c.finish_reason.as_str())
        })
    }
}

/// A stream of SSE bytes from the provider.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send>>;

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
    /// Why each retry happened: `429`, `5xx` or `connection`.
    pub retries: Vec<&'static str>,
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
    /// An error the upstream reported inside a stream, after its 200 (message scrubbed).
    #[error("the upstream failed mid-stream: {0}")]
    InStream(String),
    /// Our own concurrency limit and its wait queue are full.
    #[error("the gateway is at LLM_MAX_CONCURRENCY and its wait queue is full")]
    Overloaded,
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
            LlmError::InStream(_) => ErrorType::UpstreamServerError,
            LlmError::Overloaded => ErrorType::Overloaded,
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
            LlmError::InStream(_) => StatusCode::BAD_GATEWAY,
            LlmError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
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
            LlmError::InStream(message) => format!("the LLM provider failed mid-stream: {message}"),
            LlmError::Overloaded => "the gateway is at capacity; retry shortly".into(),
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
            LlmError::Overloaded => Some(1),
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
            LlmError::InStream(_) => "LlmError::InStream",
            LlmError::Overloaded => "LlmError::Overloaded",
        }
    }
}

/// The provider that answers LLM calls. An enum rather than a trait object: two
/// implementations, static dispatch, no boxing on the hot path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one instance per process: size is irrelevant
pub enum Provider {
    /// Groq or any other OpenAI-compatible API.
    Http(OpenAiCompatible),
    /// The offline simulated provider.
    Simulated(Simulated),
}

impl Provider {
    /// Builds the provider the settings ask for.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        Ok(match &settings.upstream {
            Some(upstream) => Provider::Http(OpenAiCompatible::new(
                settings.provider,
                upstream,
                settings,
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

    /// Asks for a whole completion: the raw body to relay and what it says. `span` (the GenAI
    /// span) is the parent of the HTTP client spans: passed explicitly rather than entered on
    /// every poll, which costs a clock read and a dispatch per poll.
    pub async fn complete(
        &self,
        request: &UpstreamRequest,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<(Bytes, Completion), LlmError> {
        match self {
            Provider::Http(p) => p.complete(request, span, report).await,
            Provider::Simulated(p) => p.complete(request, report).await,
        }
    }

    /// Opens a streamed completion; retries happen only before the first byte is relayed.
    pub async fn stream(
        &self,
        request: &UpstreamRequest,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<ByteStream, LlmError> {
        match self {
            Provider::Http(p) => p.stream(request, span, report).await,
            Provider::Simulated(p) => p.stream(request, report).await,
        }
    }

    /// The upstream's model list, OpenAI-shaped.
    pub async fn list_models(&self, known: &PriceTable) -> Result<Bytes, LlmError> {
        match self {
            Provider::Http(p) => p.list_models().await,
            Provider::Simulated(_) => Ok(Simulated::list_models(known)),
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
