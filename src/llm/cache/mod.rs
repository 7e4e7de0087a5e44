//! The response cache: an exact answer for an exact request, never another's.
//!
//! - `key`: what an entry is keyed by (SHA-256 over the request's canonical form, its tenant
//!   and where it goes; README lists the inputs).
//! - `entry`: what an entry holds and its encoding; `memory_store` (quick_cache, in this process,
//!   bounded by entries and bytes) and `redis_store` (Redis, shared by replicas) keep them.
//! - `replay`: a stream assembled into the stored whole answer, and a stored answer replayed as
//!   a stream.
//!
//! The policy lives here ([`ResponseCache`]): which answers are stored, for how long, and what
//! a backend's failure does (the call goes upstream as if uncached; counted, logged at most
//! every 30 s). The chat service (`service.rs`) decides when to ask and records the result.

mod entry;
mod key;
mod memory_store;
mod redis_store;
mod replay;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use entry::{CacheError, CacheKey, CachedAnswer};
pub(super) use key::cache_key;
pub use key::{BodyDigest, body_digest, tenant_digest};
use memory_store::MemoryStore;
use redis_store::RedisStore;
pub(super) use replay::{ChatAssembler, replay_chat};

use super::Completion;
use crate::config::{CacheBackend, CacheSettings};
use crate::redis_client::RedisHandle;
use crate::telemetry::{CacheSeries, Metrics};

/// How long a write to Redis may take before it is given up (it never delays an answer).
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// A backend's failures are logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// What one request asks of the cache, from its headers (read by the API layer).
#[derive(Debug, Clone)]
pub struct CacheRequest {
    /// The body's part of the key.
    pub body: BodyDigest,
    /// The tenant's part of the key (`None`: gateway keys are not configured).
    pub tenant: Option<[u8; 32]>,
    /// Look the answer up (not `Cache-Control: no-cache` or `no-store`).
    pub lookup: bool,
    /// Store a fresh answer (not `Cache-Control: no-store`).
    pub store: bool,
    /// `x-llmobs-cache-ttl-seconds`, already checked against `CACHE_MAX_TTL_SECONDS`.
    pub ttl: Option<Duration>,
}

/// What the cache did for a call: the `x-llmobs-cache` header, the span's
/// `llmobs.cache.result` and the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache: no upstream call.
    Hit,
    /// Looked up and not found (or the backend failed): asked upstream.
    Miss,
    /// Not looked up, as the request asked (`Cache-Control: no-cache` or `no-store`).
    Bypass,
}

impl CacheStatus {
    /// The header's and the span's value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// The `result` label of `llm_cache_requests_total`: a [`CacheStatus`], or `error` (a failed
/// backend or an unreadable entry, answered as a miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CacheResult {
    Hit,
    Miss,
    Bypass,
    Error,
}

/// What a lookup found.
pub(super) enum Lookup {
    Hit(CachedAnswer),
    Miss,
    /// The backend failed (down, slow, a corrupt entry): as a miss, but counted as `error`.
    Failed,
}

enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    /// The `backend` label.
    fn name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

/// The cache and its policy; present only when `CACHE_ENABLED`.
pub struct ResponseCache {
    store: Store,
    ttl: Duration,
    max_ttl: Duration,
    max_entry_bytes: usize,
    store_truncated: bool,
    metrics: Arc<Metrics>,
    /// This backend's counters and lookup histogram, resolved once.
    series: CacheSeries,
    /// When a failure was last logged (ms since the Unix epoch).
    last_error_log: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("backend", &self.backend())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// The configured cache, or `None` when it is off. The `redis` backend needs the shared
    /// connection (`REDIS_URL`, checked by the settings).
    pub fn new(
        settings: &CacheSettings,
        redis: Option<&RedisHandle>,
        metrics: Arc<Metrics>,
    ) -> Option<Arc<Self>> {
        if !settings.enabled {
            return None;
        }
        let store = match (settings.backend, redis) {
            (CacheBackend::Redis, Some(redis)) => Store::Redis(RedisStore::new(
                redis.clone(),
                settings.lookup_timeout,
                WRITE_TIMEOUT,
            )),
            _ => Store::Memory(MemoryStore::new(settings.max_entries, settings.max_bytes)),
        };
        let backend = store.name();
        let series = metrics.cache_series(backend);
        metrics.init_cache(backend);
        Some(Arc::new(Self {
            series,
            store,
            ttl: settings.ttl,
            max_ttl: settings.max_ttl,
            max_entry_bytes: settings.max_entry_bytes,
            store_truncated: settings.store_truncated,
            metrics,
            last_error_log: AtomicU64::new(0),
        }))
    }

    /// The `backend` label: `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.store.name()
    }

    /// The longest TTL a request may ask for.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Looks `key` up, timing it (`llm_cache_lookup_duration_seconds`); a failure is logged
    /// (at most every 30 s) and reported as [`Lookup::Failed`], never as an error of the call.
    pub(super) async fn lookup(&self, key: &CacheKey) -> Lookup {
        let started = Instant::now();
        let found = match &self.store {
            Store::Memory(store) => {
                let found = store.get(key);
                let (entries, bytes) = store.usage();
                self.metrics.record_cache_usage(entries, bytes);
                Ok(found)
            }
            // While Redis rests after a failure, this is `Unavailable` at once.
            Store::Redis(store) => store.get(key).await,
        };
        self.series
            .lookup_duration
            .observe(started.elapsed().as_secs_f64());
        match found {
            Ok(Some(answer)) => Lookup::Hit(answer),
            Ok(None) => Lookup::Miss,
            Err(error) => {
                self.rest();
                self.log_failure("lookup", &error);
                Lookup::Failed
            }
        }
    }

    /// A failed Redis rests (`RedisHandle::failed`): lookups fail at once and writes are
    /// skipped until it answers a `PING` again.
    fn rest(&self) {
        if let Store::Redis(store) = &self.store {
            store.failed();
        }
    }

    /// Counts one cacheable call's `llm_cache_requests_total{result}`.
    pub(super) fn count(&self, result: CacheResult) {
        match result {
            CacheResult::Hit => &self.series.hit,
            CacheResult::Miss => &self.series.miss,
            CacheResult::Bypass => &self.series.bypass,
            CacheResult::Error => &self.series.error,
        }
        .inc();
    }

    /// Whether an answer may be stored: small enough, and finished (every choice stopped or
    /// called tools; cut short by `max_tokens` only with `CACHE_STORE_TRUNCATED`). Embeddings
    /// have no choices and are always finished.
    pub(super) fn admits(&self, completion: &Completion, bytes: usize) -> bool {
        bytes <= self.max_entry_bytes
            && completion
                .choices
                .iter()
                .all(|c| match c.finish_reason.as_str() {
                    "stop" | "tool_calls" | "function_call" => true,
                    "length" => self.store_truncated,
                    _ => false,
                })
    }

    /// Stores an answer for `ttl` (the request's, else `CACHE_TTL_SECONDS`). Never delays the
    /// caller: Redis is written from a task of its own, and its failure is only counted.
    pub(super) fn store(
        self: &Arc<Self>,
        key: CacheKey,
        answer: CachedAnswer,
        ttl: Option<Duration>,
    ) {
        let ttl = ttl.unwrap_or(self.ttl);
        match &self.store {
            Store::Memory(store) => {
                store.put(key, answer, ttl);
                let (entries, bytes) = store.usage();
                self.metrics.record_cache_usage(entries, bytes);
            }
            // A resting backend is not written: the write would wait out its deadline.
            Store::Redis(store) if store.resting() => {
                self.series.write_errors.inc();
            }
            Store::Redis(_) => {
                let cache = Arc::clone(self);
                tokio::spawn(async move {
                    let Store::Redis(store) = &cache.store else {
                        return;
                    };
                    if let Err(error) = store.put(&key, &answer, ttl).await {
                        cache.rest();
                        cache.series.write_errors.inc();
                        cache.log_failure("write", &error);
                    }
                });
            }
        }
    }

    /// A backend failure, logged at most every [`ERROR_LOG_INTERVAL`] (the metrics count each).
    fn log_failure(&self, what: &'static str, error: &CacheError) {
        let now = now_millis();
        let last = self.last_error_log.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= ERROR_LOG_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                backend = self.backend(),
                operation = what,
                error = %error,
                error.kind = error.kind(),
                "response cache unavailable: calls go upstream uncached (logged at most every 30 s; see llm_cache_requests_total{{result=\"error\"}})"
            );
        }
    }
}

/// Seconds since the Unix epoch, for [`CachedAnswer::stored_at`].
pub(super) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The cache's part in one cacheable call: its key, what was found, and whether the fresh
/// answer may be stored.
pub(super) struct Ticket {
    pub(super) cache: Arc<ResponseCache>,
    pub(super) key: CacheKey,
    pub(super) status: CacheStatus,
    store: bool,
    ttl: Option<Duration>,
}

impl Ticket {
    /// A ticket for `key`; `status` is decided by the lookup.
    pub(super) fn new(cache: &Arc<ResponseCache>, key: CacheKey, request: &CacheRequest) -> Self {
        Self {
            cache: Arc::clone(cache),
            key,
            status: if request.lookup {
                CacheStatus::Miss
            } else {
                CacheStatus::Bypass
            },
            store: request.store,
            ttl: request.ttl,
        }
    }

    /// Whether the request allows a lookup.
    pub(super) fn looks_up(&self) -> bool {
        self.status != CacheStatus::Bypass
    }

    /// A whole answer came back from `provider` (asked for `upstream_model`): stored if the
    /// request and the policy allow.
    pub(super) fn store_whole(
        &self,
        body: &bytes::Bytes,
        completion: &Completion,
        provider: &str,
        upstream_model: &str,
    ) {
        if self.store && self.cache.admits(completion, body.len()) {
            self.cache.store(
                self.key,
                CachedAnswer {
                    // A copy, not a clone: the relayed body is a view of the connection's read
                    // buffer, which an entry would keep alive (and keep hyper from reusing).
                    body: bytes::Bytes::copy_from_slice(body),
                    provider: provider.to_owned(),
                    upstream_model: upstream_model.to_owned(),
                    stored_at: unix_seconds(),
                },
                self.ttl,
            );
        }
    }

    /// For a streamed call: what assembles its events for storing, if it may be stored.
    pub(super) fn into_pending(self) -> Option<PendingStore> {
        self.store.then(|| PendingStore {
            assembler: ChatAssembler::default(),
            ticket: self,
        })
    }
}

/// A streamed answer on its way into the cache: its events assembled as they pass; stored only
/// when the stream ends well (dropped with the stream otherwise: an abandoned or failed stream
/// is never stored).
pub(super) struct PendingStore {
    ticket: Ticket,
    assembler: ChatAssembler,
}

impl PendingStore {
    /// One event of the stream, as the upstream sent it.
    pub(super) fn observe(&mut self, event: &[u8]) {
        self.assembler.push(event);
    }

    /// The stream ended well: its whole answer is stored, if the policy admits it.
    pub(super) fn finish(self, completion: &Completion, provider: &str, upstream_model: &str) {
        let Some(body) = self.assembler.finish() else {
            return;
        };
        self.ticket
            .store_whole(&body, completion, provider, upstream_model);
    }
}
