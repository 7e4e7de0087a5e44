//! `POST /api/chat`: the simple chat endpoint. Parse, validate, call the chat service, shape.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::access::admit;
use super::cache::ask_cache;
use super::error::{ApiError, ErrorBody, SseDialect};
use super::middleware::AuthenticatedKey;
use super::sse::{ServerSentEvent, sse_response};
use super::state::{AppState, with_call_record};
use crate::llm::{ChatInput, MAX_TOKENS_LIMIT, StreamEvent, UpstreamRequest, Usage};
use crate::telemetry;

/// A chat request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"prompt": "Explain observability in 3 sentences", "max_tokens": 100, "temperature": 0.7}))]
pub struct ChatRequest {
    /// The user's prompt; must contain more than whitespace.
    #[schema(min_length = 1, pattern = r"\S")]
    pub prompt: String,
    /// Most tokens to generate (1..=32768, default 256).
    #[schema(minimum = 1, maximum = 32768)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0.0..=2.0, default 0.7).
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    /// Model to ask (default from `LLM_DEFAULT_MODEL`).
    #[schema(min_length = 1, max_length = 256)]
    pub model: Option<String>,
    /// Optional system instructions.
    pub system: Option<String>,
    /// Stream the answer as server-sent events: `data: {"delta": "…"}` per content chunk, then
    /// `event: done` with usage, cost and trace id (or `event: error`).
    pub stream: Option<bool>,
}

/// Token counts of the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBody {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
}

/// A chat answer with its accounting.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "chatcmpl-9f8e7d", "model": "llama-3.1-8b-instant", "provider": "groq",
    "content": "Observability is…", "finish_reason": "stop",
    "usage": {"prompt_tokens": 18, "completion_tokens": 92, "total_tokens": 110},
    "cost_usd": 0.00000826, "latency_ms": 412.5,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}))]
pub struct ChatResponse {
    /// Completion id from the provider.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// `groq`, `openai` or `simulated`.
    pub provider: String,
    /// The answer.
    pub content: String,
    /// Why generation stopped: `stop`, `length`, …
    pub finish_reason: String,
    /// Token counts; null if the provider reported none.
    pub usage: Option<UsageBody>,
    /// Cost in USD; null when the model has no price (never a silent 0).
    pub cost_usd: Option<f64>,
    /// Time the LLM call took, in milliseconds.
    pub latency_ms: f64,
    /// The request's trace id, also in the `x-trace-id` header.
    pub trace_id: Option<String>,
}

impl From<Usage> for UsageBody {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

/// Ask the configured LLM.
#[utoipa::path(
    post,
    path = "/api/chat",
    tag = "chat",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer, with usage, cost, latency and trace id (or, with `stream: true`, a text/event-stream of `data: {\"delta\": …}` events ending with `event: done`)",
            content((ChatResponse = "application/json"), (ServerSentEvent = "text/event-stream")),
            headers(("x-trace-id" = String, description = "Trace id of this request"),
                ("x-llmobs-cache" = String, description = "What the response cache did: hit, miss or bypass (with CACHE_ENABLED, chat and embeddings only)"))),
        (status = 401, description = "GATEWAY_API_KEYS is set and the bearer token is not one of them (`invalid_request`)", body = ErrorBody),
        (status = 400, description = "Malformed JSON (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No route serves the model (`model_not_found`, with GATEWAY_CONFIG), or the provider does not know it (`upstream_client_error`)", body = ErrorBody),
        (status = 413, description = "Body larger than MAX_BODY_BYTES (`invalid_request`)", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json (`invalid_request`)", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or out of range (`invalid_request`)", body = ErrorBody),
        (status = 429, description = "The provider rate-limited the call, or this client is over RATE_LIMIT_PER_CLIENT (`rate_limited`); `Retry-After` says when to retry", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 502, description = "Provider failure: `authentication`, `upstream_server_error`, `connection_error` or `bad_response`", body = ErrorBody),
        (status = 503, description = "The gateway is at LLM_MAX_CONCURRENCY and its wait queue is full (`overloaded`; `Retry-After: 1`), or every target of the route has an open circuit (`circuit_open`; `Retry-After` until the next probe)", body = ErrorBody),
        (status = 504, description = "The provider did not answer in time (`timeout`)", body = ErrorBody),
    )
)]
pub async fn chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: Option<Extension<AuthenticatedKey>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let stream = request.stream.unwrap_or(false);
    let params = ChatInput {
        prompt: request.prompt,
        system: request.system,
        model: request.model,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
    }
    .validate(&state.limits)
    .map_err(ApiError::validation)?;
    let mut request = UpstreamRequest::from_params(params, stream);
    ask_cache(state.chat.cache(), &headers, key.as_deref(), &mut request)?;
    let admission = admit(&state, &headers, key.as_deref(), &mut request).await?;
    if stream {
        return Ok(stream_chat(state, request).await);
    }
    if let Some(admission) = &admission {
        admission.will_settle();
    }
    let (result, record) = state.chat.complete(request).await;
    // Written before the answer goes: the next call of this key sees this one's spend.
    if let Some(admission) = admission {
        admission.settle().await;
    }
    // The provider that answered (after any fallback).
    let provider = record.as_ref().map(|r| r.provider.clone());
    let outcome = result.map(|outcome| {
        let completion = outcome.completion;
        let (content, finish_reason) = completion.first();
        Json(ChatResponse {
            id: completion.id.clone(),
            model: completion.model.clone(),
            provider: provider.as_deref().unwrap_or_default().to_owned(),
            content: content.to_owned(),
            finish_reason: finish_reason.to_owned(),
            usage: completion.usage.map(UsageBody::from),
            cost_usd: outcome.cost_usd,
            latency_ms: millis(outcome.latency),
            trace_id: telemetry::current_trace_id(),
        })
        .into_response()
    });
    Ok(with_call_record(record, outcome))
}

/// `/api/chat` with `stream: true`: our own small SSE dialect over the shared stream core.
async fn stream_chat(state: AppState, request: UpstreamRequest) -> Response {
    // Read now: the stream is polled outside the request's task-local scope.
    let trace_id = telemetry::current_trace_id();
    let (opened, record) = state.chat.stream(request).await;
    // The provider whose stream this is (fallback happens before it opens).
    let provider = record.as_ref().map(|r| r.provider.clone());
    let outcome = opened.map(|events| {
        let frames = events.filter_map(move |event| {
            let frame = match event {
                StreamEvent::Event { delta: None, .. } => None,
                StreamEvent::Event {
                    delta: Some(text), ..
                } => Some(Bytes::from(format!("data: {}\n\n", json!({"delta": text})))),
                StreamEvent::End(summary) => Some(Bytes::from(format!(
                    "event: done\ndata: {}\n\n",
                    json!({
                        "id": summary.id,
                        "model": summary.model,
                        "provider": provider.as_deref(),
                        "finish_reason": summary.finish_reason,
                        "usage": summary.usage.map(UsageBody::from),
                        "cost_usd": summary.cost_usd,
                        "latency_ms": millis(summary.latency),
                        "trace_id": trace_id,
                    })
                ))),
                StreamEvent::Failed { error, .. } => {
                    Some(ApiError::from(error).sse_event(SseDialect::Chat {
                        trace_id: trace_id.as_deref(),
                    }))
                }
            };
            std::future::ready(frame)
        });
        sse_response(frames)
    });
    with_call_record(record, outcome)
}

/// JSON Schema counts `100.0` as an integer; accept it as 100, and reject fractions.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let value = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    match value.and_then(|v| u32::try_from(v).ok()) {
        Some(v) => Ok(Some(v)),
        None => Err(D::Error::custom(format!(
            "invalid value: {n}, expected a whole number between 1 and {MAX_TOKENS_LIMIT}"
        ))),
    }
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
