//! Prometheus: the text exposition's parser, and a real server (Debian's `prometheus` package)
//! that scrapes a running app with the project's alert rules, queried over its HTTP API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::app::TestApp;

/// The value of one sample in a Prometheus text exposition, matched on its exact label set.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let mut got: Vec<(String, String)> = label_text
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect();
        got.sort();
        (got == wanted).then(|| value.parse().ok()).flatten()
    })
}

/// A Prometheus server; stopped, and its data removed, when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn start_prometheus(app: &TestApp) -> Prometheus {
    start_prometheus_with(app, &[]).await
}

/// A Prometheus with extra command-line flags (`--enable-feature=exemplar-storage`).
pub async fn start_prometheus_with(app: &TestApp, flags: &[&str]) -> Prometheus {
    let dir = std::env::temp_dir().join(format!(
        "llmobs-prom-{}-{}",
        std::process::id(),
        app.metrics_addr.port()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts/*.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: llm-api\n    static_configs:\n      - targets: ['{}']\n",
        app.metrics_addr
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package `prometheus`; .ci/run installs it)");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: TempDir(dir),
    };
    poll(|| async {
        reqwest::get(format!("{}/-/ready", prometheus.url))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    prometheus
}

/// Polls until `check` gives a value, for at most 30 s.
pub async fn poll<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not met within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn query(prometheus: &Prometheus, promql: &str) -> Vec<Value> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", prometheus.url),
        [("query", promql)],
    )
    .unwrap();
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{promql}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn scalar(result: &[Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}
