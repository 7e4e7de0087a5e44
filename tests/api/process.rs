//! The real binary as a process: start-up validation, logs, graceful shutdown, collector outage.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::otlp::otlp;
use crate::support::process::start_binary;
use crate::support::upstream::{API_KEY, FakeUpstream, Reply};

fn run_with_bad(var: &str, value: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_llm-observability"))
        .env_clear()
        .env(var, value)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_value_stops_start_up_with_one_line_naming_the_variable() {
    for (var, value, accepted) in [
        ("APP_PORT", "abc", "port number"),
        ("LLM_TIMEOUT_SECS", "-1", "seconds"),
        ("LLM_PROVIDER", "foo", "groq, openai or simulated"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "carrier-pigeon",
            "http/protobuf or grpc",
        ),
    ] {
        let (code, stderr) = run_with_bad(var, value);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr}");
        assert!(
            lines[0].contains(var) && lines[0].contains(value) && lines[0].contains(accepted),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn logs_are_json_with_trace_ids_and_never_contain_the_key() {
    let upstream = FakeUpstream::start().await;
    upstream.script([Reply::groq_error(
        401,
        &format!("Invalid API Key {API_KEY}"),
        "invalid_api_key",
    )]);
    let mut service = start_binary(&[
        ("GROQ_API_KEY", API_KEY),
        ("GROQ_BASE_URL", &upstream.base_url()),
        ("RUST_LOG", "debug"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);

    let failed = service.chat(json!({"prompt": "hi"})).await;
    assert_eq!(failed.status(), 502);
    let ok = service.chat(json!({"prompt": "hi"})).await;
    assert_eq!(ok.status(), 200);
    let trace_id = ok.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body["trace_id"],
        trace_id.as_str(),
        "trace ids exist even with export disabled"
    );
    service.signal("TERM");
    assert_eq!(service.wait_exit(Duration::from_secs(10)), 0);

    let log = service.log();
    assert!(
        !log.contains(API_KEY) && !log.contains("gsk_test"),
        "key in logs:\n{log}"
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let completed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request completed")
        .collect();
    assert_eq!(completed.len(), 2, "one log line per request:\n{log}");
    let ok_line = completed[1];
    assert_eq!(ok_line["fields"]["status"], 200);
    assert_eq!(ok_line["fields"]["model"], "llama-3.1-8b-instant");
    assert_eq!(ok_line["fields"]["input_tokens"], 12);
    assert_eq!(ok_line["fields"]["output_tokens"], 34);
    assert_eq!(ok_line["span"]["trace_id"], trace_id.as_str());
    assert_eq!(ok_line["span"]["span_id"].as_str().unwrap().len(), 16);
    // Every line logged inside a request (the failed call's warning and the retry debug lines
    // included) carries the request span with the trace and span ids.
    let in_request: Vec<&Value> = lines.iter().filter(|l| l["span"].is_object()).collect();
    assert!(in_request.len() > 2, "{log}");
    for line in in_request {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert!(
            line["span"]["trace_id"].is_string() && line["span"]["span_id"].is_string(),
            "{line}"
        );
    }
    assert!(
        log.contains("simulated") || log.contains("listening"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_and_flushes_its_spans() {
    let upstream = FakeUpstream::start().await;
    upstream.script([Reply::Delay(Duration::from_millis(800))]);
    let mut service = start_binary(&[
        ("GROQ_API_KEY", API_KEY),
        ("GROQ_BASE_URL", &upstream.base_url()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &otlp().traces_endpoint(),
        ),
        // Longer than the test: only the shutdown flush can deliver the spans in time.
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
    ]);
    let url = service.url("/api/chat");

    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({"prompt": "slow"}))
            .send()
            .await
            .unwrap()
    });
    while upstream.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.signal("TERM");

    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(service.wait_exit(Duration::from_secs(10)), 0);
    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    // server -> chat -> HTTP client, with the binary's own log set-up (RUST_LOG=info, JSON),
    // whose log-only span must neither be exported nor break the parent chain.
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| panic!("no {name} span"))
    };
    let (server, chat, http) = (
        named("POST /api/chat"),
        named("chat llama-3.1-8b-instant"),
        named("POST"),
    );
    assert_eq!(spans.len(), 3);
    assert!(server.span.parent_span_id.is_empty());
    assert_eq!(chat.span.parent_span_id, server.span.span_id);
    assert_eq!(http.span.parent_span_id, chat.span.span_id);
    assert!(
        spans
            .iter()
            .all(|s| crate::support::otlp::attr(&s.resource, "service.name")
                == Some(json!("llm-observability-api")))
    );
}

#[tokio::test]
async fn with_the_collector_down_200_requests_all_succeed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
    ]);

    for i in 0..200 {
        let response = service
            .chat(json!({"prompt": format!("request {i}")}))
            .await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", service.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"llm_requests_total{model="llama-3.1-8b-instant",provider="simulated",status="ok"} 200"#), "{metrics}");
    service.signal("TERM");
    assert_eq!(service.wait_exit(Duration::from_secs(30)), 0);
    let failures = service
        .log()
        .matches("exporting spans to the OTLP collector failed")
        .count();
    assert!(
        (1..=2).contains(&failures),
        "export errors must be logged rate-limited, got {failures}"
    );
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub(crate) async fn span_outcomes(
    service: &crate::support::process::ServiceProcess,
) -> (f64, f64, f64) {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", service.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let get = |outcome| {
        crate::support::prometheus::sample(
            &text,
            "llm_gateway_spans_total",
            &[("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    (get("exported"), get("failed"), get("dropped"))
}

pub(crate) async fn chat_ok(service: &crate::support::process::ServiceProcess) -> String {
    let response = service.chat(json!({"prompt": "hi"})).await;
    assert_eq!(response.status(), 200);
    response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn when_the_collector_comes_back_spans_flow_again() {
    let port = free_port();
    let service = start_binary(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("http://127.0.0.1:{port}/v1/traces"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);

    for _ in 0..20 {
        chat_ok(&service).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while span_outcomes(&service).await.1 == 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "export failures were never counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let collector = crate::support::otlp::OtlpReceiver::start_on(port);
    let trace_id = chat_ok(&service).await;
    // The simulated provider makes no HTTP call: a server span and a chat span.
    let spans = collector.wait_for_trace(&trace_id, 2).await;
    assert!(
        spans
            .iter()
            .any(|s| s.span.name == "chat llama-3.1-8b-instant")
    );
    assert!(span_outcomes(&service).await.0 >= 2.0);
}

#[tokio::test]
async fn a_collector_that_never_answers_costs_requests_nothing_and_the_queue_stays_bounded() {
    // Accepts connections and never answers: every export waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let queue = 16;
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", &queue.to_string()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
    ]);

    let requests = 100;
    for _ in 0..requests {
        chat_ok(&service).await;
    }

    // Two spans a request (server, chat); at most `queue` of them wait, the rest are dropped.
    let (exported, _, dropped) = span_outcomes(&service).await;
    assert_eq!(exported, 0.0);
    assert_eq!(dropped, (2 * requests - queue) as f64);
    held.abort();
}

#[tokio::test]
async fn a_collector_answering_500_is_counted_as_failed_export_and_requests_succeed() {
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", failing.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "collector broke",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(failing, app).await });
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);

    for _ in 0..30 {
        chat_ok(&service).await;
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (exported, failed, _) = span_outcomes(&service).await;
        assert_eq!(exported, 0.0);
        if failed == 60.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failed exports: {failed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a test collector saw of one export attempt.
#[derive(Debug, Clone)]
struct Attempt {
    status: u16,
    authorization: Option<String>,
    tenant: Option<String>,
    gzip: bool,
    span_names: Vec<String>,
}

#[tokio::test]
async fn a_throttling_collector_gets_the_batch_again_gzipped_with_the_configured_headers() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let seen = attempts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                let gzip = header("content-encoding").as_deref() == Some("gzip");
                let mut plain = Vec::new();
                if gzip {
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut plain)
                        .unwrap();
                } else {
                    plain = body.to_vec();
                }
                let request = ExportTraceServiceRequest::decode(&plain[..]).unwrap();
                let span_names = request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                    .map(|s| s.name.clone())
                    .collect();
                let mut attempts = seen.lock().unwrap();
                // The first two attempts are throttled, one with a Retry-After.
                let status = if attempts.len() < 2 { 503 } else { 200 };
                attempts.push(Attempt {
                    status,
                    authorization: header("authorization"),
                    tenant: header("x-tenant"),
                    gzip,
                    span_names,
                });
                let code = axum::http::StatusCode::from_u16(status).unwrap();
                (code, [("retry-after", "0")], Vec::<u8>::new())
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20collector-token-123,x-tenant=team-a",
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ]);

    chat_ok(&service).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while span_outcomes(&service).await.0 < 2.0 {
        assert!(std::time::Instant::now() < deadline, "{attempts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (exported, failed, dropped) = span_outcomes(&service).await;
    assert_eq!((exported, failed, dropped), (2.0, 0.0, 0.0));
    let attempts = attempts.lock().unwrap().clone();
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    for attempt in &attempts {
        assert!(attempt.gzip);
        assert_eq!(
            attempt.authorization.as_deref(),
            Some("Bearer collector-token-123")
        );
        assert_eq!(attempt.tenant.as_deref(), Some("team-a"));
        let mut names = attempt.span_names.clone();
        names.sort();
        assert_eq!(names, ["POST /api/chat", "chat llama-3.1-8b-instant"]);
    }
    // The token is a credential: never in the logs.
    let logs = service.log();
    assert!(!logs.contains("collector-token-123"), "{logs}");
}

#[tokio::test]
async fn spans_a_collector_refuses_in_a_partial_success_are_counted_as_failed_and_logged() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    // Accepts every request (200) but refuses every span in it, as OTLP partial success.
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: spans as i64,
                    error_message: "quota exceeded for tenant".into(),
                }),
            }
            .encode_to_vec()
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);

    chat_ok(&service).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while span_outcomes(&service).await.1 < 2.0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(span_outcomes(&service).await, (0.0, 2.0, 0.0));
    let log = service.log();
    assert!(
        log.contains("the collector refused spans: quota exceeded for tenant"),
        "{log}"
    );
}

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn sigterm_under_load_completes_every_request_and_exits_0() {
    let upstream = FakeUpstream::start().await;
    let in_flight = 40;
    upstream.script((0..in_flight).map(|_| Reply::Delay(Duration::from_millis(600))));
    let mut service = start_binary(&[
        ("GROQ_API_KEY", API_KEY),
        ("GROQ_BASE_URL", &upstream.base_url()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &otlp().traces_endpoint(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("SHUTDOWN_GRACE_SECS", "10"),
    ]);
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..in_flight)
        .map(|i| {
            let request = client
                .post(service.url("/api/chat"))
                .json(&json!({"prompt": format!("load {i}")}));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    while upstream.received().len() < in_flight {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    service.signal("TERM");
    let mut trace_ids = Vec::new();
    for request in requests {
        let response = request
            .await
            .unwrap()
            .expect("in-flight requests are answered, not dropped");
        assert_eq!(response.status(), 200);
        trace_ids.push(
            response.headers()["x-trace-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }

    assert_eq!(service.wait_exit(Duration::from_secs(15)), 0);
    // Every request's spans were flushed at shutdown (the schedule delay is a minute).
    for trace_id in trace_ids {
        otlp().wait_for_trace(&trace_id, 3).await;
    }
}

#[tokio::test]
async fn a_10_mb_stream_is_relayed_with_flat_memory() {
    let upstream = FakeUpstream::start().await;
    let chunk_bytes = 4096;
    let chunks = 10 * 1024 * 1024 / chunk_bytes;
    let service = start_binary(&[
        ("GROQ_API_KEY", API_KEY),
        ("GROQ_BASE_URL", &upstream.base_url()),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    let client = reqwest::Client::new();
    // Warm up: the first request allocates pools, TLS-free HTTP client state, metric series.
    let warm = service.chat(json!({"prompt": "warm"})).await;
    assert_eq!(warm.status(), 200);
    let before = peak_rss_kib(service.child.id());
    upstream.script([Reply::Stream {
        chunks,
        chunk_bytes,
        delay: Duration::ZERO,
    }]);

    let response = client
        .post(service.url("/v1/chat/completions"))
        .json(&json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "long"}]}))
        .send()
        .await
        .unwrap();
    let mut received = 0usize;
    let mut body = response.bytes_stream();
    while let Some(bytes) = body.next().await {
        received += bytes.unwrap().len();
    }

    let after = peak_rss_kib(service.child.id());
    assert!(received > 10 * 1024 * 1024, "received {received} bytes");
    println!(
        "10 MB stream: peak RSS {before} KiB before, {after} KiB after (+{} KiB)",
        after - before
    );
    // Buffering the answer would add at least its 10 MB; relaying it chunk by chunk adds little.
    assert!(
        after - before < 4 * 1024,
        "peak RSS grew by {} KiB",
        after - before
    );
}

/// The rotel collector's binary (PyPI `rotel`, installed by scripts/test.sh in .venv-rotel).
fn rotel_agent() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("ROTEL_AGENT") {
        return path.into();
    }
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-rotel/lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no rotel-agent under {} (scripts/test.sh installs it)",
                lib.display()
            )
        })
}

#[tokio::test]
async fn spans_arrive_over_otlp_grpc_through_a_real_collector_hop() {
    let receiver = crate::support::otlp::OtlpReceiver::start();
    let (grpc_port, http_port) = (free_port(), free_port());
    let pid_file =
        std::env::temp_dir().join(format!("rotel-{}-{grpc_port}.pid", std::process::id()));
    let mut collector = Command::new(rotel_agent())
        .args([
            "start",
            "--exporter",
            "otlp",
            "--otlp-exporter-protocol",
            "http",
        ])
        .arg("--otlp-grpc-endpoint")
        .arg(format!("127.0.0.1:{grpc_port}"))
        .arg("--otlp-http-endpoint")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--otlp-exporter-endpoint")
        .arg(format!("http://{}", receiver.addr))
        .arg("--pid-file")
        .arg(&pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", grpc_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the collector did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{grpc_port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);

    let trace_id = chat_ok(&service).await;

    let spans = receiver.wait_for_trace(&trace_id, 2).await;
    let chat = spans
        .iter()
        .find(|s| s.span.name == "chat llama-3.1-8b-instant")
        .expect("chat span");
    assert_eq!(
        crate::support::otlp::attr(&chat.span.attributes, "gen_ai.provider.name"),
        Some(json!("simulated"))
    );
    let _ = collector.kill();
    let _ = collector.wait();
    let _ = std::fs::remove_file(pid_file);
}
