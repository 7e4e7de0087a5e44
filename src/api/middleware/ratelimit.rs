//! Optional per-client rate limit (`RATE_LIMIT_PER_CLIENT` requests per second, with
//! `RATE_LIMIT_BURST`): a token bucket per client, keyed by the gateway key it presents, else
//! by its IP address. Over the limit: 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// Buckets kept before idle ones are swept, so a flood of distinct clients cannot grow memory.
const MAX_CLIENTS: usize = 100_000;

/// The per-client limiter; `None` inside when the limit is off.
#[derive(Debug, Clone, Default)]
pub struct ClientRateLimit(Option<Arc<Limiter>>);

#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl ClientRateLimit {
    /// Whether a limit is configured.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// `rate` requests per second per client (0: off); `burst` defaults to max(rate, 1).
    pub fn new(rate: f64, burst: f64) -> Self {
        if rate <= 0.0 {
            return Self(None);
        }
        let burst = if burst > 0.0 { burst } else { rate.max(1.0) };
        Self(Some(Arc::new(Limiter {
            rate,
            burst,
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        })))
    }
}

impl Limiter {
    /// Takes a token for the client; `Err(seconds)` to wait when there is none.
    fn take(&self, client: u64, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned lock must not take the gateway down: fail open
        };
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            // Full buckets are indistinguishable from absent ones: forget them.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * self.rate < self.burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    fn key(&self, request: &Request) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (token, request.extensions().get::<ConnectInfo<SocketAddr>>()) {
            (Some(token), _) => ("key", token).hash(&mut hasher),
            (None, Some(ConnectInfo(addr))) => ("ip", addr.ip()).hash(&mut hasher),
            (None, None) => "unknown".hash(&mut hasher),
        }
        hasher.finish()
    }
}

/// Middleware: 429 with Retry-After when the client is over its rate.
pub async fn limit_clients(
    State(limit): State<ClientRateLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = &limit.0 else {
        return next.run(request).await;
    };
    match limiter.take(limiter.key(&request), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => ApiError::ClientRateLimited { retry_after }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let limit = ClientRateLimit::new(2.0, 3.0);
        let limiter = limit.0.unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(1, start).is_ok());
        }
        assert_eq!(limiter.take(1, start), Err(1));
        assert!(limiter.take(2, start).is_ok(), "clients are independent");
        assert!(limiter.take(1, start + Duration::from_millis(500)).is_ok());
        assert!(limiter.take(1, start + Duration::from_millis(500)).is_err());
    }
}
