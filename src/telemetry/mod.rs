//! Telemetry infrastructure: the tracer and its OTLP export (`otlp`), the metric registry
//! (`metrics`) and the trace-id helpers (`trace_context`). It knows nothing of LLM calls or of
//! HTTP routes: those layers record through it.
//!
//! `init` installs the global `tracing` subscriber: a log layer (pretty or JSON, filtered by
//! `RUST_LOG`) and an OpenTelemetry layer (our crate's spans only, whatever `RUST_LOG` says)
//! whose spans a batch processor exports over OTLP on its own thread, with a bounded queue, so
//! export never blocks a request. The returned [`TelemetryGuard`] must be shut down explicitly
//! after the HTTP server has drained: the SDK exports nothing still queued otherwise.

mod exemplars;
mod log_line;
mod metrics;
mod openmetrics;
mod otlp;
mod semconv;
mod trace_context;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue, global};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator};
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::{LogFormat, TelemetrySettings};

pub use metrics::{
    CacheSeries, CallLabels, Experiment, Metrics, Series, family, router as metrics_router,
};
pub use semconv::{SCHEMA_URL, address_text, protocol_version};
pub use trace_context::{LOG_SPAN, REQUEST_IDS, RequestIds, current_trace_id, write_traceparent};

/// Whether log lines need `LOG_SPAN` to carry a request's ids (JSON lines, a terminal's
/// coloured lines). Plain lines to a file or a pipe, the default, write the same
/// `request{trace_id=… span_id=…}:` from the request's task-local ids ([`REQUEST_IDS`]), so a
/// request makes no span for its log line. True until [`init`] decides.
static LOG_SPAN_WANTED: AtomicBool = AtomicBool::new(true);

/// See [`LOG_SPAN_WANTED`].
pub fn log_span_wanted() -> bool {
    LOG_SPAN_WANTED.load(Ordering::Relaxed)
}

/// What the log thread gathers before a `write` (it flushes whenever no line is waiting).
const LOG_BUFFER_BYTES: usize = 64 * 1024;
/// Log lines waiting for the log thread, at most (beyond, lines are dropped, not requests
/// slowed). tracing-appender's default, 128,000, is a ring of slots that a busy gateway
/// touches all of, with the lines they held: 16,384 lines is over a second of lines at the
/// rates measured here (BENCHMARKS.md, issue 18).
const LOG_QUEUE_LINES: usize = 16_384;
/// The `tracing` target of this crate: only its spans are exported.
const CRATE_TARGET: &str = "llm_observability";
/// The HTTP stacks must never produce spans or log storms of their own; a failed TLS
/// verification already reaches our own log line with its cause, so its verifier stays quiet.
const SILENCED: &str = "hyper=off,h2=off,tower=off,reqwest=off,rustls_platform_verifier=off,opentelemetry=warn,opentelemetry_sdk=warn";

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// `RUST_LOG` does not parse.
    #[error(
        "invalid configuration: RUST_LOG={0:?}: expected a tracing filter such as info or llm_observability=debug"
    )]
    Filter(String),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Owns the tracer provider and the log writer; call [`TelemetryGuard::shutdown`] once the
/// server has drained.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    /// Flushes buffered log lines when dropped.
    _log_writer: tracing_appender::non_blocking::WorkerGuard,
}

impl TelemetryGuard {
    /// Flushes queued spans and stops the exporter. Blocks: call from a blocking thread.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans at shutdown failed");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "tracer provider shutdown failed");
        }
    }
}

/// Installs the W3C propagator, the tracer provider and the global subscriber.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(settings)?;
    // The schema URL names the semantic-conventions version the spans follow.
    let scope = InstrumentationScope::builder("llm-observability")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build();
    let tracer = provider.tracer_with_scope(scope);

    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_level(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(OurSpans);

    let filter = EnvFilter::try_new(format!("{},{SILENCED}", settings.log_filter))
        .map_err(|_| TelemetryError::Filter(settings.log_filter.clone()))?
        .and(filter_fn(|meta| !meta.is_span() || meta.name() == LOG_SPAN));
    // Log lines see one span of ours, `LOG_SPAN`: the trace and span ids, on every line of
    // a request. The exported spans' attributes are in the trace; the JSON formatter re-parses
    // and re-writes a span's fields on every `record`, which for the GenAI span's thirty
    // attributes more than doubled a request's cost (BENCHMARKS.md). For the same reason JSON
    // lines carry the current span, not the list of all spans.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Log lines are written by a dedicated thread: a request never waits on stdout. The buffer
    // is bounded; under a log storm lines are dropped rather than requests slowed. The thread
    // writes every line waiting and then flushes, so through a `BufWriter` a busy gateway makes
    // one `write` for many lines instead of one per request, and an idle one still shows each
    // line at once.
    let plain = settings.log_format == LogFormat::Pretty && !ansi;
    LOG_SPAN_WANTED.store(!plain, Ordering::Relaxed);
    let stdout = std::io::BufWriter::with_capacity(LOG_BUFFER_BYTES, std::io::stdout());
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(stdout);
    let log_layer = match settings.log_format {
        // To a file or a pipe, the same text written directly: one line per request is every
        // request's cost (see `log_line`).
        LogFormat::Pretty if plain => fmt::layer()
            .with_writer(writer)
            .event_format(log_line::PlainLine)
            .fmt_fields(log_line::PlainFields)
            .boxed(),
        LogFormat::Pretty => fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .with_writer(writer)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(filter);

    tracing_subscriber::registry()
        .with(otel_layer)
        .with(log_layer)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    Ok(TelemetryGuard {
        provider,
        _log_writer: log_writer,
    })
}

fn tracer_provider(settings: &TelemetrySettings) -> Result<SdkTracerProvider, TelemetryError> {
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    // OTEL_SERVICE_NAME is already resolved into settings (with our default).
    resource = resource.with_service_name(settings.service_name.clone());
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    if settings.sdk_disabled {
        // No export at all, but spans still get ids so responses keep their trace_id.
        return Ok(builder.with_sampler(Sampler::AlwaysOff).build());
    }
    let processor = otlp::span_processor(settings).map_err(TelemetryError::Exporter)?;
    Ok(builder.with_span_processor(processor).build())
}

/// What the OpenTelemetry layer sees: this crate's spans at INFO and above. Log events are for
/// the log layer, not span events to export (exception events are added explicitly). A static
/// per-callsite decision, so it is made once per callsite, not per span.
struct OurSpans;

impl OurSpans {
    fn wanted(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span()
            && meta.target().starts_with(CRATE_TARGET)
            && *meta.level() <= tracing::Level::INFO
            && meta.name() != LOG_SPAN
    }
}

impl<S> Filter<S> for OurSpans {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if Self::wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}
