//! The calls of the recent past, by response id and by trace id: what `POST /v1/feedback`
//! links a score to (the call's GenAI span).
//!
//! Bounded twice: at most `FEEDBACK_MAX_CALLS` entries (quick_cache evicts the coldest beyond
//! it) and at most `FEEDBACK_WINDOW_SECS` old (checked on read). Written once per call as it
//! ends; never on a lock shared by calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanContext;
use quick_cache::sync::Cache;

/// One call: its GenAI span and its response id, and when it ended.
#[derive(Debug, Clone)]
pub struct RecentCall {
    /// The GenAI span (what feedback links to).
    pub span: SpanContext,
    /// `gen_ai.response.id`, when the provider gave one.
    pub response_id: Option<String>,
    /// The prompt (name, version) the client named, if any.
    pub prompt: Option<(String, String)>,
    /// The route and A/B variant that answered, if any.
    pub variant: Option<(Arc<str>, Arc<str>)>,
    at: Instant,
}

/// The recent calls' index.
pub struct RecentCalls {
    by_response: Cache<String, RecentCall>,
    by_trace: Cache<[u8; 16], RecentCall>,
    window: Duration,
}

impl std::fmt::Debug for RecentCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentCalls")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl RecentCalls {
    /// An index of at most `capacity` calls (each by response id and by trace id), none older
    /// than `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            by_response: Cache::new(capacity),
            by_trace: Cache::new(capacity),
            window,
        }
    }

    /// Notes a call that ended. A trace with several calls keeps its last.
    pub fn record(
        &self,
        span: SpanContext,
        response_id: Option<&str>,
        prompt: Option<(String, String)>,
        variant: Option<(Arc<str>, Arc<str>)>,
    ) {
        if !span.is_valid() {
            return;
        }
        let call = RecentCall {
            span,
            response_id: response_id.filter(|id| !id.is_empty()).map(str::to_owned),
            prompt,
            variant,
            at: Instant::now(),
        };
        if let Some(id) = &call.response_id {
            self.by_response.insert(id.clone(), call.clone());
        }
        self.by_trace.insert(call.span.trace_id().to_bytes(), call);
    }

    /// The call that answered with `response_id`, if it ended within the window.
    pub fn by_response_id(&self, response_id: &str) -> Option<RecentCall> {
        self.fresh(self.by_response.get(response_id))
    }

    /// The (last) call of the trace, if it ended within the window.
    pub fn by_trace_id(&self, trace_id: [u8; 16]) -> Option<RecentCall> {
        self.fresh(self.by_trace.get(&trace_id))
    }

    fn fresh(&self, call: Option<RecentCall>) -> Option<RecentCall> {
        call.filter(|c| c.at.elapsed() <= self.window)
    }

    /// How far back feedback may refer.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn span(trace: u8) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([trace; 16]),
            SpanId::from_bytes([7; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        )
    }

    #[test]
    fn finds_a_call_by_response_and_trace_within_the_window() {
        let recent = RecentCalls::new(10, Duration::from_secs(60));
        recent.record(span(1), Some("chatcmpl-1"), None, None);
        assert_eq!(
            recent
                .by_response_id("chatcmpl-1")
                .map(|c| c.span.trace_id()),
            Some(TraceId::from_bytes([1; 16]))
        );
        assert!(recent.by_trace_id([1; 16]).is_some());
        assert!(recent.by_trace_id([2; 16]).is_none());
        assert!(recent.by_response_id("chatcmpl-2").is_none());
        recent.record(SpanContext::empty_context(), Some("invalid"), None, None);
        assert!(recent.by_response_id("invalid").is_none());

        let closed = RecentCalls::new(10, Duration::ZERO);
        closed.record(span(3), Some("old"), None, None);
        std::thread::sleep(Duration::from_millis(2));
        assert!(closed.by_response_id("old").is_none(), "outside the window");
    }
}
