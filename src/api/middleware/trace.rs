//! The HTTP server span, request metrics and request log line, for every route.
//!
//! Spans and labels use the matched route template (`MatchedPath`), never the raw URI, so
//! names and label values stay bounded. The parent comes from an incoming W3C `traceparent`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::global;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::HeaderExtractor;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::api::Rejection;
use crate::llm::CallRecord;
use crate::telemetry::{LOG_SPAN, Metrics, REQUEST_TRACE_ID};

/// Response header carrying the trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";
/// The server span's `tracing` name (its exported name is `{METHOD} {route}`).
const SERVER_SPAN: &str = "http_server";

/// Middleware: server span, `http_server_request_duration_seconds`, gateway overhead and one
/// log line per request.
pub async fn trace_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = known_method(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let span_name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        SERVER_SPAN,
        otel.name = span_name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route.as_deref(),
        url.path = request.uri().path(),
        url.scheme = "http",
        user_agent.original = user_agent,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer is installed; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    let span_context = span.context().span().span_context().clone();
    let trace_id = span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string());
    // Every log line of the request carries the ids. A span of their own, created with its
    // fields (no `record` afterwards, which the JSON log formatter pays for by re-parsing), and
    // entered outside the server span so that the spans below keep the server span as parent.
    // (Do not guard this with `tracing::enabled!`: with per-layer filters that call leaves a
    // filter state behind that disabled the next span, the GenAI span, in the OpenTelemetry
    // layer.)
    let log_span = match &trace_id {
        Some(trace_id) => tracing::info_span!(
            parent: None,
            LOG_SPAN,
            trace_id = trace_id.as_str(),
            span_id = %span_context.span_id()
        ),
        None => tracing::Span::none(),
    };

    let mut response = REQUEST_TRACE_ID
        .scope(
            trace_id.clone(),
            next.run(request)
                .instrument(span.clone())
                .instrument(log_span.clone()),
        )
        .await;

    let status = response.status();
    let elapsed = started.elapsed();
    // Server spans are errors on 5xx only (HTTP semantic conventions).
    let server_error = status.is_server_error();
    tracing::record_all!(
        span,
        http.response.status_code = i64::from(status.as_u16()),
        error.type = server_error.then(|| status.as_str()),
        otel.status_code = server_error.then_some("error"),
    );
    if let Some(trace_id) = &trace_id
        && let Ok(value) = HeaderValue::from_str(trace_id)
    {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    metrics.record_http_request(
        method,
        route.as_deref().unwrap_or(""),
        status.as_str(),
        elapsed,
    );
    if let Some(Rejection(reason)) = response.extensions().get::<Rejection>() {
        metrics.record_rejection(reason);
    }
    let call = response.extensions().get::<CallRecord>();
    if let Some(call) = call {
        metrics.record_gateway_overhead(call.provider, elapsed.saturating_sub(call.upstream_wait));
    }
    let _entered = log_span.enter();
    let (input_tokens, output_tokens) = call.and_then(|c| c.tokens).unzip();
    tracing::info!(
        method,
        route = route.as_deref().unwrap_or(""),
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        model = call.map(|c| c.model.as_str()),
        input_tokens,
        output_tokens,
        "request completed"
    );
    response
}

/// The method, or `_OTHER` for anything non-standard (bounded label values).
fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}
