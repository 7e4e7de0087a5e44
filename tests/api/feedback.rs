//! `POST /v1/feedback` (issue 17): a score or label on an earlier call, by response id or trace
//! id, exported as an `evaluation {name}` span linked to the call's GenAI span with the
//! conventions' evaluation attributes, and counted with bounded labels; every bad input. And
//! prompt versions: named by header or OpenAI metadata, on the span and in bounded metrics.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;

async fn spawn(extra: &str) -> TestApp {
    let path = write_config(&format!(
        r#"
        [providers.sim]
        kind = "simulated"
        simulated_latency_ms = 0
        [routes.fast]
        targets = [{{ provider = "sim", model = "llama-3.1-8b-instant" }}]
        [prompts]
        support = ["v1", "v2"]
        [feedback]
        names = ["helpfulness"]
        labels = ["good", "bad"]
        {extra}
        "#
    ));
    spawn_app_with(&[("GATEWAY_CONFIG", &path)]).await
}

/// One chat call: its response id and trace id.
async fn call(app: &TestApp) -> (String, String) {
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), trace)
}

async fn send(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/feedback"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace's span named `name`.
async fn span_named(trace: &str, count: usize, name: &str) -> ExportedSpan {
    let spans = otlp().wait_for_trace(trace, count).await;
    spans
        .into_iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name} in trace {trace}"))
}

#[tokio::test]
async fn feedback_by_response_id_is_a_span_linked_to_the_call_and_counted() {
    otlp();
    let app = spawn("").await;
    let (response_id, call_trace) = call(&app).await;
    let (status, body) = send(
        &app,
        json!({"response_id": response_id, "name": "helpfulness", "score": 4, "label": "good", "comment": "Clear."}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["linked_trace_id"], call_trace.as_str());
    let feedback_trace = body["trace_id"].as_str().unwrap().to_owned();
    assert_ne!(feedback_trace, call_trace);

    let chat = span_named(&call_trace, 2, "chat fast").await;
    let evaluation = span_named(&feedback_trace, 2, "evaluation helpfulness").await;
    let span = &evaluation.span;
    assert_eq!(span.links.len(), 1, "one link");
    assert_eq!(hex(&span.links[0].trace_id), call_trace);
    assert_eq!(
        span.links[0].span_id, chat.span.span_id,
        "linked to the GenAI span"
    );
    let attrs = &span.attributes;
    assert_eq!(
        attr(attrs, "gen_ai.evaluation.name"),
        Some(json!("helpfulness"))
    );
    assert_eq!(
        attr(attrs, "gen_ai.evaluation.score.value"),
        Some(json!(4.0))
    );
    assert_eq!(
        attr(attrs, "gen_ai.evaluation.score.label"),
        Some(json!("good"))
    );
    assert_eq!(
        attr(attrs, "gen_ai.evaluation.explanation"),
        Some(json!("Clear."))
    );
    assert_eq!(attr(attrs, "gen_ai.response.id"), Some(json!(response_id)));
    let event = span
        .events
        .iter()
        .find(|e| e.name == "gen_ai.evaluation.result")
        .expect("the conventions' event");
    assert_eq!(
        attr(&event.attributes, "gen_ai.evaluation.score.value"),
        Some(json!(4.0))
    );

    // By trace id, with a name and label not declared: counted as other.
    let (status, _) = send(
        &app,
        json!({"trace_id": call_trace, "name": "tone", "label": "warm"}),
    )
    .await;
    assert_eq!(status, 200);
    let text = app.scrape().await;
    let count = |name: &str, label: &str| {
        sample(
            &text,
            "llm_feedback_total",
            &[("name", name), ("label", label)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("helpfulness", "good"), 1.0);
    assert_eq!(count("other", "other"), 1.0);
    assert_eq!(
        sample(
            &text,
            "llm_feedback_score_count",
            &[("name", "helpfulness")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "llm_feedback_score_sum", &[("name", "helpfulness")]),
        Some(4.0)
    );
}

#[tokio::test]
async fn every_bad_feedback_gets_its_status_and_nothing_is_counted() {
    let app = spawn("window_secs = 1").await;
    let (response_id, trace) = call(&app).await;
    let cases = [
        (
            json!({"name": "x", "score": 1}),
            404,
            "neither id: no call named",
        ),
        (
            json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "response_id": response_id, "name": "x", "score": 1}),
            404,
            "ids of two different calls",
        ),
        (
            json!({"response_id": response_id, "name": "", "score": 1}),
            422,
            "empty name",
        ),
        (
            json!({"response_id": response_id, "score": 1}),
            422,
            "no name",
        ),
        (
            json!({"response_id": response_id, "name": "x", "score": "high"}),
            422,
            "a string score",
        ),
        (
            json!({"response_id": response_id, "name": "x", "score": 1, "extra": true}),
            422,
            "an unknown field",
        ),
        (
            json!({"trace_id": "abc", "name": "x", "score": 1}),
            422,
            "a malformed trace id",
        ),
        (
            json!({"response_id": "chatcmpl-unknown", "name": "x", "score": 1}),
            404,
            "an unknown response id",
        ),
        (
            json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "name": "x", "score": 1}),
            404,
            "an unknown trace id",
        ),
        (
            json!({"response_id": response_id, "name": "x", "score": 1, "comment": "y".repeat(4097)}),
            413,
            "an oversized comment",
        ),
    ];
    for (body, expected, what) in cases {
        let (status, answer) = send(&app, body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{what}: {answer}");
    }
    let (status, answer) = send(
        &app,
        json!({"trace_id": trace, "response_id": response_id, "name": "flag"}),
    )
    .await;
    assert_eq!(
        status, 200,
        "both ids of one call, and no score nor label: {answer}"
    );
    // Outside the window (1 s): 404 naming it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, answer) = send(
        &app,
        json!({"response_id": response_id, "name": "x", "score": 1}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last 1 s"),
        "{answer}"
    );
    let text = app.scrape().await;
    let counted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("llm_feedback_total{"))
        .collect();
    assert_eq!(
        counted,
        ["llm_feedback_total{label=\"\",name=\"other\"} 1"],
        "only the one accepted feedback is counted"
    );
}

#[tokio::test]
async fn feedback_needs_the_gateway_key_like_the_llm_endpoints() {
    let app = spawn_app_with(&[("GATEWAY_API_KEYS", "gk-feedback")]).await;
    let (status, _) = send(
        &app,
        json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "name": "x", "score": 1}),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_prompt_version_from_a_header_or_metadata_is_on_the_span_and_in_bounded_metrics() {
    otlp();
    let app = spawn("").await;
    let ask = |prompt: Option<&'static str>, metadata: Option<Value>| {
        let mut body = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
        if let Some(metadata) = metadata {
            body["metadata"] = metadata;
        }
        let mut request = app.client.post(app.url("/v1/chat/completions")).json(&body);
        if let Some(prompt) = prompt {
            request = request.header("x-llmobs-prompt", prompt);
        }
        request.send()
    };
    let first = ask(Some("support@v1"), None).await.unwrap();
    assert_eq!(first.status(), 200);
    let trace = first.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let response_id = first.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ask(Some("support@v1"), None).await.unwrap().status(), 200);
    let metadata = json!({"prompt_name": "support", "prompt_version": "v2"});
    assert_eq!(ask(None, Some(metadata)).await.unwrap().status(), 200);
    assert_eq!(ask(Some("draft@x"), None).await.unwrap().status(), 200);
    let bad = ask(Some("no-version"), None).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("x-llmobs-prompt")
    );

    let chat = span_named(&trace, 2, "chat fast").await;
    assert_eq!(
        attr(&chat.span.attributes, "gen_ai.prompt.name"),
        Some(json!("support"))
    );
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.prompt.version"),
        Some(json!("v1"))
    );

    let text = app.scrape().await;
    let calls = |prompt: &str, version: &str| {
        sample(
            &text,
            "llm_prompt_requests_total",
            &[
                ("prompt", prompt),
                ("prompt_version", version),
                ("status", "ok"),
            ],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(calls("support", "v1"), 2.0);
    assert_eq!(calls("support", "v2"), 1.0);
    assert_eq!(calls("other", "other"), 1.0, "an undeclared prompt");
    let cost = sample(
        &text,
        "llm_prompt_cost_usd_total",
        &[("prompt", "support"), ("prompt_version", "v1")],
    );
    assert!(cost.is_some_and(|c| c > 0.0), "{cost:?}");
    assert_eq!(
        sample(
            &text,
            "llm_prompt_duration_seconds_count",
            &[("prompt", "support"), ("prompt_version", "v2")]
        ),
        Some(1.0)
    );

    // Feedback on that call carries its prompt (by trace: the simulated provider's answers to
    // one prompt share their id, so the id names the last of them).
    assert!(response_id.starts_with("chatcmpl"));
    let (status, body) = send(
        &app,
        json!({"trace_id": trace, "name": "helpfulness", "score": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let evaluation = span_named(
        body["trace_id"].as_str().unwrap(),
        2,
        "evaluation helpfulness",
    )
    .await;
    assert_eq!(body["linked_trace_id"], trace.as_str(), "{body}");
    assert_eq!(
        sample(
            &app.scrape().await,
            "llm_prompt_feedback_score_count",
            &[
                ("prompt", "support"),
                ("prompt_version", "v1"),
                ("name", "helpfulness")
            ]
        ),
        Some(1.0),
        "the score counted by prompt version"
    );
    assert_eq!(
        attr(&evaluation.span.attributes, "llmobs.prompt.version"),
        Some(json!("v1")),
        "{:?}",
        evaluation.span
    );
}
