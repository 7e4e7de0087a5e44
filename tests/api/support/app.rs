//! The app in process, on port 0, against a fresh fake Groq upstream.

use std::collections::HashMap;
use std::net::SocketAddr;

use llm_observability::Application;
use llm_observability::config::Settings;
use serde_json::Value;

use crate::support::otlp::otlp;
use crate::support::upstream::{API_KEY, FakeUpstream};

/// Settings as the binary would read them, from a map instead of the environment.
pub fn base_settings(vars: &[(&str, &str)]) -> Settings {
    let mut map: HashMap<String, String> = [
        ("APP_HOST", "127.0.0.1"),
        ("APP_PORT", "0"),
        ("METRICS_HOST", "127.0.0.1"),
        ("METRICS_PORT", "0"),
        ("SIMULATED_LATENCY_MS", "0"),
        ("LLM_TIMEOUT_SECS", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in vars {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|k| map.get(k).cloned()).expect("valid test settings")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub upstream: FakeUpstream,
    pub client: reqwest::Client,
}

/// The app against the fake Groq upstream, with extra settings.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    otlp();
    let upstream = FakeUpstream::start().await;
    let base_url = upstream.base_url();
    // The same fake answers as OpenAI when `LLM_PROVIDER=openai` is among `vars`.
    let mut all: Vec<(&str, &str)> = vec![
        ("GROQ_API_KEY", API_KEY),
        ("GROQ_BASE_URL", &base_url),
        ("OPENAI_API_KEY", API_KEY),
        ("OPENAI_BASE_URL", &base_url),
    ];
    all.extend_from_slice(vars);
    let app = Application::build(base_settings(&all))
        .await
        .expect("app builds");
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], app.metrics_port()));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        addr,
        metrics_addr,
        upstream,
        client: reqwest::Client::new(),
    }
}

/// The app against the fake Groq upstream with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/chat"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Writes a configuration file (`GATEWAY_CONFIG`) to a fresh temporary path and returns the
/// path; the file stays for the rest of the test process.
pub fn write_config(toml: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("llmobs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "gateway-{}.toml",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}
