//! A fast fake Groq (and Anthropic) upstream and OTLP/HTTP receiver for benchmarks
//! (`bench/run.sh`, `bench/compare.sh`).
//!
//! ```text
//! cargo run --release --example fake_upstream -- [--port 0] [--workers 1] [--delay-ms 0]
//!     [--chunks 20] [--chunk-delay-ms 0]
//! ```
//!
//! The server is `llmobs_testkit::bench` (crates/testkit/src/bench.rs):
//!
//! * `POST /openai/v1/chat/completions`: Groq's answer as precomputed bytes (no JSON parsing of
//!   the request beyond a byte scan for `"stream": true` and `include_usage`), with Groq's
//!   `x-ratelimit-remaining-*` headers, after `--delay-ms`. With `"stream": true`: Groq-style
//!   SSE chunks (role chunk, `--chunks` content deltas `--chunk-delay-ms` apart, a final chunk
//!   with `finish_reason` and `x_groq.usage`, a usage chunk if `stream_options.include_usage`,
//!   then `data: [DONE]`).
//! * `POST /openai/v1/responses`: OpenAI's `Response` object, or with `"stream": true` its typed
//!   events (`response.created` … one `response.output_text.delta` per chunk …
//!   `response.completed` with usage), precomputed at start like the chat answer.
//! * `POST /openai/v1/embeddings`: 2 vectors of 256 floats, whatever the input.
//! * `POST /v1/messages`: Anthropic's Message, or with `"stream": true` its events
//!   (`message_start` … one `text_delta` per chunk … `message_stop`), precomputed likewise.
//!   The Groq/OpenAI paths' base URL is `http://ADDR/openai/v1`, Anthropic's `http://ADDR`.
//! * `POST /v1/traces`: a live OTLP/HTTP receiver that answers 200 and counts requests, bytes
//!   and spans (walking the protobuf by hand, no decoding into structs).
//! * `GET /stats`: those counters, and the requests of each endpoint, as JSON.
//!
//! Prints `listening on 127.0.0.1:PORT` on stdout once bound (`--port 0` picks a free port).

use std::net::SocketAddr;
use std::time::Duration;

use llmobs_testkit::upstream::FastOptions;

#[derive(Debug)]
struct Options {
    port: u16,
    workers: usize,
    fake: FastOptions,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        port: 0,
        workers: 1,
        fake: FastOptions::default(),
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
            "--delay-ms" => o.fake.delay = Duration::from_millis(num(&value)?),
            "--chunks" => o.fake.chunks = num(&value)? as usize,
            "--chunk-delay-ms" => o.fake.chunk_delay = Duration::from_millis(num(&value)?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
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
    if let Err(e) = llmobs_testkit::bench::serve(listener, &opts.fake).await {
        eprintln!("server failed: {e}");
        std::process::exit(1);
    }
}
