//! The response cache's shared tier: entries in Redis, seen by every gateway instance, kept
//! across restarts of the gateway.
//!
//! Every operation has a deadline, so a slow or hung Redis costs a request at most that much
//! and then counts as a miss (or a skipped write); Redis never being reached is
//! [`CacheError::Unavailable`] at once. Values are [`CachedAnswer::encode`]'s bytes under
//! [`CacheKey::redis_key`], expiring by Redis's own `PX` TTL.

use std::time::Duration;

use crate::redis_client::{RedisHandle, describe};

use super::entry::{CacheError, CacheKey, CachedAnswer};

/// The shared tier over the gateway's one Redis connection.
#[derive(Clone)]
pub struct RedisStore {
    handle: RedisHandle,
    lookup_timeout: Duration,
    write_timeout: Duration,
}

impl RedisStore {
    /// A store over `handle`; lookups wait at most `lookup_timeout` (it is on the request's
    /// path), writes at most `write_timeout`.
    pub fn new(handle: RedisHandle, lookup_timeout: Duration, write_timeout: Duration) -> Self {
        Self {
            handle,
            lookup_timeout,
            write_timeout,
        }
    }

    /// GET with a deadline; a missing key is Ok(None); a value that does not decode is
    /// Err(Corrupt).
    pub async fn get(&self, key: &CacheKey) -> Result<Option<CachedAnswer>, CacheError> {
        let mut connection = self.handle.usable().ok_or(CacheError::Unavailable)?;
        let mut command = redis::cmd("GET");
        command.arg(key.redis_key());
        let value: Option<Vec<u8>> =
            within(self.lookup_timeout, command.query_async(&mut connection)).await?;
        value.map(|bytes| CachedAnswer::decode(&bytes)).transpose()
    }

    /// Whether Redis rests after a failure (`RedisHandle::failed`): commands are not sent.
    pub fn resting(&self) -> bool {
        self.handle.resting()
    }

    /// A command failed: Redis rests (`RedisHandle::failed`).
    pub fn failed(&self) {
        self.handle.failed();
    }

    /// SET key value PX ttl_ms (milliseconds, at least 1) with a deadline.
    pub async fn put(
        &self,
        key: &CacheKey,
        answer: &CachedAnswer,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut connection = self.handle.usable().ok_or(CacheError::Unavailable)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = redis::cmd("SET");
        command
            .arg(key.redis_key())
            .arg(answer.encode())
            .arg("PX")
            .arg(ttl_ms);
        within(self.write_timeout, command.query_async(&mut connection)).await
    }
}

/// Runs a Redis command under `deadline`: past it, [`CacheError::Timeout`]; a Redis error is
/// [`CacheError::Backend`], described without the library's free text.
async fn within<T>(
    deadline: Duration,
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(deadline, command).await {
        Err(_) => Err(CacheError::Timeout(
            u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        )),
        Ok(Err(error)) => Err(CacheError::Backend(describe(&error))),
        Ok(Ok(value)) => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use llmobs_testkit::RedisServer;
    use std::time::Instant;

    const LOOKUP: Duration = Duration::from_millis(300);
    const WRITE: Duration = Duration::from_millis(500);
    const HOUR: Duration = Duration::from_secs(3600);

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn answer() -> CachedAnswer {
        CachedAnswer {
            body: Bytes::from_static(br#"{"object":"chat.completion","id":"chatcmpl-1"}"#),
            provider: "groq".into(),
            upstream_model: "llama-3.1-8b-instant".into(),
            stored_at: 1_764_700_000,
        }
    }

    /// A store on a connected handle to `server`.
    async fn store_on(server: &RedisServer) -> RedisStore {
        let handle = RedisHandle::connect(&server.url()).unwrap();
        wait_until(Duration::from_secs(10), || handle.connection().is_some()).await;
        RedisStore::new(handle, LOOKUP, WRITE)
    }

    async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts then gets until both succeed (≤ 10 s); returns how long that took.
    async fn works_again(store: &RedisStore) -> Duration {
        let started = Instant::now();
        loop {
            let put = store.put(&key(7), &answer(), HOUR).await;
            let got = store.get(&key(7)).await;
            if put.is_ok() && matches!(got, Ok(Some(_))) {
                assert_eq!(got.unwrap(), Some(answer()));
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still failing after 10 s: put {put:?}, get {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn an_answer_round_trips_under_its_versioned_key() {
        let server = RedisServer::start();
        let store = store_on(&server).await;
        assert_eq!(
            store.get(&key(1)).await.unwrap(),
            None,
            "a miss is Ok(None)"
        );
        store.put(&key(1), &answer(), HOUR).await.unwrap();
        assert_eq!(store.get(&key(1)).await.unwrap(), Some(answer()));
        assert_eq!(
            server.cli(&["KEYS", "*"]),
            format!("llmobs:cache:v1:{}", "01".repeat(32))
        );
        let ttl_ms: u64 = server.cli(&["PTTL", &key(1).redis_key()]).parse().unwrap();
        assert!(
            ttl_ms > 3_590_000 && ttl_ms <= 3_600_000,
            "PX is the TTL in ms: {ttl_ms}"
        );
    }

    #[tokio::test]
    async fn an_entry_expires_after_its_ttl_in_redis() {
        let server = RedisServer::start();
        let store = store_on(&server).await;
        store
            .put(&key(1), &answer(), Duration::from_millis(200))
            .await
            .unwrap();
        store.put(&key(2), &answer(), HOUR).await.unwrap();
        // A TTL under a millisecond still expires (PX 1), rather than being refused.
        store.put(&key(3), &answer(), Duration::ZERO).await.unwrap();
        assert_eq!(store.get(&key(1)).await.unwrap(), Some(answer()));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.get(&key(1)).await.unwrap(), None);
        assert_eq!(store.get(&key(3)).await.unwrap(), None);
        assert_eq!(store.get(&key(2)).await.unwrap(), Some(answer()));
        assert_eq!(server.cli(&["DBSIZE"]), "1");
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_is_corrupt() {
        let server = RedisServer::start();
        let store = store_on(&server).await;
        assert_eq!(
            server.cli(&["SET", &key(1).redis_key(), "not an entry"]),
            "OK"
        );
        match store.get(&key(1)).await {
            Err(CacheError::Corrupt(reason)) => {
                assert_eq!(reason, "not a cache entry (wrong magic)")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Another type under the key is Redis's own error, not a panic.
        assert_eq!(server.cli(&["DEL", &key(2).redis_key()]), "0");
        assert_eq!(server.cli(&["RPUSH", &key(2).redis_key(), "x"]), "1");
        match store.get(&key(2)).await {
            Err(CacheError::Backend(reason)) => {
                assert_eq!(reason, "server replied WRONGTYPE")
            }
            other => panic!("expected Backend, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hung_server_times_out_at_the_deadline() {
        let server = RedisServer::start();
        let store = store_on(&server).await;
        store.put(&key(1), &answer(), HOUR).await.unwrap();
        server.pause();

        let started = Instant::now();
        let got = store.get(&key(1)).await;
        let waited = started.elapsed();
        assert!(matches!(got, Err(CacheError::Timeout(300))), "{got:?}");
        assert!(
            waited >= LOOKUP && waited < LOOKUP + Duration::from_millis(200),
            "{waited:?}"
        );
        let put = store.put(&key(2), &answer(), HOUR).await;
        assert!(matches!(put, Err(CacheError::Timeout(500))), "{put:?}");

        server.resume();
        assert_eq!(store.get(&key(1)).await.unwrap(), Some(answer()));
    }

    #[tokio::test]
    async fn a_killed_server_fails_fast_and_the_same_store_works_again_after_a_restart() {
        let mut server = RedisServer::start();
        let store = store_on(&server).await;
        store.put(&key(1), &answer(), HOUR).await.unwrap();

        server.stop();
        for _ in 0..3 {
            let started = Instant::now();
            let got = store.get(&key(1)).await;
            assert!(
                matches!(
                    got,
                    Err(CacheError::Unavailable | CacheError::Backend(_) | CacheError::Timeout(_))
                ),
                "{got:?}"
            );
            assert!(started.elapsed() < LOOKUP + Duration::from_millis(200));
        }

        server.restart();
        let took = works_again(&store).await;
        assert!(took < Duration::from_secs(5), "back after {took:?}");
        assert_eq!(
            server.cli(&["DBSIZE"]),
            "1",
            "the restart lost the old data"
        );
    }

    #[tokio::test]
    async fn a_store_made_while_no_server_is_up_works_once_it_starts() {
        let mut server = RedisServer::start();
        server.stop();
        let handle = RedisHandle::connect(&server.url()).unwrap();
        let store = RedisStore::new(handle, LOOKUP, WRITE);
        assert!(matches!(
            store.get(&key(1)).await,
            Err(CacheError::Unavailable)
        ));
        assert!(matches!(
            store.put(&key(1), &answer(), HOUR).await,
            Err(CacheError::Unavailable)
        ));

        server.restart();
        let took = works_again(&store).await;
        assert!(took < Duration::from_secs(6), "connected after {took:?}");
    }
}
