//! The configuration file (`GATEWAY_CONFIG`) in the real binary: a bad file stops start-up with
//! one line (exit 2) and never echoes a key; `SIGHUP` swaps a valid file in under load without
//! failing a request, and keeps the running configuration when the new file is invalid.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::write_config;
use crate::support::process::{ServiceProcess, run_binary_to_exit, start_binary};
use crate::support::prometheus::sample;
use crate::support::upstream::{API_KEY, FakeUpstream};

/// The key the start-up cases put in `GROQ_API_KEY`: it must never be printed.
const SECRET: &str = "gsk_secret_value";
/// The model the first configuration's route asks for.
const OLD_MODEL: &str = "llama-3.1-8b-instant";
/// The model the reloaded configuration's route asks for.
const NEW_MODEL: &str = "llama-3.3-70b-versatile";

// ---------------------------------------------------------------- start-up

/// What the one line after `invalid configuration file PATH: ` must be.
enum Problem {
    /// Exactly this.
    Is(&'static str),
    /// Starts with the first, and contains each of the rest.
    StartsWith(&'static str, &'static [&'static str]),
}

/// Runs the binary on `path` with a key in `GROQ_API_KEY` and checks that it exits 2 with one
/// line on stderr, naming the file and the problem, and nothing else anywhere.
fn assert_start_up_refused(case: &str, path: &str, problem: &Problem) {
    let exited = run_binary_to_exit(
        &[
            ("GATEWAY_CONFIG", path),
            ("GROQ_API_KEY", SECRET),
            ("OTEL_SDK_DISABLED", "true"),
        ],
        Duration::from_secs(20),
    );
    let output = format!("stdout:\n{}stderr:\n{}", exited.stdout, exited.stderr);
    assert_eq!(exited.code, 2, "{case}: exit code\n{output}");
    assert!(
        !output.contains(SECRET) && !output.contains("gsk_"),
        "{case}: a key was printed\n{output}"
    );
    assert_eq!(exited.stdout, "", "{case}: nothing on stdout\n{output}");
    let lines: Vec<&str> = exited.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: one line expected\n{output}");
    let prefix = format!("invalid configuration file {path}: ");
    let found = lines[0]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{case}: expected {prefix:?}…\n{output}"));
    match problem {
        Problem::Is(expected) => assert_eq!(found, *expected, "{case}"),
        Problem::StartsWith(start, parts) => {
            assert!(
                found.starts_with(start),
                "{case}: expected {start:?}…\n{output}"
            );
            for part in *parts {
                assert!(
                    found.contains(part),
                    "{case}: expected {part:?} in\n{output}"
                );
            }
        }
    }
}

#[test]
fn an_invalid_file_stops_start_up_with_one_line_naming_the_key_and_what_it_accepts() {
    const PROVIDER: &str =
        "[providers.fake]\nkind = \"groq\"\nbase_url = \"http://127.0.0.1:9/openai/v1\"\n";
    let cases: [(&str, String, Problem); 5] = [
        (
            "unknown provider in a route",
            format!(
                "{PROVIDER}[routes.chat]\ntargets = [{{ provider = \"nope\", model = \"m\" }}]\n"
            ),
            Problem::Is(
                "routes.chat.targets[0].provider = \"nope\": expected one of the providers: fake",
            ),
        ),
        (
            "key variable not set",
            format!("{PROVIDER}api_key_env = \"FAKE_API_KEY_NOT_SET\"\n"),
            Problem::Is(
                "providers.fake.api_key_env = \"FAKE_API_KEY_NOT_SET\": that variable is not set (expected it to hold the provider's key)",
            ),
        ),
        (
            "weight 0",
            format!(
                "{PROVIDER}[routes.chat]\nstrategy = \"weighted\"\ntargets = [\n  {{ provider = \"fake\", model = \"a\", weight = 2 }},\n  {{ provider = \"fake\", model = \"b\", weight = 0 }},\n]\n"
            ),
            Problem::Is("routes.chat.targets[1].weight = 0: expected a whole number >= 1"),
        ),
        (
            "unknown key",
            format!("{PROVIDER}timout_secs = 3\n"),
            Problem::StartsWith(
                "line 4, column 1: unknown field `timout_secs`, expected one of `kind`, ",
                &["`timeout_secs`", "`api_key_env`"],
            ),
        ),
        (
            "a key written in the file",
            format!("{PROVIDER}api_key = \"{SECRET}\"\n"),
            Problem::Is(
                "providers.fake.api_key: keys are not read from the file itself; expected api_key_env or api_key_file (or allow_inline_api_key = true)",
            ),
        ),
    ];
    for (case, toml, problem) in &cases {
        assert_start_up_refused(case, &write_config(toml), problem);
    }

    // Files that cannot be read: one that does not exist, and a directory.
    let missing = std::env::temp_dir().join(format!("llmobs-missing-{}.toml", std::process::id()));
    let _ = std::fs::remove_file(&missing);
    assert_start_up_refused(
        "missing file",
        missing.to_str().unwrap(),
        &Problem::StartsWith("cannot read: ", &["No such file or directory"]),
    );
    let directory = std::path::Path::new(&write_config(PROVIDER))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_start_up_refused(
        "a directory",
        &directory,
        &Problem::StartsWith("cannot read: ", &["Is a directory"]),
    );
}

/// A provider defined twice is a TOML duplicate table: the line must say where, and name which
/// provider (not just "duplicate key").
#[test]
fn a_duplicate_provider_stops_start_up_with_one_line_naming_it() {
    let path =
        write_config("[providers.fake]\nkind = \"groq\"\n[providers.fake]\nkind = \"openai\"\n");
    assert_start_up_refused(
        "duplicate provider",
        &path,
        &Problem::StartsWith("", &["line 3", "duplicate", "fake"]),
    );
}

// ---------------------------------------------------------------- SIGHUP

/// A configuration of groq-kind providers at fake upstreams, and routes of one target each:
/// `(route, provider, model)`.
fn config(providers: &[(&str, &FakeUpstream)], routes: &[(&str, &str, &str)]) -> String {
    let mut toml = String::new();
    for (name, upstream) in providers {
        toml += &format!(
            "[providers.{name}]\nkind = \"groq\"\nbase_url = \"{}\"\n\n",
            upstream.base_url()
        );
    }
    for (route, provider, model) in routes {
        toml += &format!(
            "[routes.{route}]\ntargets = [{{ provider = \"{provider}\", model = \"{model}\" }}]\n\n"
        );
    }
    toml
}

/// The binary on a configuration file, with the fakes' key and no retries (a failure shows).
fn start(path: &str) -> ServiceProcess {
    start_binary(&[
        ("GATEWAY_CONFIG", path),
        ("GROQ_API_KEY", API_KEY),
        ("LLM_MAX_RETRIES", "0"),
        ("OTEL_SDK_DISABLED", "true"),
    ])
}

/// The JSON log lines whose message is exactly `message`.
fn logged(service: &ServiceProcess, message: &str) -> Vec<Value> {
    service
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

/// Waits for a log line whose message is exactly `message`.
async fn wait_for_log(service: &ServiceProcess, message: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = logged(service, message).pop() {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line {message:?}:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /v1/chat/completions` for `model`: the status and the body.
async fn chat(client: &reqwest::Client, url: &str, model: &str) -> (u16, Value) {
    let response = client
        .post(url)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sequential requests until `stop`: each one's status and the model that answered it (for a
/// failure, its `error.type`). The first answer from [`NEW_MODEL`] counts the worker in
/// `switched`.
async fn load(
    url: String,
    stop: Arc<AtomicBool>,
    switched: Arc<AtomicUsize>,
) -> Vec<(u16, String)> {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut counted = false;
    while !stop.load(Ordering::Relaxed) {
        let (status, body) = chat(&client, &url, "chat").await;
        let model = body["model"]
            .as_str()
            .or(body["error"]["type"].as_str())
            .unwrap_or("")
            .to_owned();
        if model == NEW_MODEL && !counted {
            counted = true;
            switched.fetch_add(1, Ordering::SeqCst);
        }
        seen.push((status, model));
    }
    seen
}

/// Waits until `upstream` has received at least `count` requests.
async fn wait_for_requests(upstream: &FakeUpstream, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.received().len() < count {
        assert!(
            Instant::now() < deadline,
            "the upstream received {} requests, expected {count}",
            upstream.received().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The model of every request an upstream received.
fn models_received(upstream: &FakeUpstream) -> Vec<String> {
    upstream
        .received()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Concurrent clients of the load test.
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_swaps_in_a_valid_file_under_load_without_failing_a_request() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let path = write_config(&config(&[("a", &a)], &[("chat", "a", OLD_MODEL)]));
    let service = start(&path);
    let url = service.url("/v1/chat/completions");

    let stop = Arc::new(AtomicBool::new(false));
    let switched = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(load(url.clone(), stop.clone(), switched.clone())))
        .collect();
    wait_for_requests(&a, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    std::fs::write(
        &path,
        config(&[("a", &a), ("b", &b)], &[("chat", "b", NEW_MODEL)]),
    )
    .unwrap();
    assert!(b.received().is_empty(), "nothing routes to b before SIGHUP");
    service.signal("HUP");
    let reloaded = wait_for_log(&service, &format!("reloaded {path}: 2 providers, 1 routes")).await;
    assert_eq!(reloaded["level"], "INFO", "{reloaded}");
    // Calls that loaded the old configuration just before the swap finish on it; once every
    // worker (each sequential) has had an answer from b, none can still be on its way to a.
    let deadline = Instant::now() + Duration::from_secs(10);
    while switched.load(Ordering::SeqCst) < WORKERS {
        assert!(Instant::now() < deadline, "not every worker reached b");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a_settled = a.received().len();
    let b_settled = b.received().len();
    wait_for_requests(&b, b_settled + 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for worker in workers {
        seen.push(worker.await.unwrap());
    }

    let total: usize = seen.iter().map(Vec::len).sum();
    let failed: Vec<&(u16, String)> = seen.iter().flatten().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(
        a.received().len(),
        a_settled,
        "a still called after the reload"
    );
    assert!(b.received().len() >= b_settled + 20);
    assert!(models_received(&a).iter().all(|m| m == OLD_MODEL));
    assert!(models_received(&b).iter().all(|m| m == NEW_MODEL));
    assert_eq!(
        a.received().len() + b.received().len(),
        total,
        "one upstream call per request"
    );
    // Each client saw the old route's model, then only the new one: never back.
    for (i, answers) in seen.iter().enumerate() {
        let switch = answers
            .iter()
            .position(|(_, m)| m == NEW_MODEL)
            .unwrap_or_else(|| panic!("worker {i} never reached b"));
        assert!(switch > 0, "worker {i} never reached a");
        assert!(answers[..switch].iter().all(|(_, m)| m == OLD_MODEL));
        assert!(
            answers[switch..].iter().all(|(_, m)| m == NEW_MODEL),
            "worker {i} went back to a after reaching b"
        );
    }
    assert_eq!(
        logged(&service, &format!("reloaded {path}: 2 providers, 1 routes")).len(),
        1
    );
    assert!(!service.log().contains(API_KEY), "key in the log");
}

#[tokio::test]
async fn an_invalid_file_on_sighup_keeps_the_running_configuration() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let path = write_config(&config(&[("a", &a)], &[("chat", "a", OLD_MODEL)]));
    let service = start(&path);
    let url = service.url("/v1/chat/completions");
    let client = reqwest::Client::new();
    assert_eq!(chat(&client, &url, "chat").await.0, 200);

    // Valid TOML whose route names a provider the file does not define.
    std::fs::write(&path, config(&[("a", &a)], &[("chat", "gone", NEW_MODEL)])).unwrap();
    service.signal("HUP");
    let kept = format!(
        "configuration not reloaded, the running one is kept: invalid configuration file {path}: routes.chat.targets[0].provider = \"gone\": expected one of the providers: a"
    );
    let line = wait_for_log(&service, &kept).await;
    assert_eq!(line["level"], "ERROR", "{line}");
    for _ in 0..5 {
        let (status, body) = chat(&client, &url, "chat").await;
        assert_eq!((status, body["model"].as_str()), (200, Some(OLD_MODEL)));
    }
    assert_eq!(models_received(&a), vec![OLD_MODEL; 6]);

    // Not TOML at all: kept too, the problem located by line.
    std::fs::write(&path, "[providers.a\nkind = \"groq\"\n").unwrap();
    service.signal("HUP");
    let prefix = format!(
        "configuration not reloaded, the running one is kept: invalid configuration file {path}: line 1, column "
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !service.log().lines().any(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&prefix))
        })
    }) {
        assert!(
            Instant::now() < deadline,
            "no {prefix:?}…:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(chat(&client, &url, "chat").await.0, 200);
    assert_eq!(a.received().len(), 7);

    // A valid file again: the reloader still works after failures.
    std::fs::write(
        &path,
        config(&[("a", &a), ("b", &b)], &[("chat", "b", NEW_MODEL)]),
    )
    .unwrap();
    service.signal("HUP");
    wait_for_log(&service, &format!("reloaded {path}: 2 providers, 1 routes")).await;
    let (status, body) = chat(&client, &url, "chat").await;
    assert_eq!((status, body["model"].as_str()), (200, Some(NEW_MODEL)));
    assert_eq!(a.received().len(), 7);
    assert_eq!(models_received(&b), vec![NEW_MODEL]);
    assert_eq!(
        logged(&service, &kept).len(),
        1,
        "one line per failed reload"
    );
}

#[tokio::test]
async fn a_route_removed_on_reload_answers_404_model_not_found() {
    let a = FakeUpstream::start().await;
    let path = write_config(&config(
        &[("a", &a)],
        &[("chat", "a", OLD_MODEL), ("old", "a", NEW_MODEL)],
    ));
    let service = start(&path);
    let url = service.url("/v1/chat/completions");
    let client = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{}/metrics", service.metrics_port);
    let scrape = || async {
        reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let model_ids = || async {
        let list: Value = client
            .get(service.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let old_state = [("route", "old"), ("provider", "a"), ("model", NEW_MODEL)];

    let (status, body) = chat(&client, &url, "old").await;
    assert_eq!((status, body["model"].as_str()), (200, Some(NEW_MODEL)));
    assert!(model_ids().await.contains(&"old".to_owned()));
    assert_eq!(
        sample(&scrape().await, "llm_route_target_state", &old_state),
        Some(0.0)
    );

    std::fs::write(&path, config(&[("a", &a)], &[("chat", "a", OLD_MODEL)])).unwrap();
    service.signal("HUP");
    wait_for_log(&service, &format!("reloaded {path}: 1 providers, 1 routes")).await;

    let (status, body) = chat(&client, &url, "old").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "model_not_found", "{body}");
    assert_eq!(
        models_received(&a),
        vec![NEW_MODEL],
        "no call for a removed route"
    );
    let ids = model_ids().await;
    assert!(
        ids.contains(&"chat".to_owned()) && !ids.contains(&"old".to_owned()),
        "{ids:?}"
    );
    let text = scrape().await;
    assert_eq!(
        sample(&text, "llm_route_target_state", &old_state),
        None,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "llm_route_target_state",
            &[("route", "chat"), ("provider", "a"), ("model", OLD_MODEL)]
        ),
        Some(0.0)
    );
    assert_eq!(chat(&client, &url, "chat").await.0, 200);
}
