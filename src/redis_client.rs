//! The gateway's one Redis connection, shared by whatever needs Redis (the response cache's
//! shared tier; later, key budgets).
//!
//! Redis is an optimisation, never a dependency of serving: the gateway starts and answers
//! while Redis is down, and picks Redis up when it comes back, with no restart.
//!
//! - **Start-up never waits for Redis.** [`RedisHandle::connect`] only checks the URL; a
//!   background task connects, retrying with capped back-off (100 ms doubling to 5 s), and until
//!   it succeeds [`RedisHandle::connection`] is `None`, which callers treat as "skip Redis".
//! - **After that, one `redis::aio::ConnectionManager`**: a multiplexed connection (one socket,
//!   commands pipelined; clones are cheap) that reconnects by itself after the connection breaks.
//!   Its connection attempts time out after [`CONNECT_TIMEOUT`] and its reconnect back-off is
//!   short and bounded (`manager_config`), so while Redis is away callers get errors quickly
//!   instead of queueing behind a long reconnect. Every caller still bounds each command with
//!   its own deadline: that is what keeps a hung (not dead) server off the request path.
//! - **The URL may hold a password**: it is never logged, never in an error, and nothing that
//!   holds it (the `redis::Client`, the manager) is ever formatted. Logs name `host:port`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one attempt to open a connection may take: a dead or unreachable Redis fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The first start-up retry's delay; it doubles after each failed attempt, up to
/// [`STARTUP_RETRY_MAX`].
const STARTUP_RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest wait between start-up attempts: Redis coming up is noticed within about this.
const STARTUP_RETRY_MAX: Duration = Duration::from_secs(5);
/// At most one warning per this while the first connection keeps failing (no log storm).
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long Redis is not asked after a command failed, unless a background `PING` answers
/// sooner (see [`RedisHandle::failed`]).
pub const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The background `PING`'s deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A lazily connected, self-reconnecting Redis connection (a `redis::aio::ConnectionManager`).
///
/// Cloning shares it. Made once at start-up from `REDIS_URL`; see the module docs for why
/// nothing waits for Redis.
#[derive(Clone)]
pub struct RedisHandle {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port`, no credentials.
    address: String,
    /// Set once, by the background task, when the first connection succeeded.
    connection: OnceLock<ConnectionManager>,
    /// Until when Redis is not asked after a failure (ms since the Unix epoch).
    resting_until: AtomicU64,
    /// A `PING` of a resting Redis is under way.
    probing: AtomicBool,
}

impl RedisHandle {
    /// Checks the URL (`redis://` or `rediss://`) without connecting, and starts connecting in
    /// the background (a tokio task, retrying with capped back-off: 100 ms doubling to 5 s).
    /// Must be called inside a tokio runtime.
    ///
    /// The error is one line naming `REDIS_URL` and what is wrong, never the URL itself (it may
    /// hold a password).
    pub fn connect(url: &str) -> Result<Self, String> {
        let (client, address) = parse(url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            "cannot connect to REDIS_URL: the Redis connection needs a tokio runtime".to_owned()
        })?;
        let inner = Arc::new(Inner {
            address,
            connection: OnceLock::new(),
            resting_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        });
        runtime.spawn(connect_in_background(
            Arc::downgrade(&inner),
            client,
            inner.address.clone(),
        ));
        Ok(Self { inner })
    }

    /// The connection, once the first connect succeeded (a cheap clone of a shared,
    /// multiplexed connection); `None` before, and callers then skip Redis.
    pub fn connection(&self) -> Option<ConnectionManager> {
        self.inner.connection.get().cloned()
    }

    /// The connection for a command now: `None` before the first connect, and while Redis
    /// rests after a failure ([`RedisHandle::failed`]), when asking starts a background `PING`.
    /// What every user of Redis on the request's path asks.
    pub fn usable(&self) -> Option<ConnectionManager> {
        if self.resting() {
            self.probe();
            return None;
        }
        self.connection()
    }

    /// A command failed or timed out: Redis rests. While Redis is down, each command would wait
    /// for the connection manager's reconnect until its caller's deadline, so every request
    /// would pay that deadline. Resting, [`RedisHandle::usable`] answers `None` at once, for
    /// [`REST_AFTER_FAILURE`] or until a background `PING` succeeds, whichever is first. The
    /// `PING` matters: the connection manager reconnects only while a command waits on it,
    /// which callers' short deadlines cut off. Shared by every user of the handle: the cache
    /// and the key ledger see the same Redis.
    pub fn failed(&self) {
        let until = now_millis() + REST_AFTER_FAILURE.as_millis() as u64;
        self.inner.resting_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether Redis rests after a failure.
    pub fn resting(&self) -> bool {
        now_millis() < self.inner.resting_until.load(Ordering::Relaxed)
    }

    /// One background `PING` at a time while resting; its success ends the rest.
    fn probe(&self) {
        if self.inner.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(mut connection) = self.connection() else {
            self.inner.probing.store(false, Ordering::Relaxed);
            return;
        };
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let ping = redis::cmd("PING");
            let answer = ping.query_async::<String>(&mut connection);
            if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, answer).await {
                inner.resting_until.store(0, Ordering::Relaxed);
            }
            inner.probing.store(false, Ordering::Relaxed);
        });
    }

    /// `host:port`, for logs (no user, no password).
    pub fn address(&self) -> &str {
        &self.inner.address
    }
}

impl std::fmt::Debug for RedisHandle {
    /// Only the address: the client and manager inside hold the URL's credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("address", &self.inner.address)
            .finish()
    }
}

/// The connection manager's settings: attempts time out after [`CONNECT_TIMEOUT`]; a broken
/// connection is reopened with at most 3 retries, 100 ms doubling, each wait at most 1 s, after
/// which the manager gives up until the next command asks again. So a dead Redis holds a
/// command for about 5 s at worst (unreachable host: 4 attempts of 1 s plus the waits) and
/// usually far less (refused: milliseconds), and callers' deadlines cut it shorter still.
/// Responses time out after 2 s, a backstop for a caller that forgot its own deadline.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(3)
        .set_min_delay(Duration::from_millis(100))
        .set_exponent_base(2.0)
        .set_max_delay(Duration::from_secs(1))
}

/// Checks `url` and returns the client (not connected) and its `host:port`. Errors name
/// `REDIS_URL` and never quote the URL.
fn parse(url: &str) -> Result<(redis::Client, String), String> {
    let bad = |what: &str| format!("invalid configuration: REDIS_URL: {what}");
    let expected = "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://…";
    let parsed = redis::parse_redis_url(url.trim()).ok_or_else(|| bad(expected))?;
    match parsed.scheme() {
        "redis" => {}
        // The build carries no TLS support for Redis (its crate's TLS features are off to keep
        // the dependency tree small): say so rather than fail at every connection attempt.
        "rediss" => {
            return Err(bad(
                "rediss:// (TLS) is not supported by this build; use redis://",
            ));
        }
        _ => return Err(bad(expected)),
    }
    let secrets: Vec<&str> = [Some(url.trim()), parsed.password(), Some(parsed.username())]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    let client = redis::Client::open(parsed.clone()).map_err(|e| {
        // The library's reasons are fixed texts ("Missing hostname", "Invalid database
        // number"), but this is the one error that could echo the URL: drop it if it does.
        // Its text is "Reason - Kind": the reason is what the operator needs.
        let text = e.to_string();
        let reason = text.split(" - ").next().unwrap_or_default();
        if secrets.iter().any(|s| reason.contains(s)) {
            bad("not a usable Redis URL")
        } else {
            bad(&format!("not a usable Redis URL ({reason})"))
        }
    })?;
    let address = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) if host.contains(':') => format!("[{host}]:{port}"),
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        _ => return Err(bad(expected)),
    };
    Ok((client, address))
}

/// Connects until it succeeds, then hands the connection to the handle and ends. Ends early
/// when every handle is gone.
async fn connect_in_background(inner: Weak<Inner>, client: redis::Client, address: String) {
    let mut delay = STARTUP_RETRY_MIN;
    let mut failures: u64 = 0;
    let mut last_warning: Option<Instant> = None;
    loop {
        match ConnectionManager::new_with_config(client.clone(), manager_config()).await {
            Ok(manager) => {
                let Some(inner) = inner.upgrade() else { return };
                let _ = inner.connection.set(manager);
                tracing::info!(redis.address = %address, failures, "connected to Redis");
                return;
            }
            Err(error) => {
                failures += 1;
                if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        redis.address = %address,
                        error = %describe(&error),
                        failures,
                        "cannot connect to Redis; serving without it and retrying in the background"
                    );
                }
            }
        }
        if inner.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(STARTUP_RETRY_MAX);
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Redis error for logs and error messages: the server's error code (`WRONGTYPE`,
/// `NOAUTH`), else its category, and for I/O errors whether the connection was refused,
/// dropped or timed out. Never the library's free text, which could carry the URL the
/// connection was opened with.
pub(crate) fn describe(error: &redis::RedisError) -> String {
    if error.is_io_error() {
        let what = if error.is_timeout() {
            "timed out"
        } else if error.is_connection_refusal() {
            "connection refused"
        } else if error.is_connection_dropped() {
            "connection dropped"
        } else {
            "connection failed"
        };
        return format!("I/O error: {what}");
    }
    match error.code() {
        Some(code) => format!("server replied {code}"),
        None => error.category().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmobs_testkit::RedisServer;

    /// Waits (≤ 10 s) for the background task's first connection.
    async fn connected(handle: &RedisHandle) -> ConnectionManager {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(connection) = handle.connection() {
                return connection;
            }
            assert!(Instant::now() < deadline, "no connection to {handle:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `SET key value` through the handle's connection, within 1 s.
    async fn set(handle: &RedisHandle, key: &str, value: &str) -> Result<(), String> {
        let mut connection = handle.connection().ok_or("not connected")?;
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value);
        match tokio::time::timeout(
            Duration::from_secs(1),
            command.query_async::<()>(&mut connection),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err("timed out".into()),
        }
    }

    #[tokio::test]
    async fn connect_rejects_urls_that_are_not_redis_without_quoting_them() {
        let cases = [
            (
                "http://user:hunter2@cache:6379",
                "invalid configuration: REDIS_URL: expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://…",
            ),
            (
                "hunter2",
                "invalid configuration: REDIS_URL: expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or rediss://…",
            ),
            (
                "rediss://:hunter2@cache:6380",
                "invalid configuration: REDIS_URL: rediss:// (TLS) is not supported by this build; use redis://",
            ),
            (
                "redis://:hunter2@cache:6379/not-a-db",
                "invalid configuration: REDIS_URL: not a usable Redis URL (Invalid database number)",
            ),
            (
                "redis://:hunter2@0.0.0.0:6379",
                "invalid configuration: REDIS_URL: not a usable Redis URL (Cannot connect to a wildcard address (0.0.0.0 or ::))",
            ),
        ];
        for (url, expected) in cases {
            let error = RedisHandle::connect(url).expect_err(url);
            assert_eq!(error, expected, "{url}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn connect_outside_a_runtime_is_an_error_not_a_panic() {
        assert_eq!(
            RedisHandle::connect("redis://127.0.0.1:6379").expect_err("no runtime"),
            "cannot connect to REDIS_URL: the Redis connection needs a tokio runtime"
        );
    }

    #[tokio::test]
    async fn address_and_debug_show_host_and_port_but_no_credentials() {
        let handle = RedisHandle::connect("redis://gateway:hunter2@127.0.0.1:1/2").unwrap();
        assert_eq!(handle.address(), "127.0.0.1:1");
        assert_eq!(
            format!("{handle:?}"),
            r#"RedisHandle { address: "127.0.0.1:1" }"#
        );
        assert!(
            handle.connection().is_none(),
            "connect returns before any connection"
        );
        let handle = RedisHandle::connect("redis://[::1]").unwrap();
        assert_eq!(handle.address(), "[::1]:6379", "the default port");
    }

    #[tokio::test]
    async fn a_handle_made_while_redis_is_down_connects_once_it_starts() {
        let mut server = RedisServer::start();
        server.stop();
        let handle = RedisHandle::connect(&server.url()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(handle.connection().is_none(), "no server, no connection");

        server.restart();
        connected(&handle).await;
        set(&handle, "k", "v").await.unwrap();
        assert_eq!(server.cli(&["GET", "k"]), "v");
    }

    #[tokio::test]
    async fn commands_succeed_again_after_redis_is_killed_and_restarted_on_the_same_port() {
        let mut server = RedisServer::start();
        let handle = RedisHandle::connect(&server.url()).unwrap();
        connected(&handle).await;
        set(&handle, "before", "1").await.unwrap();

        server.stop();
        assert!(
            set(&handle, "while-down", "1").await.is_err(),
            "no server, no answer"
        );

        server.restart();
        let started = Instant::now();
        let mut last = Err(String::new());
        while started.elapsed() < Duration::from_secs(10) {
            last = set(&handle, "after", "2").await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last, Ok(()), "the same handle works again");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "back within a few seconds, took {:?}",
            started.elapsed()
        );
        assert_eq!(server.cli(&["GET", "after"]), "2");
        assert_eq!(
            server.cli(&["DBSIZE"]),
            "1",
            "the restarted server is empty but for the new key"
        );
    }
}
