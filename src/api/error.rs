//! The HTTP boundary's one error type, and the one place any error body is built: the JSON
//! body of an error response, and the error event of a stream that has already begun.
//!
//! The body is OpenAI's error shape (so the SDKs raise their usual exceptions) plus the trace
//! id; its `type` is the call's [`ErrorType`], the same value as the `error.type` span
//! attribute and the `error_type` metric label.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Refusal;
use crate::llm::{ErrorType, LlmError};
use crate::telemetry;

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
    /// The gateway key refused the call before any upstream call (invalid, expired, model not
    /// allowed, over a limit or budget, ledger unavailable).
    #[error(transparent)]
    Refused(#[from] Refusal),
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
            ApiError::Refused(refusal) => match refusal {
                Refusal::InvalidKey | Refusal::Expired => ErrorType::InvalidRequest,
                Refusal::ModelNotAllowed(_) => ErrorType::PermissionDenied,
                Refusal::RateLimited { .. } | Refusal::TokensLimited { .. } => {
                    ErrorType::RateLimited
                }
                Refusal::BudgetExceeded { .. } => ErrorType::BudgetExceeded,
                Refusal::LedgerUnavailable => ErrorType::LedgerUnavailable,
            },
            ApiError::Internal => ErrorType::Internal,
            ApiError::Llm(e) => e.error_type(),
        }
    }

    /// The HTTP status the client gets.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { status, .. } => *status,
            ApiError::ClientRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused(refusal) => match refusal {
                Refusal::InvalidKey | Refusal::Expired => StatusCode::UNAUTHORIZED,
                Refusal::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
                Refusal::LedgerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::TOO_MANY_REQUESTS,
            },
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

/// How an error is written into a stream whose `200` has already gone out.
#[derive(Debug, Clone, Copy)]
pub enum SseDialect<'a> {
    /// `/api/chat`: `event: error` with the error body, trace id included.
    Chat {
        /// The request's trace id, read before the stream began.
        trace_id: Option<&'a str>,
    },
    /// OpenAI's: a `data:` event with an `error` object, which OpenAI's SDKs raise as an error.
    OpenAi,
    /// The Responses API's: an `error` event, `{"type": "error", "code", "message", "param"}`.
    Responses,
    /// Anthropic's: an `error` event, `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

/// The body of an OpenAI-shaped stream error event.
#[derive(Serialize)]
struct StreamError {
    error: ErrorDetail,
}

impl ApiError {
    /// The error object and the `Retry-After` seconds, if any.
    fn detail(&self) -> (ErrorDetail, Option<u64>) {
        let (message, code, retry_after) = match self {
            ApiError::InvalidRequest { message, .. } => (message.clone(), None, None),
            ApiError::ClientRateLimited { retry_after } => (
                format!("too many requests from this client; retry in {retry_after} s"),
                Some("client_rate_limit_exceeded".to_owned()),
                Some(*retry_after),
            ),
            ApiError::Refused(refusal) => {
                let code = match refusal {
                    Refusal::Expired => Some("key_expired"),
                    Refusal::RateLimited { .. } => Some("key_rate_limit_exceeded"),
                    Refusal::TokensLimited { .. } => Some("key_token_limit_exceeded"),
                    _ => None,
                };
                (
                    refusal.to_string(),
                    code.map(str::to_owned),
                    refusal.retry_after(),
                )
            }
            ApiError::Llm(e) => (e.client_message(), e.upstream_code(), e.retry_after()),
            ApiError::Internal => ("internal error".to_owned(), None, None),
        };
        let detail = ErrorDetail {
            message,
            kind: self.error_type().as_str(),
            code,
        };
        (detail, retry_after)
    }

    /// The error as one server-sent event, for a stream that has already begun.
    pub fn sse_event(&self, dialect: SseDialect<'_>) -> Bytes {
        let (error, _) = self.detail();
        let text = match dialect {
            SseDialect::Chat { trace_id } => {
                let body = ErrorBody {
                    error,
                    trace_id: trace_id.map(str::to_owned),
                };
                format!("event: error\ndata: {}\n\n", json_text(&body))
            }
            SseDialect::OpenAi => format!("data: {}\n\n", json_text(&StreamError { error })),
            SseDialect::Responses => format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({
                    "type": "error",
                    "code": error.kind,
                    "message": error.message,
                    "param": null,
                    "sequence_number": 0,
                })
            ),
            SseDialect::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({
                    "type": "error",
                    "error": {"type": error.kind, "message": error.message},
                })
            ),
        };
        Bytes::from(text)
    }
}

/// Serialising these plain structs cannot fail; an empty object is the fallback all the same.
fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// Axum's JSON rejections onto our statuses: 400 syntax, 413 size, 415 content type, 422 shape
/// (serde's message names the field).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "Content-Type must be application/json".to_owned()
            }
            JsonRejection::JsonDataError(e) => e.body_text().replace(
                "Failed to deserialize the JSON body into the target type: ",
                "",
            ),
            _ => rejection.body_text(),
        };
        ApiError::InvalidRequest { status, message }
    }
}

/// A body that could not be read: 413 over `MAX_BODY_BYTES`, 400 when it broke off.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::InvalidRequest {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let (error, retry_after) = self.detail();
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
            ApiError::Refused(refusal) => Some(match refusal {
                Refusal::InvalidKey | Refusal::Expired => "unauthorized",
                _ => refusal.reason(),
            }),
            ApiError::Internal => None,
            // No call was made: no route serves the model.
            ApiError::Llm(LlmError::UnknownModel(_)) => Some("model_not_found"),
            ApiError::Llm(LlmError::Unsupported { .. }) => Some("unsupported_operation"),
            // Failed LLM calls are counted by the chat service (overloaded included).
            ApiError::Llm(_) => None,
        };
        let body = ErrorBody {
            error,
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
