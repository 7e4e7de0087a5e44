//! The happy paths of `POST /api/chat`.

use serde_json::{Value, json};

use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::upstream::API_KEY;

#[tokio::test]
async fn chat_returns_the_answer_with_usage_cost_latency_and_trace_id() {
    let app = spawn_app().await;

    let response = app
        .chat(json!({"prompt": "Explain observability in 3 sentences", "max_tokens": 100, "temperature": 0.7}))
        .await;

    assert_eq!(response.status(), 200);
    let header_trace = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "chatcmpl-fake-123");
    assert_eq!(body["model"], "llama-3.1-8b-instant");
    assert_eq!(body["provider"], "groq");
    assert_eq!(
        body["content"],
        "Observability is knowing what your system does."
    );
    assert_eq!(body["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46})
    );
    // llama-3.1-8b-instant: $0.05 / $0.08 per million tokens.
    let cost = body["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (12.0 * 0.05 + 34.0 * 0.08) / 1e6).abs() < 1e-15,
        "{cost}"
    );
    assert!(body["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(body["trace_id"], header_trace.as_str());
    assert_eq!(header_trace.len(), 32);
}

#[tokio::test]
async fn chat_sends_groqs_wire_format_with_the_bearer_key_upstream() {
    let app = spawn_app().await;

    app.chat(json!({"prompt": "Hi", "system": "Be brief", "max_tokens": 50, "temperature": 0.2, "model": "llama-3.3-70b-versatile"}))
        .await;

    let received = app.upstream.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.headers["authorization"].to_str().unwrap(),
        format!("Bearer {API_KEY}")
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.body,
        json!({
            "model": "llama-3.3-70b-versatile",
            "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}],
            "max_tokens": 50,
            "temperature": 0.2,
            "stream": false
        })
    );
}

#[tokio::test]
async fn chat_applies_defaults_for_max_tokens_temperature_and_model() {
    let app = spawn_app_with(&[("LLM_DEFAULT_MODEL", "qwen/qwen3-32b")]).await;

    let response = app.chat(json!({"prompt": "Hi"})).await;

    assert_eq!(response.status(), 200);
    let body = &app.upstream.received()[0].body;
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.7);
    assert_eq!(body["model"], "qwen/qwen3-32b");
}

#[tokio::test]
async fn chat_reports_null_cost_for_an_unpriced_model_never_zero() {
    let app = spawn_app().await;

    let response = app
        .chat(json!({"prompt": "Hi", "model": "some-new-model"}))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cost_usd"], Value::Null);
    assert_eq!(body["usage"]["total_tokens"], 46);
}

#[tokio::test]
async fn chat_uses_the_pricing_file_when_given() {
    let dir = std::env::temp_dir().join(format!("pricing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pricing.json");
    std::fs::write(
        &file,
        r#"{"models": {"some-new-model": {"input_per_million": 1.0, "output_per_million": 2.0}}}"#,
    )
    .unwrap();
    let app = spawn_app_with(&[("PRICING_FILE", file.to_str().unwrap())]).await;

    let body: Value = app
        .chat(json!({"prompt": "Hi", "model": "some-new-model"}))
        .await
        .json()
        .await
        .unwrap();

    let cost = body["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (12.0 * 1.0 + 34.0 * 2.0) / 1e6).abs() < 1e-15,
        "{cost}"
    );
}

#[tokio::test]
async fn chat_answers_from_the_simulated_provider_without_a_key() {
    let app = spawn_app_with(&[("GROQ_API_KEY", ""), ("SIMULATED_LATENCY_MS", "0")]).await;

    let response = app
        .chat(json!({"prompt": "Explain observability in 3 sentences", "max_tokens": 10}))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["provider"], "simulated");
    assert!(body["content"].as_str().unwrap().starts_with("[simulated]"));
    assert_eq!(body["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 10);
    assert!(body["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(
        app.upstream.received().is_empty(),
        "simulated must not call out"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;

    let health: Value = reqwest::get(app.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ready: Value = reqwest::get(app.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(health, json!({"status": "ok"}));
    assert_eq!(
        ready,
        json!({"status": "ready", "provider": "groq", "providers": ["groq"], "routes": []})
    );
}
