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
    /// The provider answering LLM calls (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        provider: None,
    })
}

/// Readiness: the provider is configured and the service can take requests.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Health, example = json!({"status": "ready", "provider": "groq"}))))]
pub async fn readyz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ready",
        provider: Some(state.chat.provider().kind().as_str()),
    })
}
