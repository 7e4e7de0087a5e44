//! Server-sent event responses: relayed frame by frame, never buffered, with the server span
//! ending when the stream does.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// How an SSE stream is documented: one event, as SSE parsers hand them over.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only
pub struct ServerSentEvent {
    /// `message` unless the event names itself (`done`, `error`).
    event: Option<String>,
    /// The event's data: a JSON document, or `[DONE]`.
    data: String,
}

/// A `text/event-stream` response relaying `frames` as they come, never buffering.
///
/// The stream holds the current (server) span, so that span ends when the last frame is sent
/// and the trace shows the request's real duration, with its chat span inside it.
pub fn sse_response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let span = EndSpanOnDrop(tracing::Span::current());
    let body = Body::from_stream(frames.map(move |frame| {
        let _request_span = &span;
        Ok::<_, Infallible>(frame)
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// tracing-opentelemetry ends a span at its last exit; entering once more when the stream is
/// dropped (finished or abandoned) makes the server span end with the stream.
struct EndSpanOnDrop(tracing::Span);

impl Drop for EndSpanOnDrop {
    fn drop(&mut self) {
        let _end = self.0.enter();
    }
}
