//! Upstream faults map to README's statuses and `error.type` values, and the key never leaks.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::upstream::{API_KEY, Reply, groq};

async fn error_of(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert!(!text.contains(API_KEY), "key leaked in a response: {text}");
    (status, retry_after, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn upstream_401_becomes_502_authentication_without_echoing_the_key() {
    let app = spawn_app().await;
    app.upstream.script([Reply::groq_error(
        401,
        &format!("Invalid API Key {API_KEY}"),
        "invalid_api_key",
    )]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "authentication");
    assert_eq!(app.upstream.received().len(), 1, "401 must not be retried");
}

#[tokio::test]
async fn upstream_403_becomes_502_authentication() {
    let app = spawn_app().await;
    app.upstream
        .script([Reply::groq_error(403, "forbidden", "forbidden")]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "authentication");
}

#[tokio::test]
async fn upstream_404_for_an_unknown_model_passes_through_with_its_message() {
    let app = spawn_app().await;
    app.upstream.script([Reply::groq_error(
        404,
        "The model `nope` does not exist or you do not have access to it.",
        "model_not_found",
    )]);

    let (status, _, body) =
        error_of(app.chat(json!({"prompt": "hi", "model": "nope"})).await).await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "upstream_client_error");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(
        body["error"]["message"],
        "The model `nope` does not exist or you do not have access to it."
    );
    assert_eq!(app.upstream.received().len(), 1, "4xx must not be retried");
}

#[tokio::test]
async fn upstream_400_context_length_passes_through_as_400() {
    let app = spawn_app().await;
    app.upstream.script([Reply::groq_error(
        400,
        "Please reduce the length of the messages or completion.",
        "context_length_exceeded",
    )]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "upstream_client_error");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn upstream_429_becomes_429_with_retry_after_passed_through() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.upstream.script([Reply::Status {
        status: 429,
        body: groq::error(
            "Rate limit reached for model",
            "tokens",
            Some("rate_limit_exceeded"),
        )
        .to_string(),
        headers: vec![("retry-after", "7".into())],
    }]);

    let (status, retry_after, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("7"));
    assert_eq!(body["error"]["type"], "rate_limited");
    assert_eq!(body["error"]["message"], "Rate limit reached for model");
}

#[tokio::test]
async fn a_429_without_retry_after_still_tells_the_client_when_to_come_back() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0")]).await;
    let rate_limited = |headers: Vec<(&'static str, String)>| Reply::Status {
        status: 429,
        body: groq::error("Rate limit reached", "tokens", Some("rate_limit_exceeded")).to_string(),
        headers,
    };
    let in_30_s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    app.upstream.script([
        // Groq's headers: the token limit is the exhausted one; its reset is 7.66 s.
        rate_limited(vec![
            ("x-ratelimit-remaining-requests", "14370".into()),
            ("x-ratelimit-reset-requests", "2m59.56s".into()),
            ("x-ratelimit-remaining-tokens", "0".into()),
            ("x-ratelimit-reset-tokens", "7.66s".into()),
        ]),
        // An HTTP date.
        rate_limited(vec![("retry-after", in_30_s)]),
        // No hint at all: the documented default.
        rate_limited(vec![]),
    ]);

    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, retry_after, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["type"], "rate_limited");
        seen.push(retry_after.expect("every 429 carries Retry-After"));
    }
    assert_eq!(seen[0], "8", "the exhausted limit's reset, rounded up");
    let from_date: u64 = seen[1].parse().unwrap();
    assert!(
        (28..=30).contains(&from_date),
        "an HTTP date read as seconds: {from_date}"
    );
    assert_eq!(seen[2], "1");
}

#[tokio::test]
async fn upstream_429_with_a_long_retry_after_is_not_waited_out() {
    let app = spawn_app().await;
    app.upstream.script([Reply::Status {
        status: 429,
        body: "{}".into(),
        headers: vec![("retry-after", "60".into())],
    }]);

    let (status, retry_after, _) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("60"));
    assert_eq!(app.upstream.received().len(), 1);
}

#[tokio::test]
async fn upstream_500_is_retried_then_becomes_502() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "2")]).await;
    let failure = Reply::groq_error(500, "Internal Server Error", "internal_server_error");
    app.upstream
        .script([failure.clone(), failure.clone(), failure]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "upstream_server_error");
    assert_eq!(app.upstream.received().len(), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn upstream_503_recovers_on_retry() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "2")]).await;
    app.upstream
        .script([Reply::groq_error(503, "Service Unavailable", "unavailable")]);

    let response = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.received().len(), 2);
}

#[tokio::test]
async fn upstream_timeout_becomes_504() {
    let app = spawn_app_with(&[("LLM_TIMEOUT_SECS", "0.3")]).await;
    app.upstream.script([Reply::Delay(Duration::from_secs(5))]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 504);
    assert_eq!(body["error"]["type"], "timeout");
}

#[tokio::test]
async fn connection_refused_becomes_502_connection_error() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/openai/v1", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(&[("GROQ_BASE_URL", &url), ("LLM_MAX_RETRIES", "1")]).await;

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "connection_error");
    assert_eq!(body["error"]["message"], "could not reach the LLM provider");
}

#[tokio::test]
async fn a_200_whose_body_is_not_json_becomes_502_bad_response() {
    let app = spawn_app().await;
    app.upstream.script([Reply::Status {
        status: 200,
        body: "<html>oops</html>".into(),
        headers: vec![],
    }]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "bad_response");
    assert_eq!(
        app.upstream.received().len(),
        1,
        "a garbage 200 is not retried"
    );
}

#[tokio::test]
async fn a_200_without_usage_still_answers_with_null_usage_and_cost() {
    let app = spawn_app().await;
    let mut body = crate::support::upstream::groq_success("llama-3.1-8b-instant");
    body.as_object_mut().unwrap().remove("usage");
    app.upstream.script([Reply::Status {
        status: 200,
        body: body.to_string(),
        headers: vec![],
    }]);

    let response = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["usage"], Value::Null);
    assert_eq!(body["cost_usd"], Value::Null);
}

#[tokio::test]
async fn every_error_body_carries_the_trace_id_of_the_header() {
    let app = spawn_app().await;
    app.upstream
        .script([Reply::groq_error(404, "nope", "model_not_found")]);

    let response = app.chat(json!({"prompt": "hi"})).await;
    let header = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    assert_eq!(body["trace_id"], header.as_str());
}

#[tokio::test]
async fn upstream_500_is_attempted_three_times_by_default() {
    // Guards the documented default (LLM_MAX_RETRIES=2): three 500s, three attempts.
    let app = spawn_app().await;
    let failure = Reply::groq_error(500, "boom", "internal");
    app.upstream
        .script([failure.clone(), failure.clone(), failure]);

    let response = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(response.status(), 502);
    assert_eq!(app.upstream.received().len(), 3);
}

#[tokio::test]
async fn a_body_that_stops_midway_times_out_as_504() {
    let app = spawn_app_with(&[("LLM_TIMEOUT_SECS", "0.5")]).await;
    app.upstream.script([Reply::BodyThenHang]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 504);
    assert_eq!(body["error"]["type"], "timeout");
}

#[tokio::test]
async fn a_connection_reset_midway_is_retried_then_502_connection_error() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "1")]).await;
    app.upstream
        .script([Reply::BodyThenReset, Reply::BodyThenReset]);

    let (status, _, body) = error_of(app.chat(json!({"prompt": "hi"})).await).await;

    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "connection_error");
    assert_eq!(
        app.upstream.received().len(),
        2,
        "a broken connection is retried"
    );
}

#[tokio::test]
async fn a_reset_that_recovers_on_retry_answers_200() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "1")]).await;
    app.upstream.script([Reply::BodyThenReset]);

    let response = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_very_large_answer_is_relayed_whole() {
    let app = spawn_app().await;
    let size = 5 << 20;
    app.upstream.script([Reply::Large(size)]);

    let response = app.chat(json!({"prompt": "hi"})).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"].as_str().unwrap().len(), size);
}

#[tokio::test]
async fn stream_requests_that_fail_before_the_first_byte_get_plain_errors() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "0")]).await;
    app.upstream.script([
        Reply::Status {
            status: 429,
            body: groq::error("slow down", "tokens", Some("rate_limit_exceeded")).to_string(),
            headers: vec![("retry-after", "9".into())],
        },
        Reply::groq_error(500, "boom", "x"),
        Reply::groq_error(401, &format!("bad key {API_KEY}"), "invalid_api_key"),
    ]);
    let stream_body = json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]});

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .json(&stream_body)
            .send()
            .await
            .unwrap();
        let (status, retry_after, body) = error_of(response).await;
        outcomes.push((
            status,
            retry_after,
            body["error"]["type"].as_str().unwrap().to_owned(),
        ));
    }

    assert_eq!(
        outcomes,
        [
            (429, Some("9".to_owned()), "rate_limited".to_owned()),
            (502, None, "upstream_server_error".to_owned()),
            (502, None, "authentication".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_a_timeout_error_event() {
    let app = spawn_app_with(&[("LLM_TIMEOUT_SECS", "0.5")]).await;
    app.upstream.script([Reply::StreamThenHang]);

    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200, "the stream had started");
    let text = response.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "timeout");
}

#[tokio::test]
async fn keys_in_upstream_messages_never_reach_the_client_whatever_surrounds_them() {
    // A key with no key-like shape: only the verbatim rule knows it is one.
    const PLAIN_KEY: &str = "plain-secret-value";
    let app = spawn_app_with(&[("GROQ_API_KEY", PLAIN_KEY), ("LLM_MAX_RETRIES", "0")]).await;
    for message in [
        format!("Invalid API Key:\n{PLAIN_KEY}"),
        format!("Invalid API Key:\t{PLAIN_KEY}"),
        format!("key=\"{PLAIN_KEY}\" was refused"),
        "Invalid API Key:\ngsk_live_0123456789abcdefXYZ".to_owned(),
        "header was Authorization: Bearer abc.def-ghi_jkl".to_owned(),
        "https://x.example/v1?api_key=qwerty&b=1 refused".to_owned(),
    ] {
        app.upstream.script([Reply::Status {
            status: 400,
            body: groq::error(&message, "invalid_request_error", Some(PLAIN_KEY)).to_string(),
            headers: vec![],
        }]);
        let response = app.chat(json!({"prompt": "hi"})).await;
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        for secret in [
            PLAIN_KEY,
            "gsk_live_0123456789abcdefXYZ",
            "abc.def-ghi_jkl",
            "qwerty",
        ] {
            assert!(
                !text.contains(secret),
                "{message:?} leaked {secret:?}: {text}"
            );
        }
        assert!(text.contains("[redacted]"), "{text}");
    }
}
