//! The fake providers over real HTTP: OpenAI's Responses and Embeddings on `FakeUpstream`,
//! and `FakeAnthropic`, answering as documented (and as the official SDKs parse).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::http::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use llmobs_testkit::anthropic::{
    self, ANTHROPIC_API_KEY, ANTHROPIC_STREAM_USAGE, ANTHROPIC_TEXT, ANTHROPIC_USAGE,
    ANTHROPIC_VERSION, COUNT_TOKENS_PATH, MESSAGES_PATH,
};
use llmobs_testkit::openai::{self, RESPONSES_STREAM_USAGE, RESPONSES_USAGE};
use llmobs_testkit::upstream::{CHAT_PATH, EMBEDDINGS_PATH, RESPONSES_PATH};
use llmobs_testkit::{AnthropicReply, FakeAnthropic, FakeUpstream, Reply};
use serde_json::{Value, json};

/// Sends a request on a new connection; returns the answer's head and the body (the
/// connection's task, for tests that hang up mid-body).
async fn send(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// Sends a request and reads the whole answer.
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, HeaderMap, String) {
    let response = send(addr, path, headers, body).await;
    let (head, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// The `event:` / `data:` pairs of an SSE body; each payload's `type` is its event name.
fn typed_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

// ---------------------------------------------------------------- Responses and Embeddings

#[tokio::test]
async fn responses_answers_a_response_object_for_the_requested_model() {
    let fake = FakeUpstream::start().await;
    let request = json!({"model": "gpt-4.1-mini", "input": "Say hi", "instructions": "brief"});
    let (status, _, body) = post(fake.addr, RESPONSES_PATH, &[], &request).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["model"], "gpt-4.1-mini");
    assert_eq!(answer["instructions"], "brief");
    assert_eq!(answer["output"][0]["type"], "message");
    assert_eq!(answer["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        openai::RESPONSE_TEXT
    );
    assert_eq!(answer["usage"], RESPONSES_USAGE.to_json());
    assert_eq!(answer["usage"]["total_tokens"], 42);
    for required in [
        "id",
        "created_at",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
    ] {
        assert!(!answer[required].is_null(), "{required}");
    }
    let received = fake.received_at(RESPONSES_PATH);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, request);
    assert!(fake.received_at(CHAT_PATH).is_empty());
}

#[tokio::test]
async fn a_streamed_response_sends_the_typed_events_in_order() {
    let fake = FakeUpstream::start().await;
    let request = json!({"model": "gpt-4.1-mini", "input": "hi", "stream": true});
    let (status, headers, body) = post(fake.addr, RESPONSES_PATH, &[], &request).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = typed_events(&body);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(["response.output_text.delta"; 5]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names(&events), expected);
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let deltas: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        deltas.as_str()
    );
    assert_eq!(completed["usage"], RESPONSES_STREAM_USAGE.to_json());
    assert_eq!(completed["model"], "gpt-4.1-mini");
    assert!(!body.contains("[DONE]"));
    assert_eq!(fake.abandoned_streams(), 0);
}

#[tokio::test]
async fn the_script_applies_to_responses_and_embeddings_in_one_queue() {
    let fake = FakeUpstream::start().await;
    fake.script([
        Reply::groq_error(429, "slow down", "rate_limit_exceeded"),
        Reply::Status {
            status: 500,
            body: "{}".into(),
            headers: vec![],
        },
        Reply::StreamThenError,
    ]);
    let responses = json!({"model": "gpt-4.1-mini", "input": "hi", "stream": true});
    let embeddings = json!({"model": "text-embedding-3-small", "input": "hi"});
    let (status, _, _) = post(fake.addr, RESPONSES_PATH, &[], &responses).await;
    assert_eq!(status, 429);
    let (status, _, _) = post(fake.addr, EMBEDDINGS_PATH, &[], &embeddings).await;
    assert_eq!(status, 500);
    let (_, _, body) = post(fake.addr, RESPONSES_PATH, &[], &responses).await;
    let events = typed_events(&body);
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(error["code"], "server_error");
    let (status, _, _) = post(fake.addr, EMBEDDINGS_PATH, &[], &embeddings).await;
    assert_eq!(status, 200);
    let paths: Vec<String> = fake.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            RESPONSES_PATH,
            EMBEDDINGS_PATH,
            RESPONSES_PATH,
            EMBEDDINGS_PATH
        ]
    );
}

#[tokio::test]
async fn embeddings_are_deterministic_in_floats_and_base64() {
    let fake = FakeUpstream::start().await;
    let input = json!(["hello world", "three word input"]);
    let floats = json!({"model": "text-embedding-3-small", "input": input});
    let (status, _, body) = post(fake.addr, EMBEDDINGS_PATH, &[], &floats).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "text-embedding-3-small");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5})
    );
    assert_eq!(openai::embedding_input_tokens(&input), Some(5));
    let vector: Vec<f32> = answer["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(
        vector,
        openai::embedding_vector("three word input", openai::DEFAULT_EMBEDDING_DIMENSIONS)
    );

    let base64 =
        json!({"model": "m", "input": [[1, 2, 3]], "dimensions": 16, "encoding_format": "base64"});
    let (_, _, body) = post(fake.addr, EMBEDDINGS_PATH, &[], &base64).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    let decoded = openai::embedding_from_base64(answer["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(decoded.unwrap(), openai::embedding_vector("[1,2,3]", 16));
    assert_eq!(answer["usage"]["prompt_tokens"], 3);

    let bad = json!({"model": "m", "input": ""});
    let (status, _, body) = post(fake.addr, EMBEDDINGS_PATH, &[], &bad).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid_request_error"), "{body}");
}

// ---------------------------------------------------------------- Anthropic

const AUTH: [(&str, &str); 2] = [
    ("x-api-key", ANTHROPIC_API_KEY),
    ("anthropic-version", ANTHROPIC_VERSION),
];

fn ask(stream: bool) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "Weather in Paris?"}]})
}

#[tokio::test]
async fn anthropic_checks_the_key_the_version_and_max_tokens() {
    let fake = FakeAnthropic::start().await;
    fake.script([AnthropicReply::overloaded()]);
    let (status, _, body) = post(fake.addr, MESSAGES_PATH, &[], &ask(false)).await;
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");

    let key_only = [("x-api-key", ANTHROPIC_API_KEY)];
    let (status, _, body) = post(fake.addr, MESSAGES_PATH, &key_only, &ask(false)).await;
    assert_eq!(status, 400);
    assert!(body.contains("anthropic-version"), "{body}");

    let mut no_max = ask(false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, _, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &no_max).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "max_tokens: Field required");

    // Rejected requests took no scripted reply, and were all recorded.
    let bearer = format!("Bearer {ANTHROPIC_API_KEY}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("anthropic-version", ANTHROPIC_VERSION),
    ];
    let (status, _, _) = post(fake.addr, MESSAGES_PATH, &headers, &ask(false)).await;
    assert_eq!(status, 529);
    assert_eq!(fake.received().len(), 4);
}

#[tokio::test]
async fn anthropic_answers_a_message_with_cache_usage() {
    let fake = FakeAnthropic::start().await;
    let (status, headers, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &ask(false)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["request-id"], anthropic::REQUEST_ID);
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-haiku-4-5");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": ANTHROPIC_TEXT}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["stop_sequence"].is_null());
    assert_eq!(
        message["usage"]["input_tokens"],
        ANTHROPIC_USAGE.input_tokens
    );
    assert_eq!(message["usage"]["cache_read_input_tokens"], 11);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 7);
    assert_eq!(message["usage"]["output_tokens"], 18);
    let received = fake.received_at(MESSAGES_PATH);
    assert_eq!(received[0].headers["x-api-key"], ANTHROPIC_API_KEY);
    assert_eq!(received[0].body, ask(false));
}

#[tokio::test]
async fn anthropic_streams_text_and_tool_use() {
    let fake = FakeAnthropic::start().await;
    let (status, headers, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &ask(true)).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = typed_events(&body);
    assert_eq!(
        names(&events)[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(
        names(&events)[events.len() - 2..],
        ["message_delta", "message_stop"]
    );
    let start = &events[0].1["message"]["usage"];
    assert_eq!(start["input_tokens"], ANTHROPIC_STREAM_USAGE.input_tokens);
    assert_eq!(start["output_tokens"], 1);
    let delta = &events[events.len() - 2].1;
    assert_eq!(
        delta["usage"]["output_tokens"],
        ANTHROPIC_STREAM_USAGE.output_tokens
    );

    let mut tools = ask(true);
    tools["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let (_, _, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &tools).await;
    let events = typed_events(&body);
    let tool_start = events
        .iter()
        .find(|(_, d)| d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool_start.1["content_block"]["name"], "get_weather");
    let input: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}

#[tokio::test]
async fn anthropic_scripted_errors_and_broken_streams() {
    let fake = FakeAnthropic::start().await;
    fake.script([
        AnthropicReply::rate_limited(3),
        AnthropicReply::StreamThenError,
        AnthropicReply::StreamThenHang,
    ]);
    let (status, headers, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &ask(false)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert!(body.contains("rate_limit_error"));

    let (_, _, body) = post(fake.addr, MESSAGES_PATH, &AUTH, &ask(true)).await;
    let events = typed_events(&body);
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(error["error"]["type"], "overloaded_error");

    let response = send(fake.addr, MESSAGES_PATH, &AUTH, &ask(true)).await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"event: message_start\n"));
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.abandoned_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hung stream was not abandoned"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn anthropic_counts_tokens_as_words() {
    let fake = FakeAnthropic::start().await;
    let request = json!({"model": "claude-haiku-4-5", "system": "Be brief.",
                         "messages": [{"role": "user", "content": "one two three"}]});
    let (status, _, body) = post(fake.addr, COUNT_TOKENS_PATH, &AUTH, &request).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"input_tokens": 5})
    );
    assert_eq!(anthropic::count_input_tokens(&request), 5);
}
