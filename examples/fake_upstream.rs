//! A fast fake Groq upstream and OTLP/HTTP receiver for benchmarks (`bench/run.sh`).
//!
//! ```text
//! cargo run --release --example fake_upstream -- [--port 0] [--workers 1] [--delay-ms 0]
//!     [--chunks 20] [--chunk-delay-ms 0]
//! ```
//!
//! * `POST /openai/v1/chat/completions`: Groq's answer as precomputed static bytes (no JSON
//!   parsing of the request beyond a byte scan for `"stream": true` and `include_usage`), with
//!   Groq's `x-ratelimit-remaining-*` headers. With `"stream": true`: Groq-style SSE chunks
//!   (role chunk, `--chunks` content deltas `--chunk-delay-ms` apart, a final chunk with
//!   `finish_reason` and `x_groq.usage`, a usage chunk if `stream_options.include_usage`,
//!   then `data: [DONE]`).
//! * `POST /v1/traces`: a live OTLP/HTTP receiver that answers 200 and counts requests, bytes
//!   and spans (walking the protobuf by hand, no decoding into structs).
//! * `GET /stats`: those counters as JSON.
//!
//! Prints `listening on 127.0.0.1:PORT` on stdout once bound (`--port 0` picks a free port).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

const MODEL: &str = "llama-3.1-8b-instant";
const CREATED: u64 = 1_764_000_000;
const USAGE: &str = r#"{"queue_time":0.012,"prompt_tokens":16,"prompt_time":0.002,"completion_tokens":62,"completion_time":0.05,"total_tokens":78,"total_time":0.052}"#;

#[derive(Debug)]
struct Options {
    port: u16,
    workers: usize,
    delay: Duration,
    chunks: usize,
    chunk_delay: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        port: 0,
        workers: 1,
        delay: Duration::ZERO,
        chunks: 20,
        chunk_delay: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err("usage: fake_upstream [--port P] [--workers N] [--delay-ms MS] [--chunks N] [--chunk-delay-ms MS]".into());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--port" => o.port = num(&value)? as u16,
            "--workers" => o.workers = num(&value)?.max(1) as usize,
            "--delay-ms" => o.delay = Duration::from_millis(num(&value)?),
            "--chunks" => o.chunks = num(&value)? as usize,
            "--chunk-delay-ms" => o.chunk_delay = Duration::from_millis(num(&value)?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

#[derive(Default)]
struct Counters {
    chat: AtomicU64,
    streams: AtomicU64,
    otlp_requests: AtomicU64,
    otlp_bytes: AtomicU64,
    otlp_spans: AtomicU64,
    otlp_unparsed: AtomicU64,
}

struct Fake {
    completion: Bytes,
    /// The SSE events without and with the `include_usage` chunk.
    events: [Arc<[Bytes]>; 2],
    /// The same events concatenated, for `--chunk-delay-ms 0`.
    whole: [Bytes; 2],
    delay: Duration,
    chunk_delay: Duration,
    counters: Counters,
}

fn completion_body() -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"id":"chatcmpl-bench-0001","object":"chat.completion","created":{created},"model":"{model}","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"Observability is the ability to understand a system's internal state from the signals it emits: traces, metrics and logs. "#,
            r#"It lets engineers ask new questions about production behaviour without shipping new code. "#,
            r#"For LLM applications it adds token usage, cost and latency per call."}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{usage},"usage_breakdown":null,"system_fingerprint":"fp_bench","#,
            r#""x_groq":{{"id":"req_bench"}},"service_tier":"on_demand"}}"#
        ),
        created = CREATED,
        model = MODEL,
        usage = USAGE
    ))
}

fn sse_events(chunks: usize, include_usage: bool) -> Vec<Bytes> {
    let head = format!(
        r#"{{"id":"chatcmpl-bench-0001","object":"chat.completion.chunk","created":{CREATED},"model":"{MODEL}","system_fingerprint":"fp_bench","#
    );
    let event = |rest: &str| Bytes::from(format!("data: {head}{rest}}}\n\n"));
    let mut events = Vec::with_capacity(chunks + 4);
    events.push(event(
        r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"x_groq":{"id":"req_x"}"#,
    ));
    for i in 0..chunks {
        events.push(event(&format!(
            r#""choices":[{{"index":0,"delta":{{"content":"word{i} "}},"logprobs":null,"finish_reason":null}}]"#
        )));
    }
    events.push(event(&format!(
        r#""choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"x_groq":{{"id":"req_x","usage":{USAGE}}}"#
    )));
    if include_usage {
        events.push(event(&format!(r#""choices":[],"usage":{USAGE}"#)));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Whether `"key"` is followed (after whitespace and a colon) by `true`, anywhere in `body`.
fn json_flag(body: &[u8], key: &[u8]) -> bool {
    let mut rest = body;
    while let Some(at) = find(rest, key) {
        rest = &rest[at + key.len()..];
        let mut i = 0;
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        if rest.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        if rest[i..].starts_with(b"true") {
            return true;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn chat(State(fake): State<Arc<Fake>>, body: Bytes) -> Response {
    fake.counters.chat.fetch_add(1, Relaxed);
    if json_flag(&body, b"\"stream\"") {
        fake.counters.streams.fetch_add(1, Relaxed);
        let usage = usize::from(json_flag(&body, b"\"include_usage\""));
        let body = if fake.chunk_delay.is_zero() {
            Body::from(fake.whole[usage].clone())
        } else {
            let events = fake.events[usage].clone();
            let delay = fake.chunk_delay;
            Body::from_stream(futures_util::stream::unfold(0usize, move |i| {
                let events = events.clone();
                async move {
                    let event = events.get(i)?.clone();
                    // The role chunk goes out at once; every later chunk after the delay.
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<_, Infallible>(event), i + 1))
                }
            }))
        };
        return (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            ratelimit_headers(),
            body,
        )
            .into_response();
    }
    if !fake.delay.is_zero() {
        tokio::time::sleep(fake.delay).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ratelimit_headers(),
        fake.completion.clone(),
    )
        .into_response()
}

fn ratelimit_headers() -> HeaderMap {
    let mut h = HeaderMap::with_capacity(2);
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("14399"),
    );
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from_static("5954"),
    );
    h
}

async fn traces(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    let c = &fake.counters;
    c.otlp_requests.fetch_add(1, Relaxed);
    c.otlp_bytes.fetch_add(body.len() as u64, Relaxed);
    let plain = headers
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes() == b"identity");
    match plain.then(|| count_spans(&body)).flatten() {
        Some(n) => c.otlp_spans.fetch_add(n, Relaxed),
        None => c.otlp_unparsed.fetch_add(1, Relaxed),
    };
    // An empty ExportTraceServiceResponse: full success.
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        Bytes::new(),
    )
        .into_response()
}

async fn stats(State(fake): State<Arc<Fake>>) -> Response {
    let c = &fake.counters;
    let json = format!(
        r#"{{"chat_requests":{},"stream_requests":{},"otlp_requests":{},"otlp_bytes":{},"otlp_spans":{},"otlp_unparsed":{}}}"#,
        c.chat.load(Relaxed),
        c.streams.load(Relaxed),
        c.otlp_requests.load(Relaxed),
        c.otlp_bytes.load(Relaxed),
        c.otlp_spans.load(Relaxed),
        c.otlp_unparsed.load(Relaxed),
    );
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// Reads one protobuf field: (field number, wire type, the LEN payload if any, rest).
fn field(buf: &[u8]) -> Option<(u64, u8, &[u8], &[u8])> {
    let (key, mut rest) = varint(buf)?;
    let wire = (key & 7) as u8;
    let mut payload: &[u8] = &[];
    match wire {
        0 => rest = varint(rest)?.1,
        1 => rest = rest.get(8..)?,
        2 => {
            let (len, r) = varint(rest)?;
            let len = usize::try_from(len).ok()?;
            payload = r.get(..len)?;
            rest = &r[len..];
        }
        5 => rest = rest.get(4..)?,
        _ => return None,
    }
    Some((key >> 3, wire, payload, rest))
}

fn varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

/// Calls `each` with every LEN field numbered `number` in `msg`.
fn for_each_len(
    mut msg: &[u8],
    number: u64,
    mut each: impl FnMut(&[u8]) -> Option<()>,
) -> Option<()> {
    while !msg.is_empty() {
        let (n, wire, payload, rest) = field(msg)?;
        if n == number && wire == 2 {
            each(payload)?;
        }
        msg = rest;
    }
    Some(())
}

/// Spans in an ExportTraceServiceRequest: resource_spans(1) > scope_spans(2) > spans(2).
fn count_spans(request: &[u8]) -> Option<u64> {
    let mut spans = 0u64;
    for_each_len(request, 1, |resource_spans| {
        for_each_len(resource_spans, 2, |scope_spans| {
            for_each_len(scope_spans, 2, |_span| {
                spans += 1;
                Some(())
            })
        })
    })?;
    Some(spans)
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve(opts));
}

async fn serve(opts: Options) {
    let plain = sse_events(opts.chunks, false);
    let usage = sse_events(opts.chunks, true);
    let whole = |events: &[Bytes]| Bytes::from(events.concat());
    let fake = Arc::new(Fake {
        completion: completion_body(),
        whole: [whole(&plain), whole(&usage)],
        events: [plain.into(), usage.into()],
        delay: opts.delay,
        chunk_delay: opts.chunk_delay,
        counters: Counters::default(),
    });
    let app = Router::new()
        .route("/openai/v1/chat/completions", post(chat))
        .route(
            "/v1/traces",
            post(traces).layer(DefaultBodyLimit::max(64 << 20)),
        )
        .route("/stats", get(stats))
        .with_state(fake);
    let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().expect("local addr");
    println!("listening on {bound}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server failed: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_flag_with_any_spacing() {
        assert!(json_flag(br#"{"a":1,"stream" : true}"#, b"\"stream\""));
        assert!(!json_flag(
            br#"{"stream":false,"stream_options":{"x":true}}"#,
            b"\"stream\""
        ));
        assert!(json_flag(
            br#"{"stream_options":{"include_usage":true}}"#,
            b"\"include_usage\""
        ));
    }

    #[test]
    fn counts_spans_in_a_hand_made_request() {
        // Two empty spans (field 2) in a scope_spans (field 2) in a resource_spans (field 1).
        let scope_spans = [0x12, 0x00, 0x12, 0x00];
        let mut resource = vec![0x12, scope_spans.len() as u8];
        resource.extend_from_slice(&scope_spans);
        let mut request = vec![0x0a, resource.len() as u8];
        request.extend_from_slice(&resource);
        assert_eq!(count_spans(&request), Some(2));
        assert_eq!(count_spans(&[0x0a, 0x05, 0x00]), None);
    }
}
