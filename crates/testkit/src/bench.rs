//! The benchmark's server (`examples/fake_upstream.rs`, run by `bench/run.sh`): the fast fake
//! upstream and a counting OTLP receiver on one port, and their counters at `GET /stats`.
//!
//! * `POST /openai/v1/chat/completions`: [`FastUpstream`], with Groq's
//!   `x-ratelimit-remaining-*` headers; `"stream": true` gets the role chunk, the content
//!   deltas `chunk_delay` apart, the final chunk with `x_groq.usage`, the usage chunk if
//!   `stream_options.include_usage`, then `data: [DONE]`.
//! * `POST /v1/traces`: answers 200 and counts requests, bytes and spans ([`Sink::counting`]).
//! * `GET /stats`: `{"chat_requests", "stream_requests", "otlp_requests", "otlp_bytes",
//!   "otlp_spans", "otlp_unparsed"}`, numbers.

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
            axum::Json(json!({
                "chat_requests": upstream.chat_requests(),
                "stream_requests": upstream.stream_requests(),
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
