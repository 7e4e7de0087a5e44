//! `GET /healthz` (the process is alive) and `GET /readyz` (a provider is configured).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// The provider answering model names no route claims (or the first provider), readiness
    /// only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Every configured provider (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    /// Every route (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        provider: None,
        providers: None,
        routes: None,
    })
}

/// Readiness: the provider is configured and the service can take requests.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Health, example = json!({"status": "ready", "provider": "groq", "providers": ["groq"], "routes": []}))))]
pub async fn readyz(State(state): State<AppState>) -> Json<Health> {
    let routes = state.chat.router().load();
    let providers = routes.providers();
    Json(Health {
        status: "ready",
        provider: routes
            .default_provider()
            .or(providers.first())
            .map(|p| p.name().to_string()),
        providers: Some(providers.iter().map(|p| p.name().to_string()).collect()),
        routes: Some(
            routes
                .route_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
    })
}
