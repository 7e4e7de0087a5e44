//! Every Prometheus metric the service exports, in one struct, and the `/metrics` listener.
//!
//! Each app owns its registry (no process-global state), so tests can assert exact counts.
//! Callers record through typed methods (`record_call_success`, `record_http_request`, …), never
//! through label arrays, so a label cannot be put in the wrong position. Names, labels and
//! buckets are a contract with dashboards and alerts (README, "Metrics"); bucket boundaries
//! follow the OpenTelemetry GenAI and HTTP semantic conventions.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Arc;

use opentelemetry::trace::TraceId;

use super::exemplars::{ExemplarFamily, Exemplars};
use super::openmetrics;
use std::time::Duration;

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

/// Feedback scores: most scales are 0-1, 1-5 or 0-10.
const FEEDBACK_SCORE_BUCKETS: &[f64] = &[
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0,
];
/// A lookup takes microseconds in process and a network round trip in Redis (its deadline is
/// `CACHE_LOOKUP_TIMEOUT_MS`, 10 ms by default).
const CACHE_LOOKUP_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// Labels of the GenAI operation histograms, in order.
const GENAI_LABELS: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "error_type",
];
/// Labels of `gen_ai_client_token_usage`, in order.
const TOKEN_LABELS: &[&str] = &[
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "error_type",
    "gen_ai_token_type",
];
/// Labels of `http_server_request_duration_seconds`, in order.
const HTTP_LABELS: &[&str] = &[
    "http_request_method",
    "http_route",
    "http_response_status_code",
];

/// The histograms whose buckets carry exemplars (trace ids) in the OpenMetrics exposition.
const OPERATION_DURATION: ExemplarFamily = ExemplarFamily {
    name: "gen_ai_client_operation_duration_seconds",
    labels: GENAI_LABELS,
    buckets: GENAI_DURATION_BUCKETS,
};
const TIME_TO_FIRST_CHUNK: ExemplarFamily = ExemplarFamily {
    name: "gen_ai_client_operation_time_to_first_chunk_seconds",
    labels: GENAI_LABELS,
    buckets: GENAI_DURATION_BUCKETS,
};
const TOKEN_USAGE: ExemplarFamily = ExemplarFamily {
    name: "gen_ai_client_token_usage",
    labels: TOKEN_LABELS,
    buckets: TOKEN_BUCKETS,
};
const HTTP_DURATION: ExemplarFamily = ExemplarFamily {
    name: "http_server_request_duration_seconds",
    labels: HTTP_LABELS,
    buckets: HTTP_BUCKETS,
};
const WITH_EXEMPLARS: [ExemplarFamily; 4] = [
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    TOKEN_USAGE,
    HTTP_DURATION,
];

/// The labels of one GenAI operation's histograms: `gen_ai_operation_name`,
/// `gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model`, `error_type`.
/// Every value must be bounded: a configured or priced name, never a client's free text.
#[derive(Debug, Clone, Copy)]
pub struct CallLabels<'a> {
    /// `chat` or `embeddings`.
    pub operation: &'a str,
    /// The provider's configured name (the `provider` label of the `llm_*` metrics).
    pub provider: &'a str,
    /// Its `gen_ai.provider.name` (the `gen_ai_provider_name` label).
    pub gen_ai_provider: &'a str,
    /// The requested model (for failures: the bounded model label).
    pub request_model: &'a str,
    /// The model that answered; empty for failures.
    pub response_model: &'a str,
    /// The error class; empty for successes.
    pub error_type: &'a str,
    /// The call's trace, when sampled: the exemplar of its observations.
    pub trace: Option<TraceId>,
}

impl CallLabels<'_> {
    fn values(&self) -> [&str; 5] {
        [
            self.operation,
            self.gen_ai_provider,
            self.request_model,
            self.response_model,
            self.error_type,
        ]
    }
}

/// One cache backend's series: `llm_cache_requests_total{result, backend}` by result,
/// `llm_cache_write_errors_total{backend}` and `llm_cache_lookup_duration_seconds{backend}`.
#[derive(Debug, Clone)]
pub struct CacheSeries {
    /// `result="hit"`.
    pub hit: IntCounter,
    /// `result="miss"`.
    pub miss: IntCounter,
    /// `result="bypass"`.
    pub bypass: IntCounter,
    /// `result="error"`.
    pub error: IntCounter,
    /// Answers the backend failed to store.
    pub write_errors: IntCounter,
    /// Lookup latency.
    pub lookup_duration: Histogram,
}

/// Every metric handle; handlers never look metrics up by name.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `llm_requests_total{provider, model, status}`.
    requests: IntCounterVec,
    /// `llm_tokens_total{provider, model, type}`.
    tokens: IntCounterVec,
    /// `llm_cost_usd_total{provider, model}`.
    cost_usd: CounterVec,
    /// `llm_errors_total{provider, model, error_type}`.
    errors: IntCounterVec,
    /// `llm_requests_in_flight{provider}`.
    in_flight: IntGaugeVec,
    /// `gen_ai_client_operation_duration_seconds`.
    operation_duration: HistogramVec,
    /// `gen_ai_client_token_usage`.
    token_usage: HistogramVec,
    /// `gen_ai_client_operation_time_to_first_chunk_seconds` (streaming only).
    time_to_first_chunk: HistogramVec,
    /// `gen_ai_client_operation_time_per_output_chunk_seconds` (streaming only).
    time_per_output_chunk: HistogramVec,
    /// `http_server_request_duration_seconds`.
    http_server_duration: HistogramVec,
    /// `llm_gateway_overhead_seconds{provider}`.
    gateway_overhead: HistogramVec,
    /// `llm_provider_ratelimit_remaining{provider, kind}`.
    ratelimit_remaining: GaugeVec,
    /// `llm_upstream_retries_total{provider, reason}`: retried attempts (`429`, `5xx`, `connection`).
    retries: IntCounterVec,
    /// `llm_gateway_rejections_total{reason}`: requests the gateway refused itself.
    rejections: IntCounterVec,
    /// `llm_fallbacks_total{route, from_provider, to_provider, reason}`.
    fallbacks: IntCounterVec,
    /// `llm_route_attempts_total{route, provider, model, outcome}`.
    route_attempts: IntCounterVec,
    /// `llm_route_target_state{route, provider, model}`: 0 closed, 1 open, 2 half-open.
    route_target_state: IntGaugeVec,
    /// `llm_cache_requests_total{result, backend}`: hit, miss, bypass, error.
    cache_requests: IntCounterVec,
    /// `llm_cache_saved_tokens_total{type}`: tokens of answers served from the cache.
    cache_saved_tokens: IntCounterVec,
    /// `llm_cache_saved_cost_usd_total`: what those answers would have cost.
    cache_saved_cost: Counter,
    /// `llm_cache_lookup_duration_seconds{backend}`.
    cache_lookup_duration: HistogramVec,
    /// `llm_cache_write_errors_total{backend}`: answers that could not be stored.
    cache_write_errors: IntCounterVec,
    /// `llm_cache_entries` and `llm_cache_bytes` (the in-process backend).
    cache_entries: IntGauge,
    cache_bytes: IntGauge,
    /// `llm_ledger_errors_total{operation}`: failed calls to the shared ledger (Redis).
    ledger_errors: IntCounterVec,
    /// `llm_ledger_pending_usd`: spend not yet written to Redis.
    ledger_pending_usd: Gauge,
    /// The exemplars of the latency and token histograms.
    exemplars: Exemplars,
    /// `llm_feedback_total{name, label}` and `llm_feedback_score{name}`.
    feedback: IntCounterVec,
    feedback_score: HistogramVec,
    /// `llm_prompt_feedback_score{prompt, prompt_version, name}` and
    /// `llm_variant_feedback_score{route, variant, name}`: scores by what answered.
    prompt_feedback_score: HistogramVec,
    variant_feedback_score: HistogramVec,
    /// `llm_prompt_requests_total{prompt, prompt_version, status}`, `llm_prompt_tokens_total`,
    /// `llm_prompt_cost_usd_total`, `llm_prompt_duration_seconds`: calls by prompt version.
    prompt_requests: IntCounterVec,
    prompt_tokens: IntCounterVec,
    prompt_cost: CounterVec,
    prompt_duration: HistogramVec,
    /// The same by route and A/B variant: `llm_variant_requests_total{route, variant, status}`…
    variant_requests: IntCounterVec,
    variant_tokens: IntCounterVec,
    variant_cost: CounterVec,
    variant_duration: HistogramVec,
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
                TOKEN_LABELS,
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
                HTTP_LABELS,
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
            fallbacks: counter(
                "llm_fallbacks_total",
                "Calls that moved from one route target to the next, by the reason (error type, or circuit_open).",
                &["route", "from_provider", "to_provider", "reason"],
            ),
            route_attempts: counter(
                "llm_route_attempts_total",
                "Tries of a route target (a try includes its retries), by outcome: ok, an error type, or circuit_open (skipped).",
                &["route", "provider", "model", "outcome"],
            ),
            route_target_state: IntGaugeVec::new(
                Opts::new(
                    "llm_route_target_state",
                    "Circuit breaker state of a route target: 0 closed, 1 open, 2 half-open.",
                ),
                &["route", "provider", "model"],
            )
            .unwrap_or_else(|e| panic!("metric llm_route_target_state is malformed: {e}")),
            cache_requests: counter(
                "llm_cache_requests_total",
                "Response cache lookups of cacheable calls, by result: hit, miss, bypass (the request said no-cache or no-store), error (the backend failed: the call went upstream).",
                &["result", "backend"],
            ),
            cache_saved_tokens: counter(
                "llm_cache_saved_tokens_total",
                "Tokens of answers served from the response cache instead of a provider, by type (input/output).",
                &["type"],
            ),
            cache_saved_cost: Counter::with_opts(Opts::new(
                "llm_cache_saved_cost_usd_total",
                "What the answers served from the response cache would have cost, in US dollars (priced models only).",
            ))
            .unwrap_or_else(|e| panic!("metric llm_cache_saved_cost_usd_total is malformed: {e}")),
            cache_lookup_duration: histogram(
                "llm_cache_lookup_duration_seconds",
                "Time to look an answer up in the response cache, by backend.",
                CACHE_LOOKUP_BUCKETS,
                &["backend"],
            ),
            cache_write_errors: counter(
                "llm_cache_write_errors_total",
                "Answers the response cache failed to store, by backend.",
                &["backend"],
            ),
            ledger_errors: counter(
                "llm_ledger_errors_total",
                "Failed or timed-out calls to the shared ledger of keys' limits and spend (Redis), by operation (admit, charge, reconcile).",
                &["operation"],
            ),
            ledger_pending_usd: Gauge::with_opts(Opts::new(
                "llm_ledger_pending_usd",
                "Spend counted while Redis was unreachable, not yet written to it (written when it answers again).",
            ))
            .unwrap_or_else(|e| panic!("metric llm_ledger_pending_usd is malformed: {e}")),
            exemplars: Exemplars::default(),
            feedback: counter(
                "llm_feedback_total",
                "Feedback received (POST /v1/feedback), by evaluation name and score label (declared in the configuration's [feedback]; others: other; no label: empty).",
                &["name", "label"],
            ),
            feedback_score: histogram(
                "llm_feedback_score",
                "Feedback scores, by evaluation name (declared in the configuration's [feedback]; others: other).",
                FEEDBACK_SCORE_BUCKETS,
                &["name"],
            ),
            prompt_feedback_score: histogram(
                "llm_prompt_feedback_score",
                "Feedback scores of calls that named a prompt, by prompt, version and evaluation name (declared names; others: other).",
                FEEDBACK_SCORE_BUCKETS,
                &["prompt", "prompt_version", "name"],
            ),
            variant_feedback_score: histogram(
                "llm_variant_feedback_score",
                "Feedback scores of calls answered by an A/B variant, by route, variant and evaluation name (declared names; others: other).",
                FEEDBACK_SCORE_BUCKETS,
                &["route", "variant", "name"],
            ),
            prompt_requests: counter(
                "llm_prompt_requests_total",
                "LLM calls by prompt and version (declared in [prompts]; others: other) and outcome (ok/error).",
                &["prompt", "prompt_version", "status"],
            ),
            prompt_tokens: counter(
                "llm_prompt_tokens_total",
                "Tokens of LLM calls by prompt, version and type (input/output).",
                &["prompt", "prompt_version", "type"],
            ),
            prompt_cost: CounterVec::new(
                Opts::new(
                    "llm_prompt_cost_usd_total",
                    "Cost of LLM calls by prompt and version, in US dollars (priced models).",
                ),
                &["prompt", "prompt_version"],
            )
            .unwrap_or_else(|e| panic!("metric llm_prompt_cost_usd_total is malformed: {e}")),
            prompt_duration: histogram(
                "llm_prompt_duration_seconds",
                "Duration of LLM calls by prompt and version.",
                GENAI_DURATION_BUCKETS,
                &["prompt", "prompt_version"],
            ),
            variant_requests: counter(
                "llm_variant_requests_total",
                "LLM calls answered by an A/B variant (a named target of a weighted route), by route, variant and outcome (ok/error).",
                &["route", "variant", "status"],
            ),
            variant_tokens: counter(
                "llm_variant_tokens_total",
                "Tokens of LLM calls by route, A/B variant and type (input/output).",
                &["route", "variant", "type"],
            ),
            variant_cost: CounterVec::new(
                Opts::new(
                    "llm_variant_cost_usd_total",
                    "Cost of LLM calls by route and A/B variant, in US dollars (priced models).",
                ),
                &["route", "variant"],
            )
            .unwrap_or_else(|e| panic!("metric llm_variant_cost_usd_total is malformed: {e}")),
            variant_duration: histogram(
                "llm_variant_duration_seconds",
                "Duration of LLM calls by route and A/B variant.",
                GENAI_DURATION_BUCKETS,
                &["route", "variant"],
            ),
            cache_entries: IntGauge::new(
                "llm_cache_entries",
                "Entries in the in-process response cache.",
            )
            .unwrap_or_else(|e| panic!("metric llm_cache_entries is malformed: {e}")),
            cache_bytes: IntGauge::new(
                "llm_cache_bytes",
                "Bytes of the entries in the in-process response cache.",
            )
            .unwrap_or_else(|e| panic!("metric llm_cache_bytes is malformed: {e}")),
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
            Box::new(self.fallbacks.clone()),
            Box::new(self.route_attempts.clone()),
            Box::new(self.route_target_state.clone()),
            Box::new(self.cache_requests.clone()),
            Box::new(self.cache_saved_tokens.clone()),
            Box::new(self.cache_saved_cost.clone()),
            Box::new(self.cache_lookup_duration.clone()),
            Box::new(self.cache_write_errors.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.cache_bytes.clone()),
            Box::new(self.ledger_errors.clone()),
            Box::new(self.ledger_pending_usd.clone()),
            Box::new(self.feedback.clone()),
            Box::new(self.feedback_score.clone()),
            Box::new(self.prompt_feedback_score.clone()),
            Box::new(self.variant_feedback_score.clone()),
            Box::new(self.prompt_requests.clone()),
            Box::new(self.prompt_tokens.clone()),
            Box::new(self.prompt_cost.clone()),
            Box::new(self.prompt_duration.clone()),
            Box::new(self.variant_requests.clone()),
            Box::new(self.variant_tokens.clone()),
            Box::new(self.variant_cost.clone()),
            Box::new(self.variant_duration.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
            Box::new(super::otlp::SPAN_OUTCOMES.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
        }
    }

    /// An LLM call began: `llm_requests_in_flight{provider}` up.
    pub fn record_call_start(&self, provider: &str) {
        self.in_flight.with_label_values(&[provider]).inc();
    }

    /// A successful call ended: in-flight down, `llm_requests_total{status="ok"}`, the duration
    /// histogram, and (when the provider reported them) tokens and cost, labelled with the model
    /// that answered.
    pub fn record_call_success(
        &self,
        labels: &CallLabels<'_>,
        duration: Duration,
        tokens: Option<(u64, u64)>,
        cost_usd: Option<f64>,
    ) {
        let (provider, model) = (labels.provider, labels.response_model);
        self.in_flight.with_label_values(&[provider]).dec();
        self.requests
            .with_label_values(&[provider, model, "ok"])
            .inc();
        let values = labels.values();
        self.operation_duration
            .with_label_values(&values)
            .observe(duration.as_secs_f64());
        if let Some(trace) = labels.trace {
            self.exemplars
                .record(&OPERATION_DURATION, &values, duration.as_secs_f64(), trace);
        }
        let Some((input, output)) = tokens else {
            return;
        };
        // Embeddings produce no output tokens: only their input is counted.
        let kinds: &[(&str, u64)] = if labels.operation == "embeddings" {
            &[("input", input)]
        } else {
            &[("input", input), ("output", output)]
        };
        for &(kind, count) in kinds {
            self.tokens
                .with_label_values(&[provider, model, kind])
                .inc_by(count);
            let [op, prov, req, resp, err] = values;
            let token_values = [op, prov, req, resp, err, kind];
            self.token_usage
                .with_label_values(&token_values)
                .observe(count as f64);
            if let Some(trace) = labels.trace {
                self.exemplars
                    .record(&TOKEN_USAGE, &token_values, count as f64, trace);
            }
        }
        if let Some(cost) = cost_usd {
            self.cost_usd
                .with_label_values(&[provider, model])
                .inc_by(cost);
        }
    }

    /// A failed call ended: in-flight down, `llm_requests_total{status="error"}`,
    /// `llm_errors_total` and the duration histogram with its `error_type`.
    pub fn record_call_failure(&self, labels: &CallLabels<'_>, duration: Duration) {
        let (provider, model) = (labels.provider, labels.request_model);
        self.in_flight.with_label_values(&[provider]).dec();
        self.requests
            .with_label_values(&[provider, model, "error"])
            .inc();
        self.errors
            .with_label_values(&[provider, model, labels.error_type])
            .inc();
        let values = labels.values();
        self.operation_duration
            .with_label_values(&values)
            .observe(duration.as_secs_f64());
        if let Some(trace) = labels.trace {
            self.exemplars
                .record(&OPERATION_DURATION, &values, duration.as_secs_f64(), trace);
        }
    }

    /// A stream's first chunk: observes the time to it and returns the time-per-chunk
    /// histogram with the same labels, to observe each later chunk without a label lookup.
    pub fn record_first_chunk(&self, labels: &CallLabels<'_>, elapsed: Duration) -> Histogram {
        let values = labels.values();
        self.time_to_first_chunk
            .with_label_values(&values)
            .observe(elapsed.as_secs_f64());
        if let Some(trace) = labels.trace {
            self.exemplars
                .record(&TIME_TO_FIRST_CHUNK, &values, elapsed.as_secs_f64(), trace);
        }
        self.time_per_output_chunk.with_label_values(&values)
    }

    /// A call ended without asking its provider (served from the cache): in flight no more,
    /// and counted nowhere else.
    pub fn record_call_end_uncounted(&self, provider: &str) {
        self.in_flight.with_label_values(&[provider]).dec();
    }

    /// A call moved to another provider (a route's fallback): in flight there, not here.
    pub fn record_call_moved(&self, from: &str, to: &str) {
        self.in_flight.with_label_values(&[from]).dec();
        self.in_flight.with_label_values(&[to]).inc();
    }

    /// `llm_fallbacks_total{route, from_provider, to_provider, reason}`.
    pub fn record_fallback(&self, route: &str, from: &str, to: &str, reason: &str) {
        self.fallbacks
            .with_label_values(&[route, from, to, reason])
            .inc();
    }

    /// `llm_route_attempts_total{route, provider, model, outcome}`.
    pub fn record_route_attempt(&self, route: &str, provider: &str, model: &str, outcome: &str) {
        self.route_attempts
            .with_label_values(&[route, provider, model, outcome])
            .inc();
    }

    /// The `llm_route_target_state` gauge of one route target, for its circuit breaker.
    pub fn route_target_state(&self, route: &str, provider: &str, model: &str) -> IntGauge {
        self.route_target_state
            .with_label_values(&[route, provider, model])
    }

    /// Forgets a route target's state (a reloaded configuration no longer has it).
    pub fn forget_route_target(&self, route: &str, provider: &str, model: &str) {
        let _ = self
            .route_target_state
            .remove_label_values(&[route, provider, model]);
    }

    /// Virtual keys are configured: the ledger's error counters start at zero.
    pub fn init_ledger(&self) {
        for operation in ["admit", "charge", "reconcile"] {
            self.ledger_errors.with_label_values(&[operation]);
        }
    }

    /// Registers a collector of its own (the keys' families, built from exact label sets).
    pub fn register_collector(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
    }

    /// A failed call to the shared ledger.
    pub fn record_ledger_error(&self, operation: &str) {
        self.ledger_errors.with_label_values(&[operation]).inc();
    }

    /// Spend not yet written to Redis.
    pub fn record_ledger_pending(&self, usd: f64) {
        self.ledger_pending_usd.set(usd);
    }

    /// A call in an experiment's families: by its bounded prompt and version, or by its route
    /// and A/B variant; its outcome, duration, tokens and cost.
    pub fn record_experiment(
        &self,
        experiment: Experiment,
        labels: (&str, &str),
        status: &str,
        duration: Duration,
        tokens: Option<(u64, u64)>,
        cost_usd: Option<f64>,
    ) {
        let (requests, duration_seconds, tokens_total, cost_total) = match experiment {
            Experiment::Prompt => (
                &self.prompt_requests,
                &self.prompt_duration,
                &self.prompt_tokens,
                &self.prompt_cost,
            ),
            Experiment::Variant => (
                &self.variant_requests,
                &self.variant_duration,
                &self.variant_tokens,
                &self.variant_cost,
            ),
        };
        let (first, second) = labels;
        requests.with_label_values(&[first, second, status]).inc();
        duration_seconds
            .with_label_values(&[first, second])
            .observe(duration.as_secs_f64());
        if let Some((input, output)) = tokens {
            for (kind, count) in [("input", input), ("output", output)] {
                tokens_total
                    .with_label_values(&[first, second, kind])
                    .inc_by(count);
            }
        }
        if let Some(cost) = cost_usd {
            cost_total.with_label_values(&[first, second]).inc_by(cost);
        }
    }

    /// One feedback: its bounded `name` and `label` values, and its score if any.
    pub fn record_feedback(&self, name: &str, label: &str, score: Option<f64>) {
        self.feedback.with_label_values(&[name, label]).inc();
        if let Some(score) = score {
            self.feedback_score
                .with_label_values(&[name])
                .observe(score);
        }
    }

    /// A feedback score on a call that named a prompt (bounded `prompt`, `prompt_version`).
    pub fn record_prompt_feedback(&self, (prompt, version): (&str, &str), name: &str, score: f64) {
        self.prompt_feedback_score
            .with_label_values(&[prompt, version, name])
            .observe(score);
    }

    /// A feedback score on a call answered by an A/B variant.
    pub fn record_variant_feedback(&self, (route, variant): (&str, &str), name: &str, score: f64) {
        self.variant_feedback_score
            .with_label_values(&[route, variant, name])
            .observe(score);
    }

    /// The response cache is on with `backend`: its counters start at zero (so that a rate
    /// and an alert see them before the first event).
    pub fn init_cache(&self, backend: &str) {
        for result in ["hit", "miss", "bypass", "error"] {
            self.cache_requests.with_label_values(&[result, backend]);
        }
        self.cache_write_errors.with_label_values(&[backend]);
        for kind in ["input", "output"] {
            self.cache_saved_tokens.with_label_values(&[kind]);
        }
    }

    /// The response cache's series for `backend`, looked up once: a lookup then counts without
    /// hashing label values.
    pub fn cache_series(&self, backend: &str) -> CacheSeries {
        let result = |r: &str| self.cache_requests.with_label_values(&[r, backend]);
        CacheSeries {
            hit: result("hit"),
            miss: result("miss"),
            bypass: result("bypass"),
            error: result("error"),
            write_errors: self.cache_write_errors.with_label_values(&[backend]),
            lookup_duration: self.cache_lookup_duration.with_label_values(&[backend]),
        }
    }

    /// A hit: its tokens (embeddings: input only) and cost were saved, not spent.
    pub fn record_cache_saved(&self, input: u64, output: Option<u64>, cost_usd: Option<f64>) {
        self.cache_saved_tokens
            .with_label_values(&["input"])
            .inc_by(input);
        if let Some(output) = output {
            self.cache_saved_tokens
                .with_label_values(&["output"])
                .inc_by(output);
        }
        if let Some(cost) = cost_usd {
            self.cache_saved_cost.inc_by(cost);
        }
    }

    /// `llm_cache_entries` and `llm_cache_bytes` of the in-process backend.
    pub fn record_cache_usage(&self, entries: u64, bytes: u64) {
        self.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// `llm_upstream_retries_total{provider, reason}`.
    pub fn record_upstream_retry(&self, provider: &str, reason: &str) {
        self.retries.with_label_values(&[provider, reason]).inc();
    }

    /// `llm_provider_ratelimit_remaining{provider, kind}` (`requests` or `tokens`).
    pub fn record_provider_ratelimit(&self, provider: &str, kind: &str, remaining: f64) {
        self.ratelimit_remaining
            .with_label_values(&[provider, kind])
            .set(remaining);
    }

    /// `llm_gateway_rejections_total{reason}`: a request the gateway refused itself.
    pub fn record_rejection(&self, reason: &str) {
        self.rejections.with_label_values(&[reason]).inc();
    }

    /// `http_server_request_duration_seconds`; `route` is the matched template or empty;
    /// `trace`, the request's when sampled (the bucket's exemplar).
    pub fn record_http_request(
        &self,
        method: &str,
        route: &str,
        status: &str,
        duration: Duration,
        trace: Option<TraceId>,
    ) {
        let values = [method, route, status];
        self.http_server_duration
            .with_label_values(&values)
            .observe(duration.as_secs_f64());
        if let Some(trace) = trace {
            self.exemplars
                .record(&HTTP_DURATION, &values, duration.as_secs_f64(), trace);
        }
    }

    /// `llm_gateway_overhead_seconds{provider}`: the request's time minus the provider's.
    pub fn record_gateway_overhead(&self, provider: &str, overhead: Duration) {
        self.gateway_overhead
            .with_label_values(&[provider])
            .observe(overhead.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format, the histograms' exemplars included.
    pub fn encode_openmetrics(&self) -> String {
        openmetrics::encode(&self.registry.gather(), &self.exemplars, &WITH_EXEMPLARS)
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

/// `GET /metrics`: OpenMetrics, with exemplars, to a scraper that asks for it in `Accept`
/// (Prometheus does); else the Prometheus text format, as before.
async fn serve_metrics(
    State(metrics): State<Arc<Metrics>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if openmetrics::wanted(accept) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, openmetrics::CONTENT_TYPE)],
            metrics.encode_openmetrics(),
        );
    }
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

/// Which experiment families a call is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experiment {
    /// `llm_prompt_*{prompt, prompt_version}`.
    Prompt,
    /// `llm_variant_*{route, variant}`.
    Variant,
}

/// One series of a family built at scrape time: its exact labels (sorted by name) and value.
#[derive(Debug, Clone)]
pub struct Series {
    /// (name, value), sorted by name.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// A counter or gauge family from exact series (`None` when there are none: an empty family
/// is not written). For collectors whose label values must not be hashed together
/// (`access::stats`).
pub fn family(
    (name, help): (&str, &str),
    kind: prometheus::proto::MetricType,
    series: Vec<Series>,
) -> Option<prometheus::proto::MetricFamily> {
    use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
    if series.is_empty() {
        return None;
    }
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    for one in series {
        let labels = one
            .labels
            .into_iter()
            .map(|(k, v)| {
                let mut pair = LabelPair::default();
                pair.set_name(k);
                pair.set_value(v);
                pair
            })
            .collect();
        let mut metric = Metric::from_label(labels);
        if kind == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(one.value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(one.value);
            metric.set_gauge(gauge);
        }
        family.mut_metric().push(metric);
    }
    Some(family)
}
