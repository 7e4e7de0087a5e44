//! Calls to the provider on their way out: through a real forward proxy (Debian's tinyproxy)
//! as absolute-form HTTP and as a CONNECT tunnel to an HTTPS provider, `NO_PROXY`, proxy
//! credentials kept out of every log line and error, and redirects refused, not followed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::process::start_binary;
use crate::support::upstream::{API_KEY, FakeUpstream, Reply};

/// tinyproxy on a free loopback port, logging to a file, stopped on drop.
struct Tinyproxy {
    port: u16,
    log: PathBuf,
    child: Child,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Tinyproxy {
    fn start(basic_auth: Option<(&str, &str)>) -> Self {
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("tinyproxy is installed (scripts/test.sh installs Debian's tinyproxy)");
        let dir = std::env::temp_dir().join(format!(
            "tinyproxy-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let auth = basic_auth
            .map(|(user, password)| format!("BasicAuth {user} {password}\n"))
            .unwrap_or_default();
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
                 MaxClients 64\nAllow 127.0.0.1\n{auth}",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["-d", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            log,
            child,
            _dir: TempDir(dir),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// An HTTPS front for the fake provider: terminates TLS with the test certificate for
/// `localhost` and forwards the plaintext to `upstream`. Returns its port.
async fn https_front(upstream: std::net::SocketAddr) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(tls_file("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_file("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

async fn chat_completion(app: &TestApp, stream: bool) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": "llama-3.1-8b-instant", "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_http_provider_is_called_through_the_http_proxy() {
    let proxy = Tinyproxy::start(None);
    let app = spawn_app_with(&[("HTTP_PROXY", &proxy.url())]).await;

    let response = chat_completion(&app, false).await;

    assert_eq!(response.status(), 200);
    let upstream_port = app.upstream.addr.port();
    let log = proxy.log();
    assert!(
        log.contains(&format!(
            "POST http://127.0.0.1:{upstream_port}/openai/v1/chat/completions"
        )),
        "the request went through the proxy: {log}"
    );
    let received = app.upstream.received();
    assert_eq!(received.len(), 1);
    let via = received[0]
        .headers
        .get("via")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        via.as_deref().is_some_and(|v| v.contains("tinyproxy")),
        "the upstream saw the proxy's Via header: {via:?}"
    );
}

#[tokio::test]
async fn an_https_provider_is_reached_through_a_connect_tunnel() {
    let proxy = Tinyproxy::start(None);
    let upstream = FakeUpstream::start().await;
    let tls_port = https_front(upstream.addr).await;
    let base_url = format!("https://localhost:{tls_port}/openai/v1");
    let ca = tls_file("ca.pem");
    let app = spawn_app_with(&[
        ("GROQ_BASE_URL", &base_url),
        ("HTTPS_PROXY", &proxy.url()),
        ("LLM_CA_CERT_FILE", ca.to_str().unwrap()),
    ])
    .await;
    // The app's own fake upstream stays unused: this one sits behind TLS.

    let whole = chat_completion(&app, false).await;
    assert_eq!(whole.status(), 200);
    let body: Value = whole.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    upstream.script([Reply::stream()]);
    let streamed = chat_completion(&app, true).await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    assert_eq!(
        upstream.received().len(),
        2,
        "both calls reached the provider"
    );
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT localhost:{tls_port}")),
        "the calls were tunnelled through the proxy: {log}"
    );
}

#[tokio::test]
async fn an_https_provider_with_an_untrusted_certificate_is_refused() {
    let upstream = FakeUpstream::start().await;
    let tls_port = https_front(upstream.addr).await;
    let base_url = format!("https://localhost:{tls_port}/openai/v1");
    // No LLM_CA_CERT_FILE: the test CA is not trusted.
    let app = spawn_app_with(&[("GROQ_BASE_URL", &base_url), ("LLM_MAX_RETRIES", "0")]).await;

    let response = chat_completion(&app, false).await;

    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "connection_error");
    assert_eq!(upstream.received().len(), 0);
}

#[tokio::test]
async fn no_proxy_hosts_are_called_directly() {
    // A proxy address nothing listens on: a call through it would fail.
    let dead_proxy = format!("http://127.0.0.1:{}", free_port());
    let app = spawn_app_with(&[
        ("HTTP_PROXY", &dead_proxy),
        ("NO_PROXY", "localhost,127.0.0.1"),
    ])
    .await;

    let response = chat_completion(&app, false).await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.received().len(), 1);
}

#[tokio::test]
async fn proxy_credentials_are_sent_to_the_proxy_and_never_logged_or_returned() {
    const PASSWORD: &str = "pr0xy-S3cret-pa55";
    let proxy = Tinyproxy::start(Some(("gateway", PASSWORD)));
    let upstream = FakeUpstream::start().await;
    let with = |password: &str| {
        start_binary(&[
            ("GROQ_API_KEY", API_KEY),
            ("GROQ_BASE_URL", &upstream.base_url()),
            (
                "HTTP_PROXY",
                &format!("http://gateway:{password}@127.0.0.1:{}", proxy.port),
            ),
            ("LLM_MAX_RETRIES", "0"),
            ("RUST_LOG", "debug"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
    };

    let good = with(PASSWORD);
    let ok = good.chat(json!({"prompt": "hi"})).await;
    assert_eq!(ok.status(), 200, "the proxy accepted the credentials");
    assert_eq!(upstream.received().len(), 1);

    let bad = with("wrong-password");
    let refused = bad.chat(json!({"prompt": "hi"})).await;
    assert_eq!(
        refused.status(),
        502,
        "a proxy refusing the gateway is not the client's fault"
    );
    let body = refused.text().await.unwrap();
    assert!(body.contains("connection_error"), "{body}");
    assert_eq!(upstream.received().len(), 1, "nothing got past the proxy");

    for (service, password) in [(&good, PASSWORD), (&bad, "wrong-password")] {
        let log = service.log();
        assert!(!log.contains(password), "the proxy password leaked: {log}");
        assert!(
            log.contains(&format!("http://*****@127.0.0.1:{}", proxy.port)),
            "the start-up line names the proxy without its credentials: {log}"
        );
    }
    assert!(!body.contains("wrong-password"));
}

#[test]
fn a_bad_proxy_url_stops_start_up_without_echoing_its_credentials() {
    let output = Command::new(env!("CARGO_BIN_EXE_llm-observability"))
        .env_clear()
        .env("HTTPS_PROXY", "socks5://user:hunter2@proxy:1080")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("HTTPS_PROXY") && stderr.contains("proxy URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn a_redirecting_provider_gets_one_attempt_and_a_502_naming_the_redirect() {
    let app = spawn_app_with(&[]).await;
    app.upstream.script([Reply::Status {
        status: 301,
        body: String::new(),
        headers: vec![(
            "location",
            "https://api.elsewhere.example/v1/chat/completions?key=gsk_in_a_query".into(),
        )],
    }]);

    let response = chat_completion(&app, false).await;

    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "bad_response");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("301")
            && message.contains("redirect to https://api.elsewhere.example/v1/chat/completions"),
        "{message}"
    );
    assert!(!message.contains("gsk_in_a_query"), "{message}");
    assert_eq!(
        app.upstream.received().len(),
        1,
        "a redirect is not retried"
    );
    let metrics = app.scrape().await;
    let retries = crate::support::prometheus::sample(
        &metrics,
        "llm_upstream_retries_total",
        &[("provider", "groq"), ("reason", "5xx")],
    );
    assert_eq!(retries, None, "no retry was counted");
    assert_eq!(
        crate::support::prometheus::sample(
            &metrics,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "llama-3.1-8b-instant"),
                ("error_type", "bad_response")
            ],
        ),
        Some(1.0)
    );
}
