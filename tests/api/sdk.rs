//! The official OpenAI and Groq Python SDKs, pointed at the gateway by base URL only, are the
//! judge of compatibility (tests/sdk/check_sdks.py). Every call they make is observed.

use std::process::Command;

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::prometheus::sample;
use crate::support::upstream::FakeUpstream;

/// The Python with `openai` and `groq` installed: `SDK_PYTHON`, else the venv that
/// scripts/test.sh creates.
fn sdk_python() -> String {
    std::env::var("SDK_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-sdk/bin/python").to_owned())
}

/// The upstream model of the SDK checks' successful calls.
const MODEL: &str = "llama-3.1-8b-instant";

/// Runs tests/sdk/check_sdks.py against the app (gateway key `sdk-test-key`), asking for
/// `model`; asserts every check passed and returns its output.
async fn run_sdk_checks(app: &TestApp, model: &str) -> String {
    let python = sdk_python();
    let url = format!("http://{}", app.addr);
    let model = model.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/check_sdks.py"))
            .env("GATEWAY_URL", url)
            .env("GATEWAY_KEY", "sdk-test-key")
            .env("GATEWAY_MODEL", model)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (scripts/test.sh creates .venv-sdk with openai and groq): {e}"))
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("10 passed, 0 failed"), "{stdout}");
    stdout
}

#[tokio::test]
async fn the_openai_and_groq_sdks_work_through_the_gateway_and_are_observed() {
    let app = spawn_app_with(&[
        ("GATEWAY_API_KEYS", "sdk-test-key"),
        ("LLM_MAX_RETRIES", "0"),
    ])
    .await;
    run_sdk_checks(&app, MODEL).await;

    // Every call that reached the upstream was counted: 6 successes (openai chat, stream, tool
    // call, JSON mode; groq chat, stream) and 2 rate-limited; the models list is no LLM call.
    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_requests_total",
            &[("provider", "groq"), ("model", MODEL), ("status", "ok")]
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "unknown"),
                ("error_type", "rate_limited")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "groq"),
                ("gen_ai_request_model", MODEL),
                ("gen_ai_response_model", MODEL),
                ("error_type", "")
            ]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_sdks_work_through_a_route_name_and_are_counted_under_the_configured_provider() {
    // The configuration file's provider is a fake of its own: the app's (the environment's
    // GROQ_BASE_URL) must receive nothing.
    let upstream = FakeUpstream::start().await;
    let config = write_config(&format!(
        r#"
[gateway]
# `rate-limited` is no route: it reaches the provider unchanged, as without a file.
default_provider = "team-groq"

[providers.team-groq]
kind = "groq"
base_url = "{}"

[routes.team-default]
targets = [{{ provider = "team-groq", model = "{MODEL}" }}]
"#,
        upstream.base_url()
    ));
    let app = spawn_app_with(&[
        ("GATEWAY_CONFIG", &config),
        ("GATEWAY_API_KEYS", "sdk-test-key"),
        ("LLM_MAX_RETRIES", "0"),
    ])
    .await;
    run_sdk_checks(&app, "team-default").await;

    // The route's 6 calls went out as its target's model, the 2 rate-limited ones unchanged.
    let mut sent: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or("").to_owned())
        .collect();
    sent.sort();
    let mut expected = vec![MODEL; 6];
    expected.extend(["rate-limited"; 2]);
    assert_eq!(sent, expected);
    assert!(app.upstream.received().is_empty());

    let text = app.scrape().await;
    let provider = ("provider", "team-groq");
    assert_eq!(
        sample(
            &text,
            "llm_requests_total",
            &[provider, ("model", MODEL), ("status", "ok")]
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_route_attempts_total",
            &[
                ("route", "team-default"),
                provider,
                ("model", MODEL),
                ("outcome", "ok")
            ]
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                provider,
                ("model", "unknown"),
                ("error_type", "rate_limited")
            ]
        ),
        Some(2.0)
    );
    // The kind's name is the GenAI provider name; the route's name is the requested model.
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "groq"),
                ("gen_ai_request_model", "team-default"),
                ("gen_ai_response_model", MODEL),
                ("error_type", "")
            ]
        ),
        Some(2.0)
    );
    // Nothing is counted under the kind's name as if it were the provider.
    assert_eq!(
        sample(
            &text,
            "llm_requests_total",
            &[("provider", "groq"), ("model", MODEL), ("status", "ok")]
        ),
        None
    );
}
