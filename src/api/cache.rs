//! What a request asks of the response cache, from its headers, and whose answers it may
//! receive: `Cache-Control: no-cache` (do not look up, store the fresh answer), `no-store`
//! (neither), `x-llmobs-cache-ttl-seconds` (this answer's TTL, in seconds, at most
//! `CACHE_MAX_TTL_SECONDS`). The answer's `x-llmobs-cache` header is written by
//! `middleware::trace` from the call's record.

use axum::http::{HeaderMap, StatusCode, header};

use super::ApiError;
use super::middleware::{AuthenticatedKey, presented_key};
use crate::llm::{CacheRequest, ResponseCache, UpstreamRequest, tenant_digest};

/// The request header that sets an answer's TTL; its unit is in its name.
pub const TTL_HEADER: &str = "x-llmobs-cache-ttl-seconds";

/// Sets what `request` asks of the cache, when the cache is on and serves its API. The tenant
/// is the presented gateway key when keys are configured (`authenticated`): one client never
/// receives another's answer. Err: a malformed cache header (400, naming it).
pub(super) fn ask_cache(
    cache: Option<&ResponseCache>,
    headers: &HeaderMap,
    authenticated: Option<&AuthenticatedKey>,
    request: &mut UpstreamRequest,
) -> Result<(), ApiError> {
    let Some(cache) = cache.filter(|_| request.is_cacheable()) else {
        return Ok(());
    };
    let (mut lookup, mut store) = (true, true);
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            return Err(bad_header("Cache-Control: not visible ASCII"));
        };
        for directive in value.split(',') {
            let name = directive.split('=').next().unwrap_or_default().trim();
            if name.eq_ignore_ascii_case("no-store") {
                (lookup, store) = (false, false);
            } else if name.eq_ignore_ascii_case("no-cache") {
                lookup = false;
            }
            // Other directives (max-age, …) say nothing the cache acts on.
        }
    }
    let ttl = match headers.get(TTL_HEADER) {
        None => None,
        Some(value) => {
            let max = cache.max_ttl().as_secs();
            let seconds = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|s| (1..=max).contains(s))
                .ok_or_else(|| {
                    bad_header(&format!(
                        "{TTL_HEADER}: must be a whole number of seconds from 1 to {max} (CACHE_MAX_TTL_SECONDS)"
                    ))
                })?;
            Some(std::time::Duration::from_secs(seconds))
        }
    };
    let tenant = authenticated
        .and_then(|_| presented_key(headers))
        .map(tenant_digest);
    request.cache = Some(CacheRequest {
        body: request.body_digest(),
        tenant,
        lookup,
        store,
        ttl,
    });
    Ok(())
}

fn bad_header(message: &str) -> ApiError {
    ApiError::InvalidRequest {
        status: StatusCode::BAD_REQUEST,
        message: message.to_owned(),
    }
}
