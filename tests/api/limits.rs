//! The gateway's own limits: concurrency, per-client rate, header-read timeout; and a load
//! test with injected faults where every status is documented and every call is counted.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::prometheus::sample;
use crate::support::upstream::Reply;

#[tokio::test]
async fn beyond_max_concurrency_and_its_queue_calls_get_503_overloaded() {
    let app = spawn_app_with(&[("LLM_MAX_CONCURRENCY", "1"), ("LLM_MAX_QUEUE", "0")]).await;
    app.upstream
        .script([Reply::Delay(Duration::from_millis(400))]);

    let slow = app.chat(json!({"prompt": "slow"}));
    let refused = async {
        // Wait until the slow call holds the only slot.
        while app.upstream.received().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        app.chat(json!({"prompt": "refused"})).await
    };
    let (slow, refused) = tokio::join!(slow, refused);

    assert_eq!(slow.status(), 200);
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded");
    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "concurrency")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "llama-3.1-8b-instant"),
                ("error_type", "overloaded")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(app.upstream.received().len(), 1);
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_CLIENT", "0.5"), ("RATE_LIMIT_BURST", "2")]).await;

    let statuses: Vec<u16> = futures_util::stream::iter(0..3)
        .then(|_| async { app.chat(json!({"prompt": "hi"})).await })
        .map(|r| r.status().as_u16())
        .collect()
        .await;
    let limited = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limited");
    assert_eq!(body["error"]["code"], "client_rate_limit_exceeded");
    assert_eq!(app.upstream.received().len(), 2);
    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "client_rate_limit")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn rejections_are_counted_with_their_reason() {
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "100")]).await;

    app.chat(json!({"prompt": "x".repeat(200)})).await;
    app.chat(json!({"prompt": ""})).await;
    app.client
        .post(app.url("/api/chat"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();

    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "body_too_large")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "invalid_request")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_gateway_rejections_total",
            &[("reason", "malformed_json")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn retries_are_counted_by_reason() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "2")]).await;
    app.upstream.script([
        Reply::groq_error(503, "busy", "x"),
        Reply::Status {
            status: 429,
            body: "{}".into(),
            headers: vec![("retry-after", "0".into())],
        },
    ]);

    assert_eq!(app.chat(json!({"prompt": "hi"})).await.status(), 200);

    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_upstream_retries_total",
            &[("provider", "groq"), ("reason", "5xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "llm_upstream_retries_total",
            &[("provider", "groq"), ("reason", "429")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_with(&[("HEADER_READ_TIMEOUT_SECS", "0.3")]).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"POST /api/chat HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut buffer)).await;

    assert!(read.is_ok(), "the server kept the half-open request");
}

#[tokio::test]
async fn load_with_injected_faults_gives_only_documented_statuses_and_exact_counts() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0"), ("LLM_MAX_CONCURRENCY", "0")]).await;
    let total = 20_000usize;
    let concurrency = 200;
    let faults = ["fault:500", "fault:429", "fault:400", "fault:garbage"];
    // Every 10th request is a fault, the four kinds in turn.
    let prompt = |i: usize| match i % 10 {
        0 => faults[(i / 10) % faults.len()].to_owned(),
        _ => format!("request {i}"),
    };

    let statuses: BTreeMap<u16, usize> = futures_util::stream::iter(0..total)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/api/chat");
            let body = json!({"prompt": prompt(i)});
            async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        })
        .buffer_unordered(concurrency)
        .fold(BTreeMap::new(), |mut counts, status| async move {
            *counts
                .entry(status.expect("no request may fail at the HTTP level"))
                .or_default() += 1;
            counts
        })
        .await;

    let per_fault = total / 10 / faults.len();
    let expected = BTreeMap::from([
        (200, total - total / 10),
        (400, per_fault),
        (429, per_fault),
        (502, 2 * per_fault),
    ]);
    assert_eq!(statuses, expected);
    let text = app.scrape().await;
    let model = "llama-3.1-8b-instant";
    let ok = sample(
        &text,
        "llm_requests_total",
        &[("provider", "groq"), ("model", model), ("status", "ok")],
    )
    .unwrap();
    let failed = sample(
        &text,
        "llm_requests_total",
        &[("provider", "groq"), ("model", model), ("status", "error")],
    )
    .unwrap();
    assert_eq!(
        ok + failed,
        total as f64,
        "llm_requests_total counts every request"
    );
    assert_eq!(failed, (total / 10) as f64);
    assert_eq!(
        sample(&text, "llm_requests_in_flight", &[("provider", "groq")]),
        Some(0.0)
    );
    println!("load: {total} requests at concurrency {concurrency}: {statuses:?}");
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let closed = spawn_app_with(&[]).await;
    let open = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let preflight = |app: &crate::support::app::TestApp| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/chat"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
    };

    let denied = preflight(&closed).await.unwrap();
    let allowed = preflight(&open).await.unwrap();

    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

/// Statuses of `/api/chat` calls sent one after another, each with its own extra headers.
async fn statuses(app: &TestApp, headers: &[&[(&str, &str)]]) -> Vec<u16> {
    let mut out = Vec::new();
    for extra in headers {
        let mut request = app
            .client
            .post(app.url("/api/chat"))
            .json(&json!({"prompt": "hi"}));
        for (name, value) in *extra {
            request = request.header(*name, *value);
        }
        out.push(request.send().await.unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn inventing_a_bearer_token_per_request_buys_no_new_bucket() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_CLIENT", "1")]).await;

    let got = statuses(
        &app,
        &[
            &[("authorization", "Bearer invented-1")],
            &[("authorization", "Bearer invented-2")],
            &[("authorization", "Bearer invented-3")],
            &[("authorization", "Bearer invented-4")],
            &[("authorization", "Bearer invented-5")],
        ],
    )
    .await;

    // No gateway keys: nothing verifies a token, so the client is its address.
    assert_eq!(got, [200, 429, 429, 429, 429]);
}

#[tokio::test]
async fn with_gateway_keys_each_authenticated_key_has_its_bucket() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_PER_CLIENT", "1"),
        ("GATEWAY_API_KEYS", "team-a-key,team-b-key"),
    ])
    .await;

    let got = statuses(
        &app,
        &[
            &[("authorization", "Bearer team-a-key")],
            &[("authorization", "Bearer team-a-key")],
            &[("authorization", "bearer  team-b-key ")],
            &[("authorization", "Bearer invented")],
            &[("authorization", "Bearer invented-2")],
        ],
    )
    .await;

    // Same key: one bucket; the other key: its own (whatever the spacing); invented tokens
    // are refused before they can reach the limiter.
    assert_eq!(got, [200, 429, 200, 401, 401]);
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_CLIENT", "1")]).await;

    let got = statuses(
        &app,
        &[
            &[("x-forwarded-for", "198.51.100.1")],
            &[("x-forwarded-for", "198.51.100.2")],
            &[("forwarded", "for=198.51.100.3")],
        ],
    )
    .await;

    assert_eq!(got, [200, 429, 429], "127.0.0.1 is not a trusted proxy");
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_PER_CLIENT", "1"),
        ("TRUSTED_PROXIES", "127.0.0.0/8,::1"),
    ])
    .await;

    let got = statuses(
        &app,
        &[
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")],
            &[("x-forwarded-for", "7.7.7.7, 198.51.100.1")],
            &[("x-forwarded-for", "198.51.100.2")],
            &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
            &[("forwarded", "for=\"[2001:db8::2]\"")],
        ],
    )
    .await;

    // The client is the address the trusted proxy saw (the rightmost untrusted hop), not what
    // the client claimed before it; IPv6 clients count per /64.
    assert_eq!(got, [200, 429, 200, 200, 429]);
}
