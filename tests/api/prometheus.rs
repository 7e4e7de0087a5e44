//! A real Prometheus (Debian's `prometheus` package) scrapes the running app and evaluates the
//! project's real alert rules.

use serde_json::{Value, json};

use crate::support::app::spawn_app_with;
use crate::support::otlp::{hex, otlp};
use crate::support::prometheus::{poll, query, scalar, start_prometheus, start_prometheus_with};
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

/// Exemplars: Prometheus with exemplar storage scrapes OpenMetrics and keeps, for the latency
/// and token histograms, trace ids of requests whose spans the OTLP receiver has.
#[tokio::test]
async fn prometheus_keeps_exemplars_whose_trace_ids_the_collector_received() {
    otlp();
    let app = spawn_app_with(&[]).await;
    let mut traces = Vec::new();
    for _ in 0..5 {
        let response = app.chat(json!({"prompt": "hi"})).await;
        assert_eq!(response.status(), 200);
        traces.push(
            response.headers()["x-trace-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The plain text scrape is unchanged: no exemplar, no OpenMetrics end marker.
    let plain = app.scrape().await;
    assert!(
        !plain.contains("# EOF") && !plain.contains("trace_id="),
        "{plain}"
    );
    let prometheus = start_prometheus_with(&app, &["--enable-feature=exemplar-storage"]).await;
    let exemplars = |metric: &'static str| {
        let prometheus = &prometheus;
        async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let url = reqwest::Url::parse_with_params(
                &format!("{}/api/v1/query_exemplars", prometheus.url),
                [
                    ("query", metric.to_owned()),
                    ("start", (now - 600).to_string()),
                    ("end", (now + 60).to_string()),
                ],
            )
            .unwrap();
            let body: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            let ids: Vec<String> = body["data"]
                .as_array()?
                .iter()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned))
                .collect();
            (!ids.is_empty()).then_some(ids)
        }
    };
    for metric in [
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
        "http_server_request_duration_seconds_bucket",
    ] {
        let ids = poll(|| exemplars(metric)).await;
        for id in &ids {
            assert!(
                traces.contains(id),
                "{metric}: exemplar {id} is not one of the calls {traces:?}"
            );
            let spans = otlp().wait_for_trace(id, 2).await;
            assert!(spans.iter().all(|s| hex(&s.span.trace_id) == *id));
        }
    }
    // Scraped as OpenMetrics, the series still answer queries.
    let up = poll(|| async { scalar(&query(&prometheus, "up").await) }).await;
    assert_eq!(up, 1.0);
}
