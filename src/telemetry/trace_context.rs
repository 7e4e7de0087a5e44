//! Trace-id helpers: the request's trace id for response bodies and the outgoing W3C
//! `traceparent` header.

use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanId, TraceContextExt};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span that log lines of a request carry: only the trace and span ids, set once by the
/// server-span middleware. Log lines see no other span of ours, and it is never exported.
pub const LOG_SPAN: &str = "request";

/// The ids of the request a task is serving: its server span's.
#[derive(Clone, Debug)]
pub struct RequestIds {
    /// 32 hex characters, formatted once.
    pub trace_id: String,
    /// The server span's id.
    pub span_id: SpanId,
}

tokio::task_local! {
    /// The ids of the request this task is serving (`None`: no valid trace), set by the
    /// server-span middleware, for response bodies to quote and log lines to carry.
    pub static REQUEST_IDS: Option<RequestIds>;
}

/// The trace id of the request being served (or else of the current span) as 32 hex
/// characters, if there is a valid one. Inside a request this is a copy of what the middleware
/// formatted once, not a second span lookup and hex formatting.
pub fn current_trace_id() -> Option<String> {
    if let Ok(id) = REQUEST_IDS.try_with(|ids| ids.as_ref().map(|ids| ids.trace_id.clone())) {
        return id;
    }
    let context = Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// W3C `traceparent` (and `tracestate`, if any) naming `span` as the parent: what the
/// TraceContext propagator writes, without the `format!` machinery it runs per call (a profile
/// showed 4,600 instructions per request there).
pub fn write_traceparent(span: &Span, headers: &mut HeaderMap) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    if !span_context.is_valid() {
        return;
    }
    // 00-{32 hex trace id}-{16 hex span id}-{2 hex flags}
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let trace_id = span_context.trace_id().to_bytes();
    let span_id = span_context.span_id().to_bytes();
    let flags = [span_context.trace_flags().to_u8()];
    for (bytes, start) in [(&trace_id[..], 3), (&span_id[..], 36), (&flags[..], 53)] {
        for (i, byte) in bytes.iter().enumerate() {
            value[start + 2 * i] = HEX[usize::from(byte >> 4)];
            value[start + 2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert("traceparent", value);
    }
    let state = span_context.trace_state().header();
    if !state.is_empty()
        && let Ok(value) = HeaderValue::from_str(&state)
    {
        headers.insert("tracestate", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_what_the_w3c_propagator_writes() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
        use opentelemetry::{Context, trace::SpanId, trace::TraceId};
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let remote = SpanContext::new(
                TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
                SpanId::from(0xb7ad_6b71_6920_3331),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("vendor", "x")]).unwrap(),
            );
            let span = tracing::info_span!("attempt");
            span.set_parent(Context::new().with_remote_span_context(remote))
                .unwrap();
            let mut ours = HeaderMap::new();
            write_traceparent(&span, &mut ours);
            let mut reference = HeaderMap::new();
            opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(
                &span.context(),
                &mut opentelemetry_http::HeaderInjector(&mut reference),
            );
            assert_eq!(ours, reference);
            let traceparent = ours["traceparent"].to_str().unwrap();
            assert!(
                traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{traceparent}"
            );
            assert!(traceparent.ends_with("-01"), "{traceparent}");
            assert_eq!(ours["tracestate"], "vendor=x");
        });
    }
}
