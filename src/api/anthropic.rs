//! Anthropic's Messages API, so the official Anthropic SDKs and Claude Code work by changing
//! only their base URL (`ANTHROPIC_BASE_URL`): `POST /v1/messages` (whole or streamed) and
//! `POST /v1/messages/count_tokens`. Requests are forwarded untouched to a provider of kind
//! `anthropic` and answers relayed unchanged; every call is observed by the chat service like
//! the OpenAI endpoints. The gateway key may come as `x-api-key` (`middleware::presented_key`).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::error::{ApiError, ErrorBody, SseDialect};
use super::openai::{is_json, json_bytes, relay};
use super::state::AppState;
use crate::llm::UpstreamRequest;

/// Create a message (Anthropic's Messages API; `stream: true` answers with its events).
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "anthropic",
    request_body(content = super::schemas::MessagesRequest, description = "An Anthropic Messages request: `model`, `max_tokens`, `messages`, and any other field (system, tools, tool_choice, stop_sequences, temperature, stream…), forwarded untouched to a provider of kind `anthropic`."),
    responses(
        (status = 200, description = "Anthropic's message, unchanged; with `stream: true`, its events (`message_start`, `content_block_delta`, …, `message_stop`)",
            content((Object = "application/json"), (super::sse::ServerSentEvent = "text/event-stream")),
            headers(("x-trace-id" = String, description = "Trace id of this request"))),
        (status = 400, description = "Malformed JSON, or Anthropic refused the request (its message)", body = ErrorBody),
        (status = 401, description = "Missing or wrong gateway key (`x-api-key` or `Authorization: Bearer`)", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid request (the message names the field)", body = ErrorBody),
        (status = 429, description = "Rate-limited (`rate_limited`); `Retry-After`", body = ErrorBody),
        (status = 501, description = "The model's providers do not speak the Messages API (`unsupported_operation`)", body = ErrorBody),
        (status = 502, description = "Provider failure (529 overloaded included, after retries)", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time", body = ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let forwarded = forwarded_headers(&headers);
    relay(
        &state,
        &headers,
        None,
        body,
        |raw, value, limits| {
            let mut request = UpstreamRequest::from_messages(raw, value, limits)?;
            request.forwarded_headers = forwarded;
            Ok(request)
        },
        SseDialect::Anthropic,
    )
    .await
}

/// The client's `anthropic-version` and `anthropic-beta` headers: the API version and beta
/// features it speaks (Claude Code needs them passed on); no other client header goes upstream.
fn forwarded_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    ["anthropic-version", "anthropic-beta"]
        .into_iter()
        .flat_map(|name| {
            headers
                .get_all(name)
                .iter()
                .map(move |value| (HeaderName::from_static(name), value.clone()))
        })
        .collect()
}

/// Count a Messages request's input tokens (Anthropic's API), relayed from the provider.
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    tag = "anthropic",
    request_body(content = super::schemas::CountTokensRequest, description = "A Messages request without `max_tokens`: `model`, `messages`, `system`, `tools`."),
    responses(
        (status = 200, description = "`{\"input_tokens\": n}`, from the provider", body = Object),
        (status = 400, description = "Malformed JSON, or the provider refused the request", body = ErrorBody),
        (status = 401, description = "Missing or wrong gateway key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 502, description = "Provider failure", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`)", body = ErrorBody),
        (status = 422, description = "Invalid request", body = ErrorBody),
        (status = 501, description = "The model's providers do not speak the Messages API", body = ErrorBody),
    )
)]
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::InvalidRequest {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json".into(),
        });
    }
    let raw = body?;
    let Json(value) = Json::<Value>::from_bytes(&raw)?;
    let mut request = UpstreamRequest::from_count_tokens(raw, value, &state.limits)
        .map_err(ApiError::validation)?;
    request.forwarded_headers = forwarded_headers(&headers);
    Ok(json_bytes(state.chat.count_tokens(&request).await?))
}
