//! Every Prometheus metric the service exports, in one struct, and the `/metrics` listener.
//!
//! Each app owns its registry (no process-global state), so tests can assert exact counts.
//! Names, labels and buckets are DESIGN's contract; bucket boundaries follow the OpenTelemetry
//! GenAI and HTTP semantic conventions.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::Arc;

/// gen_ai.client.operation.duration and time_to_first_chunk, from the GenAI conventions.
const GENAI_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// gen_ai.client.token.usage, from the GenAI conventions.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// http.server.request.duration, from the HTTP conventions.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Our own overhead is sub-millisecond when healthy: fine buckets from 50 µs to 100 ms.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// Labels of the GenAI operation histograms, in order.
const GENAI_LABELS: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "error_type",
];

/// Every metric handle; handlers never look metrics up by name.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `llm_requests_total{provider, model, status}`.
    pub requests: IntCounterVec,
    /// `llm_tokens_total{provider, model, type}`.
    pub tokens: IntCounterVec,
    /// `llm_cost_usd_total{provider, model}`.
    pub cost_usd: CounterVec,
    /// `llm_errors_total{provider, model, error_type}`.
    pub errors: IntCounterVec,
    /// `llm_requests_in_flight{provider}`.
    pub in_flight: IntGaugeVec,
    /// `gen_ai_client_operation_duration_seconds`.
    pub operation_duration: HistogramVec,
    /// `gen_ai_client_token_usage`.
    pub token_usage: HistogramVec,
    /// `gen_ai_client_operation_time_to_first_chunk_seconds` (streaming only).
    pub time_to_first_chunk: HistogramVec,
    /// `gen_ai_client_operation_time_per_output_chunk_seconds` (streaming only).
    pub time_per_output_chunk: HistogramVec,
    /// `http_server_request_duration_seconds`.
    pub http_server_duration: HistogramVec,
    /// `llm_gateway_overhead_seconds{provider}`.
    pub gateway_overhead: HistogramVec,
    /// `llm_provider_ratelimit_remaining{provider, kind}`.
    pub ratelimit_remaining: GaugeVec,
    /// `llm_upstream_retries_total{provider, reason}`: retried attempts (`429`, `5xx`, `connection`).
    pub retries: IntCounterVec,
    /// `llm_gateway_rejections_total{reason}`: requests the gateway refused itself.
    pub rejections: IntCounterVec,
}

fn histogram(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
}

impl Metrics {
    /// Creates and registers every metric, plus the process collector (CPU, memory, fds).
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
        };
        let token_labels: Vec<&str> = GENAI_LABELS
            .iter()
            .copied()
            .chain(["gen_ai_token_type"])
            .collect();
        let metrics = Self {
            requests: counter(
                "llm_requests_total",
                "LLM calls, by provider, model and outcome (ok/error).",
                &["provider", "model", "status"],
            ),
            tokens: counter(
                "llm_tokens_total",
                "Tokens reported by the provider, by type (input/output).",
                &["provider", "model", "type"],
            ),
            cost_usd: CounterVec::new(
                Opts::new(
                    "llm_cost_usd_total",
                    "Cost of LLM calls in US dollars, priced models only.",
                ),
                &["provider", "model"],
            )
            .unwrap_or_else(|e| panic!("metric llm_cost_usd_total is malformed: {e}")),
            errors: counter(
                "llm_errors_total",
                "Failed LLM calls, by error type.",
                &["provider", "model", "error_type"],
            ),
            in_flight: IntGaugeVec::new(
                Opts::new(
                    "llm_requests_in_flight",
                    "LLM calls currently waiting on the provider.",
                ),
                &["provider"],
            )
            .unwrap_or_else(|e| panic!("metric llm_requests_in_flight is malformed: {e}")),
            operation_duration: histogram(
                "gen_ai_client_operation_duration_seconds",
                "GenAI operation duration (gen_ai.client.operation.duration).",
                GENAI_DURATION_BUCKETS,
                GENAI_LABELS,
            ),
            token_usage: histogram(
                "gen_ai_client_token_usage",
                "Tokens used per GenAI operation (gen_ai.client.token.usage).",
                TOKEN_BUCKETS,
                &token_labels,
            ),
            time_to_first_chunk: histogram(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Time to the first streamed chunk (gen_ai.client.operation.time_to_first_chunk).",
                GENAI_DURATION_BUCKETS,
                GENAI_LABELS,
            ),
            time_per_output_chunk: histogram(
                "gen_ai_client_operation_time_per_output_chunk_seconds",
                "Time between streamed chunks after the first (gen_ai.client.operation.time_per_output_chunk).",
                GENAI_DURATION_BUCKETS,
                GENAI_LABELS,
            ),
            http_server_duration: histogram(
                "http_server_request_duration_seconds",
                "HTTP server request duration (http.server.request.duration).",
                HTTP_BUCKETS,
                &[
                    "http_request_method",
                    "http_route",
                    "http_response_status_code",
                ],
            ),
            gateway_overhead: histogram(
                "llm_gateway_overhead_seconds",
                "Time the gateway itself adds to an LLM request: total minus time waiting on the provider.",
                OVERHEAD_BUCKETS,
                &["provider"],
            ),
            ratelimit_remaining: GaugeVec::new(
                Opts::new(
                    "llm_provider_ratelimit_remaining",
                    "Remaining upstream rate limit, from x-ratelimit-remaining-* headers.",
                ),
                &["provider", "kind"],
            )
            .unwrap_or_else(|e| {
                panic!("metric llm_provider_ratelimit_remaining is malformed: {e}")
            }),
            retries: counter(
                "llm_upstream_retries_total",
                "Upstream attempts that were retried, by reason (429, 5xx, connection).",
                &["provider", "reason"],
            ),
            rejections: counter(
                "llm_gateway_rejections_total",
                "Requests the gateway refused itself, by reason.",
                &["reason"],
            ),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.tokens.clone()),
            Box::new(self.cost_usd.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.operation_duration.clone()),
            Box::new(self.token_usage.clone()),
            Box::new(self.time_to_first_chunk.clone()),
            Box::new(self.time_per_output_chunk.clone()),
            Box::new(self.http_server_duration.clone()),
            Box::new(self.gateway_overhead.clone()),
            Box::new(self.ratelimit_remaining.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.rejections.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
            Box::new(super::SPAN_OUTCOMES.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
        }
    }

    /// The registry in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The router of the metrics listener: `GET /metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}"),
        ),
    }
}
