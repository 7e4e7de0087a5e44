//! The Responses API, embeddings and Anthropic's Messages API, answered offline by the
//! simulated provider: their shapes, spans and metrics, as for chat. (Against fake OpenAI-compatible and Anthropic upstreams:
//! `upstream_apis.rs`.)

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;

async fn simulated() -> TestApp {
    spawn_app_with(&[("GROQ_API_KEY", ""), ("SIMULATED_LATENCY_MS", "0")]).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn span_named(response: &reqwest::Response, name: &str) -> ExportedSpan {
    let trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let spans = otlp().wait_for_trace(&trace, 2).await;
    spans
        .into_iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(text, name, labels)
}

#[tokio::test]
async fn embeddings_are_answered_offline_traced_and_counted_as_embeddings() {
    let app = simulated().await;
    let model = "text-embedding-3-small";
    let body = json!({"model": model, "input": ["alpha beta", "gamma"], "dimensions": 64, "encoding_format": "float"});

    let response = post(&app, "/v1/embeddings", body.clone()).await;
    assert_eq!(response.status(), 200);
    let span = span_named(&response, &format!("embeddings {model}")).await;
    let answer: Value = response.json().await.unwrap();
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 64);
    assert_eq!(answer["model"], model);
    let input_tokens = answer["usage"]["prompt_tokens"].as_i64().unwrap();
    assert!(input_tokens > 0);
    // Deterministic: the same input, the same vectors (through the Groq path too).
    let again: Value = post(&app, "/openai/v1/embeddings", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"], answer["data"]);

    let a = &span.span.attributes;
    for (key, value) in [
        ("gen_ai.operation.name", json!("embeddings")),
        ("gen_ai.request.model", json!(model)),
        ("gen_ai.provider.name", json!("simulated")),
        ("gen_ai.embeddings.dimension.count", json!(64)),
        ("gen_ai.request.encoding_formats", json!(["float"])),
        ("gen_ai.usage.input_tokens", json!(input_tokens)),
        ("gen_ai.response.model", json!(model)),
    ] {
        assert_eq!(attr(a, key), Some(value), "{key}");
    }
    for absent in [
        "gen_ai.usage.output_tokens",
        "gen_ai.response.finish_reasons",
    ] {
        assert_eq!(attr(a, absent), None, "{absent} on an embeddings span");
    }

    let text = app.scrape().await;
    let labels = |token_type: &'static str| {
        [
            ("gen_ai_operation_name", "embeddings"),
            ("gen_ai_provider_name", "simulated"),
            ("gen_ai_request_model", model),
            ("gen_ai_response_model", model),
            ("error_type", ""),
            ("gen_ai_token_type", token_type),
        ]
    };
    assert_eq!(
        metric(&text, "gen_ai_client_token_usage_count", &labels("input")),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "gen_ai_client_token_usage_count", &labels("output")),
        None,
        "no output tokens for embeddings"
    );
    assert_eq!(
        metric(
            &text,
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("gen_ai_operation_name", "embeddings"),
                ("gen_ai_provider_name", "simulated"),
                ("gen_ai_request_model", model),
                ("gen_ai_response_model", model),
                ("error_type", ""),
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "llm_requests_total",
            &[
                ("provider", "simulated"),
                ("model", model),
                ("status", "ok")
            ]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn embeddings_requests_are_validated_with_the_field_named() {
    let app = simulated().await;
    for (body, field) in [
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (
            json!({"model": "m", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (json!({"model": 5, "input": "x"}), "model"),
        (
            json!({"model": "m", "input": "x", "stream": true}),
            "stream",
        ),
    ] {
        let response = post(&app, "/v1/embeddings", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request", "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}: {error}"
        );
    }
}

#[tokio::test]
async fn a_responses_call_is_answered_whole_and_streamed_and_traced_as_chat() {
    let app = simulated().await;
    let model = "llama-3.1-8b-instant";
    let response = post(
        &app,
        "/v1/responses",
        json!({"model": model, "input": "Explain observability", "max_output_tokens": 50}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let span = span_named(&response, &format!("chat {model}")).await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    let text = answer["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("[simulated]"), "{answer}");
    let a = &span.span.attributes;
    for (key, value) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.max_tokens", json!(50)),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        (
            "gen_ai.usage.output_tokens",
            answer["usage"]["output_tokens"].clone(),
        ),
        (
            "gen_ai.usage.input_tokens",
            answer["usage"]["input_tokens"].clone(),
        ),
    ] {
        assert_eq!(attr(a, key), Some(value), "{key}");
    }
    assert_eq!(
        attr(a, "openai.api.type"),
        None,
        "only for gen_ai.provider.name=openai"
    );

    // Streamed: the typed events, in order, ending with response.completed.
    let response = post(
        &app,
        "/v1/responses",
        json!({"model": model, "input": "Explain observability", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let span = span_named(&response, &format!("chat {model}")).await;
    let body = response.text().await.unwrap();
    let types: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    assert!(
        types
            .iter()
            .filter(|t| *t == "response.output_text.delta")
            .count()
            >= 2
    );
    let a = &span.span.attributes;
    assert_eq!(attr(a, "gen_ai.request.stream"), Some(json!(true)));
    assert!(attr(a, "gen_ai.response.time_to_first_chunk").is_some());
    assert_eq!(
        attr(a, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    assert!(attr(a, "gen_ai.usage.output_tokens").is_some());
    assert_eq!(attr(a, "error.type"), None);

    let scrape = app.scrape().await;
    assert_eq!(
        metric(
            &scrape,
            "llm_requests_total",
            &[
                ("provider", "simulated"),
                ("model", model),
                ("status", "ok")
            ]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_messages_api_is_answered_offline_whole_and_streamed() {
    let app = simulated().await;
    let model = "claude-haiku-4-5";
    let request = json!({"model": model, "max_tokens": 8, "system": "be brief", "messages": [{"role": "user", "content": "Explain observability"}]});
    let response = post(&app, "/v1/messages", request.clone()).await;
    assert_eq!(response.status(), 200);
    let span = span_named(&response, &format!("chat {model}")).await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["stop_reason"], "max_tokens", "cut at max_tokens");
    assert_eq!(answer["usage"]["output_tokens"], 8);
    assert!(
        answer["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("[simulated]")
    );
    let a = &span.span.attributes;
    for (key, value) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("simulated")),
        ("gen_ai.request.max_tokens", json!(8)),
        ("gen_ai.usage.output_tokens", json!(8)),
        ("gen_ai.response.finish_reasons", json!(["length"])),
    ] {
        assert_eq!(attr(a, key), Some(value), "{key}");
    }

    // Streamed: Anthropic's event sequence, read back for the span.
    let mut streamed = request;
    streamed["stream"] = json!(true);
    let response = post(&app, "/v1/messages", streamed).await;
    assert_eq!(response.status(), 200);
    let span = span_named(&response, &format!("chat {model}")).await;
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(
        &events[events.len() - 2..],
        ["message_delta", "message_stop"]
    );
    let a = &span.span.attributes;
    assert_eq!(attr(a, "gen_ai.usage.output_tokens"), Some(json!(8)));
    assert!(attr(a, "gen_ai.usage.input_tokens").is_some_and(|n| n.as_i64() > Some(0)));
    assert_eq!(
        attr(a, "gen_ai.response.finish_reasons"),
        Some(json!(["length"]))
    );
    assert!(attr(a, "gen_ai.response.time_to_first_chunk").is_some());

    // count_tokens, offline too.
    let counted: Value = post(
        &app,
        "/v1/messages/count_tokens",
        json!({"model": model, "messages": [{"role": "user", "content": "Explain observability"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(counted["input_tokens"].as_u64() > Some(0), "{counted}");
}
