//! The response cache's in-process tier: a bounded `moka::sync::Cache` with a TTL per entry.
//!
//! It answers without a network round trip and works with no Redis at all. Its bounds are the
//! operator's two numbers, entries and bytes, and neither can be exceeded (beyond moka's
//! short, eventually consistent catch-up; see [`MemoryStore::new`]). moka's synchronous API is
//! used from async code: its operations take short locks and never wait on I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::entry::{CacheKey, CachedAnswer};

/// What the cache holds per key: the answer and how long it lives.
struct Stored {
    answer: CachedAnswer,
    ttl: Duration,
}

/// The in-process tier.
pub struct MemoryStore {
    cache: Cache<CacheKey, Arc<Stored>>,
    /// The sum of the live entries' own sizes ([`CachedAnswer::size`]), kept by `put` (added
    /// before the insert) and the eviction listener (subtracted on every removal: expired,
    /// evicted, refused admission, replaced).
    bytes: Arc<AtomicU64>,
    /// The live entries, kept the same way: moka's own `entry_count` lags behind inserts until
    /// its next maintenance step, so a gauge read right after a store would say 0.
    entries: Arc<AtomicU64>,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries and `max_bytes` bytes.
    ///
    /// Bounded by both entries and bytes: each entry weighs max(its size, max_bytes /
    /// max_entries), and the cache's capacity is max_bytes, so neither bound can be exceeded.
    /// (The share is rounded up: `max_entries + 1` entries of at least ⌈B/N⌉ each weigh more
    /// than B. Weights are moka's `u32`, so this holds for shares and sizes under 4 GiB.)
    /// moka enforces its capacity in its maintenance step, which runs on writes and reads:
    /// between two runs the cache may briefly hold a few entries more.
    pub fn new(max_entries: u64, max_bytes: u64) -> Self {
        let share = max_bytes.div_ceil(max_entries.max(1));
        let share = u32::try_from(share).unwrap_or(u32::MAX);
        let bytes = Arc::new(AtomicU64::new(0));
        let entries = Arc::new(AtomicU64::new(0));
        let (evicted, evicted_entries) = (bytes.clone(), entries.clone());
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_key: &CacheKey, stored: &Arc<Stored>| {
                u32::try_from(stored.answer.size())
                    .unwrap_or(u32::MAX)
                    .max(share)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(
                move |_key: Arc<CacheKey>, stored: Arc<Stored>, _cause: RemovalCause| {
                    evicted.fetch_sub(stored.answer.size() as u64, Ordering::Relaxed);
                    evicted_entries.fetch_sub(1, Ordering::Relaxed);
                },
            )
            .build();
        Self {
            cache,
            bytes,
            entries,
        }
    }

    /// The answer stored under `key`, unless it expired. Cheap: the body is a shared `Bytes`.
    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        self.cache.get(key).map(|stored| stored.answer.clone())
    }

    /// Stores with its own TTL (moka's `Expiry`: per-entry expiry), replacing any entry of that
    /// key. An entry larger than the whole store is not kept.
    pub fn put(&self, key: CacheKey, answer: CachedAnswer, ttl: Duration) {
        // Counted before the insert, so that its removal (which the listener subtracts) can
        // never come first and wrap the counter below zero.
        self.bytes
            .fetch_add(answer.size() as u64, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key, Arc::new(Stored { answer, ttl }));
    }

    /// (entries, bytes of the entries' own sizes), for gauges. A store counts at once; a
    /// removal (evicted, refused admission, replaced) when moka's maintenance step reports it,
    /// and an expired entry (never returned by `get`) until maintenance removes it, a second or
    /// so after it expired (moka's timer wheel has second-wide buckets).
    pub fn usage(&self) -> (u64, u64) {
        (
            self.entries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Each entry lives for the TTL it was stored with; a replacement starts its own.
struct PerEntryTtl;

impl Expiry<CacheKey, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        stored: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        stored: &Arc<Stored>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(n: u32) -> CacheKey {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        CacheKey(bytes)
    }

    fn answer(body_len: usize) -> CachedAnswer {
        CachedAnswer {
            body: Bytes::from(vec![b'x'; body_len]),
            provider: "groq".into(),
            upstream_model: "llama".into(),
            stored_at: 1_764_700_000,
        }
    }

    /// The sum of the sizes of what the cache really holds.
    fn held_bytes(store: &MemoryStore) -> u64 {
        store
            .cache
            .iter()
            .map(|(_, stored)| stored.answer.size() as u64)
            .sum()
    }

    #[test]
    fn a_stored_answer_comes_back_and_a_replacement_wins() {
        let store = MemoryStore::new(100, 1 << 20);
        assert_eq!(store.get(&key(1)), None);
        store.put(key(1), answer(10), HOUR);
        assert_eq!(store.get(&key(1)), Some(answer(10)));
        assert_eq!(store.get(&key(2)), None);
        store.put(key(1), answer(20), HOUR);
        assert_eq!(store.get(&key(1)), Some(answer(20)));
    }

    #[test]
    fn each_entry_expires_after_its_own_ttl() {
        let store = MemoryStore::new(100, 1 << 20);
        store.put(key(1), answer(10), Duration::from_millis(200));
        store.put(key(2), answer(10), HOUR);
        assert_eq!(store.get(&key(1)), Some(answer(10)));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(store.get(&key(1)), None, "the 200 ms entry is gone");
        assert_eq!(store.get(&key(2)), Some(answer(10)), "the long one stays");

        // A replacement's TTL replaces the old one.
        store.put(key(2), answer(10), Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(store.get(&key(2)), None);
        // Expired entries leave the counts when moka's maintenance reaches them: its timer
        // wheel's finest buckets are about a second wide.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.usage() != (0, 0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            store.cache.run_pending_tasks();
        }
        assert_eq!(
            store.usage(),
            (0, 0),
            "expired entries are no longer counted"
        );
    }

    #[test]
    fn the_entry_bound_holds_when_entries_are_small() {
        // 10 entries, 1 MB: each small entry weighs the 100 kB share.
        let store = MemoryStore::new(10, 1_000_000);
        for n in 0..200 {
            store.put(key(n), answer(100), HOUR);
        }
        store.cache.run_pending_tasks();
        assert_eq!(store.cache.entry_count(), 10);
        assert_eq!(store.cache.weighted_size(), 1_000_000);
        assert_eq!(store.usage(), (10, 10 * answer(100).size() as u64));
    }

    #[test]
    fn the_entry_bound_holds_when_the_share_does_not_divide_evenly() {
        // 300 entries over 77,099 bytes: a share of 257 (rounded up; 256 rounded down would
        // let 301 entries of 256 bytes in). Entries here weigh exactly 256 bytes.
        let empty = CachedAnswer {
            body: Bytes::new(),
            provider: String::new(),
            upstream_model: String::new(),
            stored_at: 0,
        };
        assert_eq!(empty.size(), 256);
        let store = MemoryStore::new(300, 77_099);
        for n in 0..1000 {
            store.put(key(n), empty.clone(), HOUR);
        }
        store.cache.run_pending_tasks();
        assert_eq!(store.cache.entry_count(), 77_099 / 257);
        assert_eq!(store.usage(), (299, 299 * 256));
    }

    #[test]
    fn the_byte_bound_holds_when_entries_are_large() {
        // 1000 entries, 100 kB: entries of about 10 kB each, so at most 9 of them.
        let store = MemoryStore::new(1000, 100_000);
        let size = answer(10_000).size() as u64;
        for n in 0..200 {
            store.put(key(n), answer(10_000), HOUR);
        }
        store.cache.run_pending_tasks();
        let (entries, bytes) = store.usage();
        assert_eq!(entries, 100_000 / size);
        assert_eq!(bytes, entries * size);
        assert!(bytes <= 100_000, "{bytes}");
        assert_eq!(bytes, held_bytes(&store));
    }

    #[test]
    fn an_entry_larger_than_the_store_is_not_kept() {
        let store = MemoryStore::new(10, 1_000);
        store.put(key(1), answer(5_000), HOUR);
        store.cache.run_pending_tasks();
        assert_eq!(store.get(&key(1)), None);
        assert_eq!(store.usage(), (0, 0));
    }

    #[test]
    fn usage_counts_entries_and_their_own_sizes() {
        let store = MemoryStore::new(100, 1 << 20);
        assert_eq!(store.usage(), (0, 0));
        store.put(key(1), answer(100), HOUR);
        store.put(key(2), answer(300), HOUR);
        store.cache.run_pending_tasks();
        let sizes = answer(100).size() as u64 + answer(300).size() as u64;
        assert_eq!(store.usage(), (2, sizes));

        store.put(key(2), answer(50), HOUR);
        store.cache.run_pending_tasks();
        let sizes = answer(100).size() as u64 + answer(50).size() as u64;
        assert_eq!(store.usage(), (2, sizes), "a replacement counts once");
        assert_eq!(held_bytes(&store), sizes);
    }
}
