//! A real Redis for the tests: Debian's `redis-server`, one per test, on a free loopback port,
//! with nothing persisted (`--save ""`, `--appendonly no`, a temporary `--dir`).
//!
//! A fake would not do: what the gateway must survive is the real server's behaviour when it
//! dies, hangs or comes back (connections reset, refused, silent). So the server is a child
//! process the test can kill ([`RedisServer::stop`]), start again on the same port
//! ([`RedisServer::restart`]) and freeze ([`RedisServer::pause`], `SIGSTOP`), and `redis-cli`
//! lets a test look at or tamper with the data behind the gateway's back ([`RedisServer::cli`]).
//! The process is killed when the value drops, so a failing test leaves nothing behind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SERVER: &str = "redis-server";
const CLI: &str = "redis-cli";

/// How long a start waits for the server to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinguishes the data directories of servers started by one test process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A `redis-server` child process on `127.0.0.1`, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    paused: AtomicBool,
}

impl RedisServer {
    /// `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no` (plus a `--dir` in a
    /// temporary directory), waiting (≤ 10 s) until it answers `PING`. Panics with a clear
    /// message if `redis-server` is not installed ("apt-get install redis-server").
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "llmobs-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        // The free port is found by binding port 0 and letting go of it: another process may
        // take it in between, so a server that fails to start is tried again on a new port.
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut server = Self {
                port: free_port(),
                dir: dir.clone(),
                child: None,
                paused: AtomicBool::new(false),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across [`restart`](Self::restart)s).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (`SIGKILL`: a crash, nothing flushed, connections reset) and waits for
    /// it to exit. Its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused.swap(false, Ordering::SeqCst) {
                signal(&child, "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs) and waits for
    /// `PING`. Panics if it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and nothing is answered, as with
    /// a hung server.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            signal(child, "STOP");
            self.paused.store(true, Ordering::SeqCst);
        }
    }

    /// Lets a paused server run again (`SIGCONT`).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            signal(child, "CONT");
            self.paused.store(false, Ordering::SeqCst);
        }
    }

    /// Runs `redis-cli -p PORT` with `args` and returns its standard output, trimmed (for
    /// example `["DBSIZE"]` → `"0"`, `["SET", "k", "v"]` → `"OK"`, `["KEYS", "*"]`: one key a
    /// line). Panics if `redis-cli` cannot run or fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(CLI)
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {CLI} ({e}): apt-get install redis-server (it brings {CLI})")
            });
        assert!(
            output.status.success(),
            "{CLI} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts `redis-server` on `self.port` and waits until it answers `PING`.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.dir.display()));
        let log = self.dir.join("redis.log");
        let child = Command::new(SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {SERVER} ({e}): the Redis tests need a real server: apt-get install redis-server"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "port {}: exited ({status}); its log:\n{log}",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "port {}: no PONG within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// Whether a server on `port` answers `PING` with `+PONG` within a short wait.
fn ping(port: u16) -> bool {
    let wait = Duration::from_millis(200);
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), wait) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(wait));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && answer == *b"+PONG\r\n"
}

/// Sends `SIGNAL` to the child with `kill` (the test kit forbids unsafe code, so no libc).
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{name}: {e}"));
    assert!(status.success(), "kill -{name} {} failed", child.id());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_answers_stores_and_comes_back_empty_after_a_restart() {
        let mut server = RedisServer::start();
        assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
        assert_eq!(server.cli(&["PING"]), "PONG");
        assert_eq!(server.cli(&["SET", "k", "v"]), "OK");
        assert_eq!(server.cli(&["GET", "k"]), "v");
        assert_eq!(server.cli(&["DBSIZE"]), "1");

        let port = server.port();
        server.stop();
        assert!(!ping(port), "a stopped server does not answer");

        server.restart();
        assert_eq!(server.port(), port, "a restart keeps the port");
        assert_eq!(server.cli(&["DBSIZE"]), "0", "nothing was persisted");
    }

    #[test]
    fn a_paused_server_is_silent_until_resumed() {
        let server = RedisServer::start();
        server.pause();
        assert!(!ping(server.port()), "a paused server answers nothing");
        server.resume();
        assert!(ping(server.port()));
    }

    #[test]
    fn dropping_a_paused_server_kills_it_and_frees_the_port() {
        let server = RedisServer::start();
        let port = server.port();
        server.pause();
        drop(server);
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the port no longer accepts connections"
        );
    }
}
