//! The calls of the recent past, by response id and by trace id: what `POST /v1/feedback`
//! links a score to (the call's GenAI span).
//!
//! Bounded twice: at most `[feedback] max_calls` entries (quick_cache evicts the coldest beyond
//! it) and at most `FEEDBACK_WINDOW_SECS` old (checked on read). Written once per call as it
//! ends; never on a lock shared by calls.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use quick_cache::sync::Cache;

/// One call, as a lookup returns it: its GenAI span and its response id.
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
}

// What the index keeps per call is small and flat, because it keeps `[feedback] max_calls` of
// them in every gateway: storing the `RecentCall` above twice (by response id, by trace id)
// cost about 400 bytes a call, 40 MB at the bound of 100,000 then, more than the rest of the
// gateway (BENCHMARKS.md, issue 18); now about 170. Each map holds the ids inline, the
// response id is stored once (by trace; the response-id map is keyed by its 64-bit hash and
// the caller names the id), and what few calls have (a prompt, a variant, a trace state) is
// one shared allocation.

/// What both maps keep of a call: its span (less the trace id, which one map has as its
/// key), when it ended, and what few calls have.
#[derive(Clone)]
struct Stored {
    span_id: [u8; 8],
    flags: u8,
    ended: Ended,
    rare: Option<Arc<Rare>>,
}

/// By trace id: the call and its response id.
#[derive(Clone)]
struct ByTrace {
    call: Stored,
    response_id: Option<Box<str>>,
}

/// By response id (its hash): the call and its trace.
#[derive(Clone)]
struct ByResponse {
    trace_id: [u8; 16],
    call: Stored,
}

/// What most calls do not have.
struct Rare {
    trace_state: TraceState,
    prompt: Option<(String, String)>,
    variant: Option<(Arc<str>, Arc<str>)>,
}

/// When a call ended: nanoseconds after the index was made.
#[derive(Clone, Copy)]
struct Ended(u64);

/// The recent calls' index.
pub struct RecentCalls {
    by_response: Cache<u64, ByResponse>,
    by_trace: Cache<[u8; 16], ByTrace>,
    /// Hashes response ids (seeded per process).
    hasher: std::collections::hash_map::RandomState,
    created: Instant,
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
            hasher: Default::default(),
            created: Instant::now(),
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
        let ended = self.now();
        let trace_state = span.trace_state().clone();
        let rare =
            (prompt.is_some() || variant.is_some() || trace_state != TraceState::NONE).then(|| {
                Arc::new(Rare {
                    trace_state,
                    prompt,
                    variant,
                })
            });
        let trace_id = span.trace_id().to_bytes();
        let call = Stored {
            span_id: span.span_id().to_bytes(),
            flags: span.trace_flags().to_u8(),
            ended,
            rare,
        };
        let response_id = response_id.filter(|id| !id.is_empty());
        if let Some(id) = response_id {
            let entry = ByResponse {
                trace_id,
                call: call.clone(),
            };
            self.by_response.insert(self.hasher.hash_one(id), entry);
        }
        let entry = ByTrace {
            call,
            response_id: response_id.map(Box::from),
        };
        self.by_trace.insert(trace_id, entry);
    }

    /// The call that answered with `response_id`, if it ended within the window. (Two ids
    /// with one 64-bit hash would name the later call: about one chance in 10^10 among
    /// 100,000.)
    pub fn by_response_id(&self, response_id: &str) -> Option<RecentCall> {
        let entry = self.by_response.get(&self.hasher.hash_one(response_id))?;
        self.fresh(&entry.call).then(|| {
            entry
                .call
                .recent(entry.trace_id, Some(response_id.to_owned()))
        })
    }

    /// The (last) call of the trace, if it ended within the window.
    pub fn by_trace_id(&self, trace_id: [u8; 16]) -> Option<RecentCall> {
        let entry = self.by_trace.get(&trace_id)?;
        let response_id = entry.response_id.as_deref().map(str::to_owned);
        self.fresh(&entry.call)
            .then(|| entry.call.recent(trace_id, response_id))
    }

    fn now(&self) -> Ended {
        Ended(u64::try_from(self.created.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn fresh(&self, call: &Stored) -> bool {
        Duration::from_nanos(self.now().0.saturating_sub(call.ended.0)) <= self.window
    }

    /// How far back feedback may refer.
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl Stored {
    /// The call as a lookup returns it. The GenAI span is this process's own: not remote.
    fn recent(&self, trace_id: [u8; 16], response_id: Option<String>) -> RecentCall {
        let rare = self.rare.as_deref();
        RecentCall {
            span: SpanContext::new(
                TraceId::from_bytes(trace_id),
                SpanId::from_bytes(self.span_id),
                TraceFlags::new(self.flags),
                false,
                rare.map_or(TraceState::NONE, |r| r.trace_state.clone()),
            ),
            response_id,
            prompt: rare.and_then(|r| r.prompt.clone()),
            variant: rare.and_then(|r| r.variant.clone()),
        }
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

        // Two calls in one trace: each response id names its own span; the trace its last.
        let first = span(4);
        let second = SpanContext::new(
            first.trace_id(),
            SpanId::from_bytes([9; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "v")]).unwrap(),
        );
        let variant: (Arc<str>, Arc<str>) = ("route".into(), "b".into());
        recent.record(first.clone(), Some("first"), None, None);
        recent.record(
            second.clone(),
            Some("second"),
            Some(("greeting".into(), "v2".into())),
            Some(variant.clone()),
        );
        let found = recent.by_response_id("first").unwrap();
        assert_eq!(found.span, first);
        assert_eq!(found.response_id.as_deref(), Some("first"));
        assert!(found.prompt.is_none() && found.variant.is_none());
        for found in [
            recent.by_response_id("second").unwrap(),
            recent.by_trace_id(first.trace_id().to_bytes()).unwrap(),
        ] {
            assert_eq!(found.span, second, "span id, flags and trace state kept");
            assert_eq!(found.response_id.as_deref(), Some("second"));
            assert_eq!(found.prompt, Some(("greeting".into(), "v2".into())));
            assert_eq!(found.variant, Some(variant.clone()));
        }

        let closed = RecentCalls::new(10, Duration::ZERO);
        closed.record(span(3), Some("old"), None, None);
        std::thread::sleep(Duration::from_millis(2));
        assert!(closed.by_response_id("old").is_none(), "outside the window");
    }
}
