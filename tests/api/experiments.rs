//! A/B variants (issue 17): a weighted route's named targets; the variant sticks to its end
//! user (or conversation) across calls and replicas' hashing, users spread by weight, and the
//! variant is on the span, in the variant metrics and on feedback's evaluation span.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, write_config};
use crate::support::otlp::{attr, otlp};
use crate::support::prometheus::sample;

async fn spawn() -> TestApp {
    let path = write_config(
        r#"
        [providers.control]
        kind = "simulated"
        simulated_latency_ms = 0
        [providers.candidate]
        kind = "simulated"
        simulated_latency_ms = 0
        [routes.answer]
        strategy = "weighted"
        targets = [
          { provider = "control", model = "llama-3.1-8b-instant", weight = 3, variant = "a" },
          { provider = "candidate", model = "llama-3.3-70b-versatile", weight = 1, variant = "b" },
        ]
        "#,
    );
    spawn_app_with(&[("GATEWAY_CONFIG", &path)]).await
}

/// `/api/chat` to the route as `user` (the `x-llmobs-user` header): the provider that answered
/// and the trace id.
async fn ask(app: &TestApp, user: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/api/chat"))
        .header("x-llmobs-user", user)
        .json(&json!({"prompt": "hi", "model": "answer", "max_tokens": 8}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    (
        body["provider"].as_str().unwrap().to_owned(),
        body["trace_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_user_keeps_one_variant_and_users_spread_by_weight() {
    let app = spawn().await;
    // The same user, 100 calls: one variant.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        seen.insert(ask(&app, "user-42").await.0);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    // 400 users, one call each: about 3 in 4 to the control (weight 3 of 4).
    let mut control = 0;
    for i in 0..400 {
        if ask(&app, &format!("user-{i}")).await.0 == "control" {
            control += 1;
        }
    }
    assert!(
        (255..=345).contains(&control),
        "{control} of 400 to the control"
    );
    let text = app.scrape().await;
    let count = |variant: &str| {
        sample(
            &text,
            "llm_variant_requests_total",
            &[("route", "answer"), ("variant", variant), ("status", "ok")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("a") + count("b"), 500.0);
    let sticky_a = if seen.contains("control") { 100.0 } else { 0.0 };
    assert_eq!(count("a"), f64::from(control) + sticky_a);
    assert!(
        sample(
            &text,
            "llm_variant_cost_usd_total",
            &[("route", "answer"), ("variant", "a")]
        )
        .is_some_and(|c| c > 0.0)
    );
}

#[tokio::test]
async fn the_variant_is_on_the_span_and_on_feedback() {
    otlp();
    let app = spawn().await;
    let (provider, trace) = ask(&app, "someone").await;
    let variant = if provider == "control" { "a" } else { "b" };
    let spans = otlp().wait_for_trace(&trace, 2).await;
    let chat = spans
        .iter()
        .find(|s| s.span.name == "chat answer")
        .expect("the GenAI span");
    assert_eq!(
        attr(&chat.span.attributes, "llmobs.route.variant"),
        Some(json!(variant))
    );
    let feedback: Value = app
        .client
        .post(app.url("/v1/feedback"))
        .json(&json!({"trace_id": trace, "name": "quality", "score": 0.5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let evaluation = otlp()
        .wait_for_trace(feedback["trace_id"].as_str().unwrap(), 2)
        .await
        .into_iter()
        .find(|s| s.span.name == "evaluation quality")
        .expect("the evaluation span");
    assert_eq!(
        attr(&evaluation.span.attributes, "llmobs.route.variant"),
        Some(json!(variant))
    );
    assert_eq!(
        attr(&evaluation.span.attributes, "llmobs.route.name"),
        Some(json!("answer"))
    );
    assert_eq!(
        sample(
            &app.scrape().await,
            "llm_variant_feedback_score_sum",
            &[("route", "answer"), ("variant", variant), ("name", "other")]
        ),
        Some(0.5),
        "the score by variant (an undeclared evaluation name: other)"
    );
}
