//! OpenAI-compatible endpoints, so any OpenAI or Groq SDK works by changing its base URL:
//! `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/embeddings` and
//! `GET /v1/models` (also under `/openai/v1`, Groq's path).
//!
//! Requests are forwarded with every field untouched; answers are relayed unchanged (whole
//! bodies byte for byte, streams event by event), and every call is observed by the chat
//! service exactly like `/api/chat`.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use utoipa::ToSchema;

use super::access::admit;
use super::cache::ask_cache;
use super::error::{ApiError, ErrorBody, SseDialect};
use super::middleware::AuthenticatedKey;
use super::sse::{ServerSentEvent, sse_response};
use super::state::{AppState, with_call_record};
use crate::llm::{RequestLimits, StreamEvent, UpstreamRequest};

/// An OpenAI chat completion request, as documented here: the fields the gateway reads. Every
/// other field is accepted and forwarded untouched.
#[derive(ToSchema)]
#[schema(example = json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "Hello"}]}))]
#[allow(dead_code)] // a schema only: requests are read as JSON values so unknown fields survive
pub struct ChatCompletionRequest {
    /// Model to ask; default `LLM_DEFAULT_MODEL`.
    #[schema(min_length = 1, max_length = 256)]
    model: Option<String>,
    /// The conversation; at least one message.
    #[schema(min_items = 1)]
    messages: Vec<ChatMessage>,
    /// Answer with server-sent events.
    stream: Option<bool>,
    /// Sampling temperature.
    #[schema(minimum = 0.0, maximum = 2.0)]
    temperature: Option<f64>,
    /// Nucleus sampling.
    #[schema(minimum = 0.0, maximum = 1.0)]
    top_p: Option<f64>,
}

/// One message; `content`, `tool_calls`, `tool_call_id`, `name` and the rest pass through.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    role: String,
}

/// Create a chat completion (OpenAI's API; `stream: true` answers with server-sent events).
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    request_body(content = ChatCompletionRequest, description = "An OpenAI chat completion request: `model`, `messages` and any other field (tools, tool_choice, response_format, top_p, stop, seed, n, stream, stream_options…), forwarded untouched."),
    responses(
        (status = 200, description = "The upstream's chat completion, unchanged; with `stream: true`, its server-sent events",
            content((Object = "application/json"), (ServerSentEvent = "text/event-stream")),
            headers(("x-trace-id" = String, description = "Trace id of this request"),
                ("x-llmobs-cache" = String, description = "What the response cache did: hit, miss or bypass (with CACHE_ENABLED, chat and embeddings only)"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong gateway key (when GATEWAY_API_KEYS is set)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid request (the message names the field)", body = ErrorBody),
        (status = 429, description = "The provider rate-limited the call, or this client is over RATE_LIMIT_PER_CLIENT", body = ErrorBody),
        (status = 502, description = "Provider failure", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`, with GATEWAY_CONFIG), or the provider does not know it (`upstream_client_error`)", body = ErrorBody),
        (status = 503, description = "The gateway is at capacity (`overloaded`; `Retry-After: 1`), or every target of the route has an open circuit (`circuit_open`; `Retry-After` until the next probe)", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time", body = ErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: Option<Extension<AuthenticatedKey>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    relay(
        &state,
        &headers,
        key.as_deref(),
        body,
        UpstreamRequest::from_openai,
        SseDialect::OpenAi,
    )
    .await
}

/// Create a model response (OpenAI's Responses API; `stream: true` answers with its typed
/// server-sent events).
#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "openai",
    request_body(content = super::schemas::ResponsesRequest, description = "A Responses API request: `model`, `input` (a string or items) and any other field (instructions, tools, text.format, max_output_tokens, stream…), forwarded untouched to providers that implement the Responses API (OpenAI, Groq, vLLM)."),
    responses(
        (status = 200, description = "The upstream's response object, unchanged; with `stream: true`, its typed events (`response.created`, `response.output_text.delta`, …, `response.completed`)",
            content((Object = "application/json"), (ServerSentEvent = "text/event-stream")),
            headers(("x-trace-id" = String, description = "Trace id of this request"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong gateway key", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid request (the message names the field)", body = ErrorBody),
        (status = 429, description = "Rate-limited (`rate_limited`)", body = ErrorBody),
        (status = 501, description = "The model's providers do not implement the Responses API (`unsupported_operation`, naming them)", body = ErrorBody),
        (status = 502, description = "Provider failure", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time", body = ErrorBody),
    )
)]
pub async fn responses(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: Option<Extension<AuthenticatedKey>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    relay(
        &state,
        &headers,
        key.as_deref(),
        body,
        UpstreamRequest::from_responses,
        SseDialect::Responses,
    )
    .await
}

/// Create embeddings (OpenAI's API).
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    request_body(content = super::schemas::EmbeddingsRequest, description = "An embeddings request: `model`, `input` (a string, strings, or token ids), and `dimensions`, `encoding_format`, `user`, forwarded untouched."),
    responses(
        (status = 200, description = "The upstream's embeddings, unchanged", body = Object,
            headers(("x-trace-id" = String, description = "Trace id of this request"),
                ("x-llmobs-cache" = String, description = "What the response cache did: hit, miss or bypass (with CACHE_ENABLED, chat and embeddings only)"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong gateway key", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid request (the message names the field)", body = ErrorBody),
        (status = 501, description = "The model's providers do not implement embeddings (`unsupported_operation`)", body = ErrorBody),
        (status = 502, description = "Provider failure", body = ErrorBody),
    )
)]
pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: Option<Extension<AuthenticatedKey>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    relay(
        &state,
        &headers,
        key.as_deref(),
        body,
        |raw, value, limits| {
            if value.get("stream").is_some_and(|s| s == true) {
                return Err("stream: embeddings are not streamed".into());
            }
            UpstreamRequest::from_embeddings(raw, value, limits)
        },
        SseDialect::OpenAi,
    )
    .await
}

/// One LLM call through the chat service: the client's bytes validated by `build` and
/// forwarded; a whole answer relayed byte for byte, a stream event by event (a failure after
/// its start written in `dialect`).
pub(super) async fn relay(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&AuthenticatedKey>,
    body: Result<Bytes, BytesRejection>,
    build: impl FnOnce(Bytes, Value, &RequestLimits) -> Result<UpstreamRequest, String>,
    dialect: SseDialect<'static>,
) -> Result<Response, ApiError> {
    // The client's bytes are kept to be forwarded as they are; they are read as JSON here only
    // to validate and observe them (what axum's `Json` would do, in the same order).
    if !is_json(headers) {
        return Err(ApiError::InvalidRequest {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "Content-Type must be application/json".into(),
        });
    }
    let raw = body?;
    let Json(value) = Json::<Value>::from_bytes(&raw)?;
    let mut request = build(raw, value, &state.limits).map_err(ApiError::validation)?;
    ask_cache(state.chat.cache(), headers, key, &mut request)?;
    let admission = admit(state, headers, key, &mut request).await?;
    if request.summary.stream {
        let (opened, record) = state.chat.stream(request).await;
        let outcome = opened.map(|events| {
            sse_response(events.filter_map(move |event| {
                std::future::ready(match event {
                    StreamEvent::Event { raw, .. } => Some(raw),
                    StreamEvent::End(_) | StreamEvent::Failed { relayed: true, .. } => None,
                    // The SDKs raise an error for an error event in a stream.
                    StreamEvent::Failed { error, .. } => {
                        Some(ApiError::from(error).sse_event(dialect))
                    }
                })
            }))
        });
        return Ok(with_call_record(record, outcome));
    }
    if let Some(admission) = &admission {
        admission.will_settle();
    }
    let (result, record) = state.chat.complete(request).await;
    // Written before the answer goes: the next call of this key sees this one's spend.
    if let Some(admission) = admission {
        admission.settle().await;
    }
    Ok(with_call_record(
        record,
        result.map(|outcome| json_bytes(outcome.raw)),
    ))
}

/// List the models clients may name (OpenAI's API): without GATEWAY_CONFIG the provider's own
/// list; with it, the routes, then `provider/model` for each provider's models (direct
/// addressing) and the default provider's models.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses(
        (status = 200, description = "The model list: the provider's, unchanged, or the routes and providers' models", body = Object,
            example = json!({"object": "list", "data": [{"id": "llama-3.1-8b-instant", "object": "model", "created": 0, "owned_by": "Meta"}]})),
        (status = 401, description = "Missing or wrong gateway key", body = ErrorBody),
        (status = 502, description = "Provider failure", body = ErrorBody),
    )
)]
pub async fn models(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json_bytes(state.chat.list_models().await?))
}

/// `Content-Type: application/json`, or any `application/…+json`, as axum's `Json` accepts.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

pub(super) fn json_bytes(raw: Bytes) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        raw,
    )
        .into_response()
}
