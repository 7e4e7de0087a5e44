//! Optional gateway authentication: with keys configured (`GATEWAY_API_KEYS`, the file's
//! `[keys.NAME]`), LLM endpoints require one of them (`access::Access::authenticate`). The
//! gateway always calls the upstream with its own key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::{Access, VirtualKey};
use crate::api::ApiError;

/// Set on a request that presented an accepted key: the key, whose id the per-client rate
/// limit counts against and whose limits and budgets the LLM handlers admit calls by.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey(pub Arc<VirtualKey>);

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

/// Middleware: 401 in OpenAI's shape unless the presented key is a configured key that has
/// not expired. Installed when keys are configured or a configuration file (whose reload may
/// add them) is; while no key is configured it lets everything through.
pub async fn require_gateway_key(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !access.requires_key() {
        return next.run(request).await;
    }
    match access.authenticate(presented_key(request.headers())) {
        Ok(key) => {
            request.extensions_mut().insert(AuthenticatedKey(key));
            next.run(request).await
        }
        Err(refusal) => ApiError::Refused(refusal).into_response(),
    }
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
}
