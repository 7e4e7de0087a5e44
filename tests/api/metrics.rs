//! The scraped `/metrics` exposition: exact counts under concurrency, names, labels, buckets.

use std::io::Write;
use std::process::{Command, Stdio};

use futures_util::future::join_all;
use serde_json::json;

use crate::support::app::{spawn_app, spawn_app_with, write_config};
use crate::support::prometheus::sample;
use crate::support::upstream::{FakeUpstream, Reply};

const OK: usize = 30;
const NOT_FOUND: usize = 7;
const RATE_LIMITED: usize = 5;

#[tokio::test]
async fn counters_and_histograms_are_exact_after_concurrent_successes_and_failures() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0")]).await;
    // The failures are queued first; concurrent requests take them in arrival order.
    app.upstream.script(
        std::iter::repeat_n(
            Reply::groq_error(404, "no such model", "model_not_found"),
            NOT_FOUND,
        )
        .chain(std::iter::repeat_n(
            Reply::groq_error(429, "slow down", "rate_limit_exceeded"),
            RATE_LIMITED,
        )),
    );

    let total = OK + NOT_FOUND + RATE_LIMITED;
    let statuses = join_all((0..total).map(|_| async {
        app.chat(json!({"prompt": "hi", "max_tokens": 64}))
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), OK);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), NOT_FOUND);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), RATE_LIMITED);

    let text = app.scrape().await;
    let model = "llama-3.1-8b-instant";
    let count = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };
    assert_eq!(
        count(
            "llm_requests_total",
            &[("provider", "groq"), ("model", model), ("status", "ok")]
        ),
        OK as f64
    );
    assert_eq!(
        count(
            "llm_requests_total",
            &[("provider", "groq"), ("model", model), ("status", "error")]
        ),
        (NOT_FOUND + RATE_LIMITED) as f64
    );
    assert_eq!(
        count(
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", model),
                ("error_type", "upstream_client_error")
            ]
        ),
        NOT_FOUND as f64
    );
    assert_eq!(
        count(
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", model),
                ("error_type", "rate_limited")
            ]
        ),
        RATE_LIMITED as f64
    );
    assert_eq!(
        count(
            "llm_tokens_total",
            &[("provider", "groq"), ("model", model), ("type", "input")]
        ),
        (OK * 12) as f64
    );
    assert_eq!(
        count(
            "llm_tokens_total",
            &[("provider", "groq"), ("model", model), ("type", "output")]
        ),
        (OK * 34) as f64
    );
    let cost = count(
        "llm_cost_usd_total",
        &[("provider", "groq"), ("model", model)],
    );
    let expected_cost = OK as f64 * (12.0 * 0.05 + 34.0 * 0.08) / 1e6;
    assert!(
        (cost - expected_cost).abs() < 1e-12,
        "{cost} vs {expected_cost}"
    );
    assert_eq!(
        count("llm_requests_in_flight", &[("provider", "groq")]),
        0.0
    );

    let ok_labels = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "groq"),
        ("gen_ai_request_model", model),
        ("gen_ai_response_model", model),
        ("error_type", ""),
    ];
    assert_eq!(
        count("gen_ai_client_operation_duration_seconds_count", &ok_labels),
        OK as f64
    );
    let mut le = ok_labels.to_vec();
    le.push(("le", "+Inf"));
    assert_eq!(
        count("gen_ai_client_operation_duration_seconds_bucket", &le),
        OK as f64
    );
    let err_labels = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "groq"),
        ("gen_ai_request_model", model),
        ("gen_ai_response_model", ""),
        ("error_type", "rate_limited"),
    ];
    assert_eq!(
        count(
            "gen_ai_client_operation_duration_seconds_count",
            &err_labels
        ),
        RATE_LIMITED as f64
    );
    for (kind, per_call) in [("input", 12), ("output", 34)] {
        let mut labels = ok_labels.to_vec();
        labels.push(("gen_ai_token_type", kind));
        assert_eq!(count("gen_ai_client_token_usage_count", &labels), OK as f64);
        assert_eq!(
            count("gen_ai_client_token_usage_sum", &labels),
            (OK * per_call) as f64
        );
    }
    let http = [
        ("http_request_method", "POST"),
        ("http_route", "/api/chat"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(
        count("http_server_request_duration_seconds_count", &http),
        OK as f64
    );
    let http_429 = [
        ("http_request_method", "POST"),
        ("http_route", "/api/chat"),
        ("http_response_status_code", "429"),
    ];
    assert_eq!(
        count("http_server_request_duration_seconds_count", &http_429),
        RATE_LIMITED as f64
    );
    assert_eq!(
        count(
            "llm_gateway_overhead_seconds_count",
            &[("provider", "groq")]
        ),
        total as f64
    );
    assert_eq!(
        count(
            "llm_provider_ratelimit_remaining",
            &[("provider", "groq"), ("kind", "requests")]
        ),
        14399.0
    );
    assert_eq!(
        count(
            "llm_provider_ratelimit_remaining",
            &[("provider", "groq"), ("kind", "tokens")]
        ),
        5954.0
    );
    assert!(count("process_resident_memory_bytes", &[]) > 0.0);
    assert!(count("process_open_fds", &[]) > 0.0);
}

#[tokio::test]
async fn histograms_use_the_semantic_convention_buckets() {
    let app = spawn_app().await;
    app.chat(json!({"prompt": "hi"})).await;

    let text = app.scrape().await;

    let buckets = |name: &str| -> Vec<String> {
        let mut seen = Vec::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        {
            let le = line
                .split("le=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            if !seen.contains(&le) {
                seen.push(le);
            }
        }
        seen
    };
    assert_eq!(
        buckets("gen_ai_client_operation_duration_seconds"),
        [
            "0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64", "1.28", "2.56", "5.12",
            "10.24", "20.48", "40.96", "81.92", "+Inf"
        ]
    );
    assert_eq!(
        buckets("gen_ai_client_token_usage"),
        [
            "1", "4", "16", "64", "256", "1024", "4096", "16384", "65536", "262144", "1048576",
            "4194304", "16777216", "67108864", "+Inf"
        ]
    );
    assert_eq!(
        buckets("http_server_request_duration_seconds"),
        [
            "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5",
            "5", "7.5", "10", "+Inf"
        ]
    );
    assert_eq!(
        buckets("llm_gateway_overhead_seconds")
            .first()
            .map(String::as_str),
        Some("0.00005")
    );
    assert_eq!(buckets("llm_gateway_overhead_seconds").len(), 12);
}

#[tokio::test]
async fn an_unknown_model_that_fails_is_labelled_unknown_not_free_text() {
    let app = spawn_app().await;
    app.upstream
        .script([Reply::groq_error(404, "no such model", "model_not_found")]);

    app.chat(json!({"prompt": "hi", "model": "made-up-model-4711"}))
        .await;

    let text = app.scrape().await;
    assert!(
        !text.contains("made-up-model-4711"),
        "free text became a label"
    );
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "unknown"),
                ("error_type", "upstream_client_error")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_exposition_passes_promtool_check_metrics() {
    let app = spawn_app().await;
    app.upstream.script([
        Reply::groq_error(500, "boom", "x"),
        Reply::groq_error(500, "boom", "x"),
        Reply::groq_error(500, "boom", "x"),
    ]);
    app.chat(json!({"prompt": "hi"})).await;
    app.chat(json!({"prompt": "hi"})).await;
    let text = app.scrape().await;

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();

    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every metric family in DESIGN's table.
const FAMILIES: &[&str] = &[
    "llm_requests_total",
    "llm_tokens_total",
    "llm_cost_usd_total",
    "llm_errors_total",
    "llm_requests_in_flight",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_token_usage",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "gen_ai_client_operation_time_per_output_chunk_seconds",
    "http_server_request_duration_seconds",
    "llm_gateway_overhead_seconds",
    "llm_provider_ratelimit_remaining",
    "llm_fallbacks_total",
    "llm_route_attempts_total",
    "llm_route_target_state",
    "llm_cache_requests_total",
    "llm_cache_saved_tokens_total",
    "llm_cache_saved_cost_usd_total",
    "llm_cache_lookup_duration_seconds",
    "llm_cache_write_errors_total",
    "llm_cache_entries",
    "llm_cache_bytes",
    "llm_spend_usd_total",
    "llm_budget_usd",
    "llm_budget_remaining_usd",
    "llm_key_rejections_total",
    "llm_ledger_errors_total",
    "llm_ledger_pending_usd",
    "llm_feedback_total",
    "llm_feedback_score",
    "llm_prompt_requests_total",
    "llm_prompt_tokens_total",
    "llm_prompt_cost_usd_total",
    "llm_prompt_duration_seconds",
    "llm_variant_requests_total",
    "llm_variant_tokens_total",
    "llm_variant_cost_usd_total",
    "llm_variant_duration_seconds",
    "llm_prompt_feedback_score",
    "llm_variant_feedback_score",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
];

#[tokio::test]
async fn every_family_is_exported_after_every_kind_of_call_and_the_scrape_is_kept_for_the_stack_checks()
 {
    // A routing file, so that the routing families have samples too: the default provider
    // answers plain names as the environment's one provider would; route `r` falls back.
    let upstream = FakeUpstream::start().await;
    let config = write_config(&format!(
        r#"
        [gateway]
        default_provider = "groq"
        [providers.groq]
        kind = "groq"
        base_url = "{url}"
        [providers.backup]
        kind = "openai_compatible"
        base_url = "{url}"
        [routes.r]
        targets = [{{ provider = "groq", model = "m1" }}, {{ provider = "backup", model = "m2" }}]
        [routes.w]
        strategy = "weighted"
        targets = [{{ provider = "groq", model = "llama-3.1-8b-instant", variant = "a" }}]
        [prompts]
        support = ["v1"]
        [teams.t]
        monthly_budget_usd = 10
        [keys.k]
        sha256 = "{sha}"
        team = "t"
        daily_budget_usd = 1
        models = ["r", "w", "llama-3.1-8b-instant"]
        "#,
        url = upstream.base_url(),
        sha = llm_observability::config::hex(&llm_observability::config::digest_of("sk-k")),
    ));
    // The in-process cache, so that its families have samples too (a hit below).
    let app = spawn_app_with(&[
        ("LLM_MAX_RETRIES", "0"),
        ("GATEWAY_CONFIG", &config),
        ("CACHE_ENABLED", "true"),
    ])
    .await;
    upstream.script([
        Reply::Ok,
        Reply::groq_error(500, "boom", "x"),
        Reply::Ok,
        Reply::groq_error(503, "busy", "x"),
    ]);
    // Every call with the key `k` (and its team `t`), so that the keys' families have samples.
    let chat = |body: serde_json::Value| {
        app.client
            .post(app.url("/api/chat"))
            .bearer_auth("sk-k")
            .json(&body)
            .send()
    };
    chat(json!({"prompt": "ok"})).await.unwrap();
    chat(json!({"prompt": "fails"})).await.unwrap();
    chat(json!({"prompt": "streams", "stream": true}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let routed = chat(json!({"prompt": "falls back", "model": "r"}))
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);
    let scored = app
        .client
        .post(app.url("/v1/feedback"))
        .bearer_auth("sk-k")
        .json(&json!({"trace_id": routed.headers()["x-trace-id"].to_str().unwrap(), "name": "helpfulness", "score": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    // A variant of a weighted route, and a call naming its prompt version.
    let variant = chat(json!({"prompt": "variant", "model": "w"}))
        .await
        .unwrap();
    assert_eq!(variant.status(), 200);
    let prompted = app
        .client
        .post(app.url("/api/chat"))
        .bearer_auth("sk-k")
        .header("x-llmobs-prompt", "support@v1")
        .json(&json!({"prompt": "tagged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(prompted.status(), 200);
    for scored in [&variant, &prompted] {
        let trace = scored.headers()["x-trace-id"].to_str().unwrap();
        let feedback = app
            .client
            .post(app.url("/v1/feedback"))
            .bearer_auth("sk-k")
            .json(&json!({"trace_id": trace, "name": "helpfulness", "score": 3}))
            .send()
            .await
            .unwrap();
        assert_eq!(feedback.status(), 200);
    }
    let cached = chat(json!({"prompt": "ok"})).await.unwrap();
    assert_eq!(cached.headers()["x-llmobs-cache"], "hit");
    let refused = chat(json!({"prompt": "no", "model": "other"}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let text = app.scrape().await;

    for family in FAMILIES {
        let with_samples = text
            .lines()
            .any(|l| !l.starts_with('#') && l.starts_with(family));
        assert!(with_samples, "{family} has no samples in\n{text}");
    }
    // scripts/test.sh checks the dashboard's and alerts' metric names against this real scrape.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stack-check-metrics.txt");
    std::fs::write(&path, &text).unwrap();
}
