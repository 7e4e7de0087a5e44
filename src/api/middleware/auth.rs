//! Optional gateway authentication: with `GATEWAY_API_KEYS` set, LLM endpoints require one of
//! those keys as a Bearer token. The gateway always calls the upstream with its own key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::config::Secret;

/// The accepted client keys; empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct GatewayKeys(pub Arc<[Secret]>);

/// Set on a request that presented an accepted key: the key's position in `GATEWAY_API_KEYS`,
/// the identity the per-client rate limit counts against.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedKey(pub usize);

/// The token of an `Authorization: Bearer <token>` header, trimmed; the scheme is matched
/// case-insensitively (RFC 9110).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim_start();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The key a client presents: `Authorization: Bearer <key>`, else `x-api-key: <key>` (how the
/// Anthropic SDKs and Claude Code send it).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        headers
            .get("x-api-key")?
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|key| !key.is_empty())
    })
}

/// Middleware: 401 in OpenAI's shape unless the presented key is an accepted key. Installed
/// only when keys are configured (`api::router`); with none it would refuse everything.
pub async fn require_gateway_key(
    State(keys): State<GatewayKeys>,
    mut request: Request,
    next: Next,
) -> Response {
    let accepted = presented_key(request.headers()).and_then(|token| {
        // Compare against every key without stopping early: timing says nothing.
        keys.0.iter().enumerate().fold(None, |found, (index, key)| {
            let same = constant_time_eq(token.as_bytes(), key.expose().as_bytes());
            found.or(same.then_some(index))
        })
    });
    if let Some(index) = accepted {
        request.extensions_mut().insert(AuthenticatedKey(index));
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
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_bearer_token_is_read_trimmed_whatever_the_scheme_case() {
        let token = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(token("Bearer k1").as_deref(), Some("k1"));
        assert_eq!(token("bearer   k1  ").as_deref(), Some("k1"));
        assert_eq!(token("Basic k1"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        let mut anthropic = HeaderMap::new();
        anthropic.insert("x-api-key", " sk-gw ".parse().unwrap());
        assert_eq!(presented_key(&anthropic), Some("sk-gw"));
        anthropic.insert("authorization", "Bearer first".parse().unwrap());
        assert_eq!(
            presented_key(&anthropic),
            Some("first"),
            "the bearer token wins"
        );
    }

    #[test]
    fn compares_whole_keys() {
        assert!(constant_time_eq(b"key-1", b"key-1"));
        assert!(!constant_time_eq(b"key-1", b"key-2"));
        assert!(!constant_time_eq(b"key-1", b"key-10"));
    }
}
