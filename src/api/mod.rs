//! The HTTP layer: routes, handlers, middleware, the HTTP error type and the OpenAPI document.
//!
//! Handlers parse and validate, call the LLM layer's `ChatService`, and shape its answer; they
//! return `Result<Response, ApiError>`. Middleware (`middleware/`) holds what wraps every
//! request: the server span and request metrics, gateway keys, per-client rate limits.

mod access;
pub mod anthropic;
mod cache;
pub mod chat;
mod error;
pub mod feedback;
pub mod health;
pub mod middleware;
pub mod openai;
mod schemas;
mod sse;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ErrorBody, ErrorDetail, Rejection, SseDialect};
pub use middleware::ClientRateLimit;
pub use sse::{ServerSentEvent, sse_response};
pub use state::AppState;

use crate::config::{AuthSettings, LimitSettings, ServerSettings};

/// The OpenAPI document of every endpoint.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "LLM observability gateway",
        description = "Calls an LLM provider (Groq, any OpenAI-compatible API, or the built-in simulated provider) and returns the answer with token usage, cost, latency and the trace id. Every call is traced (OpenTelemetry GenAI conventions) and counted (Prometheus, on the metrics port).",
    ),
    paths(chat::chat, openai::chat_completions, openai::responses, openai::embeddings, openai::models, anthropic::messages, anthropic::count_tokens, health::healthz, health::readyz, access::keys, access::spend, feedback::feedback),
    components(schemas(chat::ChatRequest, chat::ChatResponse, chat::UsageBody, openai::ChatCompletionRequest, openai::ChatMessage, schemas::ResponsesRequest, schemas::EmbeddingsRequest, schemas::EncodingFormat, schemas::MessagesRequest, schemas::CountTokensRequest, schemas::AnthropicMessage, ServerSentEvent, ErrorBody, ErrorDetail, health::Health, crate::access::AccessReport, crate::access::KeyReport, crate::access::TeamReport, crate::access::PeriodSpend, access::SpendReport, feedback::FeedbackRequest, feedback::FeedbackRecorded)),
    modifiers(&AdminSecurity),
    tags(
        (name = "chat", description = "LLM calls, simple form"),
        (name = "openai", description = "OpenAI-compatible API: point any OpenAI or Groq SDK here (also served under /openai/v1)"),
        (name = "anthropic", description = "Anthropic's Messages API: point an Anthropic SDK or Claude Code here (ANTHROPIC_BASE_URL)"),
        (name = "health", description = "Liveness and readiness"),
        (name = "feedback", description = "Scores and labels for earlier calls, linked to their traces"),
        (name = "admin", description = "Virtual keys and their spend (with ADMIN_API_KEY set; `Authorization: Bearer <ADMIN_API_KEY>`)")
    )
)]
pub struct ApiDoc;

/// The admin API's bearer scheme.
struct AdminSecurity;

impl utoipa::Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router with its service stack.
///
/// Layers, outermost first:
/// 1. `trace_requests`: the server span (parent from `traceparent`), `x-trace-id`, the HTTP
///    duration metric, the gateway-overhead metric and the request log line. Outermost so that
///    it sees every response, including the ones the layers below produce.
/// 2. CORS, only when `CORS_ALLOWED_ORIGINS` is set (answers preflights itself).
/// 3. `CatchPanicLayer`: a panic in a handler becomes a 500 JSON error, never a dropped
///    connection.
/// 4. `DefaultBodyLimit`: bodies over `MAX_BODY_BYTES` get 413 from the JSON extractor.
///
/// The LLM routes alone also pass `require_gateway_key` and then `limit_clients` when those are
/// configured (route layers, so unknown paths still get 404 and health checks and docs stay
/// open).
pub fn router(
    state: AppState,
    server: &ServerSettings,
    limits: &LimitSettings,
    auth: &AuthSettings,
    keys_reloadable: bool,
) -> Router {
    let metrics = state.metrics.clone();
    let client_limit = ClientRateLimit::new(
        limits.client_rate_limit,
        limits.client_rate_burst,
        &server.trusted_proxies,
    );
    let access = state.access.clone();
    let mut llm_routes = Router::new()
        .route("/api/chat", post(chat::chat))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route(
            "/openai/v1/chat/completions",
            post(openai::chat_completions),
        )
        .route("/v1/responses", post(openai::responses))
        .route("/openai/v1/responses", post(openai::responses))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/openai/v1/embeddings", post(openai::embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/feedback", post(feedback::feedback))
        .route("/v1/models", get(openai::models))
        .route("/openai/v1/models", get(openai::models));
    // Installed only when configured: a middleware layer costs every request a boxed service
    // clone and a future even when it lets everything through. Route layers run
    // outermost-last: the key is checked before the rate is counted.
    if client_limit.is_on() {
        llm_routes = llm_routes.route_layer(axum::middleware::from_fn_with_state(
            client_limit,
            middleware::limit_clients,
        ));
    }
    // With a configuration file, a reload may add keys: the check is installed (and lets
    // everything through while there are none).
    if access.requires_key() || keys_reloadable {
        llm_routes = llm_routes.route_layer(axum::middleware::from_fn_with_state(
            access.clone(),
            middleware::require_gateway_key,
        ));
    }
    let mut router = Router::new().merge(llm_routes);
    if let Some(admin_key) = &auth.admin_api_key {
        router = router.merge(
            Router::new()
                .route("/admin/keys", get(access::keys))
                .route("/admin/spend", get(access::spend))
                .route_layer(axum::middleware::from_fn_with_state(
                    admin_key.clone(),
                    access::require_admin_key,
                )),
        );
    }
    let router = router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(cors(&server.cors_allowed_origins));
    router.layer(axum::middleware::from_fn_with_state(
        middleware::TraceState::new(metrics, &server.trusted_proxies),
        middleware::trace_requests,
    ))
}

/// CORS is off (no headers) unless `CORS_ALLOWED_ORIGINS` lists origins, or `*`.
fn cors(
    origins: &[String],
) -> tower::util::Either<tower_http::cors::CorsLayer, tower::layer::util::Identity> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([
                header::HeaderName::from_static("x-trace-id"),
                header::RETRY_AFTER,
            ]),
    )
}

async fn not_found() -> Response {
    ApiError::InvalidRequest {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint; see /docs".into(),
    }
    .into_response()
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message may hold request data: log that it happened, not what it said.
    tracing::error!("a handler panicked; answering 500");
    ApiError::Internal.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json_not_a_dropped_connection() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let app = Router::new().route("/boom", get(boom)).layer(
            tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        );

        let response = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "internal");
        assert_eq!(body["error"]["message"], "internal error");
    }
}
