//! Who makes a call, and whether the key may: the one place every spending endpoint admits a
//! call (`admit`, from `openai::relay` and `chat::chat`), and the admin API over the keys
//! (`/admin/keys`, `/admin/spend`, behind `ADMIN_API_KEY`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::middleware::{AuthenticatedKey, bearer_token};
use super::{ApiError, AppState};
use crate::access::period::{self, Now, Period};
use crate::access::{AccessReport, Admission};
use crate::config::{PromptSettings, Secret, constant_time_eq};
use crate::llm::{Prompt, UpstreamRequest};

/// The header naming the end user (`user.id`) when the body does not.
pub const USER_HEADER: &str = "x-llmobs-user";
/// The header naming the conversation (`gen_ai.conversation.id`).
pub const CONVERSATION_HEADER: &str = "x-llmobs-conversation-id";
/// The header naming the prompt and its version: `name@version`.
pub const PROMPT_HEADER: &str = "x-llmobs-prompt";
/// The longest end-user or conversation id recorded; longer ones are cut.
const MAX_ID_CHARS: usize = 128;

/// Attributes `request` to its caller (key, team, end user, conversation) and, with a key,
/// admits it: the model allowed, the limits and budgets not reached. The admission is the
/// call's payer. Err: the refusal (403, 429, 503), before any upstream call.
pub(super) async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    key: Option<&AuthenticatedKey>,
    request: &mut UpstreamRequest,
) -> Result<Option<Arc<Admission>>, ApiError> {
    let access = &state.access;
    let prompt = prompt(headers, request, &state.prompts)?;
    let caller = &mut request.caller;
    caller.user = header_id(headers, USER_HEADER);
    caller.conversation = header_id(headers, CONVERSATION_HEADER);
    caller.prompt = prompt;
    if caller.user.is_none() {
        let user = request.end_user().map(clip);
        request.caller.user = user;
    }
    let Some(AuthenticatedKey(key)) = key else {
        return Ok(None);
    };
    let admission = access
        .admit(key, &request.summary.model)
        .await
        .map_err(ApiError::Refused)?;
    let caller = &mut request.caller;
    caller.key = Some(key.name.clone());
    caller.team = key.team.as_ref().map(|t| t.name.clone());
    caller.payer = Some(admission.clone());
    Ok(Some(admission))
}

/// The prompt the request names: `x-llmobs-prompt: name@version`, else OpenAI's
/// `metadata.prompt_name` and `metadata.prompt_version`. A malformed header is a 400 naming it.
fn prompt(
    headers: &HeaderMap,
    request: &UpstreamRequest,
    prompts: &PromptSettings,
) -> Result<Option<Prompt>, ApiError> {
    let named = match headers.get(PROMPT_HEADER) {
        Some(value) => {
            let parsed = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().rsplit_once('@'))
                .filter(|(name, version)| {
                    !name.is_empty()
                        && !version.is_empty()
                        && name.chars().count() <= MAX_ID_CHARS
                        && version.chars().count() <= MAX_ID_CHARS
                });
            let Some((name, version)) = parsed else {
                return Err(ApiError::InvalidRequest {
                    status: StatusCode::BAD_REQUEST,
                    message: format!(
                        "{PROMPT_HEADER}: expected name@version (each 1 to 128 characters)"
                    ),
                });
            };
            Some((name, version))
        }
        None => request.prompt_metadata().filter(|(n, v)| {
            n.chars().count() <= MAX_ID_CHARS && v.chars().count() <= MAX_ID_CHARS
        }),
    };
    Ok(named.map(|(name, version)| Prompt {
        labels: prompts.labels(name, version),
        name: name.to_owned(),
        version: version.to_owned(),
    }))
}

fn header_id(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| clip(value))
}

fn clip(id: &str) -> String {
    id.chars().take(MAX_ID_CHARS).collect()
}

// ------------------------------------------------------------------ the admin API

/// Middleware of the admin routes: 401 unless `Authorization: Bearer <ADMIN_API_KEY>`.
pub(super) async fn require_admin_key(
    State(admin_key): State<Secret>,
    request: Request,
    next: Next,
) -> Response {
    let presented = bearer_token(request.headers()).unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), admin_key.expose().as_bytes()) {
        next.run(request).await
    } else {
        ApiError::InvalidRequest {
            status: StatusCode::UNAUTHORIZED,
            message: "invalid or missing admin key: send `Authorization: Bearer <ADMIN_API_KEY>`"
                .into(),
        }
        .into_response()
    }
}

/// Every key and team: limits, budgets, spend this UTC day and month (never a secret or hash).
#[utoipa::path(
    get,
    path = "/admin/keys",
    tag = "admin",
    responses(
        (status = 200, description = "The keys and teams with their limits and this period's spend", body = AccessReport),
        (status = 401, description = "Missing or wrong ADMIN_API_KEY", body = super::ErrorBody),
        (status = 503, description = "The ledger (Redis) did not answer (`ledger_unavailable`)", body = super::ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn keys(State(state): State<AppState>) -> Result<Json<AccessReport>, ApiError> {
    Ok(Json(
        state.access.report().await.map_err(ApiError::Refused)?,
    ))
}

/// `GET /admin/spend`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendQuery {
    /// A key's name; with `team` too, a key of that team.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    key: Option<String>,
    /// A team's name. Neither `key` nor `team`: every key's spend together.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    team: Option<String>,
    /// `day` (default: today, UTC), `month`, a day `2026-12-03` or a month `2026-12`.
    #[param(pattern = r"^(day|month|[0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|1[0-9]|2[0-8]))?)$")]
    period: Option<String>,
}

/// What a key or team spent in one period.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SpendReport {
    /// The key asked about.
    pub key: Option<String>,
    /// The team asked about.
    pub team: Option<String>,
    /// The period: `2026-12-03` or `2026-12`.
    pub period: String,
    /// US dollars spent in it.
    pub spend_usd: f64,
}

/// A key's, a team's, or every key's spend in one UTC day or month.
#[utoipa::path(
    get,
    path = "/admin/spend",
    tag = "admin",
    params(SpendQuery),
    responses(
        (status = 200, description = "The spend", body = SpendReport),
        (status = 401, description = "Missing or wrong ADMIN_API_KEY", body = super::ErrorBody),
        (status = 404, description = "No such key (in that team) or team", body = super::ErrorBody),
        (status = 422, description = "A malformed period or query", body = super::ErrorBody),
        (status = 503, description = "The ledger (Redis) did not answer (`ledger_unavailable`)", body = super::ErrorBody),
    ),
    security(("admin_key" = []))
)]
pub async fn spend(
    State(state): State<AppState>,
    query: Result<Query<SpendQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SpendReport>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let now = Now::current();
    let period = match query.period.as_deref() {
        None | Some("day") => (Period::Day, now.day),
        Some("month") => (Period::Month, now.month),
        Some(text) => period::parse(text).ok_or_else(|| {
            ApiError::validation(
                "period: expected day, month, a day (2026-12-03) or a month (2026-12)",
            )
        })?,
    };
    let spent = state
        .access
        .spend_of(query.key.as_deref(), query.team.as_deref(), period)
        .await
        .map_err(ApiError::Refused)?;
    let Some(spend_usd) = spent else {
        return Err(ApiError::InvalidRequest {
            status: StatusCode::NOT_FOUND,
            message: "no such key (in that team) or team".into(),
        });
    };
    Ok(Json(SpendReport {
        key: query.key,
        team: query.team,
        period: period::label(period.0, period.1),
        spend_usd,
    }))
}
