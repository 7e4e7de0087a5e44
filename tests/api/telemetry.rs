//! What the service exports over OTLP, decoded from real protobuf: span tree, names, kinds,
//! GenAI attributes, errors, propagation, content capture and secrets.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::otlp::{ExportedSpan, attr, hex, otlp};
use crate::support::upstream::{API_KEY, Reply};

fn named<'a>(spans: &'a [ExportedSpan], name: &str) -> Vec<&'a ExportedSpan> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

fn one<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found = named(spans, name);
    assert_eq!(
        found.len(),
        1,
        "expected one {name:?} span in {:?}",
        spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
    );
    found[0]
}

async fn trace_of(response: &reqwest::Response) -> String {
    response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_chat_call_exports_server_chat_and_http_client_spans_with_genai_attributes() {
    let app = spawn_app().await;

    let response = app
        .chat(json!({"prompt": "Explain observability", "max_tokens": 100, "temperature": 0.7}))
        .await;
    assert_eq!(response.status(), 200);
    let trace_id = trace_of(&response).await;
    let body: Value = response.json().await.unwrap();
    let spans = otlp().wait_for_trace(&trace_id, 3).await;

    let server = one(&spans, "POST /api/chat");
    let chat = one(&spans, "chat llama-3.1-8b-instant");
    let http = one(&spans, "POST");
    assert_eq!(server.span.kind, SpanKind::Server as i32);
    assert_eq!(chat.span.kind, SpanKind::Client as i32);
    assert_eq!(http.span.kind, SpanKind::Client as i32);
    assert!(
        server.span.parent_span_id.is_empty(),
        "server span is the root"
    );
    assert_eq!(chat.span.parent_span_id, server.span.span_id);
    assert_eq!(http.span.parent_span_id, chat.span.span_id);

    let s = &server.span.attributes;
    assert_eq!(attr(s, "http.request.method"), Some(json!("POST")));
    assert_eq!(attr(s, "http.route"), Some(json!("/api/chat")));
    assert_eq!(attr(s, "url.path"), Some(json!("/api/chat")));
    assert_eq!(attr(s, "http.response.status_code"), Some(json!(200)));

    let c = &chat.span.attributes;
    let port = app.upstream.addr.port() as i64;
    let expected = [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("groq")),
        ("gen_ai.request.model", json!("llama-3.1-8b-instant")),
        ("gen_ai.request.max_tokens", json!(100)),
        ("gen_ai.request.temperature", json!(0.7)),
        ("gen_ai.response.id", json!("chatcmpl-fake-123")),
        ("gen_ai.response.model", json!("llama-3.1-8b-instant")),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("gen_ai.usage.input_tokens", json!(12)),
        ("gen_ai.usage.output_tokens", json!(34)),
        // The fake reports `prompt_tokens_details.cached_tokens` and
        // `completion_tokens_details.reasoning_tokens`, as Groq and OpenAI do.
        ("gen_ai.usage.cache_read.input_tokens", json!(4)),
        ("gen_ai.usage.reasoning.output_tokens", json!(10)),
        ("server.address", json!("127.0.0.1")),
        ("server.port", json!(port)),
        ("llmobs.cost.usd", body["cost_usd"].clone()),
        ("groq.usage.queue_time", json!(0.012)),
        ("groq.usage.prompt_time", json!(0.002)),
        ("groq.usage.completion_time", json!(0.03)),
        ("groq.usage.total_time", json!(0.032)),
        ("groq.request.id", json!("req_fake_1")),
    ];
    for (key, value) in expected {
        assert_eq!(attr(c, key), Some(value), "chat span attribute {key}");
    }
    assert_eq!(attr(c, "error.type"), None);
    // The OpenAI conventions scope `openai.*` to `gen_ai.provider.name = openai`.
    for key in [
        "openai.api.type",
        "openai.response.system_fingerprint",
        "openai.response.service_tier",
    ] {
        assert_eq!(attr(c, key), None, "{key} on a Groq span");
    }
    assert_eq!(
        attr(c, "gen_ai.usage.cache_creation.input_tokens"),
        None,
        "Groq reports no cache writes"
    );
    assert_eq!(attr(c, "gen_ai.input.messages"), None, "content is opt-in");
    assert_eq!(attr(c, "gen_ai.output.messages"), None, "content is opt-in");

    let h = &http.span.attributes;
    assert_eq!(attr(h, "http.request.method"), Some(json!("POST")));
    assert_eq!(attr(h, "http.response.status_code"), Some(json!(200)));
    assert_eq!(attr(h, "server.port"), Some(json!(port)));
    assert_eq!(attr(h, "http.request.resend_count"), None);
    // The address the client actually connected to, and the protocol it spoke.
    assert_eq!(attr(h, "network.peer.address"), Some(json!("127.0.0.1")));
    assert_eq!(attr(h, "network.peer.port"), Some(json!(port)));
    assert_eq!(attr(h, "network.protocol.version"), Some(json!("1.1")));

    // Every span's scope names the semantic-conventions version it follows.
    for span in [server, chat, http] {
        assert_eq!(span.scope_name, "llm-observability");
        assert_eq!(
            span.scope_schema_url,
            "https://opentelemetry.io/schemas/1.41.0"
        );
    }

    let resource = &server.resource;
    assert_eq!(
        attr(resource, "service.name"),
        Some(json!("llm-observability-api"))
    );
    assert_eq!(
        attr(resource, "service.version"),
        Some(json!(env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test]
async fn openai_attributes_are_recorded_when_the_provider_is_openai() {
    let app = spawn_app_with(&[("LLM_PROVIDER", "openai")]).await;
    let model = "llama-3.1-8b-instant";
    let chat = |tier: &str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .json(&json!({"model": model, "service_tier": tier, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    let response = chat("flex").await.unwrap();
    assert_eq!(response.status(), 200);
    let spans = otlp().wait_for_trace(&trace_of(&response).await, 3).await;
    let c = &one(&spans, &format!("chat {model}")).span.attributes;
    assert_eq!(attr(c, "gen_ai.provider.name"), Some(json!("openai")));
    assert_eq!(attr(c, "openai.api.type"), Some(json!("chat_completions")));
    assert_eq!(attr(c, "openai.request.service_tier"), Some(json!("flex")));
    assert_eq!(
        attr(c, "openai.response.service_tier"),
        Some(json!("on_demand"))
    );
    assert_eq!(
        attr(c, "openai.response.system_fingerprint"),
        Some(json!("fp_fake"))
    );

    // `auto` is not recorded (the conventions: "if the request includes a service_tier and
    // the value is not 'auto'").
    let response = chat("auto").await.unwrap();
    let spans = otlp().wait_for_trace(&trace_of(&response).await, 3).await;
    let c = &one(&spans, &format!("chat {model}")).span.attributes;
    assert_eq!(attr(c, "openai.request.service_tier"), None);
}

#[tokio::test]
async fn the_server_span_records_protocol_addresses_and_a_redacted_query() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/chat?api_key=secret&x=1"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = otlp().wait_for_trace(&trace_of(&response).await, 3).await;
    let s = &one(&spans, "POST /api/chat").span.attributes;
    assert_eq!(attr(s, "network.protocol.version"), Some(json!("1.1")));
    assert_eq!(attr(s, "client.address"), Some(json!("127.0.0.1")));
    assert_eq!(attr(s, "network.peer.address"), Some(json!("127.0.0.1")));
    assert!(
        attr(s, "network.peer.port").is_some_and(|p| p.as_i64().is_some_and(|p| p > 0)),
        "{:?}",
        attr(s, "network.peer.port")
    );
    assert_eq!(attr(s, "server.address"), Some(json!("127.0.0.1")));
    assert_eq!(attr(s, "server.port"), Some(json!(app.addr.port())));
    assert_eq!(attr(s, "url.path"), Some(json!("/api/chat")));
    let query = attr(s, "url.query").expect("url.query");
    let query = query.as_str().unwrap();
    assert!(!query.contains("secret"), "{query}");
    assert!(
        query.starts_with("api_key=") && query.ends_with("&x=1"),
        "{query}"
    );

    // No query string, no `url.query`.
    let response = app.chat(json!({"prompt": "hi"})).await;
    let spans = otlp().wait_for_trace(&trace_of(&response).await, 3).await;
    let s = &one(&spans, "POST /api/chat").span.attributes;
    assert_eq!(attr(s, "url.query"), None);
}

/// The spans of an `/api/chat` call whose `X-Forwarded-For` names `client`.
async fn chat_forwarded_for(app: &TestApp, client: &str) -> Vec<ExportedSpan> {
    let response = app
        .client
        .post(app.url("/api/chat"))
        .header("x-forwarded-for", client)
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();
    otlp().wait_for_trace(&trace_of(&response).await, 3).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_address_is_the_forwarded_client() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let spans = chat_forwarded_for(&app, "203.0.113.7").await;
    let s = &one(&spans, "POST /api/chat").span.attributes;
    assert_eq!(attr(s, "client.address"), Some(json!("203.0.113.7")));
    assert_eq!(attr(s, "network.peer.address"), Some(json!("127.0.0.1")));

    // An untrusted peer names no one else.
    let app = spawn_app().await;
    let spans = chat_forwarded_for(&app, "203.0.113.7").await;
    let s = &one(&spans, "POST /api/chat").span.attributes;
    assert_eq!(attr(s, "client.address"), Some(json!("127.0.0.1")));
}

#[tokio::test]
async fn the_upstream_receives_traceparent_of_the_http_client_span() {
    let app = spawn_app().await;

    let response = app.chat(json!({"prompt": "hi"})).await;
    let trace_id = trace_of(&response).await;
    let spans = otlp().wait_for_trace(&trace_id, 3).await;

    let http = one(&spans, "POST");
    let received = app.upstream.received();
    let traceparent = received[0].headers["traceparent"].to_str().unwrap();
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", trace_id, hex(&http.span.span_id))
    );
}

#[tokio::test]
async fn an_incoming_traceparent_becomes_the_parent_of_the_server_span() {
    let app = spawn_app().await;
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";

    let response = app
        .client
        .post(app.url("/api/chat"))
        .header("traceparent", format!("00-{parent_trace}-{parent_span}-01"))
        .header("tracestate", "vendor=abc")
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();

    assert_eq!(trace_of(&response).await, parent_trace);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["trace_id"], parent_trace);
    let spans = otlp().wait_for_trace(parent_trace, 3).await;
    let server = one(&spans, "POST /api/chat");
    assert_eq!(hex(&server.span.parent_span_id), parent_span);
    assert_eq!(server.span.trace_state, "vendor=abc");
}

#[tokio::test]
async fn a_failed_call_exports_error_status_error_type_and_the_exception() {
    let app = spawn_app_with(&[("LLM_MAX_RETRIES", "1")]).await;
    let failure = Reply::groq_error(500, "Internal Server Error", "internal");
    app.upstream.script([failure.clone(), failure]);

    let response = app.chat(json!({"prompt": "hi"})).await;
    assert_eq!(response.status(), 502);
    let trace_id = trace_of(&response).await;
    let spans = otlp().wait_for_trace(&trace_id, 4).await;

    let chat = one(&spans, "chat llama-3.1-8b-instant");
    let status = chat.span.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(
        attr(&chat.span.attributes, "error.type"),
        Some(json!("upstream_server_error"))
    );
    let exception = chat
        .span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("exception event");
    assert_eq!(
        attr(&exception.attributes, "exception.type"),
        Some(json!("LlmError::UpstreamServer"))
    );
    assert_eq!(
        attr(&exception.attributes, "exception.message"),
        Some(json!("the upstream failed (HTTP 500)"))
    );

    // One HTTP client span per attempt, the retry marked with its resend count.
    let mut attempts = named(&spans, "POST");
    attempts.sort_by_key(|s| s.span.start_time_unix_nano);
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attr(&attempts[0].span.attributes, "http.request.resend_count"),
        None
    );
    assert_eq!(
        attr(&attempts[1].span.attributes, "http.request.resend_count"),
        Some(json!(1))
    );
    for attempt in &attempts {
        assert_eq!(
            attr(&attempt.span.attributes, "http.response.status_code"),
            Some(json!(500))
        );
        assert_eq!(
            attr(&attempt.span.attributes, "error.type"),
            Some(json!("500"))
        );
        assert_eq!(
            attempt.span.status.as_ref().unwrap().code,
            StatusCode::Error as i32
        );
    }

    let server = one(&spans, "POST /api/chat");
    assert_eq!(
        attr(&server.span.attributes, "http.response.status_code"),
        Some(json!(502))
    );
    assert_eq!(
        server.span.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
}

#[tokio::test]
async fn message_content_is_exported_only_when_opted_in() {
    let app =
        spawn_app_with(&[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")]).await;

    let response = app
        .chat(json!({"prompt": "secret plans", "system": "be terse"}))
        .await;
    let trace_id = trace_of(&response).await;
    let spans = otlp().wait_for_trace(&trace_id, 3).await;

    let chat = &one(&spans, "chat llama-3.1-8b-instant").span.attributes;
    let input: Value = serde_json::from_str(
        attr(chat, "gen_ai.input.messages")
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "secret plans"}]}])
    );
    let system: Value = serde_json::from_str(
        attr(chat, "gen_ai.system_instructions")
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(system, json!([{"type": "text", "content": "be terse"}]));
    let output: Value = serde_json::from_str(
        attr(chat, "gen_ai.output.messages")
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        output,
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Observability is knowing what your system does."}], "finish_reason": "stop"}])
    );
}

#[tokio::test]
async fn prompt_text_is_not_exported_by_default() {
    let app = spawn_app().await;
    let marker = "zebra-unicorn-prompt-marker";

    let response = app.chat(json!({"prompt": marker})).await;
    let trace_id = trace_of(&response).await;
    let spans = otlp().wait_for_trace(&trace_id, 3).await;

    let dump = format!("{spans:?}");
    assert!(
        !dump.contains(marker),
        "prompt text exported without opt-in"
    );
}

#[tokio::test]
async fn the_api_key_is_on_no_exported_attribute_event_or_resource() {
    let app = spawn_app().await;
    app.upstream.script([Reply::groq_error(
        401,
        &format!("Invalid API Key {API_KEY}"),
        "invalid_api_key",
    )]);

    let failed = app.chat(json!({"prompt": "hi"})).await;
    let ok = app.chat(json!({"prompt": "hi"})).await;
    let t1 = trace_of(&failed).await;
    let t2 = trace_of(&ok).await;
    otlp().wait_for_trace(&t1, 3).await;
    otlp().wait_for_trace(&t2, 3).await;

    let dump = format!("{:?}", otlp().all_spans());
    assert!(!dump.contains(API_KEY), "API key exported");
    assert!(!dump.contains("gsk_test"), "part of the API key exported");
}

#[tokio::test]
async fn validation_errors_are_traced_but_make_no_llm_span() {
    let app = spawn_app().await;

    let response = app.chat(json!({"prompt": ""})).await;
    let trace_id = trace_of(&response).await;
    let spans = otlp().wait_for_trace(&trace_id, 1).await;

    let server = one(&spans, "POST /api/chat");
    assert_eq!(
        attr(&server.span.attributes, "http.response.status_code"),
        Some(json!(422))
    );
    // 4xx is the client's fault: the server span status stays unset.
    assert_eq!(
        server.span.status.as_ref().map(|s| s.code).unwrap_or(0),
        StatusCode::Unset as i32
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let spans = otlp().wait_for_trace(&trace_id, 1).await;
    assert_eq!(spans.len(), 1, "no chat span for a rejected request");
}
