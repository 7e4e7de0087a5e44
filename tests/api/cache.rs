//! The response cache (`CACHE_ENABLED`), against both backends: in process, and a real
//! `redis-server` started for the test on a free port. A hit is byte-identical and asks no one;
//! every answer-changing parameter and the tenant change the key, field order does not; streams
//! and whole answers share entries both ways; the request headers; what is never stored; TTLs;
//! Redis down, slow, holding garbage and back; the exact metrics and span attributes.

use std::time::Duration;

use llmobs_testkit::RedisServer;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::otlp::{ExportedSpan, attr, otlp};
use crate::support::prometheus::sample;
use crate::support::upstream::{Reply, STREAM_USAGE};

/// Where the app under test keeps its entries.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Memory,
    Redis,
}

/// The app with the cache on, and its Redis when the backend is Redis.
struct Cached {
    app: TestApp,
    redis: Option<RedisServer>,
    backend: Backend,
}

async fn spawn_cached(backend: Backend, vars: &[(&str, &str)]) -> Cached {
    let redis = (backend == Backend::Redis).then(RedisServer::start);
    let url = redis.as_ref().map(RedisServer::url);
    let mut all: Vec<(&str, &str)> = vec![("CACHE_ENABLED", "true")];
    if let Some(url) = &url {
        // A generous deadline: a loaded CI machine must not turn lookups into errors.
        all.extend([
            ("REDIS_URL", url.as_str()),
            ("CACHE_BACKEND", "redis"),
            ("CACHE_LOOKUP_TIMEOUT_MS", "1000"),
        ]);
    }
    all.extend_from_slice(vars);
    let cached = Cached {
        app: spawn_app_with(&all).await,
        redis,
        backend,
    };
    if backend == Backend::Redis {
        cached.wait_connected().await;
    }
    cached
}

impl Cached {
    fn label(&self) -> &'static str {
        match self.backend {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
        }
    }

    /// The gateway connects to Redis in the background: wait until its connection shows in
    /// Redis's client list (besides redis-cli's own), without sending a request.
    async fn wait_connected(&self) {
        for _ in 0..200 {
            if self.redis().cli(&["CLIENT", "LIST"]).lines().count() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gateway never connected to Redis");
    }

    fn redis(&self) -> &RedisServer {
        self.redis.as_ref().expect("a Redis backend")
    }

    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.app.client.post(self.app.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn chat(&self, body: &Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body, &[]).await
    }

    /// Entries stored so far: the gauge (memory), or the keys in Redis, waiting for an
    /// asynchronous write (Redis) to reach `at_least`.
    async fn entries(&self, at_least: usize) -> usize {
        let mut count = 0;
        for _ in 0..50 {
            count = match self.backend {
                Backend::Memory => {
                    metric(&self.app.scrape().await, "llm_cache_entries", &[]) as usize
                }
                // The cache's keys only: keys' spend shares the Redis.
                Backend::Redis => self
                    .redis()
                    .cli(&["EVAL", "return #redis.call('KEYS', 'llmobs:cache:*')", "0"])
                    .parse()
                    .expect("a count"),
            };
            if count >= at_least {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        count
    }

    async fn cache_metric(&self, result: &str) -> f64 {
        metric(
            &self.app.scrape().await,
            "llm_cache_requests_total",
            &[("result", result), ("backend", self.label())],
        )
    }
}

fn hi() -> Value {
    json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2})
}

/// A 200 answer cut short by `max_tokens` (`finish_reason: length`).
fn truncated() -> Reply {
    let mut answer = llmobs_testkit::upstream::groq_success("llama-3.1-8b-instant");
    answer["choices"][0]["finish_reason"] = json!("length");
    Reply::Status {
        status: 200,
        body: answer.to_string(),
        headers: vec![],
    }
}

fn cache_header(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-llmobs-cache")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn trace_id(response: &reqwest::Response) -> String {
    response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The trace's chat span and its HTTP client children.
async fn chat_span(trace: &str, spans: usize) -> (ExportedSpan, Vec<ExportedSpan>) {
    let all = otlp().wait_for_trace(trace, spans).await;
    let chat = all
        .iter()
        .find(|s| s.span.name.starts_with("chat ") || s.span.name.starts_with("embeddings "))
        .expect("a GenAI span")
        .clone();
    let attempts = all
        .iter()
        .filter(|s| s.span.name == "POST" && s.span.parent_span_id == chat.span.span_id)
        .cloned()
        .collect();
    (chat, attempts)
}

/// Concatenated `delta.content` of an OpenAI stream, and whether it ended with `[DONE]`.
fn stream_content(text: &str) -> (String, bool, Vec<Value>) {
    let mut content = String::new();
    let mut chunks = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("a JSON chunk");
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if let Some(text) = choice["delta"]["content"].as_str() {
                content.push_str(text);
            }
        }
        chunks.push(chunk);
    }
    (content, done, chunks)
}

// ------------------------------------------------------------------ a hit, both backends

async fn a_repeated_call_is_served_from_the_cache(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    let first = cached.chat(&hi()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let miss_trace = trace_id(&first);
    let first_body = first.bytes().await.unwrap();
    assert_eq!(cached.entries(1).await, 1);

    let second = cached.chat(&hi()).await;
    assert_eq!(second.status(), 200);
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    let hit_trace = trace_id(&second);
    assert_ne!(hit_trace, miss_trace);
    assert_eq!(second.bytes().await.unwrap(), first_body, "byte-identical");
    assert_eq!(
        cached.app.upstream.received().len(),
        1,
        "no upstream call for the hit"
    );

    let text = cached.app.scrape().await;
    let label = cached.label();
    for (result, count) in [("miss", 1.0), ("hit", 1.0), ("bypass", 0.0), ("error", 0.0)] {
        assert_eq!(
            sample(
                &text,
                "llm_cache_requests_total",
                &[("result", result), ("backend", label)]
            ),
            Some(count),
            "{result}"
        );
    }
    // The fake's answer: 12 prompt and 34 completion tokens, counted once as spent and once as
    // saved; the call metrics count calls to providers only.
    assert_eq!(
        metric(&text, "llm_cache_saved_tokens_total", &[("type", "input")]),
        12.0
    );
    assert_eq!(
        metric(&text, "llm_cache_saved_tokens_total", &[("type", "output")]),
        34.0
    );
    const MODEL: (&str, &str) = ("model", "llama-3.1-8b-instant");
    let spent = metric(&text, "llm_cost_usd_total", &[("provider", "groq"), MODEL]);
    let saved = metric(&text, "llm_cache_saved_cost_usd_total", &[]);
    assert!(spent > 0.0);
    assert!(
        (saved - spent).abs() < 1e-12,
        "saved {saved} = spent {spent}"
    );
    assert_eq!(
        metric(
            &text,
            "llm_requests_total",
            &[("provider", "groq"), MODEL, ("status", "ok")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "llm_tokens_total",
            &[("provider", "groq"), MODEL, ("type", "input")]
        ),
        12.0
    );
    assert_eq!(
        metric(&text, "llm_requests_in_flight", &[("provider", "groq")]),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "llm_cache_lookup_duration_seconds_count",
            &[("backend", label)]
        ),
        Some(2.0)
    );

    let (miss, miss_attempts) = chat_span(&miss_trace, 3).await;
    let (hit, hit_attempts) = chat_span(&hit_trace, 2).await;
    assert_eq!(miss_attempts.len(), 1);
    assert!(hit_attempts.is_empty(), "a hit sends nothing upstream");
    let key = attr(&miss.span.attributes, "llmobs.cache.key").expect("the key on the miss");
    assert_eq!(key.as_str().unwrap().len(), 16);
    assert!(key.as_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(attr(&hit.span.attributes, "llmobs.cache.key"), Some(key));
    assert_eq!(
        attr(&miss.span.attributes, "llmobs.cache.hit"),
        Some(json!(false))
    );
    assert_eq!(
        attr(&miss.span.attributes, "llmobs.cache.result"),
        Some(json!("miss"))
    );
    assert_eq!(
        attr(&hit.span.attributes, "llmobs.cache.hit"),
        Some(json!(true))
    );
    assert_eq!(
        attr(&hit.span.attributes, "llmobs.cache.result"),
        Some(json!("hit"))
    );
    assert_eq!(
        attr(&hit.span.attributes, "gen_ai.provider.name"),
        Some(json!("groq"))
    );
    assert_eq!(
        attr(&hit.span.attributes, "gen_ai.response.id"),
        Some(json!("chatcmpl-fake-123"))
    );
    assert_eq!(
        attr(&hit.span.attributes, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    for spent in [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "llmobs.cost.usd",
    ] {
        assert_eq!(attr(&hit.span.attributes, spent), None, "{spent} on a hit");
        assert!(
            attr(&miss.span.attributes, spent).is_some(),
            "{spent} on the miss"
        );
    }
}

// ------------------------------------------------------------------ the key

/// Each parameter the issue lists (and an unknown field) changes the key: a first call with
/// it misses, once for each.
async fn every_answer_changing_parameter_is_part_of_the_key(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    let variants = [
        ("model", json!("llama-3.3-70b-versatile")),
        ("messages", json!([{"role": "user", "content": "hello"}])),
        (
            "messages",
            json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
        ),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]),
        ),
        ("tool_choice", json!("none")),
        ("response_format", json!({"type": "json_object"})),
        ("temperature", json!(0.9)),
        ("top_p", json!(0.5)),
        ("seed", json!(42)),
        ("max_tokens", json!(17)),
        ("max_completion_tokens", json!(17)),
        ("stop", json!(["\n\n"])),
        ("n", json!(2)),
        ("frequency_penalty", json!(0.3)),
        ("presence_penalty", json!(0.3)),
        ("logit_bias", json!({"1234": -100})),
        ("an_unknown_field", json!({"x": 1})),
    ];
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    for (field, value) in &variants {
        let mut body = hi();
        body[*field] = value.clone();
        let response = cached.chat(&body).await;
        assert_eq!(response.status(), 200, "{field}");
        assert_eq!(
            cache_header(&response).as_deref(),
            Some("miss"),
            "{field} must change the key"
        );
        // And the variant itself is now a hit.
        assert_eq!(
            cache_header(&cached.chat(&body).await).as_deref(),
            Some("hit"),
            "{field}"
        );
    }
    assert_eq!(cached.app.upstream.received().len(), variants.len() + 1);
}

#[tokio::test]
async fn field_order_and_spacing_do_not_change_the_key() {
    let cached = spawn_cached(Backend::Memory, &[]).await;
    let send = |raw: &'static str| {
        cached
            .app
            .client
            .post(cached.app.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
    };
    let first = send(r#"{"model":"llama-3.1-8b-instant","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"seed":3}"#).await.unwrap();
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let reordered = send(r#"{ "seed": 3, "temperature": 0.2, "messages": [ {"content": "hi", "role": "user"} ], "model": "llama-3.1-8b-instant" }"#).await.unwrap();
    assert_eq!(cache_header(&reordered).as_deref(), Some("hit"));
}

async fn two_tenants_never_share_an_entry(backend: Backend) {
    let cached = spawn_cached(backend, &[("GATEWAY_API_KEYS", "gk-alice,gk-bob")]).await;
    for (key, expected, entries) in [
        ("Bearer gk-alice", "miss", 1),
        ("Bearer gk-bob", "miss", 2),
        ("Bearer gk-alice", "hit", 2),
        ("Bearer gk-bob", "hit", 2),
    ] {
        let response = cached
            .post("/v1/chat/completions", &hi(), &[("authorization", key)])
            .await;
        assert_eq!(cache_header(&response).as_deref(), Some(expected), "{key}");
        assert_eq!(cached.entries(entries).await, entries, "{key}");
    }
    // The Anthropic SDKs' header is the same identity.
    let via_x_api_key = cached
        .post("/v1/chat/completions", &hi(), &[("x-api-key", "gk-bob")])
        .await;
    assert_eq!(cache_header(&via_x_api_key).as_deref(), Some("hit"));
    assert_eq!(cached.app.upstream.received().len(), 2);
}

/// One route, one answer: a provider's entry is not served for another destination.
#[tokio::test]
async fn the_destination_is_part_of_the_key() {
    let cached = spawn_cached(Backend::Memory, &[]).await;
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    let mut other = hi();
    other["model"] = json!("groq/llama-3.1-8b-instant");
    // Without a configuration file `groq/…` is just another model name: another key.
    let response = cached.chat(&other).await;
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
}

// ------------------------------------------------------------------ streams, both ways

async fn streams_and_whole_answers_share_entries(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    // Streamed miss → stored assembled → a whole hit with the same content and usage.
    let mut streamed = hi();
    streamed["stream"] = json!(true);
    let response = cached.chat(&streamed).await;
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    let (streamed_text, done, _) = stream_content(&response.text().await.unwrap());
    assert!(done);
    assert!(!streamed_text.is_empty());
    assert_eq!(cached.entries(1).await, 1);
    let whole = cached.chat(&hi()).await;
    assert_eq!(cache_header(&whole).as_deref(), Some("hit"));
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        json!(streamed_text)
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["usage"]["prompt_tokens"], json!(STREAM_USAGE.0));
    assert_eq!(whole["usage"]["completion_tokens"], json!(STREAM_USAGE.1));
    assert_eq!(cached.app.upstream.received().len(), 1);

    // Whole miss → a streamed hit, replayed as chunks, with the usage chunk the client asked for.
    let question = json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "another"}]});
    let plain = cached.chat(&question).await;
    assert_eq!(cache_header(&plain).as_deref(), Some("miss"));
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(cached.entries(2).await, 2);
    let mut replay = question.clone();
    replay["stream"] = json!(true);
    replay["stream_options"] = json!({"include_usage": true});
    let hit = cached.chat(&replay).await;
    assert_eq!(cache_header(&hit).as_deref(), Some("hit"));
    assert!(
        hit.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let hit_trace = trace_id(&hit);
    let (text, done, chunks) = stream_content(&hit.text().await.unwrap());
    assert!(done, "ends with [DONE]");
    assert_eq!(json!(text), plain["choices"][0]["message"]["content"]);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == plain["id"])
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], plain["usage"]);
    // Without include_usage, or with it false, no usage chunk.
    for options in [None, Some(json!({"include_usage": false}))] {
        let mut no_usage = question.clone();
        no_usage["stream"] = json!(true);
        if let Some(options) = options {
            no_usage["stream_options"] = options;
        }
        let response = cached.chat(&no_usage).await;
        assert_eq!(cache_header(&response).as_deref(), Some("hit"));
        let (_, _, chunks) = stream_content(&response.text().await.unwrap());
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }
    assert_eq!(cached.app.upstream.received().len(), 2);

    let (span, attempts) = chat_span(&hit_trace, 2).await;
    assert!(attempts.is_empty());
    assert_eq!(
        attr(&span.span.attributes, "llmobs.cache.hit"),
        Some(json!(true))
    );
    assert_eq!(
        attr(&span.span.attributes, "gen_ai.request.stream"),
        Some(json!(true))
    );
}

/// `/api/chat` is cached too; its hit costs nothing.
async fn api_chat_hits_cost_nothing(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    let body = json!({"prompt": "Explain caching", "max_tokens": 50});
    let first = cached.post("/api/chat", &body, &[]).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let first: Value = first.json().await.unwrap();
    assert_eq!(cached.entries(1).await, 1);
    assert!(first["cost_usd"].as_f64().unwrap() > 0.0);
    let second = cached.post("/api/chat", &body, &[]).await;
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["content"], first["content"]);
    assert_eq!(second["usage"], first["usage"]);
    assert_eq!(second["provider"], "groq");
    assert_eq!(second["cost_usd"], json!(0.0));
    assert_eq!(cached.app.upstream.received().len(), 1);
}

async fn embeddings_are_cached(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let first = cached.post("/v1/embeddings", &body, &[]).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let first = first.bytes().await.unwrap();
    assert_eq!(cached.entries(1).await, 1);
    let second = cached.post("/v1/embeddings", &body, &[]).await;
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    let trace = trace_id(&second);
    assert_eq!(second.bytes().await.unwrap(), first);
    assert_eq!(cached.app.upstream.received().len(), 1);
    let (span, _) = chat_span(&trace, 2).await;
    assert_eq!(span.span.name, "embeddings text-embedding-3-small");
    assert_eq!(
        attr(&span.span.attributes, "llmobs.cache.hit"),
        Some(json!(true))
    );
    let text = cached.app.scrape().await;
    assert_eq!(
        metric(&text, "llm_cache_saved_tokens_total", &[("type", "output")]),
        0.0
    );
    assert!(metric(&text, "llm_cache_saved_tokens_total", &[("type", "input")]) > 0.0);
}

/// The Responses API is never cached (its answers may depend on state the provider keeps).
#[tokio::test]
async fn the_responses_api_always_goes_upstream() {
    let cached = spawn_cached(Backend::Memory, &[]).await;
    let body = json!({"model": "llama-3.1-8b-instant", "input": "hi"});
    for _ in 0..2 {
        let response = cached.post("/v1/responses", &body, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(cache_header(&response), None);
    }
    assert_eq!(cached.app.upstream.received().len(), 2);
}

// ------------------------------------------------------------------ per-request control

#[tokio::test]
async fn no_cache_no_store_and_the_ttl_header() {
    let cached = spawn_cached(Backend::Memory, &[]).await;
    // no-store: neither read nor written.
    let response = cached
        .post(
            "/v1/chat/completions",
            &hi(),
            &[("cache-control", "no-store")],
        )
        .await;
    assert_eq!(cache_header(&response).as_deref(), Some("bypass"));
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    // no-cache: not read (a stored answer exists now), but the fresh answer is written.
    cached.app.upstream.script([Reply::Large(10)]);
    let fresh = cached
        .post(
            "/v1/chat/completions",
            &hi(),
            &[("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(cache_header(&fresh).as_deref(), Some("bypass"));
    let fresh = fresh.bytes().await.unwrap();
    let hit = cached.chat(&hi()).await;
    assert_eq!(cache_header(&hit).as_deref(), Some("hit"));
    assert_eq!(
        hit.bytes().await.unwrap(),
        fresh,
        "the no-cache answer replaced the entry"
    );
    assert_eq!(cached.app.upstream.received().len(), 3);
    assert_eq!(cached.cache_metric("bypass").await, 2.0);

    // A TTL of its own, in seconds.
    let mut short = hi();
    short["seed"] = json!(1);
    let response = cached
        .post(
            "/v1/chat/completions",
            &short,
            &[("x-llmobs-cache-ttl-seconds", "1")],
        )
        .await;
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    assert_eq!(
        cache_header(&cached.chat(&short).await).as_deref(),
        Some("hit")
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        cache_header(&cached.chat(&short).await).as_deref(),
        Some("miss"),
        "expired"
    );

    for bad in ["0", "-1", "1.5", "soon", "999999999"] {
        let response = cached
            .post(
                "/v1/chat/completions",
                &hi(),
                &[("x-llmobs-cache-ttl-seconds", bad)],
            )
            .await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("x-llmobs-cache-ttl-seconds")
        );
    }
}

async fn the_default_ttl_expires(backend: Backend) {
    let cached = spawn_cached(backend, &[("CACHE_TTL_SECONDS", "1")]).await;
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    assert_eq!(cached.entries(1).await, 1);
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("hit")
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
}

// ------------------------------------------------------------------ what is never stored

async fn failures_are_never_stored(backend: Backend) {
    let cached = spawn_cached(backend, &[]).await;
    // An error status.
    cached
        .app
        .upstream
        .script([Reply::groq_error(400, "bad", "invalid")]);
    assert_eq!(cached.chat(&hi()).await.status(), 400);
    // A stream that fails midway.
    let mut streamed = hi();
    streamed["stream"] = json!(true);
    cached.app.upstream.script([Reply::StreamThenError]);
    let response = cached.chat(&streamed).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    // A stream the client abandons.
    cached.app.upstream.script([Reply::StreamThenHang]);
    let mut response = cached.chat(&streamed).await;
    assert_eq!(response.status(), 200);
    let _first = response.chunk().await.unwrap();
    drop(response);
    // An answer cut short by max_tokens.
    cached.app.upstream.script([truncated()]);
    assert_eq!(cached.chat(&hi()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cached.entries(0).await, 0, "nothing stored");
    // The next call still goes upstream.
    let response = cached.chat(&hi()).await;
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    assert_eq!(cached.entries(1).await, 1);
}

#[tokio::test]
async fn truncated_answers_are_stored_when_configured_and_large_ones_never() {
    let cached = spawn_cached(
        Backend::Memory,
        &[
            ("CACHE_STORE_TRUNCATED", "true"),
            ("CACHE_MAX_ENTRY_BYTES", "2000"),
        ],
    )
    .await;
    cached.app.upstream.script([truncated()]);
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("hit")
    );
    let mut large = hi();
    large["seed"] = json!(9);
    cached.app.upstream.script([Reply::Large(5000)]);
    assert_eq!(
        cache_header(&cached.chat(&large).await).as_deref(),
        Some("miss")
    );
    assert_eq!(
        cache_header(&cached.chat(&large).await).as_deref(),
        Some("miss"),
        "over CACHE_MAX_ENTRY_BYTES"
    );
}

// ------------------------------------------------------------------ Redis faults

#[tokio::test]
async fn redis_down_then_back_never_fails_a_request() {
    let mut cached = spawn_cached(Backend::Redis, &[("CACHE_LOOKUP_TIMEOUT_MS", "200")]).await;
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("miss")
    );
    assert_eq!(cached.entries(1).await, 1);
    assert_eq!(
        cache_header(&cached.chat(&hi()).await).as_deref(),
        Some("hit")
    );

    cached.redis.as_mut().unwrap().stop();
    for _ in 0..5 {
        let response = cached.chat(&hi()).await;
        assert_eq!(response.status(), 200, "Redis down never fails a call");
        assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    }
    assert_eq!(cached.cache_metric("error").await, 5.0);
    assert_eq!(cached.app.upstream.received().len(), 6);

    // Back (empty: it keeps nothing on disk): a miss stores again, then hits resume.
    cached.redis.as_mut().unwrap().restart();
    let mut resumed = false;
    for _ in 0..100 {
        let response = cached.chat(&hi()).await;
        assert_eq!(response.status(), 200);
        if cache_header(&response).as_deref() == Some("hit") {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "hits resume after Redis returns, with no restart");
}

#[tokio::test]
async fn a_slow_or_garbage_redis_is_a_counted_miss() {
    let cached = spawn_cached(Backend::Redis, &[("CACHE_LOOKUP_TIMEOUT_MS", "100")]).await;
    let first = cached.chat(&hi()).await;
    let trace = trace_id(&first);
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    assert_eq!(cached.entries(1).await, 1);
    // Garbage under the entry's key.
    let (span, _) = chat_span(&trace, 3).await;
    let prefix = attr(&span.span.attributes, "llmobs.cache.key").unwrap();
    let keys = cached.redis().cli(&[
        "KEYS",
        &format!("llmobs:cache:v1:{}*", prefix.as_str().unwrap()),
    ]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    cached.redis().cli(&["SET", keys.trim(), "not an entry"]);
    let response = cached.chat(&hi()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    assert_eq!(cached.cache_metric("error").await, 1.0);
    // A hung Redis: the lookup gives up at its deadline and the call goes upstream.
    cached.redis().pause();
    let started = std::time::Instant::now();
    let mut other = hi();
    other["seed"] = json!(5);
    let response = cached.chat(&other).await;
    let waited = started.elapsed();
    cached.redis().resume();
    assert_eq!(response.status(), 200);
    assert_eq!(cache_header(&response).as_deref(), Some("miss"));
    assert!(
        waited < Duration::from_secs(3),
        "the deadline bounds the wait: {waited:?}"
    );
    assert_eq!(cached.cache_metric("error").await, 2.0);
    assert_eq!(cached.app.upstream.received().len(), 3);
}

// ------------------------------------------------------------------ both backends, one suite

/// The same cases against each backend: `cache::memory::…` and `cache::redis::…`.
macro_rules! on_backend {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::Backend;

            #[tokio::test]
            async fn embeddings_are_cached() {
                super::embeddings_are_cached($backend).await;
            }

            #[tokio::test]
            async fn api_chat_hits_cost_nothing() {
                super::api_chat_hits_cost_nothing($backend).await;
            }

            #[tokio::test]
            async fn two_tenants_never_share_an_entry() {
                super::two_tenants_never_share_an_entry($backend).await;
            }

            #[tokio::test]
            async fn every_answer_changing_parameter_is_part_of_the_key() {
                super::every_answer_changing_parameter_is_part_of_the_key($backend).await;
            }

            #[tokio::test]
            async fn a_repeated_call_is_served_from_the_cache() {
                super::a_repeated_call_is_served_from_the_cache($backend).await;
            }

            #[tokio::test]
            async fn streams_and_whole_answers_share_entries() {
                super::streams_and_whole_answers_share_entries($backend).await;
            }

            #[tokio::test]
            async fn the_default_ttl_expires() {
                super::the_default_ttl_expires($backend).await;
            }

            #[tokio::test]
            async fn failures_are_never_stored() {
                super::failures_are_never_stored($backend).await;
            }
        }
    };
}

on_backend!(memory, Backend::Memory);
on_backend!(redis, Backend::Redis);
