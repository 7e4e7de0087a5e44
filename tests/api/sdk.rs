//! The official OpenAI and Groq Python SDKs, pointed at the gateway by base URL only, are the
//! judge of compatibility (tests/sdk/check_sdks.py). Every call they make is observed.

use std::process::Command;

use crate::support::app::spawn_app_with;
use crate::support::prometheus::sample;

/// The Python with `openai` and `groq` installed: `SDK_PYTHON`, else the venv that
/// scripts/test.sh creates.
fn sdk_python() -> String {
    std::env::var("SDK_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-sdk/bin/python").to_owned())
}

#[tokio::test]
async fn the_openai_and_groq_sdks_work_through_the_gateway_and_are_observed() {
    let app = spawn_app_with(&[
        ("GATEWAY_API_KEYS", "sdk-test-key"),
        ("LLM_MAX_RETRIES", "0"),
    ])
    .await;
    let python = sdk_python();
    let url = format!("http://{}", app.addr);

    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/check_sdks.py"))
            .env("GATEWAY_URL", url)
            .env("GATEWAY_KEY", "sdk-test-key")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (scripts/test.sh creates .venv-sdk with openai and groq): {e}"))
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("10 passed, 0 failed"), "{stdout}");
    // Every call that reached the upstream was counted: 6 successes (openai chat, stream, tool
    // call, JSON mode; groq chat, stream) and 2 rate-limited; the models list is no LLM call.
    let text = app.scrape().await;
    let model = "llama-3.1-8b-instant";
    assert_eq!(
        sample(
            &text,
            "llm_requests_total",
            &[("provider", "groq"), ("model", model), ("status", "ok")]
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
                ("gen_ai_request_model", model),
                ("gen_ai_response_model", model),
                ("error_type", "")
            ]
        ),
        Some(2.0)
    );
}
