//! What every handler shares, and how an LLM call's outcome becomes a response.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::access::Access;
use crate::config::{FeedbackSettings, PromptSettings};
use crate::llm::{CallRecord, ChatService, LlmError, RequestLimits};
use crate::telemetry::Metrics;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    /// The traced, counted LLM calls.
    pub chat: Arc<ChatService>,
    /// The default model and the prompt limit.
    pub limits: Arc<RequestLimits>,
    /// The registry the middleware records into.
    pub metrics: Arc<Metrics>,
    /// Gateway keys, their limits and spend.
    pub access: Arc<Access>,
    /// The evaluation names and labels feedback metrics carry.
    pub feedback: Arc<FeedbackSettings>,
    /// The prompt names and versions metrics carry.
    pub prompts: Arc<PromptSettings>,
}

/// A response for an LLM call's outcome, carrying the call's record for the request log line
/// and the overhead metric (`middleware::trace`), whether the call succeeded or not.
/// (`None`: no call was made, the model is served by no route).
pub fn with_call_record(
    record: Option<CallRecord>,
    outcome: Result<Response, LlmError>,
) -> Response {
    let mut response = outcome.unwrap_or_else(|error| ApiError::from(error).into_response());
    if let Some(record) = record {
        response.extensions_mut().insert(record);
    }
    response
}
