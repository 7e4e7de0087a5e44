//! Bad input gets a clear OpenAI-shaped JSON error with the right status, and never reaches
//! the upstream.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};

async fn assert_rejected(app: &TestApp, response: reqwest::Response, status: u16, mentions: &str) {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("x-trace-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(mentions),
        "{message:?} should mention {mentions:?}"
    );
    assert_eq!(body["trace_id"].as_str().unwrap().len(), 32);
    assert!(
        app.upstream.received().is_empty(),
        "invalid input reached the upstream"
    );
}

#[tokio::test]
async fn chat_returns_422_naming_each_invalid_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"max_tokens": 5}), "prompt"),
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": "   "}), "prompt"),
        (json!({"prompt": "hi", "temperature": 2.5}), "temperature"),
        (json!({"prompt": "hi", "temperature": -0.1}), "temperature"),
        (json!({"prompt": "hi", "max_tokens": 0}), "max_tokens"),
        (json!({"prompt": "hi", "max_tokens": 32769}), "max_tokens"),
        (json!({"prompt": "hi", "max_tokens": -1}), "max_tokens"),
        (json!({"prompt": "hi", "max_tokens": "ten"}), "max_tokens"),
        (json!({"prompt": 42}), "prompt"),
        (json!({"prompt": "hi", "temperature": "hot"}), "temperature"),
        (json!({"prompt": "hi", "model": ""}), "model"),
        (json!({"prompt": "hi", "max_token": 5}), "max_token"),
        (json!(["prompt"]), "ChatRequest"),
    ];
    for (body, field) in cases {
        let response = app.chat(body.clone()).await;
        assert_rejected(&app, response, 422, field).await;
    }
}

#[tokio::test]
async fn chat_returns_400_for_malformed_json() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/chat"))
        .header("content-type", "application/json")
        .body(r#"{"prompt": "hi""#)
        .send()
        .await
        .unwrap();

    assert_rejected(&app, response, 400, "JSON").await;
}

#[tokio::test]
async fn chat_returns_415_for_a_wrong_content_type() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/chat"))
        .header("content-type", "text/plain")
        .body(r#"{"prompt": "hi"}"#)
        .send()
        .await
        .unwrap();

    assert_rejected(&app, response, 415, "application/json").await;
}

#[tokio::test]
async fn chat_returns_413_over_the_body_limit() {
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;

    let response = app.chat(json!({"prompt": "x".repeat(2048)})).await;

    assert_rejected(&app, response, 413, "").await;
}

#[tokio::test]
async fn chat_accepts_a_body_just_under_the_default_limit_of_1_mib() {
    let app = spawn_app().await;

    let response = app.chat(json!({"prompt": "x".repeat(1_000_000)})).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_routes_get_a_json_404_and_wrong_methods_a_405() {
    let app = spawn_app().await;

    let missing = reqwest::get(app.url("/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request");

    let wrong_method = reqwest::get(app.url("/api/chat")).await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "POST");
}
