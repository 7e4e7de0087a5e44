//! The response cache's in-process tier: a bounded `quick_cache::sync::Cache` with a TTL per
//! entry.
//!
//! It answers without a network round trip and works with no Redis at all. Its bounds are the
//! operator's two numbers, entries and bytes, and neither can be exceeded (see
//! [`MemoryStore::new`]). quick_cache rather than moka: with every miss stored, moka's insert
//! (its write log, frequency sketch, timer wheel and maintenance step) cost about 15 µs of CPU
//! per request at concurrency 32 on this machine, against the 5 µs for the whole
//! cache on a miss (BENCHMARKS.md, "Response cache"); quick_cache's insert is a sharded hash
//! table's, with S3-FIFO-style eviction and no background work.
//!
//! Expiry is checked when an entry is read: an expired entry is never returned, and leaves
//! when it is read or evicted, so it weighs on the bounds until then, as any entry does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::entry::{CacheKey, CachedAnswer};

/// What the cache holds per key: the answer, when it expires, and its share of the counters.
struct Stored {
    answer: CachedAnswer,
    expires_at: Instant,
    /// Its weight against the capacity: its size, at least the per-entry share.
    weight: u64,
    /// Held for its `Drop`: the counters go down when the cache lets the entry go.
    _counted: Counted,
}

/// The live entries and their own sizes, counted exactly: up when an entry is stored, down
/// when the cache lets it go (evicted, replaced, expired and removed), whatever the reason.
#[derive(Default)]
struct Counters {
    entries: AtomicU64,
    bytes: AtomicU64,
}

/// An entry's part of the counters, given back when the entry is dropped.
struct Counted {
    counters: Arc<Counters>,
    size: u64,
}

impl Counted {
    fn new(counters: &Arc<Counters>, size: u64) -> Self {
        counters.entries.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(size, Ordering::Relaxed);
        Self {
            counters: Arc::clone(counters),
            size,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        self.counters.bytes.fetch_sub(self.size, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<CacheKey, Arc<Stored>> for ByWeight {
    fn weight(&self, _key: &CacheKey, stored: &Arc<Stored>) -> u64 {
        stored.weight
    }
}

/// The in-process tier.
pub struct MemoryStore {
    cache: Cache<CacheKey, Arc<Stored>, ByWeight>,
    /// Every entry weighs at least this: `max_bytes / max_entries`, rounded up.
    share: u64,
    max_bytes: u64,
    counters: Arc<Counters>,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries and `max_bytes` bytes.
    ///
    /// Bounded by both entries and bytes: each entry weighs max(its size, max_bytes /
    /// max_entries), and the cache's capacity is max_bytes, so neither bound can be exceeded.
    /// (The share is rounded up: `max_entries + 1` entries of at least ⌈B/N⌉ each weigh more
    /// than B.)
    pub fn new(max_entries: u64, max_bytes: u64) -> Self {
        let share = max_bytes.div_ceil(max_entries.max(1));
        let estimated = usize::try_from(max_entries).unwrap_or(usize::MAX);
        Self {
            cache: Cache::with_weighter(estimated, max_bytes, ByWeight),
            share,
            max_bytes,
            counters: Arc::default(),
        }
    }

    /// The answer stored under `key`, unless it expired (an expired entry is removed). Cheap:
    /// the body is a shared `Bytes`.
    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let stored = self.cache.get(key)?;
        if Instant::now() >= stored.expires_at {
            self.cache.remove(key);
            return None;
        }
        Some(stored.answer.clone())
    }

    /// Stores with its own TTL, replacing any entry of that key. An entry larger than the
    /// whole store is not kept.
    pub fn put(&self, key: CacheKey, answer: CachedAnswer, ttl: Duration) {
        let size = answer.size() as u64;
        let weight = size.max(self.share);
        if weight > self.max_bytes {
            return;
        }
        let stored = Stored {
            _counted: Counted::new(&self.counters, size),
            expires_at: Instant::now() + ttl,
            weight,
            answer,
        };
        self.cache.insert(key, Arc::new(stored));
    }

    /// (entries, bytes of the entries' own sizes), for gauges: exact, counting an expired
    /// entry until it is read or evicted.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.counters.entries.load(Ordering::Relaxed),
            self.counters.bytes.load(Ordering::Relaxed),
        )
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
        // An expired entry that was read is gone, from the counts too.
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
        // The cache is sharded, each shard with its part of the capacity: fewer entries may
        // fit than the bound, never more.
        let (entries, bytes) = store.usage();
        assert!((1..=10).contains(&entries), "{entries}");
        assert_eq!(entries, store.cache.len() as u64);
        assert!(store.cache.weight() <= 1_000_000);
        assert_eq!(bytes, entries * answer(100).size() as u64);
        assert_eq!(bytes, held_bytes(&store));
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
        let (entries, bytes) = store.usage();
        assert!((1..=77_099 / 257).contains(&entries), "{entries}");
        assert_eq!(bytes, entries * 256);
        assert!(store.cache.weight() <= 77_099);
    }

    #[test]
    fn the_byte_bound_holds_when_entries_are_large() {
        // 1000 entries, 100 kB: entries of about 10 kB each, so at most 9 of them.
        let store = MemoryStore::new(1000, 100_000);
        let size = answer(10_000).size() as u64;
        for n in 0..200 {
            store.put(key(n), answer(10_000), HOUR);
        }
        let (entries, bytes) = store.usage();
        assert!((1..=100_000 / size).contains(&entries), "{entries}");
        assert_eq!(bytes, entries * size);
        assert!(bytes <= 100_000, "{bytes}");
        assert_eq!(bytes, held_bytes(&store));
    }

    #[test]
    fn an_entry_larger_than_the_store_is_not_kept() {
        let store = MemoryStore::new(10, 1_000);
        store.put(key(1), answer(5_000), HOUR);
        assert_eq!(store.get(&key(1)), None);
        assert_eq!(store.usage(), (0, 0));
    }

    #[test]
    fn usage_counts_entries_and_their_own_sizes() {
        let store = MemoryStore::new(100, 1 << 20);
        assert_eq!(store.usage(), (0, 0));
        store.put(key(1), answer(100), HOUR);
        store.put(key(2), answer(300), HOUR);
        let sizes = answer(100).size() as u64 + answer(300).size() as u64;
        assert_eq!(store.usage(), (2, sizes));

        store.put(key(2), answer(50), HOUR);
        let sizes = answer(100).size() as u64 + answer(50).size() as u64;
        assert_eq!(store.usage(), (2, sizes), "a replacement counts once");
        assert_eq!(held_bytes(&store), sizes);
    }
}
