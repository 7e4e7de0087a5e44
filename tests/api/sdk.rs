//! The official SDKs, pointed at the gateway by base URL only, are the judge of compatibility:
//! OpenAI's and Groq's Python SDKs on chat (tests/sdk/check_sdks.py); OpenAI's and Anthropic's on
//! the Responses API, Embeddings, the Messages API and chat answered by Anthropic
//! (tests/sdk/check_apis.py); the Vercel AI SDK (tests/sdk/js/check_vercel.mjs). Every call they
//! make is observed.

use std::process::{Command, Output};

use llmobs_testkit::anthropic::{self as claude, ANTHROPIC_API_KEY};
use llmobs_testkit::upstream::{CHAT_PATH, EMBEDDINGS_PATH, RESPONSES_PATH};
use llmobs_testkit::{AnthropicReply, FakeAnthropic};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::prometheus::sample;
use crate::support::upstream::FakeUpstream;

/// The Python with `openai`, `groq` and `anthropic` installed: `SDK_PYTHON`, else the venv that
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

// ---------------------------------------------------------------- beyond chat: check_apis.py

/// The app of the API checks and the fakes behind it.
struct ApiApp {
    app: TestApp,
    /// Provider `oa` (kind openai): Responses API and Embeddings.
    openai: FakeUpstream,
    /// Provider `claude` (kind anthropic).
    anthropic: FakeAnthropic,
    /// Provider `claude-busy` (kind anthropic), scripted to answer one 429 (`retry-after: 30`).
    busy: FakeAnthropic,
}

/// The upstream model of the OpenAI-shaped route to Anthropic (`smart`).
const SMART_MODEL: &str = "claude-sonnet-4-5";

/// The app with a configuration file: providers `oa` (kind openai, a [`FakeUpstream`]),
/// `claude` and `claude-busy` (kind anthropic, a [`FakeAnthropic`] each), no retries; routes
/// `gpt-4o-mini` and `text-embedding-3-small` → oa, `claude-haiku-4-5` → claude, `smart` →
/// claude's [`SMART_MODEL`] (OpenAI chat answered by Anthropic), `claude-busy` → claude-busy.
/// The environment's Groq fake (`app.upstream`) is no provider of it.
async fn spawn_api_app() -> ApiApp {
    let openai = FakeUpstream::start().await;
    let anthropic = FakeAnthropic::start().await;
    let busy = FakeAnthropic::start().await;
    busy.script([AnthropicReply::rate_limited(30)]);
    let config = write_config(&format!(
        r#"
[providers.oa]
kind = "openai"
base_url = "{}"
api_key_env = "OPENAI_API_KEY"
max_retries = 0

[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key_env = "SDK_TEST_ANTHROPIC_KEY"
max_retries = 0

[providers.claude-busy]
kind = "anthropic"
base_url = "{}"
api_key_env = "SDK_TEST_ANTHROPIC_KEY"
max_retries = 0

[routes.gpt-4o-mini]
targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]

[routes.text-embedding-3-small]
targets = [{{ provider = "oa", model = "text-embedding-3-small" }}]

[routes.claude-haiku-4-5]
targets = [{{ provider = "claude", model = "claude-haiku-4-5" }}]

[routes.smart]
targets = [{{ provider = "claude", model = "{SMART_MODEL}" }}]

[routes.claude-busy]
targets = [{{ provider = "claude-busy", model = "claude-haiku-4-5" }}]
"#,
        openai.base_url(),
        anthropic.base_url(),
        busy.base_url(),
    ));
    let app = spawn_app_with(&[
        ("GATEWAY_CONFIG", &config),
        ("GATEWAY_API_KEYS", "sdk-test-key"),
        ("LLM_MAX_RETRIES", "0"),
        ("SDK_TEST_ANTHROPIC_KEY", ANTHROPIC_API_KEY),
    ])
    .await;
    ApiApp {
        app,
        openai,
        anthropic,
        busy,
    }
}

/// Runs `program args` against the app (`GATEWAY_URL`, `GATEWAY_KEY` `sdk-test-key`), without
/// any provider key of the test's own environment; returns its output.
async fn run_against(
    app: &TestApp,
    program: String,
    args: Vec<String>,
    hint: &'static str,
) -> Output {
    let url = format!("http://{}", app.addr);
    tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("GATEWAY_URL", url)
            .env("GATEWAY_KEY", "sdk-test-key")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("ANTHROPIC_BASE_URL")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} ({hint}): {e}"))
    })
    .await
    .unwrap()
}

/// Asserts the checks' process succeeded and printed `summary`.
fn assert_passed(output: &Output, summary: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(summary), "{stdout}");
}

#[tokio::test]
async fn the_openai_and_anthropic_sdks_work_on_responses_embeddings_and_messages_and_are_observed()
{
    let api = spawn_api_app().await;
    let output = run_against(
        &api.app,
        sdk_python(),
        vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/check_apis.py").to_owned()],
        "scripts/test.sh creates .venv-sdk with openai and anthropic",
    )
    .await;
    assert_passed(&output, "api checks: 18 passed, 0 failed");

    // What went upstream. OpenAI: 2 Responses calls (the second streamed) and 4 embeddings
    // calls (the SDK's default asks base64), each as its route's target model; no chat.
    let responses = api.openai.received_at(RESPONSES_PATH);
    let streamed: Vec<bool> = responses.iter().map(|r| r.body["stream"] == true).collect();
    assert_eq!(streamed, [false, true]);
    assert!(responses.iter().all(|r| r.body["model"] == "gpt-4o-mini"));
    let embeddings = api.openai.received_at(EMBEDDINGS_PATH);
    let formats: Vec<&str> = embeddings
        .iter()
        .map(|r| r.body["encoding_format"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(formats, ["base64", "base64", "float", "base64"]);
    assert_eq!(embeddings[3].body["dimensions"], 16);
    assert!(api.openai.received_at(CHAT_PATH).is_empty());
    assert!(
        api.app.upstream.received().is_empty(),
        "the environment's Groq is no provider"
    );
    // Anthropic: 5 Messages calls that passed (the 2 without a whole max_tokens were refused by
    // the gateway and never sent), 5 chat calls translated (as the `smart` route's model);
    // 1 count_tokens; the busy provider's one 429.
    let messages = api.anthropic.received_at(claude::MESSAGES_PATH);
    let models: Vec<&str> = messages
        .iter()
        .map(|r| r.body["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models.iter().filter(|m| **m == "claude-haiku-4-5").count(),
        5,
        "{models:?}"
    );
    assert_eq!(
        models.iter().filter(|m| **m == SMART_MODEL).count(),
        5,
        "{models:?}"
    );
    assert_eq!(
        messages
            .iter()
            .filter(|r| r.body.get("max_tokens").is_none())
            .count(),
        0
    );
    let count = api.anthropic.received_at(claude::COUNT_TOKENS_PATH);
    assert_eq!(count.len(), 1);
    assert_eq!(count[0].body["model"], "claude-haiku-4-5");
    assert_eq!(api.busy.received().len(), 1);
    // Every upstream request carried the provider's key, never the gateway's.
    for received in api.anthropic.received().iter().chain(&api.busy.received()) {
        assert_eq!(
            claude::api_key_of(&received.headers),
            Some(ANTHROPIC_API_KEY)
        );
        assert!(
            received
                .headers
                .values()
                .all(|v| v.as_bytes() != b"sdk-test-key" && v.as_bytes() != b"Bearer sdk-test-key"),
            "the gateway key went upstream: {:?}",
            received.headers
        );
    }

    let text = api.app.scrape().await;
    let count = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    let requests = |provider, model, status| {
        count(
            "llm_requests_total",
            &[("provider", provider), ("model", model), ("status", status)],
        )
    };
    // Calls: Responses 2 (whole, streamed); embeddings 4; Messages 5 answered (plain, x-api-key,
    // streamed, tool use, tool use streamed), and 2 refused by the gateway before any call (no
    // whole max_tokens: 422, no LLM call, no count); chat answered by
    // Anthropic 5 (plain, streamed with and without usage, tool call, tool call streamed); 1
    // rate-limited, counted under its route's name (the requested model). count_tokens is no
    // LLM call.
    assert_eq!(requests("oa", "gpt-4o-mini", "ok"), Some(2.0));
    assert_eq!(requests("oa", "text-embedding-3-small", "ok"), Some(4.0));
    assert_eq!(requests("claude", "claude-haiku-4-5", "ok"), Some(5.0));
    assert_eq!(requests("claude", "claude-haiku-4-5", "error"), None);
    assert_eq!(requests("claude", SMART_MODEL, "ok"), Some(5.0));
    assert_eq!(requests("claude", SMART_MODEL, "error"), None);
    assert_eq!(requests("claude-busy", "claude-busy", "error"), Some(1.0));
    assert_eq!(
        count(
            "llm_errors_total",
            &[
                ("provider", "claude"),
                ("model", "claude-haiku-4-5"),
                ("error_type", "upstream_client_error")
            ]
        ),
        None
    );
    assert_eq!(
        count(
            "llm_errors_total",
            &[
                ("provider", "claude-busy"),
                ("model", "claude-busy"),
                ("error_type", "rate_limited")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        count(
            "llm_gateway_rejections_total",
            &[("reason", "unauthorized")]
        ),
        Some(1.0),
        "the wrong x-api-key"
    );

    // Tokens. Responses: 15 + 11 in, 27 + 19 out. Embeddings: 3 + 3 + 3 + 2 words in, nothing
    // out. Anthropic, input including the cache tokens: a whole answer 25 + 7 + 11 = 43 in, 18
    // out; a stream 13 + 5 + 9 = 27 in, 21 out. Messages: 3 whole, 2 streamed; chat: 2 whole,
    // 3 streamed.
    let tokens = |provider, model, kind| {
        count(
            "llm_tokens_total",
            &[("provider", provider), ("model", model), ("type", kind)],
        )
    };
    assert_eq!(tokens("oa", "gpt-4o-mini", "input"), Some(26.0));
    assert_eq!(tokens("oa", "gpt-4o-mini", "output"), Some(46.0));
    assert_eq!(tokens("oa", "text-embedding-3-small", "input"), Some(11.0));
    assert_eq!(tokens("oa", "text-embedding-3-small", "output"), None);
    assert_eq!(
        tokens("claude", "claude-haiku-4-5", "input"),
        Some(3.0 * 43.0 + 2.0 * 27.0)
    );
    assert_eq!(
        tokens("claude", "claude-haiku-4-5", "output"),
        Some(3.0 * 18.0 + 2.0 * 21.0)
    );
    assert_eq!(
        tokens("claude", SMART_MODEL, "input"),
        Some(2.0 * 43.0 + 3.0 * 27.0)
    );
    assert_eq!(
        tokens("claude", SMART_MODEL, "output"),
        Some(2.0 * 18.0 + 3.0 * 21.0)
    );
    let embedding_usage = |series: &str, token_type| {
        count(
            series,
            &[
                ("gen_ai_operation_name", "embeddings"),
                ("gen_ai_provider_name", "openai"),
                ("gen_ai_request_model", "text-embedding-3-small"),
                ("gen_ai_response_model", "text-embedding-3-small"),
                ("error_type", ""),
                ("gen_ai_token_type", token_type),
            ],
        )
    };
    assert_eq!(
        embedding_usage("gen_ai_client_token_usage_count", "input"),
        Some(4.0)
    );
    assert_eq!(
        embedding_usage("gen_ai_client_token_usage_sum", "input"),
        Some(11.0)
    );
    assert_eq!(
        embedding_usage("gen_ai_client_token_usage_count", "output"),
        None,
        "no output tokens for embeddings"
    );
    // The route's name is the requested model; the kind's name the GenAI provider name.
    assert_eq!(
        count(
            "gen_ai_client_token_usage_sum",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "anthropic"),
                ("gen_ai_request_model", "smart"),
                ("gen_ai_response_model", SMART_MODEL),
                ("error_type", ""),
                ("gen_ai_token_type", "input"),
            ]
        ),
        Some(2.0 * 43.0 + 3.0 * 27.0)
    );

    // Route tries: one per call, none fell back.
    let attempts = |route, provider, model, outcome| {
        count(
            "llm_route_attempts_total",
            &[
                ("route", route),
                ("provider", provider),
                ("model", model),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        attempts("gpt-4o-mini", "oa", "gpt-4o-mini", "ok"),
        Some(2.0)
    );
    assert_eq!(
        attempts(
            "text-embedding-3-small",
            "oa",
            "text-embedding-3-small",
            "ok"
        ),
        Some(4.0)
    );
    assert_eq!(
        attempts("claude-haiku-4-5", "claude", "claude-haiku-4-5", "ok"),
        Some(5.0)
    );
    assert_eq!(
        attempts(
            "claude-haiku-4-5",
            "claude",
            "claude-haiku-4-5",
            "upstream_client_error"
        ),
        None
    );
    assert_eq!(attempts("smart", "claude", SMART_MODEL, "ok"), Some(5.0));
    assert_eq!(
        attempts(
            "claude-busy",
            "claude-busy",
            "claude-haiku-4-5",
            "rate_limited"
        ),
        Some(1.0)
    );
}

// ---------------------------------------------------------------- the Vercel AI SDK

/// `node`: `SDK_NODE`, else the one on the PATH.
fn sdk_node() -> String {
    std::env::var("SDK_NODE").unwrap_or_else(|_| "node".to_owned())
}

#[tokio::test]
async fn the_vercel_ai_sdk_works_through_the_gateway_on_the_responses_api_and_is_observed() {
    let js = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/js");
    assert!(
        std::path::Path::new(js)
            .join("node_modules/ai/package.json")
            .exists()
            && std::path::Path::new(js)
                .join("node_modules/@ai-sdk/openai/package.json")
                .exists(),
        "the Vercel AI SDK is not installed: run `npm ci --prefix tests/sdk/js` (scripts/test.sh does)"
    );
    let api = spawn_api_app().await;
    let output = run_against(
        &api.app,
        sdk_node(),
        vec![format!("{js}/check_vercel.mjs")],
        "Node.js 18 or later is needed (scripts/test.sh installs Debian's nodejs)",
    )
    .await;
    assert_passed(&output, "vercel checks: 4 passed, 0 failed");

    // `openai(model)` is the Responses API model: generateText and streamText went to
    // /responses (the second streamed), embed and embedMany to /embeddings, as floats.
    let responses = api.openai.received_at(RESPONSES_PATH);
    let streamed: Vec<bool> = responses.iter().map(|r| r.body["stream"] == true).collect();
    assert_eq!(streamed, [false, true]);
    assert!(responses.iter().all(|r| r.body["model"] == "gpt-4o-mini"));
    let embeddings = api.openai.received_at(EMBEDDINGS_PATH);
    assert_eq!(embeddings.len(), 2);
    assert!(embeddings.iter().all(
        |r| r.body["encoding_format"] == "float" && r.body["model"] == "text-embedding-3-small"
    ));
    assert!(api.openai.received_at(CHAT_PATH).is_empty());
    assert!(api.anthropic.received().is_empty());

    let text = api.app.scrape().await;
    let count = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    let provider = ("provider", "oa");
    assert_eq!(
        count(
            "llm_requests_total",
            &[provider, ("model", "gpt-4o-mini"), ("status", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        count(
            "llm_requests_total",
            &[
                provider,
                ("model", "text-embedding-3-small"),
                ("status", "ok")
            ]
        ),
        Some(2.0)
    );
    // Responses: 15 + 11 in, 27 + 19 out; embeddings: 2 + 3 words in.
    for (model, kind, tokens) in [
        ("gpt-4o-mini", "input", Some(26.0)),
        ("gpt-4o-mini", "output", Some(46.0)),
        ("text-embedding-3-small", "input", Some(5.0)),
        ("text-embedding-3-small", "output", None),
    ] {
        assert_eq!(
            count(
                "llm_tokens_total",
                &[provider, ("model", model), ("type", kind)]
            ),
            tokens,
            "{model} {kind}"
        );
    }
    assert_eq!(
        count(
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "openai"),
                ("gen_ai_request_model", "gpt-4o-mini"),
                ("gen_ai_response_model", "gpt-4o-mini"),
                ("error_type", "")
            ]
        ),
        Some(1.0),
        "streamText's one stream"
    );
    for (route, tries) in [("gpt-4o-mini", 2.0), ("text-embedding-3-small", 2.0)] {
        assert_eq!(
            count(
                "llm_route_attempts_total",
                &[
                    ("route", route),
                    provider,
                    ("model", route),
                    ("outcome", "ok")
                ]
            ),
            Some(tries),
            "{route}"
        );
    }
}

// ---------------------------------------------------------------- the response cache: check_cache.py

#[tokio::test]
async fn the_openai_sdk_parses_cache_hits_whole_and_replayed_as_streams() {
    let app = spawn_app_with(&[
        ("GATEWAY_API_KEYS", "sdk-test-key"),
        ("LLM_MAX_RETRIES", "0"),
        ("CACHE_ENABLED", "true"),
    ])
    .await;
    let output = run_against(
        &app,
        sdk_python(),
        vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/check_cache.py").to_owned()],
        "scripts/test.sh creates .venv-sdk with openai",
    )
    .await;
    assert_passed(&output, "6 passed, 0 failed");
    // Each check's first call went upstream, the repeats did not (no-store's three all did).
    assert_eq!(app.upstream.received().len(), 5 + 3);
    let text = app.scrape().await;
    for (result, count) in [("hit", 5.0), ("miss", 6.0), ("bypass", 2.0), ("error", 0.0)] {
        assert_eq!(
            sample(
                &text,
                "llm_cache_requests_total",
                &[("result", result), ("backend", "memory")]
            ),
            Some(count),
            "{result}"
        );
    }
}
