//! Optional gateway authentication: with `GATEWAY_API_KEYS` set, LLM endpoints require one of
//! those keys as a Bearer token. The gateway always calls the upstream with its own key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::config::Secret;

/// The accepted client keys; empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct GatewayKeys(pub Arc<[Secret]>);

/// Middleware: 401 in OpenAI's shape unless the bearer token is an accepted key. Installed
/// only when keys are configured (`api::router`); with none it would refuse everything.
pub async fn require_gateway_key(
    State(keys): State<GatewayKeys>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let accepted = presented.is_some_and(|token| {
        // Compare against every key without stopping early: timing says nothing.
        keys.0.iter().fold(false, |found, key| {
            found | constant_time_eq(token.as_bytes(), key.expose().as_bytes())
        })
    });
    if accepted {
        next.run(request).await
    } else {
        ApiError::InvalidRequest {
            status: StatusCode::UNAUTHORIZED,
            message: "invalid or missing gateway API key: send `Authorization: Bearer <key>`"
                .into(),
        }
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_keys() {
        assert!(constant_time_eq(b"key-1", b"key-1"));
        assert!(!constant_time_eq(b"key-1", b"key-2"));
        assert!(!constant_time_eq(b"key-1", b"key-10"));
    }
}
