//! A real Prometheus (Debian's `prometheus` package) scrapes the running app and evaluates the
//! project's real alert rules.

use serde_json::{Value, json};

use crate::support::app::spawn_app_with;
use crate::support::prometheus::{poll, query, scalar, start_prometheus};
use crate::support::upstream::Reply;

#[tokio::test]
async fn prometheus_scrapes_the_app_and_the_alert_rules_fire_on_upstream_errors() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0")]).await;
    let failure = || Reply::groq_error(500, "boom", "internal");
    app.upstream.script([failure()]);
    for _ in 0..6 {
        app.chat(json!({"prompt": "hi"})).await;
    }
    let prometheus = start_prometheus(&app).await;
    // Counters need a first sample before an increase can be seen by rate().
    poll(|| async {
        scalar(&query(&prometheus, r#"sum(llm_requests_total{status="error"})"#).await)
    })
    .await;

    app.upstream.script((0..5).map(|_| failure()));
    for _ in 0..5 {
        assert_eq!(app.chat(json!({"prompt": "hi"})).await.status(), 502);
    }

    let total = poll(|| async {
        scalar(&query(&prometheus, "sum(llm_requests_total)").await).filter(|v| *v == 11.0)
    })
    .await;
    assert_eq!(total, 11.0);
    let ok = scalar(&query(&prometheus, r#"sum(llm_requests_total{status="ok"})"#).await);
    assert_eq!(ok, Some(5.0));
    let tokens = scalar(&query(&prometheus, r#"sum(llm_tokens_total{type="output"})"#).await);
    assert_eq!(tokens, Some(5.0 * 34.0));
    // The fake upstream answers in well under 10 ms: the median falls in the first bucket.
    let p50 = scalar(
        &query(&prometheus, "histogram_quantile(0.5, sum by (le) (gen_ai_client_operation_duration_seconds_bucket))").await,
    )
    .unwrap();
    assert!(p50 > 0.0 && p50 <= 0.01, "p50 = {p50}");
    let rate = scalar(&query(&prometheus, "sum(rate(llm_requests_total[5m]))").await).unwrap();
    assert!(rate > 0.0);

    // The real rule files load and evaluate cleanly…
    let groups = poll(|| async {
        let body: Value = reqwest::get(format!("{}/api/v1/rules", prometheus.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let groups = body["data"]["groups"].as_array()?.clone();
        let evaluated = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .all(|r| r["health"] == "ok");
        (!groups.is_empty() && evaluated).then_some(groups)
    })
    .await;
    let rules: Vec<String> = groups
        .iter()
        .flat_map(|g| {
            g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(rules.contains(&"LLMHighErrorRatio".to_owned()), "{rules:?}");

    // …and a burst of upstream 500s makes the error-ratio alert go pending.
    let state = poll(|| async {
        let body: Value = reqwest::get(format!("{}/api/v1/alerts", prometheus.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "LLMHighErrorRatio")
            .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(state, "pending");
}
