//! Span export over OTLP, one way down: [`span_processor`] builds the pipeline
//! (`BoundedProcessor` → the SDK's batch processor → `CountingExporter` → `OtlpExporter`),
//! whose delivery is `exporter`, its transports `http` and `grpc`, its protobuf `wire`.
//!
//! What stands between finished spans and the transport: a bounded queue whose drops are
//! counted, and an exporter wrapper that counts outcomes and logs failures and the collector's
//! warnings (a partial success refusing nothing, with a message), rate-limited.
//! The SDK's batch processor already bounds its queue, but drops silently. We keep our own
//! count of spans handed to it and not yet exported, with the same cap: a span that would not
//! fit is dropped here, counted, and never blocks the request that ended it.

mod exporter;
mod grpc;
mod http;
mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use prometheus::{IntCounterVec, Opts};

use crate::config::TelemetrySettings;
use exporter::OtlpExporter;
use wire::PartialSuccess;

/// At most one export-failure log line, and one collector-warning line, per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// `llm_gateway_spans_total{outcome}`: `exported`, `failed` (the collector was unreachable or
/// refused them, wholly or in part) or `dropped` (the queue was full). Process-wide, like the tracer provider.
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

/// The export pipeline for `settings` (not used when the SDK is disabled): our bounded queue in
/// front of the SDK's batch processor, which exports on its own thread.
pub fn span_processor(settings: &TelemetrySettings) -> Result<impl SpanProcessor + use<>, String> {
    let exporter = OtlpExporter::new(settings)?;
    // The other OTEL_BSP_* variables are read by the SDK itself.
    let mut batch = BatchConfigBuilder::default()
        .with_max_queue_size(settings.max_queue_size)
        .with_max_export_batch_size(settings.max_export_batch_size);
    if let Some(delay) = settings.batch_schedule_delay {
        batch = batch.with_scheduled_delay(delay);
    }
    let processor = BatchSpanProcessor::builder(CountingExporter::new(exporter))
        .with_batch_config(batch.build())
        .build();
    Ok(BoundedProcessor::new(processor, settings.max_queue_size))
}

/// Drops (and counts) spans beyond `capacity` instead of queueing them.
#[derive(Debug)]
struct BoundedProcessor<P> {
    inner: P,
    capacity: usize,
}

impl<P> BoundedProcessor<P> {
    /// Wraps a processor; `capacity` should equal its own queue size.
    fn new(inner: P, capacity: usize) -> Self {
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

/// Counts export outcomes and logs failures, and the collector's warnings, at most once per
/// interval each, never per span.
#[derive(Debug)]
struct CountingExporter {
    inner: OtlpExporter,
    failure_logged: Mutex<Option<Instant>>,
    warning_logged: Mutex<Option<Instant>>,
}

impl CountingExporter {
    /// Wraps an exporter.
    fn new(inner: OtlpExporter) -> Self {
        Self {
            inner,
            failure_logged: Mutex::new(None),
            warning_logged: Mutex::new(None),
        }
    }
}

/// Whether a line rate-limited by `last` may be logged now (and if so, notes it).
fn log_due(last: &Mutex<Option<Instant>>) -> bool {
    let Ok(mut last) = last.lock() else {
        return false;
    };
    let due = last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL);
    if due {
        *last = Some(Instant::now());
    }
    due
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.send(batch).await;
        let _ = PENDING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(spans))
        });
        let spans = spans as u64;
        let (failed, error) = match &result {
            Ok(None) => (0, None),
            // Nothing refused, a message: the collector's warning, logged as the SDKs do.
            Ok(Some(PartialSuccess {
                rejected: 0,
                message,
            })) => {
                if log_due(&self.warning_logged) {
                    tracing::warn!(
                        spans,
                        warning = message.as_str(),
                        "the OTLP collector accepted the spans with a warning (logged at most every 30 s)"
                    );
                }
                (0, None)
            }
            Ok(Some(refused)) => (
                refused.rejected.min(spans),
                Some(format!("the collector refused spans: {}", refused.message)),
            ),
            Err(e) => (spans, Some(e.to_string())),
        };
        for (outcome, count) in [("exported", spans - failed), ("failed", failed)] {
            if count > 0 {
                SPAN_OUTCOMES.with_label_values(&[outcome]).inc_by(count);
            }
        }
        if let Some(error) = error
            && log_due(&self.failure_logged)
        {
            tracing::warn!(
                spans = failed,
                error,
                "exporting spans to the OTLP collector failed; requests are unaffected (logged at most every 30 s, counted in llm_gateway_spans_total)"
            );
        }
        result.map(|_| ())
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
