//! The HTTP boundary's one error type and the low-cardinality error classes.
//!
//! [`ErrorType`] is the single source of the `error.type` span attribute, the `error_type`
//! metric label and the JSON error `type`, so the three always agree.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::llm::LlmError;
use crate::telemetry;

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
    /// A bug: never expected.
    Internal,
}

impl ErrorType {
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
            ErrorType::Internal => "internal",
        }
    }
}

/// An error returned to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body could not be read, parsed or validated.
    #[error("{message}")]
    InvalidRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// What is wrong, naming the field where there is one.
        message: String,
    },
    /// The client is over `RATE_LIMIT_PER_CLIENT`.
    #[error("client rate limit exceeded")]
    ClientRateLimited {
        /// Seconds until the client may send again.
        retry_after: u64,
    },
    /// The LLM call failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A bug (a handler panicked); the client learns nothing more.
    #[error("internal error")]
    Internal,
}

/// Why the gateway refused a request itself, for `llm_gateway_rejections_total{reason}`.
#[derive(Debug, Clone, Copy)]
pub struct Rejection(pub &'static str);

impl ApiError {
    /// A 422 for a field that parsed but is out of range.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }

    /// The error class.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::InvalidRequest { .. } => ErrorType::InvalidRequest,
            ApiError::ClientRateLimited { .. } => ErrorType::RateLimited,
            ApiError::Internal => ErrorType::Internal,
            ApiError::Llm(e) => e.error_type(),
        }
    }

    /// The HTTP status the client gets.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { status, .. } => *status,
            ApiError::ClientRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Llm(e) => e.status_code(),
        }
    }
}

/// OpenAI's error shape, plus the trace id.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"message": "temperature: must be between 0.0 and 2.0, got 2.5", "type": "invalid_request", "code": null}, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// The trace of the failed request (hex, 32 characters).
    pub trace_id: Option<String>,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Human-readable; never contains secrets.
    pub message: String,
    /// One of the documented error types.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The upstream's own error code when it sent one, else null.
    pub code: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let (message, code, retry_after) = match &self {
            ApiError::InvalidRequest { message, .. } => (message.clone(), None, None),
            ApiError::ClientRateLimited { retry_after } => (
                format!("too many requests from this client; retry in {retry_after} s"),
                Some("client_rate_limit_exceeded".to_owned()),
                Some(*retry_after),
            ),
            ApiError::Llm(e) => (e.client_message(), e.upstream_code(), e.retry_after()),
            ApiError::Internal => ("internal error".to_owned(), None, None),
        };
        let rejection = match &self {
            ApiError::InvalidRequest { status, .. } => Some(match status.as_u16() {
                400 => "malformed_json",
                401 => "unauthorized",
                404 => "not_found",
                413 => "body_too_large",
                415 => "unsupported_media_type",
                _ => "invalid_request",
            }),
            ApiError::ClientRateLimited { .. } => Some("client_rate_limit"),
            ApiError::Internal => None,
            // Failed LLM calls are counted by the chat service (overloaded included).
            ApiError::Llm(_) => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message,
                kind: self.error_type().as_str(),
                code,
            },
            trace_id: telemetry::current_trace_id(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(reason) = rejection {
            response.extensions_mut().insert(Rejection(reason));
        }
        response
    }
}
