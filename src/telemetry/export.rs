//! What stands between finished spans and the OTLP exporter: a bounded queue whose drops are
//! counted, and an exporter wrapper that counts outcomes and logs failures rate-limited.
//!
//! The SDK's batch processor already bounds its queue, but drops silently. We keep our own
//! count of spans handed to it and not yet exported, with the same cap: a span that would not
//! fit is dropped here, counted, and never blocks the request that ended it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::{IntCounterVec, Opts};

/// At most one export-failure log line per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// `llm_gateway_spans_total{outcome}`: `exported`, `failed` (the collector refused or was
/// unreachable) or `dropped` (the queue was full). Process-wide, like the tracer provider.
pub static SPAN_OUTCOMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "llm_gateway_spans_total",
            "Finished spans by export outcome: exported, failed (collector error) or dropped (queue full).",
        ),
        &["outcome"],
    )
    .unwrap_or_else(|e| panic!("metric llm_gateway_spans_total is malformed: {e}"))
});

/// Spans handed to the batch processor and not yet through the exporter.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Drops (and counts) spans beyond `capacity` instead of queueing them.
#[derive(Debug)]
pub struct BoundedProcessor<P> {
    inner: P,
    capacity: usize,
}

impl<P> BoundedProcessor<P> {
    /// Wraps a processor; `capacity` should equal its own queue size.
    pub fn new(inner: P, capacity: usize) -> Self {
        Self { inner, capacity }
    }
}

impl<P: SpanProcessor> SpanProcessor for BoundedProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = PENDING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            SPAN_OUTCOMES.with_label_values(&["dropped"]).inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The configured transport: our own OTLP/HTTP protobuf encoder, or opentelemetry-otlp's gRPC.
#[derive(Debug)]
pub enum Exporter {
    /// `http/protobuf` (the default).
    Http(super::otlp::OtlpHttpExporter),
    /// `grpc`.
    Grpc(opentelemetry_otlp::SpanExporter),
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Self::Http(e) => e.export(batch).await,
            Self::Grpc(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Http(e) => e.shutdown_with_timeout(timeout),
            Self::Grpc(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            Self::Http(e) => e.force_flush(),
            Self::Grpc(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Http(e) => e.set_resource(resource),
            Self::Grpc(e) => e.set_resource(resource),
        }
    }
}

/// Counts export outcomes and logs failures at most once per interval, never per span.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    last_logged: Mutex<Option<Instant>>,
}

impl<E> CountingExporter<E> {
    /// Wraps an exporter.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            last_logged: Mutex::new(None),
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        let _ = PENDING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(spans))
        });
        let outcome = if result.is_ok() { "exported" } else { "failed" };
        SPAN_OUTCOMES
            .with_label_values(&[outcome])
            .inc_by(spans as u64);
        if let Err(e) = &result
            && let Ok(mut last) = self.last_logged.lock()
            && last.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL)
        {
            *last = Some(Instant::now());
            tracing::warn!(
                spans,
                error = %e,
                "exporting spans to the OTLP collector failed; requests are unaffected (logged at most every 30 s, counted in llm_gateway_spans_total)"
            );
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
