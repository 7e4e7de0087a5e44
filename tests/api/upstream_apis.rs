//! The Responses API, embeddings and Anthropic against fake upstreams speaking each real wire
//! format: forwarded untouched, relayed unchanged, and traced and counted exactly as chat is;
//! Anthropic's errors mapped; an OpenAI chat call answered by Claude.

use std::time::Duration;

use llmobs_testkit::anthropic::{
    self as claude, ANTHROPIC_API_KEY, ANTHROPIC_STREAM_USAGE, ANTHROPIC_TEXT, ANTHROPIC_USAGE,
};
use llmobs_testkit::openai::{RESPONSE_TEXT, RESPONSES_STREAM_USAGE, RESPONSES_USAGE};
use llmobs_testkit::{AnthropicReply, FakeAnthropic};
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;
use crate::support::upstream::{API_KEY, FakeUpstream, Reply};

/// `oa` (kind openai, at `openai`), `claude` (kind anthropic, at `anthropic`), no retries,
/// routes to each; `extra_vars` added to the app's environment.
async fn spawn(
    openai: &FakeUpstream,
    anthropic: &FakeAnthropic,
    extra_vars: &[(&str, &str)],
) -> TestApp {
    let toml = format!(
        r#"
        [providers.oa]
        kind = "openai"
        base_url = "{}"
        max_retries = 0
        [providers.claude]
        kind = "anthropic"
        base_url = "{}"
        max_retries = 0
        [routes.gpt-4o-mini]
        targets = [{{ provider = "oa", model = "gpt-4o-mini" }}]
        [routes.text-embedding-3-small]
        targets = [{{ provider = "oa", model = "text-embedding-3-small" }}]
        [routes.claude-haiku-4-5]
        targets = [{{ provider = "claude", model = "claude-haiku-4-5" }}]
        [routes.smart]
        targets = [{{ provider = "claude", model = "claude-haiku-4-5" }}]
        "#,
        openai.base_url(),
        anthropic.base_url(),
    );
    let path = write_config(&toml);
    let mut vars = vec![
        ("GATEWAY_CONFIG", path.as_str()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_API_KEY),
    ];
    vars.extend_from_slice(extra_vars);
    spawn_app_with(&vars).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn spans_of(response: &reqwest::Response, count: usize) -> Vec<ExportedSpan> {
    let trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    otlp().wait_for_trace(&trace, count).await
}

fn named<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no span {name} in {:?}",
                spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
            )
        })
}

fn expect_attrs(span: &ExportedSpan, expected: &[(&str, Value)]) {
    for (key, value) in expected {
        assert_eq!(
            attr(&span.span.attributes, key),
            Some(value.clone()),
            "{} attribute {key}",
            span.span.name
        );
    }
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn the_responses_api_is_relayed_unchanged_and_traced_with_its_usage_and_cost() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[]).await;

    let response = post(
        &app,
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "hi", "instructions": "be brief"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["output"][0]["content"][0]["text"], RESPONSE_TEXT);
    let sent = openai.received_at("/openai/v1/responses");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body["instructions"], "be brief",
        "forwarded untouched"
    );
    assert_eq!(
        sent[0].headers["authorization"],
        format!("Bearer {API_KEY}")
    );

    let u = RESPONSES_USAGE;
    let chat = named(&spans, "chat gpt-4o-mini");
    expect_attrs(
        chat,
        &[
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.provider.name", json!("openai")),
            ("openai.api.type", json!("responses")),
            ("gen_ai.response.id", body["id"].clone()),
            ("gen_ai.response.finish_reasons", json!(["stop"])),
            ("gen_ai.usage.input_tokens", json!(u.input_tokens)),
            ("gen_ai.usage.output_tokens", json!(u.output_tokens)),
            (
                "gen_ai.usage.cache_read.input_tokens",
                json!(u.cached_tokens),
            ),
            (
                "gen_ai.usage.reasoning.output_tokens",
                json!(u.reasoning_tokens),
            ),
        ],
    );
    let attempt = named(&spans, "POST");
    let url = attr(&attempt.span.attributes, "url.full").unwrap();
    assert!(
        url.as_str().unwrap().ends_with("/openai/v1/responses"),
        "{url}"
    );
    // gpt-4o-mini: uncached input 0.15, cached 0.075, output 0.60 per million.
    let cost = ((u.input_tokens - u.cached_tokens) as f64 * 0.15
        + u.cached_tokens as f64 * 0.075
        + u.output_tokens as f64 * 0.60)
        / 1e6;
    let text = app.scrape().await;
    assert!(close(
        metric(
            &text,
            "llm_cost_usd_total",
            &[("provider", "oa"), ("model", "gpt-4o-mini")]
        ),
        cost
    ));

    // Streamed: every typed event relayed as it came, usage from response.completed.
    let response = post(
        &app,
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    assert_eq!(
        openai
            .received_at("/openai/v1/responses")
            .last()
            .unwrap()
            .body,
        json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
        "forwarded untouched (no stream_options added)"
    );
    let relayed = response.text().await.unwrap();
    let types: Vec<String> = relayed
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    let s = RESPONSES_STREAM_USAGE;
    let chat = named(&spans, "chat gpt-4o-mini");
    expect_attrs(
        chat,
        &[
            ("gen_ai.request.stream", json!(true)),
            ("gen_ai.usage.input_tokens", json!(s.input_tokens)),
            ("gen_ai.usage.output_tokens", json!(s.output_tokens)),
            (
                "gen_ai.usage.cache_read.input_tokens",
                json!(s.cached_tokens),
            ),
            ("gen_ai.response.finish_reasons", json!(["stop"])),
        ],
    );
    assert!(attr(&chat.span.attributes, "gen_ai.response.time_to_first_chunk").is_some());
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "openai"),
                ("gen_ai_request_model", "gpt-4o-mini"),
                ("gen_ai_response_model", "gpt-4o-mini"),
                ("error_type", ""),
            ]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "llm_requests_total",
            &[
                ("provider", "oa"),
                ("model", "gpt-4o-mini"),
                ("status", "ok")
            ]
        ),
        2.0
    );

    // A 429 keeps its meaning.
    openai.script([Reply::groq_error(
        429,
        "Rate limit reached",
        "rate_limit_exceeded",
    )]);
    let response = post(
        &app,
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn embeddings_are_relayed_unchanged_and_counted_at_embedding_prices() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[]).await;
    let model = "text-embedding-3-small";
    let response = post(&app, "/openai/v1/embeddings", json!({"model": model, "input": ["one two", "three"], "encoding_format": "base64", "dimensions": 12})).await;
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let body: Value = response.json().await.unwrap();
    assert!(
        body["data"][0]["embedding"].is_string(),
        "base64 relayed as it came"
    );
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    let span = named(&spans, &format!("embeddings {model}"));
    expect_attrs(
        span,
        &[
            ("gen_ai.operation.name", json!("embeddings")),
            ("gen_ai.provider.name", json!("openai")),
            ("openai.api.type", json!("embeddings")),
            ("gen_ai.embeddings.dimension.count", json!(12)),
            ("gen_ai.request.encoding_formats", json!(["base64"])),
            ("gen_ai.usage.input_tokens", json!(tokens)),
        ],
    );
    assert_eq!(
        attr(&span.span.attributes, "gen_ai.usage.output_tokens"),
        None
    );
    let text = app.scrape().await;
    assert!(close(
        metric(
            &text,
            "llm_cost_usd_total",
            &[("provider", "oa"), ("model", model)]
        ),
        tokens as f64 * 0.02 / 1e6
    ));
    assert_eq!(
        metric(
            &text,
            "llm_tokens_total",
            &[("provider", "oa"), ("model", model), ("type", "input")]
        ),
        tokens as f64
    );
    assert_eq!(
        sample(
            &text,
            "llm_tokens_total",
            &[("provider", "oa"), ("model", model), ("type", "output")]
        ),
        None
    );
}

#[tokio::test]
async fn the_messages_api_is_forwarded_with_the_providers_key_and_relayed_unchanged() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[("GATEWAY_API_KEYS", "gw-key")]).await;
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": "be brief", "messages": [{"role": "user", "content": "hi"}]});

    // The gateway key as Anthropic's SDKs send it; never forwarded.
    let response = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", "gw-key")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")
        .header("x-other", "not forwarded")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], ANTHROPIC_TEXT);
    assert_eq!(
        body["usage"]["cache_read_input_tokens"], ANTHROPIC_USAGE.cache_read_input_tokens,
        "relayed unchanged"
    );
    let sent = anthropic.received_at("/v1/messages");
    assert_eq!(sent[0].headers["x-api-key"], ANTHROPIC_API_KEY);
    // The client's API version and beta features are passed on (Claude Code needs them), and
    // nothing else of its own.
    assert_eq!(
        sent[0].headers["anthropic-beta"],
        "fine-grained-tool-streaming-2025-05-14"
    );
    assert_eq!(
        sent[0].headers.get_all("anthropic-version").iter().count(),
        1
    );
    assert!(!sent[0].headers.contains_key("x-other"));
    assert!(sent[0].headers.contains_key("anthropic-version"));
    assert_eq!(sent[0].body, request, "forwarded untouched");

    let u = ANTHROPIC_USAGE;
    let chat = named(&spans, "chat claude-haiku-4-5");
    expect_attrs(
        chat,
        &[
            ("gen_ai.provider.name", json!("anthropic")),
            ("gen_ai.request.max_tokens", json!(100)),
            ("gen_ai.response.id", body["id"].clone()),
            // The conventions count every input token: Anthropic's plus its cache reads and writes.
            ("gen_ai.usage.input_tokens", json!(u.prompt_tokens())),
            (
                "gen_ai.usage.cache_read.input_tokens",
                json!(u.cache_read_input_tokens),
            ),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                json!(u.cache_creation_input_tokens),
            ),
            ("gen_ai.usage.output_tokens", json!(u.output_tokens)),
        ],
    );
    assert_eq!(attr(&chat.span.attributes, "openai.api.type"), None);
    // claude-haiku-4-5: input 1.00, cache read 0.10, cache write 1.25, output 5.00 per million.
    let cost = (u.input_tokens as f64 * 1.0
        + u.cache_read_input_tokens as f64 * 0.10
        + u.cache_creation_input_tokens as f64 * 1.25
        + u.output_tokens as f64 * 5.0)
        / 1e6;
    let text = app.scrape().await;
    assert!(close(
        metric(
            &text,
            "llm_cost_usd_total",
            &[("provider", "claude"), ("model", "claude-haiku-4-5")]
        ),
        cost
    ));

    // A wrong key is refused before any call.
    let refused = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(anthropic.received_at("/v1/messages").len(), 1);

    // Streamed: Anthropic's events relayed as they came; usage from message_start and
    // message_delta together.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = app
        .client
        .post(app.url("/v1/messages"))
        .bearer_auth("gw-key")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let relayed = response.text().await.unwrap();
    assert_eq!(
        anthropic.received_at("/v1/messages").last().unwrap().body,
        streamed,
        "a stream forwarded untouched too (no stream_options added)"
    );
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "ping",
    ] {
        assert!(
            relayed.contains(&format!("event: {event}")),
            "{event} relayed"
        );
    }
    let s = ANTHROPIC_STREAM_USAGE;
    let chat = named(&spans, "chat claude-haiku-4-5");
    expect_attrs(
        chat,
        &[
            ("gen_ai.usage.input_tokens", json!(s.prompt_tokens())),
            (
                "gen_ai.usage.cache_read.input_tokens",
                json!(s.cache_read_input_tokens),
            ),
            ("gen_ai.usage.output_tokens", json!(s.output_tokens)),
            ("gen_ai.response.finish_reasons", json!(["stop"])),
        ],
    );
    assert!(attr(&chat.span.attributes, "gen_ai.response.time_to_first_chunk").is_some());

    // count_tokens: relayed from the provider, not an LLM call.
    let counted = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .bearer_auth("gw-key")
        .json(&json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(counted.status(), 200);
    let counted: Value = counted.json().await.unwrap();
    assert_eq!(counted["input_tokens"], 3);
    let text = app.scrape().await;
    assert_eq!(
        metric(
            &text,
            "llm_requests_total",
            &[
                ("provider", "claude"),
                ("model", "claude-haiku-4-5"),
                ("status", "ok")
            ]
        ),
        2.0
    );
}

#[tokio::test]
async fn anthropics_errors_map_to_the_documented_statuses_and_types() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[]).await;
    let messages = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let chat = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
    for (reply, status, kind, retry_after) in [
        (
            AnthropicReply::rate_limited(7),
            429,
            "rate_limited",
            Some("7"),
        ),
        (
            AnthropicReply::overloaded(),
            502,
            "upstream_server_error",
            None,
        ),
        (AnthropicReply::unauthorized(), 502, "authentication", None),
        (
            AnthropicReply::invalid_request("messages: roles must alternate"),
            400,
            "upstream_client_error",
            None,
        ),
    ] {
        for (path, body) in [("/v1/messages", &messages), ("/v1/chat/completions", &chat)] {
            anthropic.script([reply.clone()]);
            let response = post(&app, path, body.clone()).await;
            assert_eq!(response.status(), status, "{kind} on {path}");
            assert_eq!(
                response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .as_deref(),
                retry_after,
                "{kind} on {path}"
            );
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["type"], kind, "{path}: {error}");
            if kind == "upstream_client_error" {
                assert_eq!(error["error"]["message"], "messages: roles must alternate");
                assert_eq!(error["error"]["code"], "invalid_request_error");
            }
            assert!(!error.to_string().contains(ANTHROPIC_API_KEY));
        }
    }
    let text = app.scrape().await;
    for kind in [
        "rate_limited",
        "upstream_server_error",
        "authentication",
        "upstream_client_error",
    ] {
        assert_eq!(
            metric(
                &text,
                "llm_errors_total",
                &[
                    ("provider", "claude"),
                    ("model", "claude-haiku-4-5"),
                    ("error_type", kind)
                ]
            ),
            1.0,
            "{kind}"
        );
        assert_eq!(
            metric(
                &text,
                "llm_errors_total",
                &[
                    ("provider", "claude"),
                    ("model", "smart"),
                    ("error_type", kind)
                ]
            ),
            1.0,
            "{kind} through the route"
        );
    }
}

#[tokio::test]
async fn an_openai_chat_call_is_answered_by_claude_plain_streamed_and_with_tools() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[]).await;

    let response = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "smart", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "explain observability"},
    ], "stop": "END", "temperature": 1.5}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], ANTHROPIC_TEXT);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let u = ANTHROPIC_USAGE;
    assert_eq!(body["usage"]["prompt_tokens"], u.prompt_tokens());
    assert_eq!(body["usage"]["completion_tokens"], u.output_tokens);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        u.cache_read_input_tokens
    );
    let sent = &anthropic.received_at("/v1/messages")[0].body;
    assert_eq!(sent["model"], "claude-haiku-4-5");
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["max_tokens"], 4096, "Anthropic requires it: defaulted");
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    let chat = named(&spans, "chat smart");
    expect_attrs(
        chat,
        &[
            ("gen_ai.request.model", json!("smart")),
            ("gen_ai.provider.name", json!("anthropic")),
            ("llmobs.provider.name", json!("claude")),
            ("gen_ai.response.model", json!("claude-haiku-4-5")),
            ("gen_ai.usage.input_tokens", json!(u.prompt_tokens())),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                json!(u.cache_creation_input_tokens),
            ),
            ("gen_ai.response.finish_reasons", json!(["stop"])),
        ],
    );

    // Streamed, with tools: the tool call's arguments arrive in deltas, the usage at the end.
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let response = post(&app, "/v1/chat/completions", json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true}, "tools": tools, "tool_choice": "required", "messages": [{"role": "user", "content": "weather in Paris?"}]})).await;
    assert_eq!(response.status(), 200);
    let spans = spans_of(&response, 3).await;
    let text = response.text().await.unwrap();
    let (mut name, mut arguments, mut finish, mut usage, mut done) =
        (None, String::new(), None, None, false);
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        if let Some(call) = chunk["choices"][0]["delta"]["tool_calls"][0].as_object() {
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert!(done, "{text}");
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let s = ANTHROPIC_STREAM_USAGE;
    let usage = usage.expect("the usage chunk the client asked for");
    assert_eq!(usage["prompt_tokens"], s.prompt_tokens());
    assert_eq!(usage["completion_tokens"], s.output_tokens);
    let sent = &anthropic.received_at("/v1/messages")[1].body;
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["stream"], true);
    let chat = named(&spans, "chat smart");
    expect_attrs(
        chat,
        &[
            ("gen_ai.usage.input_tokens", json!(s.prompt_tokens())),
            ("gen_ai.usage.output_tokens", json!(s.output_tokens)),
            ("gen_ai.response.finish_reasons", json!(["tool_calls"])),
        ],
    );

    // A failure after the first bytes is relayed as OpenAI's error event.
    anthropic.script([AnthropicReply::StreamThenError]);
    let response = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("partial "), "{text}");
    assert!(
        text.contains("\"error\"") && text.contains("Overloaded"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));

    // What Anthropic cannot say is refused before any call, naming the field.
    let before = anthropic.received_at("/v1/messages").len();
    let response = post(
        &app,
        "/v1/chat/completions",
        json!({"model": "smart", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request");
    assert!(
        error["error"]["message"].as_str().unwrap().starts_with("n"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(anthropic.received_at("/v1/messages").len(), before);
    let _ = claude::ANTHROPIC_MODEL;
}

#[tokio::test]
async fn a_route_whose_provider_lacks_the_api_answers_501_naming_it() {
    let (openai, anthropic) = (FakeUpstream::start().await, FakeAnthropic::start().await);
    let app = spawn(&openai, &anthropic, &[]).await;
    for (path, body, provider) in [
        (
            "/v1/responses",
            json!({"model": "smart", "input": "hi"}),
            "claude (anthropic)",
        ),
        (
            "/v1/embeddings",
            json!({"model": "smart", "input": "hi"}),
            "claude (anthropic)",
        ),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            "oa (openai)",
        ),
    ] {
        let response = post(&app, path, body).await;
        assert_eq!(response.status(), 501, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "unsupported_operation");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(provider),
            "{error}"
        );
    }
    assert!(anthropic.received().is_empty() && openai.received().is_empty());
}
