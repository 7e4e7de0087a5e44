//! The service binary as a child process, its ports read from its start-up log line.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The service binary running as a child process, with its log lines captured.
pub struct ServiceProcess {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub log: Arc<Mutex<String>>,
}

/// The binary with a clean environment: `PATH`, `LOG_FORMAT=json`, ports 0, then `vars`; its
/// output piped.
fn binary_command(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-observability"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("APP_HOST", "127.0.0.1"),
            ("APP_PORT", "0"),
            ("METRICS_HOST", "127.0.0.1"),
            ("METRICS_PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("SIMULATED_LATENCY_MS", "0"),
        ])
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts the real binary with `LOG_FORMAT=json` and ports 0, and reads its ports from the
/// start-up log line.
pub fn start_binary(vars: &[(&str, &str)]) -> ServiceProcess {
    let mut child = binary_command(vars).spawn().expect("binary starts");
    let log: Arc<Mutex<String>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let (Some(p), Some(m)) = (
                        v["fields"]["api_port"].as_u64(),
                        v["fields"]["metrics_port"].as_u64(),
                    )
                {
                    let _ = tx.send((p as u16, m as u16));
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let (port, metrics_port) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("binary did not start: {}", log.lock().unwrap()));
    ServiceProcess {
        child,
        port,
        metrics_port,
        log,
    }
}

/// A binary that exited by itself: its exit code and everything it printed.
pub struct Exited {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real binary (the environment of [`start_binary`]) until it exits by itself, as it
/// should when start-up fails; kills it and panics if it is still running after `within`.
pub fn run_binary_to_exit(vars: &[(&str, &str)], within: Duration) -> Exited {
    let mut child = binary_command(vars).spawn().expect("binary starts");
    let read = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!("the binary was still running after {within:?}:\n{stdout}{stderr}");
    };
    Exited {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

impl ServiceProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// `POST /api/chat` with a JSON body.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/chat"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
