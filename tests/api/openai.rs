//! The OpenAI-compatible endpoints and streaming: relayed unchanged, observed like /api/chat.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;
use crate::support::upstream::{API_KEY, Reply, STREAM_USAGE, groq_success};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Reads an SSE body into its `data:` payloads.
async fn sse_data(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// `/api/chat`'s stream: the text of its `data: {"delta"}` events, and its final `done` event.
fn api_chat_stream(text: &str) -> (String, Value) {
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let deltas = events
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let done = events
        .last()
        .and_then(|e| e.strip_prefix("event: done\ndata: "))
        .unwrap_or_else(|| panic!("done event last: {text}"));
    (deltas, serde_json::from_str(done).unwrap())
}

/// The last `data:` payload of a stream as JSON (the payloads, shortened, if it is not JSON).
fn last_event(data: &[String]) -> Value {
    let last = data.last().expect("a stream with events");
    serde_json::from_str(last).unwrap_or_else(|e| {
        let shown: Vec<&str> = data.iter().map(|d| &d[..d.len().min(120)]).collect();
        panic!("{e}: {shown:?}")
    })
}

fn chat_span(spans: &[ExportedSpan]) -> &ExportedSpan {
    spans
        .iter()
        .find(|s| s.span.name.starts_with("chat "))
        .expect("a chat span")
}

#[tokio::test]
async fn chat_completions_forwards_every_field_and_relays_the_answer_unchanged() {
    let app = spawn_app().await;
    let request = json!({
        "model": "llama-3.1-8b-instant",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rainy"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "top_p": 0.9, "seed": 42, "n": 1, "stop": ["END"], "temperature": 0.3, "max_completion_tokens": 77,
        "service_tier": "flex",
        "some_future_field": {"kept": true}
    });

    let response = post(&app, "/v1/chat/completions", request.clone()).await;

    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        groq_success("llama-3.1-8b-instant"),
        "relayed unchanged"
    );
    assert_eq!(
        app.upstream.received()[0].body,
        request,
        "forwarded untouched"
    );
    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    let server = spans
        .iter()
        .find(|s| s.span.name == "POST /v1/chat/completions")
        .expect("server span");
    let chat = chat_span(&spans);
    assert_eq!(chat.span.name, "chat llama-3.1-8b-instant");
    assert_eq!(chat.span.parent_span_id, server.span.span_id);
    let a = &chat.span.attributes;
    assert_eq!(attr(a, "gen_ai.request.top_p"), Some(json!(0.9)));
    assert_eq!(attr(a, "gen_ai.request.seed"), Some(json!(42)));
    assert_eq!(attr(a, "gen_ai.request.max_tokens"), Some(json!(77)));
    assert_eq!(
        attr(a, "gen_ai.request.stop_sequences"),
        Some(json!(["END"]))
    );
    assert_eq!(attr(a, "gen_ai.output.type"), Some(json!("json")));
    assert_eq!(
        attr(a, "gen_ai.request.choice.count"),
        None,
        "n=1 is not recorded"
    );
    assert_eq!(attr(a, "gen_ai.request.stream"), None);
    assert_eq!(attr(a, "gen_ai.usage.output_tokens"), Some(json!(34)));
    // Forwarded, but `openai.*` attributes are for `gen_ai.provider.name = openai` only.
    assert_eq!(attr(a, "openai.request.service_tier"), None);
}

#[tokio::test]
async fn the_groq_sdk_path_and_the_models_list_work() {
    let app = spawn_app().await;

    let groq_path = post(
        &app,
        "/openai/v1/chat/completions",
        json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let models: Value = reqwest::get(app.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groq_models = reqwest::get(app.url("/openai/v1/models")).await.unwrap();

    assert_eq!(groq_path.status(), 200);
    assert_eq!(models["data"][0]["id"], "llama-3.1-8b-instant");
    assert_eq!(groq_models.status(), 200);
}

#[tokio::test]
async fn invalid_openai_requests_get_422_naming_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": 5, "messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}),
            "stream",
        ),
        (json!([1, 2]), "object"),
    ] {
        let response = post(&app, "/v1/chat/completions", body).await;
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    assert!(app.upstream.received().is_empty());
}

#[tokio::test]
async fn a_stream_is_relayed_chunk_by_chunk_and_observed_when_it_ends() {
    let app = spawn_app().await;
    let chunks = 6;
    let delay = Duration::from_millis(40);
    app.upstream.script([Reply::Stream {
        chunks,
        chunk_bytes: 8,
        delay,
    }]);

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;

    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let data = sse_data(response).await;
    // role chunk + content chunks + final chunk + [DONE]; the usage chunk we asked for is ours.
    assert_eq!(data.len(), 1 + chunks + 1 + 1, "{data:?}");
    assert_eq!(data.last().unwrap(), "[DONE]");
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.starts_with("w0 xxxxw1 xxxx"), "{content}");
    assert!(
        data.iter().all(|d| !d.contains("\"choices\":[]")),
        "usage-only chunk leaked to a client that did not ask"
    );
    assert_eq!(
        app.upstream.received()[0].body["stream_options"],
        json!({"include_usage": true})
    );

    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    let chat = chat_span(&spans);
    let a = &chat.span.attributes;
    assert_eq!(attr(a, "gen_ai.request.stream"), Some(json!(true)));
    assert_eq!(
        attr(a, "gen_ai.usage.input_tokens"),
        Some(json!(STREAM_USAGE.0))
    );
    assert_eq!(
        attr(a, "gen_ai.usage.output_tokens"),
        Some(json!(STREAM_USAGE.1))
    );
    // The usage chunk's (and `x_groq.usage`'s) token details.
    assert_eq!(
        attr(a, "gen_ai.usage.cache_read.input_tokens"),
        Some(json!(3))
    );
    assert_eq!(
        attr(a, "gen_ai.usage.reasoning.output_tokens"),
        Some(json!(5))
    );
    assert_eq!(
        attr(a, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    assert_eq!(
        attr(a, "gen_ai.response.id"),
        Some(json!("chatcmpl-stream-1"))
    );
    assert_eq!(attr(a, "groq.request.id"), Some(json!("req_stream_1")));
    let ttfc = attr(a, "gen_ai.response.time_to_first_chunk")
        .unwrap()
        .as_f64()
        .unwrap();
    let span_secs = (chat.span.end_time_unix_nano - chat.span.start_time_unix_nano) as f64 / 1e9;
    // The span ends after the last chunk: it lasts at least the delays between chunks.
    assert!(
        span_secs >= (delay * chunks as u32).as_secs_f64(),
        "span {span_secs} s"
    );
    assert!(ttfc < span_secs, "ttfc {ttfc} s, span {span_secs} s");
    let server = spans
        .iter()
        .find(|s| s.span.name == "POST /v1/chat/completions")
        .unwrap();
    assert!(
        server.span.end_time_unix_nano >= chat.span.end_time_unix_nano,
        "the server span covers the stream"
    );

    let text = app.scrape().await;
    let labels = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "groq"),
        ("gen_ai_request_model", "llama-3.1-8b-instant"),
        ("gen_ai_response_model", "llama-3.1-8b-instant"),
        ("error_type", ""),
    ];
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &labels
        ),
        Some(1.0)
    );
    // Every chunk after the first: content chunks, the final chunk and the usage chunk.
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_time_per_output_chunk_seconds_count",
            &labels
        ),
        Some((chunks + 2) as f64)
    );
    let tokens = [
        ("provider", "groq"),
        ("model", "llama-3.1-8b-instant"),
        ("type", "output"),
    ];
    assert_eq!(
        sample(&text, "llm_tokens_total", &tokens),
        Some(STREAM_USAGE.1 as f64)
    );
    assert_eq!(
        sample(
            &text,
            "llm_requests_total",
            &[
                ("provider", "groq"),
                ("model", "llama-3.1-8b-instant"),
                ("status", "ok")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_client_that_asks_for_the_usage_chunk_gets_it() {
    let app = spawn_app().await;

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]})).await;

    let data = sse_data(response).await;
    let usage_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], STREAM_USAGE.1);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream_and_is_counted() {
    let app = spawn_app().await;
    app.upstream.script([Reply::StreamThenHang]);

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(body);

    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    let chat = chat_span(&spans);
    assert_eq!(
        attr(&chat.span.attributes, "error.type"),
        Some(json!("cancelled"))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.upstream.abandoned_streams() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream stream was never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "llama-3.1-8b-instant"),
                ("error_type", "cancelled")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "llm_requests_in_flight", &[("provider", "groq")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_upstream_error_mid_stream_is_relayed_as_an_sse_error_and_recorded() {
    let app = spawn_app().await;
    app.upstream.script([Reply::StreamThenError]);

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let data = sse_data(response).await;

    let last = last_event(&data);
    assert_eq!(last["error"]["message"], "Service Unavailable");
    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    assert_eq!(
        attr(&chat_span(&spans).span.attributes, "error.type"),
        Some(json!("upstream_server_error"))
    );
    let text = app.scrape().await;
    assert_eq!(
        sample(
            &text,
            "llm_errors_total",
            &[
                ("provider", "groq"),
                ("model", "llama-3.1-8b-instant"),
                ("error_type", "upstream_server_error")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn api_chat_streams_deltas_then_a_done_event_with_usage_cost_and_trace_id() {
    let app = spawn_app().await;

    let response = post(&app, "/api/chat", json!({"prompt": "hi", "stream": true})).await;

    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (deltas, done) = api_chat_stream(&response.text().await.unwrap());
    assert!(deltas.starts_with("w0 "), "{deltas}");
    assert_eq!(
        done["usage"],
        json!({"prompt_tokens": STREAM_USAGE.0, "completion_tokens": STREAM_USAGE.1, "total_tokens": STREAM_USAGE.0 + STREAM_USAGE.1})
    );
    assert_eq!(done["trace_id"], trace_id.as_str());
    assert_eq!(done["finish_reason"], "stop");
    assert!(done["cost_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn the_simulated_provider_streams_too() {
    let app = spawn_app_with(&[("GROQ_API_KEY", "")]).await;

    let response = post(
        &app,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Explain observability"}], "stream": true}),
    )
    .await;

    let data = sse_data(response).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert!(data.len() > 3);
    let whole: Value = post(
        &app,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Explain observability"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        whole["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("[simulated]")
    );
    assert_eq!(whole["model"], "llama-3.1-8b-instant");
}

#[tokio::test]
async fn gateway_keys_are_required_when_configured_and_never_forwarded() {
    let app = spawn_app_with(&[("GATEWAY_API_KEYS", "client-key-1, client-key-2")]).await;
    let body =
        json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}]});

    let missing = post(&app, "/v1/chat/completions", body.clone()).await;
    let wrong = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    let right = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("client-key-2")
        .json(&body)
        .send()
        .await
        .unwrap();
    let api_chat = app
        .client
        .post(app.url("/api/chat"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();
    let health = reqwest::get(app.url("/healthz")).await.unwrap();

    assert_eq!(missing.status(), 401);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request");
    assert_eq!(wrong.status(), 401);
    assert_eq!(right.status(), 200);
    assert_eq!(api_chat.status(), 401);
    assert_eq!(health.status(), 200);
    let received = app.upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["authorization"].to_str().unwrap(),
        format!("Bearer {API_KEY}")
    );
}

/// Line endings SSE allows: LF, CRLF, a lone CR, and a mix, cut into 7-byte pieces so that
/// terminators fall across reads.
const LINE_ENDINGS: [&[&str]; 4] = [&["\n"], &["\r\n"], &["\r"], &["\r", "\r\n", "\n"]];

#[tokio::test]
async fn streams_with_any_sse_line_ending_are_relayed_unchanged_and_observed() {
    let app = spawn_app().await;
    for endings in LINE_ENDINGS {
        app.upstream.script([Reply::StreamLineEndings {
            endings,
            piece_bytes: 7,
        }]);
        let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(response.status(), 200, "{endings:?}");
        let trace_id = response.headers()["x-trace-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        // Relayed unchanged: the upstream's own terminators reach the client, and every
        // event does (role, 5 contents, final, [DONE]; the usage chunk was ours).
        let events: Vec<&str> = text.split("data: ").skip(1).collect();
        assert_eq!(events.len(), 8, "{endings:?}: {text:?}");
        assert!(text.contains(endings[0]), "{endings:?}");
        assert!(
            events.last().unwrap().starts_with("[DONE]"),
            "{endings:?}: {text:?}"
        );
        let spans = otlp().wait_for_trace(&trace_id, 3).await;
        let a = &chat_span(&spans).span.attributes;
        assert_eq!(
            attr(a, "gen_ai.usage.output_tokens"),
            Some(json!(STREAM_USAGE.1)),
            "{endings:?}"
        );
        assert_eq!(
            attr(a, "gen_ai.response.finish_reasons"),
            Some(json!(["stop"])),
            "{endings:?}"
        );
        assert_eq!(attr(a, "error.type"), None, "{endings:?}");
    }
}

#[tokio::test]
async fn api_chat_streams_from_upstreams_with_any_sse_line_ending() {
    let app = spawn_app().await;
    for endings in LINE_ENDINGS {
        app.upstream.script([Reply::StreamLineEndings {
            endings,
            piece_bytes: 7,
        }]);
        let response = post(&app, "/api/chat", json!({"prompt": "hi", "stream": true})).await;
        assert_eq!(response.status(), 200, "{endings:?}");
        let (deltas, done) = api_chat_stream(&response.text().await.unwrap());
        assert_eq!(deltas, "w0 xxxxw1 xxxxw2 xxxxw3 xxxxw4 xxxx", "{endings:?}");
        assert_eq!(
            done["usage"]["completion_tokens"], STREAM_USAGE.1,
            "{endings:?}"
        );
    }
}

#[tokio::test]
async fn an_upstream_error_event_echoing_the_key_is_relayed_redacted() {
    const PLAIN_KEY: &str = "plain-secret-value";
    let app = spawn_app_with(&[("GROQ_API_KEY", PLAIN_KEY)]).await;
    let message = format!("upstream overloaded for key\n{PLAIN_KEY}");
    app.upstream
        .script([Reply::StreamThenErrorMessage(message.clone())]);

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 200);
    let relayed = response.text().await.unwrap();
    assert!(relayed.contains("upstream overloaded for key"), "{relayed}");
    assert!(!relayed.contains(PLAIN_KEY), "{relayed}");
    assert!(relayed.contains("[redacted]"), "{relayed}");

    app.upstream
        .script([Reply::StreamThenErrorMessage(message)]);
    let response = post(&app, "/api/chat", json!({"prompt": "hi", "stream": true})).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains(PLAIN_KEY), "{text}");
}

#[tokio::test]
async fn an_event_over_the_size_limit_ends_the_stream_with_bad_response() {
    let app = spawn_app().await;
    let huge = llm_observability::llm::sse::MAX_EVENT_BYTES + 1024;
    app.upstream.script([Reply::StreamHugeEvent(huge)]);

    let response = post(&app, "/v1/chat/completions", json!({"model": "llama-3.1-8b-instant", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 200);
    let trace_id = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let data = sse_data(response).await;
    let last = last_event(&data);
    assert_eq!(last["error"]["type"], "bad_response", "{last}");
    assert!(
        data.iter().all(|d| d.len() < 1 << 20),
        "the huge event is not relayed"
    );
    let spans = otlp().wait_for_trace(&trace_id, 3).await;
    assert_eq!(
        attr(&chat_span(&spans).span.attributes, "error.type"),
        Some(json!("bad_response"))
    );

    app.upstream.script([Reply::StreamHugeEvent(huge)]);
    let response = post(&app, "/api/chat", json!({"prompt": "hi", "stream": true})).await;
    let text = response.text().await.unwrap();
    let error = text
        .split("\n\n")
        .find_map(|e| e.strip_prefix("event: error\ndata: "))
        .expect("an error event");
    let error: Value = serde_json::from_str(error).unwrap();
    assert_eq!(error["error"]["type"], "bad_response");
}
