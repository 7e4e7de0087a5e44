//! Optional per-client rate limit (`RATE_LIMIT_PER_CLIENT` requests per second, bursts of
//! `RATE_LIMIT_BURST`). Over it: 429 with `Retry-After`.
//!
//! A client is an identity the gateway has verified, never a claim it cannot check: the gateway
//! key it authenticated with (when `GATEWAY_API_KEYS` is set), else its network address. The
//! address is the TCP peer's, or, when the peer is one of `TRUSTED_PROXIES`, the client that
//! peer reports in `Forwarded`/`X-Forwarded-For` (see [`client_address`]); IPv6 clients are one
//! client per /64, the block a single host usually holds. An invented bearer token or a spoofed
//! `X-Forwarded-For` from anyone else buys no new bucket.
//!
//! The buckets are governor's keyed GCRA limiter over a sharded map: no global lock per
//! request. A background task forgets clients whose bucket is full again every
//! [`RETAIN_INTERVAL`]; if [`MAX_CLIENTS`] are still tracked, every client known by its address
//! shares one overflow bucket until the flood ebbs (clients with a gateway key keep their own),
//! so memory and CPU stay bounded under a flood of distinct addresses (BENCHMARKS.md has the
//! memory figure for 1,000,000 clients).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use super::auth::AuthenticatedKey;
use crate::api::ApiError;

/// How often clients with a full bucket again are forgotten.
pub const RETAIN_INTERVAL: Duration = Duration::from_secs(5);
/// Most clients tracked one by one; beyond it new clients share the overflow bucket.
pub const MAX_CLIENTS: usize = 1_000_000;

/// Who a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIdentity {
    /// The gateway key it authenticated with (`VirtualKey::id`, stable across reloads).
    Key(u64),
    /// Its network address (an IPv6 address reduced to its /64).
    Address(IpAddr),
    /// Any client known by its address while [`MAX_CLIENTS`] are tracked.
    Overflow,
}

type Limiter = RateLimiter<ClientIdentity, DashMapStateStore<ClientIdentity>, DefaultClock>;

/// The per-client limiter and the proxies trusted to name the client; `None` inside when the
/// limit is off.
#[derive(Debug, Clone, Default)]
pub struct ClientRateLimit(Option<Arc<Buckets>>);

/// The buckets, and whether the store is full.
#[derive(Debug)]
pub struct Buckets {
    limiter: Limiter,
    clock: DefaultClock,
    trusted_proxies: Arc<[IpNet]>,
    overflowing: AtomicBool,
}

impl ClientRateLimit {
    /// `rate` requests per second per client (0: off) with bursts of `burst` (0: the rate,
    /// at least 1; rounded to a whole number of requests). Starts the task that forgets idle
    /// clients, which ends when the limiter is dropped; call inside a Tokio runtime.
    pub fn new(rate: f64, burst: f64, trusted_proxies: &[IpNet]) -> Self {
        if rate <= 0.0 || !rate.is_finite() {
            return Self(None);
        }
        let burst = if burst > 0.0 { burst } else { rate.max(1.0) };
        let burst = NonZeroU32::new(burst.round().clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let Some(quota) = Quota::with_period(Duration::from_secs_f64(1.0 / rate)) else {
            return Self(None);
        };
        let buckets = Arc::new(Buckets {
            limiter: RateLimiter::dashmap(quota.allow_burst(burst)),
            clock: DefaultClock::default(),
            trusted_proxies: trusted_proxies.into(),
            overflowing: AtomicBool::new(false),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(forget_idle_clients(Arc::downgrade(&buckets)));
        }
        Self(Some(buckets))
    }

    /// Whether a limit is configured.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The buckets, when the limit is on.
    pub fn buckets(&self) -> Option<&Buckets> {
        self.0.as_deref()
    }
}

impl Buckets {
    /// Takes one request from the client's bucket; `Err(seconds)` to wait when it is empty.
    pub fn check(&self, client: ClientIdentity) -> Result<(), u64> {
        let client = match client {
            ClientIdentity::Address(_) if self.overflowing.load(Ordering::Relaxed) => {
                ClientIdentity::Overflow
            }
            client => client,
        };
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets clients whose bucket is full again and notes whether the store is full.
    pub fn forget_idle(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let tracked = self.limiter.len();
        self.overflowing
            .store(tracked >= MAX_CLIENTS, Ordering::Relaxed);
        tracked
    }

    /// Who sent `request`: its authenticated gateway key, else its address.
    fn identity(&self, request: &Request) -> ClientIdentity {
        if let Some(AuthenticatedKey(key)) = request.extensions().get::<AuthenticatedKey>() {
            return ClientIdentity::Key(key.id);
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        match peer {
            Some(peer) => ClientIdentity::Address(per_host(client_address(
                peer,
                request.headers(),
                &self.trusted_proxies,
            ))),
            None => ClientIdentity::Overflow,
        }
    }
}

async fn forget_idle_clients(buckets: std::sync::Weak<Buckets>) {
    let mut every = tokio::time::interval(RETAIN_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        buckets.forget_idle();
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy. Then the hops the
/// proxies appended (`Forwarded: for=…`, else `X-Forwarded-For`) are read from the right,
/// skipping trusted proxies; the first other address is the client. A malformed hop stops the
/// walk at the last address a trusted proxy vouched for, so no header an untrusted party wrote
/// is ever believed.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key("forwarded") {
        headers
            .get_all("forwarded")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(forwarded_for)
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|hop| parse_ip(hop.trim()))
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(hop) = hop else { break };
        client = hop.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// The `for=` address of one `Forwarded` element (RFC 7239): `for=192.0.2.1`,
/// `for="[2001:db8::1]:4711"`; `None` for an obfuscated or missing one.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_ip(value.trim().trim_matches('"')))?
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// One key per host: an IPv6 address is reduced to its /64.
fn per_host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Middleware: 429 with Retry-After when the client is over its rate.
pub async fn limit_clients(
    State(limit): State<ClientRateLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Some(buckets) = limit.buckets() else {
        return next.run(request).await;
    };
    match buckets.check(buckets.identity(&request)) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => ApiError::ClientRateLimited { retry_after }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[tokio::test]
    async fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let limit = ClientRateLimit::new(2.0, 3.0, &[]);
        let buckets = limit.buckets().unwrap();
        let client = ClientIdentity::Address([10, 0, 0, 1].into());
        for _ in 0..3 {
            assert!(buckets.check(client).is_ok());
        }
        assert_eq!(buckets.check(client), Err(1));
        let other = ClientIdentity::Address([10, 0, 0, 2].into());
        assert!(buckets.check(other).is_ok(), "clients are independent");
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert!(
            buckets.check(client).is_ok(),
            "one request back after 1/rate"
        );
        assert!(buckets.check(client).is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        let peer: IpAddr = [203, 0, 113, 9].into();
        assert_eq!(client_address(peer, &spoofed, &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(client_address(peer, &spoofed, &[]), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_inner_proxies_are_skipped() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let lb: IpAddr = [10, 0, 0, 5].into();
        // The client's own claim (6.6.6.6) is left of the address the proxy saw (198.51.100.7).
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(
            client_address(lb, &xff, &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:1::7]:4711\";proto=https, for=10.9.9.9",
        )]);
        assert_eq!(
            client_address(lb, &forwarded, &trusted),
            "2001:db8:1::7".parse::<IpAddr>().unwrap(),
            "Forwarded wins over X-Forwarded-For and carries ports and IPv6"
        );
        // Nothing to read, or garbage: the last address a trusted proxy vouched for.
        assert_eq!(client_address(lb, &HeaderMap::new(), &trusted), lb);
        let garbage = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip, 10.1.2.3")]);
        assert_eq!(
            client_address(lb, &garbage, &trusted),
            IpAddr::from([10, 1, 2, 3])
        );
        // An IPv4 peer seen as IPv4-mapped IPv6 is still trusted.
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(
            client_address(mapped, &xff, &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
    }

    #[test]
    fn ipv6_clients_are_one_client_per_64() {
        let a = per_host("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = per_host("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = per_host("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(per_host([1, 2, 3, 4].into()), IpAddr::from([1, 2, 3, 4]));
    }

    #[tokio::test]
    async fn idle_clients_are_forgotten_and_a_full_store_shares_one_bucket() {
        let limit = ClientRateLimit::new(1000.0, 1.0, &[]);
        let buckets = limit.buckets().unwrap();
        for i in 0..100u32 {
            assert!(
                buckets
                    .check(ClientIdentity::Address(i.to_be_bytes().into()))
                    .is_ok()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            buckets.forget_idle(),
            0,
            "every bucket refilled: all forgotten"
        );
        buckets.overflowing.store(true, Ordering::Relaxed);
        assert!(
            buckets
                .check(ClientIdentity::Address([9, 9, 9, 1].into()))
                .is_ok()
        );
        assert!(
            buckets
                .check(ClientIdentity::Address([9, 9, 9, 2].into()))
                .is_err(),
            "while overflowing, clients known by address share one bucket"
        );
        assert!(
            buckets.check(ClientIdentity::Key(0)).is_ok(),
            "a keyed client keeps its own"
        );
    }
}
