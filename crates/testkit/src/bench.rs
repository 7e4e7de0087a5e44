//! The benchmark's server (`examples/fake_upstream.rs`, run by `bench/run.sh`): the fast fake
//! upstream and a counting OTLP receiver on one port, and their counters at `GET /stats`.
//!
//! * `POST /openai/v1/chat/completions`: [`FastUpstream`], with Groq's
//!   `x-ratelimit-remaining-*` headers; `"stream": true` gets the role chunk, the content
//!   deltas `chunk_delay` apart, the final chunk with `x_groq.usage`, the usage chunk if
//!   `stream_options.include_usage`, then `data: [DONE]`.
//! * `POST /openai/v1/responses`: OpenAI's `Response` object (the same text and token counts
//!   as chat); `"stream": true` gets its typed events (the four opening events at once, one
//!   `response.output_text.delta` per chunk `chunk_delay` apart, then the four closing ones
//!   ending with `response.completed`), no `[DONE]`.
//! * `POST /openai/v1/embeddings`: 2 vectors of 256 floats (JSON numbers), whatever the input.
//! * `POST /v1/messages`: Anthropic's Message (one text block, the same text and token counts);
//!   `"stream": true` gets its named events (message_start, content_block_start and ping at
//!   once, one `text_delta` per chunk, then content_block_stop, message_delta, message_stop),
//!   with Anthropic's rate-limit and `request-id` headers. No key is checked.
//! * `POST /v1/traces`: answers 200 and counts requests, bytes and spans ([`Sink::counting`]).
//! * `GET /stats`: `{"chat_requests", "stream_requests", "responses_requests",
//!   "responses_stream_requests", "embeddings_requests", "messages_requests",
//!   "messages_stream_requests", "otlp_requests", "otlp_bytes", "otlp_spans",
//!   "otlp_unparsed"}`, numbers (`stream_requests`: chat streams).

use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::otlp::Sink;
use crate::upstream::{FastOptions, FastUpstream};

/// The whole benchmark server.
pub fn router(options: &FastOptions) -> Router {
    let upstream = FastUpstream::new(options);
    let otlp = Sink::counting();
    let stats = {
        let (upstream, otlp) = (upstream.clone(), otlp.clone());
        move || async move {
            let c = otlp.counts();
            let u = upstream.counts();
            axum::Json(json!({
                "chat_requests": u.chat,
                "stream_requests": u.chat_streams,
                "responses_requests": u.responses,
                "responses_stream_requests": u.responses_streams,
                "embeddings_requests": u.embeddings,
                "messages_requests": u.messages,
                "messages_stream_requests": u.messages_streams,
                "otlp_requests": c.requests,
                "otlp_bytes": c.bytes,
                "otlp_spans": c.spans,
                "otlp_unparsed": c.unparsed,
            }))
        }
    };
    upstream
        .routes()
        .merge(otlp.routes())
        .route("/stats", get(stats))
}

/// Serves [`router`] on a bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: &FastOptions,
) -> std::io::Result<()> {
    axum::serve(listener, router(options)).await
}
