//! Several providers behind one model name (`GATEWAY_CONFIG`): fallback on each documented
//! failure with its exact spans and metrics, no fallback on a client's error, streams, weights,
//! latency, circuit breakers, direct addressing and its collisions, the model list and prices.
//! Every provider is a real HTTP fake speaking Groq's wire format (or the simulated provider).

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;
use crate::support::upstream::{FakeUpstream, Reply, STREAM_USAGE};

/// A fake provider of kind `groq` (key from GROQ_API_KEY) or `openai_compatible` (no key).
fn provider(name: &str, kind: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\nmax_retries = 0\n{extra}\n"
    )
}

/// `primary` (Groq-kind, fake A) then `backup` (OpenAI-compatible, fake B), route `r` serving
/// `m-a` at A and `m-b` at B, in that order.
fn two_providers(a: &str, b: &str, extra_a: &str, route_extra: &str) -> String {
    format!(
        "{}{}[routes.r]\ntargets = [{{ provider = \"primary\", model = \"m-a\" }}, {{ provider = \"backup\", model = \"m-b\" }}]\n{route_extra}\n",
        provider("primary", "groq", a, extra_a),
        provider("backup", "openai_compatible", b, ""),
    )
}

async fn spawn_routed(toml: &str) -> TestApp {
    let path = write_config(toml);
    spawn_app_with(&[("GATEWAY_CONFIG", &path)]).await
}

async fn openai_chat(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn trace_id(response: &reqwest::Response) -> String {
    response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The chat span and its HTTP attempt spans, in start order.
fn call_spans(spans: &[ExportedSpan], model: &str) -> (ExportedSpan, Vec<ExportedSpan>) {
    let name = format!("chat {model}");
    let chat = spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no {name} span"))
        .clone();
    let mut attempts: Vec<ExportedSpan> = spans
        .iter()
        .filter(|s| s.span.name == "POST" && s.span.parent_span_id == chat.span.span_id)
        .cloned()
        .collect();
    attempts.sort_by_key(|s| s.span.start_time_unix_nano);
    (chat, attempts)
}

fn event<'a>(span: &'a ExportedSpan, name: &str) -> Vec<&'a Event> {
    span.span.events.iter().filter(|e| e.name == name).collect()
}

/// A port nothing listens on.
fn refused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/openai/v1")
}

#[tokio::test]
async fn each_documented_failure_falls_back_to_the_next_target_and_every_attempt_is_traced() {
    // (case, reply of the first target or None for a refused connection, error.type, the first
    // attempt's HTTP status)
    let cases: [(&str, Option<Reply>, &str, Option<i64>); 4] = [
        (
            "429",
            Some(Reply::groq_error(
                429,
                "Rate limit reached",
                "rate_limit_exceeded",
            )),
            "rate_limited",
            Some(429),
        ),
        (
            "503",
            Some(Reply::Status {
                status: 503,
                body: "{}".into(),
                headers: vec![],
            }),
            "upstream_server_error",
            Some(503),
        ),
        (
            "timeout",
            Some(Reply::Delay(Duration::from_secs(3))),
            "timeout",
            None,
        ),
        ("refused", None, "connection_error", None),
    ];
    for (case, reply, reason, status) in cases {
        let a = FakeUpstream::start().await;
        let b = FakeUpstream::start().await;
        let a_url = match &reply {
            Some(_) => a.base_url(),
            None => refused_base_url(),
        };
        if let Some(reply) = reply {
            a.script([reply]);
        }
        let app = spawn_routed(&two_providers(
            &a_url,
            &b.base_url(),
            "timeout_secs = 0.5",
            "",
        ))
        .await;

        let response = openai_chat(&app, hi("r")).await;
        assert_eq!(response.status(), 200, "{case}");
        let trace = trace_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"], "m-b", "{case}: B answered as its own model");
        let sent = b.received();
        assert_eq!(sent.len(), 1, "{case}");
        assert_eq!(
            sent[0].body["model"], "m-b",
            "{case}: B was asked for its model"
        );
        if status.is_some() {
            assert_eq!(a.received()[0].body["model"], "m-a", "{case}");
        }

        let spans = otlp().wait_for_trace(&trace, 4).await;
        let (chat, attempts) = call_spans(&spans, "r");
        let c = &chat.span.attributes;
        for (key, value) in [
            ("gen_ai.request.model", json!("r")),
            ("gen_ai.response.model", json!("m-b")),
            ("gen_ai.provider.name", json!("backup")),
            ("llmobs.provider.name", json!("backup")),
            ("server.port", json!(b.addr.port() as i64)),
            ("llmobs.route.name", json!("r")),
            ("llmobs.route.attempts", json!(2)),
            ("llmobs.route.fallback_reason", json!(reason)),
        ] {
            assert_eq!(attr(c, key), Some(value), "{case}: chat span {key}");
        }
        assert_eq!(attr(c, "error.type"), None, "{case}: the call succeeded");
        let fallback = event(&chat, "llmobs.route.fallback");
        assert_eq!(fallback.len(), 1, "{case}");
        for (key, value) in [
            ("llmobs.route.from_provider", json!("primary")),
            ("llmobs.route.to_provider", json!("backup")),
            ("llmobs.route.fallback_reason", json!(reason)),
        ] {
            assert_eq!(
                attr(&fallback[0].attributes, key),
                Some(value),
                "{case}: {key}"
            );
        }

        assert_eq!(attempts.len(), 2, "{case}: one span per attempt");
        let (first, second) = (&attempts[0].span.attributes, &attempts[1].span.attributes);
        for (key, value) in [
            ("gen_ai.provider.name", json!("groq")),
            ("llmobs.provider.name", json!("primary")),
            ("gen_ai.request.model", json!("m-a")),
            ("llmobs.attempt.kind", json!("initial")),
            (
                "error.type",
                json!(status.map_or(reason.to_owned(), |s| s.to_string())),
            ),
        ] {
            assert_eq!(attr(first, key), Some(value), "{case}: first attempt {key}");
        }
        assert_eq!(
            attr(first, "http.response.status_code"),
            status.map(|s| json!(s))
        );
        for (key, value) in [
            ("gen_ai.provider.name", json!("backup")),
            ("llmobs.provider.name", json!("backup")),
            ("gen_ai.request.model", json!("m-b")),
            ("llmobs.attempt.kind", json!("fallback")),
            ("server.port", json!(b.addr.port() as i64)),
            ("http.response.status_code", json!(200)),
        ] {
            assert_eq!(
                attr(second, key),
                Some(value),
                "{case}: second attempt {key}"
            );
        }
        assert_eq!(attr(second, "error.type"), None, "{case}");
        assert_eq!(attr(second, "http.request.resend_count"), None, "{case}");

        let text = app.scrape().await;
        let fallbacks = [
            ("route", "r"),
            ("from_provider", "primary"),
            ("to_provider", "backup"),
            ("reason", reason),
        ];
        assert_eq!(
            metric(&text, "llm_fallbacks_total", &fallbacks),
            1.0,
            "{case}"
        );
        let tries = |provider, model, outcome| {
            metric(
                &text,
                "llm_route_attempts_total",
                &[
                    ("route", "r"),
                    ("provider", provider),
                    ("model", model),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(tries("primary", "m-a", reason), 1.0, "{case}");
        assert_eq!(tries("backup", "m-b", "ok"), 1.0, "{case}");
        let requests = |provider, model, status| {
            metric(
                &text,
                "llm_requests_total",
                &[("provider", provider), ("model", model), ("status", status)],
            )
        };
        assert_eq!(
            requests("backup", "m-b", "ok"),
            1.0,
            "{case}: the answering provider"
        );
        assert_eq!(
            requests("primary", "r", "error"),
            0.0,
            "{case}: one logical call"
        );
        for provider in ["primary", "backup"] {
            assert_eq!(
                metric(&text, "llm_requests_in_flight", &[("provider", provider)]),
                0.0,
                "{case}: {provider} in flight"
            );
        }
    }
}

#[tokio::test]
async fn a_target_retries_itself_before_falling_back_and_each_try_is_its_own_span() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let five_oh_three = || Reply::Status {
        status: 503,
        body: "{}".into(),
        headers: vec![],
    };
    a.script([five_oh_three(), five_oh_three()]);
    let mut toml = two_providers(&a.base_url(), &b.base_url(), "", "");
    toml = toml.replacen("max_retries = 0", "max_retries = 1", 1);
    let app = spawn_routed(&toml).await;

    let response = app.chat(json!({"prompt": "hi", "model": "r"})).await;
    assert_eq!(response.status(), 200);
    let trace = trace_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["provider"], "backup",
        "/api/chat names the answering provider"
    );
    assert_eq!(a.received().len(), 2);

    let spans = otlp().wait_for_trace(&trace, 5).await;
    let (chat, attempts) = call_spans(&spans, "r");
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.route.attempts"),
        Some(json!(2))
    );
    let kinds: Vec<(Option<Value>, Option<Value>, Option<Value>)> = attempts
        .iter()
        .map(|s| {
            let a = &s.span.attributes;
            (
                attr(a, "llmobs.provider.name"),
                attr(a, "llmobs.attempt.kind"),
                attr(a, "http.request.resend_count"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Some(json!("primary")), Some(json!("initial")), None),
            (Some(json!("primary")), Some(json!("retry")), Some(json!(1))),
            (Some(json!("backup")), Some(json!("fallback")), None),
        ]
    );
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "llm_upstream_retries_total",
            &[("provider", "primary"), ("reason", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "llm_fallbacks_total",
            &[
                ("route", "r"),
                ("from_provider", "primary"),
                ("to_provider", "backup"),
                ("reason", "upstream_server_error")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_clients_400_is_the_answer_and_never_falls_back() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.script([Reply::groq_error(
        400,
        "Please reduce the length of the messages or completion.",
        "context_length_exceeded",
    )]);
    let app = spawn_routed(&two_providers(&a.base_url(), &b.base_url(), "", "")).await;

    let response = openai_chat(&app, hi("r")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_client_error");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert!(
        b.received().is_empty(),
        "no fallback on the client's own error"
    );

    let text = app.scrape().await;
    assert!(
        !text.contains("llm_fallbacks_total{"),
        "no fallback counted"
    );
    assert_eq!(
        metric(
            &text,
            "llm_route_attempts_total",
            &[
                ("route", "r"),
                ("provider", "primary"),
                ("model", "m-a"),
                ("outcome", "upstream_client_error")
            ]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "llm_errors_total",
            &[
                ("provider", "primary"),
                ("model", "r"),
                ("error_type", "upstream_client_error")
            ]
        ),
        1.0,
        "the route's name is a bounded model label"
    );
}

/// The content of an OpenAI stream, and whether it ended with `[DONE]`.
async fn read_stream(response: reqwest::Response) -> (String, bool, String) {
    let text = response.text().await.unwrap();
    let mut content = String::new();
    let mut done = false;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(delta);
        }
    }
    (content, done, text)
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_byte_and_never_after() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.script([Reply::Status {
        status: 503,
        body: "{}".into(),
        headers: vec![],
    }]);
    let app = spawn_routed(&two_providers(&a.base_url(), &b.base_url(), "", "")).await;
    let mut streamed = hi("r");
    streamed["stream"] = json!(true);

    // Failed before its first byte: B streams the whole answer.
    let response = openai_chat(&app, streamed.clone()).await;
    assert_eq!(response.status(), 200);
    let trace = trace_id(&response);
    let (content, done, _) = read_stream(response).await;
    assert!(done && !content.is_empty(), "the whole stream from B");
    assert_eq!(b.received().len(), 1);
    let spans = otlp().wait_for_trace(&trace, 4).await;
    let (chat, _) = call_spans(&spans, "r");
    for (key, value) in [
        ("llmobs.provider.name", json!("backup")),
        (
            "llmobs.route.fallback_reason",
            json!("upstream_server_error"),
        ),
        ("gen_ai.usage.output_tokens", json!(STREAM_USAGE.1 as i64)),
    ] {
        assert_eq!(attr(&chat.span.attributes, key), Some(value), "{key}");
    }

    // Failed after its first bytes: relayed as it is, no second answer.
    a.script([Reply::StreamThenError]);
    let response = openai_chat(&app, streamed).await;
    assert_eq!(response.status(), 200);
    let (content, done, text) = read_stream(response).await;
    assert!(!content.is_empty(), "the chunks before the failure arrived");
    assert!(!done, "{text}");
    assert!(
        text.contains("\"error\""),
        "the upstream's error event: {text}"
    );
    assert_eq!(b.received().len(), 1, "B was not asked again");
    let scrape = app.scrape().await;
    assert_eq!(
        metric(
            &scrape,
            "llm_errors_total",
            &[
                ("provider", "primary"),
                ("model", "r"),
                ("error_type", "upstream_server_error")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn weighted_routing_over_1000_calls_lands_within_five_points_of_the_weights() {
    let app = spawn_routed(
        r#"
        [providers.heavy]
        kind = "simulated"
        simulated_latency_ms = 0
        [providers.light]
        kind = "simulated"
        simulated_latency_ms = 0
        [routes.w]
        strategy = "weighted"
        targets = [
          { provider = "heavy", model = "llama-3.1-8b-instant", weight = 3 },
          { provider = "light", model = "llama-3.3-70b-versatile", weight = 1 },
        ]
        "#,
    )
    .await;
    let calls = 1000;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls / 8 {
                let response = client.post(&url).json(&hi("w")).send().await.unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let text = app.scrape().await;
    let tries = |provider, model| {
        metric(
            &text,
            "llm_route_attempts_total",
            &[
                ("route", "w"),
                ("provider", provider),
                ("model", model),
                ("outcome", "ok"),
            ],
        )
    };
    let heavy = tries("heavy", "llama-3.1-8b-instant");
    let light = tries("light", "llama-3.3-70b-versatile");
    assert_eq!(heavy + light, calls as f64);
    // Expected 750 (binomial sd 13.7): ±50 is more than 3.6 sd, a false alarm once in ~3,000.
    assert!(
        (700.0..=800.0).contains(&heavy),
        "heavy got {heavy} of {calls}"
    );
}

#[tokio::test]
async fn the_latency_strategy_prefers_the_target_that_answers_faster() {
    let slow = FakeUpstream::start().await;
    let fast = FakeUpstream::start().await;
    slow.script([Reply::Delay(Duration::from_millis(300))]);
    let toml = format!(
        "{}{}[routes.l]\nstrategy = \"latency\"\ntargets = [{{ provider = \"slow\", model = \"m\" }}, {{ provider = \"fast\", model = \"m\" }}]\n",
        provider("slow", "openai_compatible", &slow.base_url(), ""),
        provider("fast", "openai_compatible", &fast.base_url(), ""),
    );
    let app = spawn_routed(&toml).await;
    for _ in 0..6 {
        assert_eq!(openai_chat(&app, hi("l")).await.status(), 200);
    }
    // Untried targets go first (slow, then fast); then the faster one keeps the calls.
    assert_eq!(slow.received().len(), 1);
    assert_eq!(fast.received().len(), 5);
}

#[tokio::test]
async fn the_latency_strategy_ranks_a_failing_target_last_not_first() {
    let broken = FakeUpstream::start().await;
    let good = FakeUpstream::start().await;
    broken.script([Reply::Status {
        status: 503,
        body: "{}".into(),
        headers: vec![],
    }]);
    let toml = format!(
        "{}{}[routes.l]\nstrategy = \"latency\"\ntargets = [{{ provider = \"broken\", model = \"m\" }}, {{ provider = \"good\", model = \"m\" }}]\n",
        provider("broken", "openai_compatible", &broken.base_url(), ""),
        provider("good", "openai_compatible", &good.base_url(), ""),
    );
    let app = spawn_routed(&toml).await;
    for _ in 0..4 {
        assert_eq!(openai_chat(&app, hi("l")).await.status(), 200);
    }
    // Its one failure counts as its whole deadline: it is not "unmeasured, so first" again.
    assert_eq!(broken.received().len(), 1);
    assert_eq!(good.received().len(), 4);
}

#[tokio::test]
async fn the_circuit_opens_after_n_failures_skips_the_target_half_opens_and_closes_on_success() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let five_oh_three = || Reply::Status {
        status: 503,
        body: "{}".into(),
        headers: vec![],
    };
    a.script([five_oh_three(), five_oh_three()]);
    let app = spawn_routed(&two_providers(
        &a.base_url(),
        &b.base_url(),
        "",
        "circuit_breaker = { failure_threshold = 2, cooldown_secs = 0.5 }",
    ))
    .await;
    let state = |text: &str| {
        sample(
            text,
            "llm_route_target_state",
            &[("route", "r"), ("provider", "primary"), ("model", "m-a")],
        )
    };
    assert_eq!(state(&app.scrape().await), Some(0.0), "closed at start");

    for _ in 0..2 {
        assert_eq!(openai_chat(&app, hi("r")).await.status(), 200);
    }
    assert_eq!(a.received().len(), 2);
    assert_eq!(
        state(&app.scrape().await),
        Some(1.0),
        "open after 2 failures"
    );

    // Open: A is skipped without a request.
    let response = openai_chat(&app, hi("r")).await;
    assert_eq!(response.status(), 200);
    let trace = trace_id(&response);
    assert_eq!(a.received().len(), 2, "skipped");
    assert_eq!(b.received().len(), 3);
    let spans = otlp().wait_for_trace(&trace, 3).await;
    let (chat, attempts) = call_spans(&spans, "r");
    assert_eq!(attempts.len(), 1, "no attempt at the open target");
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.route.fallback_reason"),
        Some(json!("circuit_open"))
    );
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.route.attempts"),
        Some(json!(1))
    );

    // After the cool-down one probe goes to A; slow, so its half-open state can be seen.
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.script([Reply::Delay(Duration::from_millis(400))]);
    let probe = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/v1/chat/completions");
        async move {
            client
                .post(url)
                .json(&hi("r"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        state(&app.scrape().await),
        Some(2.0),
        "half-open while probing"
    );
    // Meanwhile other calls still skip A.
    assert_eq!(openai_chat(&app, hi("r")).await.status(), 200);
    assert_eq!(b.received().len(), 4);
    assert_eq!(probe.await.unwrap(), 200);
    assert_eq!(a.received().len(), 3, "exactly one probe");
    assert_eq!(
        state(&app.scrape().await),
        Some(0.0),
        "closed after the probe succeeded"
    );
    assert_eq!(openai_chat(&app, hi("r")).await.status(), 200);
    assert_eq!((a.received().len(), b.received().len()), (4, 4));

    let text = app.scrape().await;
    let tries = |provider, model, outcome| {
        metric(
            &text,
            "llm_route_attempts_total",
            &[
                ("route", "r"),
                ("provider", provider),
                ("model", model),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(tries("primary", "m-a", "upstream_server_error"), 2.0);
    assert_eq!(tries("primary", "m-a", "circuit_open"), 2.0);
    assert_eq!(tries("primary", "m-a", "ok"), 2.0);
    assert_eq!(tries("backup", "m-b", "ok"), 4.0);
}

#[tokio::test]
async fn when_every_circuit_is_open_the_call_fails_fast_with_503_and_retry_after() {
    let a = FakeUpstream::start().await;
    a.script([Reply::Status {
        status: 500,
        body: "{}".into(),
        headers: vec![],
    }]);
    let toml = format!(
        "{}[routes.solo]\ntargets = [{{ provider = \"only\", model = \"m\" }}]\ncircuit_breaker = {{ failure_threshold = 1, cooldown_secs = 30 }}\n",
        provider("only", "openai_compatible", &a.base_url(), ""),
    );
    let app = spawn_routed(&toml).await;
    assert_eq!(openai_chat(&app, hi("solo")).await.status(), 502);

    let response = openai_chat(&app, hi("solo")).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "circuit_open");
    assert_eq!(a.received().len(), 1, "no request to an open circuit");
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "llm_errors_total",
            &[
                ("provider", "only"),
                ("model", "solo"),
                ("error_type", "circuit_open")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn direct_addressing_and_its_collisions_follow_the_documented_rule() {
    let g = FakeUpstream::start().await;
    let o = FakeUpstream::start().await;
    let toml = format!(
        "{}{}[routes.\"openai/gpt-oss-20b\"]\ntargets = [{{ provider = \"groq\", model = \"openai/gpt-oss-20b\" }}]\n",
        provider("groq", "groq", &g.base_url(), ""),
        provider("openai", "openai_compatible", &o.base_url(), ""),
    );
    let app = spawn_routed(&toml).await;
    let last_model = |fake: &FakeUpstream| fake.received().last().unwrap().body["model"].clone();

    // provider/model: the provider's own id after the first slash.
    assert_eq!(
        openai_chat(&app, hi("groq/llama-3.1-8b-instant"))
            .await
            .status(),
        200
    );
    assert_eq!(last_model(&g), "llama-3.1-8b-instant");
    // A provider's id with a slash of its own: everything after the provider's name.
    assert_eq!(
        openai_chat(&app, hi("groq/openai/gpt-oss-120b"))
            .await
            .status(),
        200
    );
    assert_eq!(last_model(&g), "openai/gpt-oss-120b");
    // Collision: `openai/…` names the provider called openai, not Groq's id…
    assert_eq!(
        openai_chat(&app, hi("openai/gpt-oss-120b")).await.status(),
        200
    );
    assert_eq!(last_model(&o), "gpt-oss-120b");
    assert_eq!(o.received().len(), 1);
    // …unless a route of that exact name pins it: a route name always wins.
    assert_eq!(
        openai_chat(&app, hi("openai/gpt-oss-20b")).await.status(),
        200
    );
    assert_eq!(last_model(&g), "openai/gpt-oss-20b");
    assert_eq!(o.received().len(), 1);
    assert_eq!(g.received().len(), 3);

    // Neither a route nor a provider prefix, and no default provider: 404, nothing sent.
    for model in ["llama-3.1-8b-instant", "nobody/model", "groq/"] {
        let response = openai_chat(&app, hi(model)).await;
        assert_eq!(response.status(), 404, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "model_not_found", "{model}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(model),
            "{body}"
        );
    }
    assert_eq!(g.received().len() + o.received().len(), 4);
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "model_not_found")]
        ),
        3.0
    );

    // Direct addressing off: only routes and the default provider serve names.
    let off = spawn_routed(&format!(
        "[gateway]\ndirect_addressing = false\ndefault_provider = \"openai\"\n{}{}",
        provider("groq", "groq", &g.base_url(), ""),
        provider("openai", "openai_compatible", &o.base_url(), ""),
    ))
    .await;
    assert_eq!(
        openai_chat(&off, hi("groq/llama-3.1-8b-instant"))
            .await
            .status(),
        200
    );
    assert_eq!(
        last_model(&o),
        "groq/llama-3.1-8b-instant",
        "the default provider gets the name unchanged"
    );
}

#[tokio::test]
async fn the_model_list_names_the_routes_and_each_providers_models() {
    let g = FakeUpstream::start().await;
    let toml = format!(
        "[gateway]\ndefault_provider = \"sim\"\n{}[providers.sim]\nkind = \"simulated\"\n[routes.r]\ntargets = [{{ provider = \"groq\", model = \"m\" }}]\n",
        provider("groq", "groq", &g.base_url(), ""),
    );
    let app = spawn_routed(&toml).await;
    let list: Value = app
        .client
        .get(app.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "r", "routes first");
    assert_eq!(list["data"][0]["owned_by"], "route");
    // The fake Groq lists llama-3.1-8b-instant; the simulated provider its priced models.
    for id in [
        "groq/llama-3.1-8b-instant",
        "sim/llama-3.1-8b-instant",
        "llama-3.1-8b-instant",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"groq/r"));
}

#[tokio::test]
async fn the_same_model_at_two_providers_costs_what_the_answering_one_charges() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.script([Reply::groq_error(429, "slow down", "rate_limit_exceeded")]);
    let toml = format!(
        "{}{}[routes.priced]\ntargets = [{{ provider = \"cheap\", model = \"shared\" }}, {{ provider = \"dear\", model = \"shared\" }}]\n",
        provider(
            "cheap",
            "openai_compatible",
            &a.base_url(),
            "prices = { shared = { input_per_million = 1.0, output_per_million = 2.0 } }"
        ),
        provider(
            "dear",
            "openai_compatible",
            &b.base_url(),
            "prices = { shared = { input_per_million = 10.0, output_per_million = 20.0 } }"
        ),
    );
    let app = spawn_routed(&toml).await;
    let response = app.chat(json!({"prompt": "hi", "model": "priced"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // The fake reports 12 input and 34 output tokens.
    let expected = (12.0 * 10.0 + 34.0 * 20.0) / 1_000_000.0;
    let cost = body["cost_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
    assert_eq!(body["provider"], "dear");
    let text = app.scrape().await;
    let counted = metric(
        &text,
        "llm_cost_usd_total",
        &[("provider", "dear"), ("model", "shared")],
    );
    assert!((counted - expected).abs() < 1e-12, "{counted}");
    assert_eq!(
        sample(
            &text,
            "llm_cost_usd_total",
            &[("provider", "cheap"), ("model", "shared")]
        ),
        None
    );
}

#[tokio::test]
async fn a_route_answered_by_openai_carries_the_openai_attributes_once() {
    let o = FakeUpstream::start().await;
    let toml = format!(
        "{}[routes.smart]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n",
        provider(
            "oa",
            "openai",
            &o.base_url(),
            "api_key_env = \"OPENAI_API_KEY\""
        ),
    );
    let app = spawn_routed(&toml).await;
    let mut body = hi("smart");
    body["service_tier"] = json!("flex");
    let response = openai_chat(&app, body).await;
    assert_eq!(response.status(), 200);
    let trace = trace_id(&response);
    let spans = otlp().wait_for_trace(&trace, 3).await;
    let (chat, _) = call_spans(&spans, "smart");
    let c = &chat.span.attributes;
    for (key, value) in [
        ("gen_ai.provider.name", json!("openai")),
        ("llmobs.provider.name", json!("oa")),
        ("openai.api.type", json!("chat_completions")),
        ("openai.request.service_tier", json!("flex")),
    ] {
        assert_eq!(attr(c, key), Some(value), "{key}");
        let count = c.iter().filter(|kv| kv.key == key).count();
        assert_eq!(count, 1, "{key} exported once");
    }
    // Priced from the OpenAI table: 12 input tokens of which 4 cached (0.15 and 0.075 per
    // million), 34 output (0.60).
    let text = app.scrape().await;
    let cost = metric(
        &text,
        "llm_cost_usd_total",
        &[("provider", "oa"), ("model", "gpt-4o-mini")],
    );
    assert!(
        (cost - (8.0 * 0.15 + 4.0 * 0.075 + 34.0 * 0.60) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}
