//! Why an LLM call failed: [`LlmError`], and its low-cardinality class [`ErrorType`].
//!
//! [`ErrorType`] is the single source of the `error.type` span attribute, the `error_type`
//! metric label and the JSON error `type`, so the three always agree (README, "Errors").

use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};

use super::Redactor;

/// Every class of failure, as documented in README's error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// The client's request is malformed or fails validation.
    InvalidRequest,
    /// The upstream did not answer within the deadline.
    Timeout,
    /// The upstream rate-limited us (429).
    RateLimited,
    /// The upstream refused the operator's key (401/403).
    Authentication,
    /// The upstream rejected the request (other 4xx).
    UpstreamClientError,
    /// The upstream failed (5xx) on every attempt.
    UpstreamServerError,
    /// The upstream could not be reached, or the connection broke.
    ConnectionError,
    /// The upstream answered with a body we cannot understand.
    BadResponse,
    /// The client went away before the answer was complete.
    Cancelled,
    /// Our own concurrency limit is reached.
    Overloaded,
    /// The model name is neither a route nor `provider/model`, and there is no default provider.
    ModelNotFound,
    /// Every target of the route is skipped: their circuits are open.
    CircuitOpen,
    /// The model's providers do not implement the API asked (Anthropic's Messages API at an
    /// OpenAI-compatible provider, say).
    UnsupportedOperation,
    /// The gateway key may not use that model (403).
    PermissionDenied,
    /// The gateway key or its team has spent its budget for the period (429).
    BudgetExceeded,
    /// The shared ledger of keys' limits (Redis) cannot be asked and the policy is
    /// `fail_closed` (503).
    LedgerUnavailable,
    /// A bug: never expected.
    Internal,
}

impl ErrorType {
    /// Every class, for reading one from its name.
    const ALL: [ErrorType; 17] = [
        ErrorType::InvalidRequest,
        ErrorType::Timeout,
        ErrorType::RateLimited,
        ErrorType::Authentication,
        ErrorType::UpstreamClientError,
        ErrorType::UpstreamServerError,
        ErrorType::ConnectionError,
        ErrorType::BadResponse,
        ErrorType::Cancelled,
        ErrorType::Overloaded,
        ErrorType::ModelNotFound,
        ErrorType::CircuitOpen,
        ErrorType::UnsupportedOperation,
        ErrorType::PermissionDenied,
        ErrorType::BudgetExceeded,
        ErrorType::LedgerUnavailable,
        ErrorType::Internal,
    ];

    /// The class of that name (a route's `fallback_on`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The label value; stable, documented, low cardinality.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Timeout => "timeout",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::Authentication => "authentication",
            ErrorType::UpstreamClientError => "upstream_client_error",
            ErrorType::UpstreamServerError => "upstream_server_error",
            ErrorType::ConnectionError => "connection_error",
            ErrorType::BadResponse => "bad_response",
            ErrorType::Cancelled => "cancelled",
            ErrorType::Overloaded => "overloaded",
            ErrorType::ModelNotFound => "model_not_found",
            ErrorType::CircuitOpen => "circuit_open",
            ErrorType::UnsupportedOperation => "unsupported_operation",
            ErrorType::PermissionDenied => "permission_denied",
            ErrorType::BudgetExceeded => "budget_exceeded",
            ErrorType::LedgerUnavailable => "ledger_unavailable",
            ErrorType::Internal => "internal",
        }
    }
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
    /// A redirect (or another 1xx/3xx final answer): the base URL is wrong; not followed.
    #[error(
        "the upstream answered HTTP {status} (location: {location:?}); redirects are not followed"
    )]
    Redirected {
        /// The upstream's status.
        status: u16,
        /// Where it pointed, without query string (scrubbed).
        location: Option<String>,
    },
    /// An error the upstream reported inside a stream, after its 200 (message scrubbed).
    #[error("the upstream failed mid-stream: {0}")]
    InStream(String),
    /// Our own concurrency limit and its wait queue are full.
    #[error("the gateway is at LLM_MAX_CONCURRENCY and its wait queue is full")]
    Overloaded,
    /// No route, provider prefix or default provider serves this model name.
    #[error("no route serves the model {0:?}")]
    UnknownModel(String),
    /// The request cannot be said in the provider's API (an Anthropic target asked for `n: 2`).
    #[error("the request cannot be translated for the provider: {0}")]
    Untranslatable(String),
    /// No provider of the model implements the API asked.
    #[error("{model:?} is served by {providers}, which do not implement {api}")]
    Unsupported {
        /// The model name the client asked for.
        model: String,
        /// Which providers serve it (names and kinds).
        providers: String,
        /// The API.
        api: &'static str,
    },
    /// Every target of the route has an open circuit.
    #[error("every target of the route {route:?} has an open circuit")]
    CircuitOpen {
        /// The route.
        route: String,
        /// Seconds until the first target may be probed again.
        retry_after: u64,
    },
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
            LlmError::Redirected { .. } => ErrorType::BadResponse,
            LlmError::InStream(_) => ErrorType::UpstreamServerError,
            LlmError::Overloaded => ErrorType::Overloaded,
            LlmError::UnknownModel(_) => ErrorType::ModelNotFound,
            LlmError::CircuitOpen { .. } => ErrorType::CircuitOpen,
            LlmError::Untranslatable(_) => ErrorType::InvalidRequest,
            LlmError::Unsupported { .. } => ErrorType::UnsupportedOperation,
        }
    }

    /// The status the gateway answers with (README's error table).
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
            LlmError::Redirected { .. } => StatusCode::BAD_GATEWAY,
            LlmError::InStream(_) => StatusCode::BAD_GATEWAY,
            LlmError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            LlmError::UnknownModel(_) => StatusCode::NOT_FOUND,
            LlmError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LlmError::Untranslatable(_) => StatusCode::BAD_REQUEST,
            LlmError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
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
            LlmError::Redirected { status, location } => format!(
                "the LLM provider answered HTTP {status} with a redirect{}; the gateway does not follow redirects: check the provider's base URL",
                location
                    .as_deref()
                    .map(|l| format!(" to {l}"))
                    .unwrap_or_default()
            ),
            LlmError::InStream(message) => format!("the LLM provider failed mid-stream: {message}"),
            LlmError::Overloaded => "the gateway is at capacity; retry shortly".into(),
            LlmError::UnknownModel(model) => format!(
                "the model {model:?} is not served by this gateway: name one of its routes (GET /v1/models lists them), or a provider and its model as provider/model"
            ),
            LlmError::CircuitOpen { route, retry_after } => format!(
                "every provider of the route {route:?} is failing and skipped for now; retry in {retry_after} s"
            ),
            LlmError::Untranslatable(message) => message.clone(),
            LlmError::Unsupported { .. } => self.to_string(),
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
            LlmError::CircuitOpen { retry_after, .. } => Some(*retry_after),
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
            LlmError::Redirected { .. } => "LlmError::Redirected",
            LlmError::InStream(_) => "LlmError::InStream",
            LlmError::Overloaded => "LlmError::Overloaded",
            LlmError::UnknownModel(_) => "LlmError::UnknownModel",
            LlmError::CircuitOpen { .. } => "LlmError::CircuitOpen",
            LlmError::Untranslatable(_) => "LlmError::Untranslatable",
            LlmError::Unsupported { .. } => "LlmError::Unsupported",
        }
    }
}

/// What an upstream's error status means, whatever its dialect (its body's `message` and `code`
/// already read and scrubbed), and whether a retry of the same provider is worth it: 429 →
/// rate-limited, retryable, with the `Retry-After` its headers give (whole seconds); 401/403 →
/// the operator's key; 407 (only a proxy sends it) → the egress proxy's credentials; other 4xx
/// → the upstream's client error with its own words; 5xx → server error, retryable. A redirect
/// (or any other 1xx/3xx) is a misconfigured base URL: one attempt, a clear error.
pub(super) fn error_for_status(
    status: u16,
    headers: &HeaderMap,
    (message, code): (String, Option<String>),
    retry_after: impl FnOnce() -> u64,
    redactor: &Redactor,
) -> (LlmError, bool) {
    if !(400..=599).contains(&status) {
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            // The query string may carry a signature or key: never relayed.
            .map(|l| redactor.redact(l.split(['?', '#']).next().unwrap_or_default()));
        return (LlmError::Redirected { status, location }, false);
    }
    match status {
        429 => (
            LlmError::RateLimited {
                message,
                retry_after: Some(retry_after()),
            },
            true,
        ),
        401 | 403 => (LlmError::Authentication { status }, false),
        // Only a proxy answers 407: the egress proxy's settings are at fault, not the client.
        407 => (
            LlmError::Connection(
                "the egress proxy refused the gateway's credentials (HTTP 407)".into(),
            ),
            false,
        ),
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
