//! The chat service: the one place where an LLM call is traced and counted.
//!
//! Every endpoint calls [`ChatService::chat`], so every call gets the same GenAI span
//! (`chat {model}`, kind CLIENT, OpenTelemetry GenAI conventions) and the same metrics.
//! Label policy: the `model` label is the model the upstream answered with on success; on
//! failure it is the requested model only if it is a known (priced) model, else `unknown`, so a
//! client cannot grow label cardinality with made-up names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use serde_json::json;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{ChatParams, Completion, LlmError, PriceTable, Provider, UpstreamReport};
use crate::error::ErrorType;
use crate::telemetry::Metrics;

/// A successful call, with what the gateway adds to the provider's answer.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The provider's answer.
    pub completion: Completion,
    /// Cost in USD, `None` for an unpriced model.
    pub cost_usd: Option<f64>,
    /// Wall time of the call, retries included.
    pub latency: Duration,
}

/// What the request log line and the overhead metric need from a call, success or not.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// `provider` label.
    pub provider: &'static str,
    /// The bounded `model` label value.
    pub model: String,
    /// Input and output tokens, when known.
    pub tokens: Option<(u64, u64)>,
    /// Time spent waiting on the provider.
    pub upstream_wait: Duration,
}

/// Runs LLM calls with their telemetry.
#[derive(Debug)]
pub struct ChatService {
    provider: Provider,
    pricing: PriceTable,
    metrics: Arc<Metrics>,
    capture_content: bool,
}

impl ChatService {
    /// A service over one provider.
    pub fn new(
        provider: Provider,
        pricing: PriceTable,
        metrics: Arc<Metrics>,
        capture_content: bool,
    ) -> Self {
        Self {
            provider,
            pricing,
            metrics,
            capture_content,
        }
    }

    /// The provider answering calls.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// One traced, counted LLM call.
    pub async fn chat(&self, params: ChatParams) -> (Result<ChatOutcome, LlmError>, CallRecord) {
        let provider = self.provider.kind().as_str();
        let (address, port) = self.provider.server().unzip();
        let span = tracing::info_span!(
            "chat",
            otel.name = format!("chat {}", params.model),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = %params.model,
            gen_ai.request.max_tokens = i64::from(params.max_tokens),
            gen_ai.request.temperature = params.temperature,
            server.address = address,
            server.port = port.map(i64::from),
            gen_ai.response.id = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            llmobs.cost.usd = Empty,
            openai.response.system_fingerprint = Empty,
            openai.response.service_tier = Empty,
            groq.request.id = Empty,
            groq.usage.queue_time = Empty,
            groq.usage.prompt_time = Empty,
            groq.usage.completion_time = Empty,
            groq.usage.total_time = Empty,
            error.type = Empty,
        );
        if self.capture_content {
            record_input_content(&span, &params);
        }

        let in_flight = self.metrics.in_flight.with_label_values(&[provider]);
        let mut guard = CallGuard {
            metrics: &self.metrics,
            span: span.clone(),
            provider,
            model: self.bounded_model(&params.model),
            request_model: params.model.clone(),
            started: Instant::now(),
            finished: false,
        };
        in_flight.inc();
        let mut report = UpstreamReport::default();
        let result = self
            .provider
            .chat(&params, &mut report)
            .instrument(span.clone())
            .await;
        in_flight.dec();
        guard.finished = true;
        let latency = guard.started.elapsed();
        self.record_rate_limits(provider, &report);

        let mut record = CallRecord {
            provider,
            model: guard.model.clone(),
            tokens: None,
            upstream_wait: report.wait,
        };
        let result = match result {
            Ok(completion) => {
                let cost_usd = self.record_success(&span, &guard, &completion, latency);
                record.model = completion.model.clone();
                record.tokens = completion.usage.map(|u| (u.input_tokens, u.output_tokens));
                Ok(ChatOutcome {
                    completion,
                    cost_usd,
                    latency,
                })
            }
            Err(error) => {
                let _entered = span.enter();
                tracing::warn!(error = %error, error.type = error.error_type().as_str(), "LLM call failed");
                drop(_entered);
                guard.record_failure(error.error_type(), &error.to_string(), error.kind_name());
                Err(error)
            }
        };
        (result, record)
    }

    /// The `model` label for a failed call: only known models, so labels stay bounded.
    fn bounded_model(&self, model: &str) -> String {
        if self.pricing.knows(model) {
            model.to_owned()
        } else {
            "unknown".to_owned()
        }
    }

    fn record_success(
        &self,
        span: &tracing::Span,
        guard: &CallGuard<'_>,
        completion: &Completion,
        latency: Duration,
    ) -> Option<f64> {
        let m = &self.metrics;
        let provider = guard.provider;
        // The upstream accepted the request, so the model it answered with is a real model.
        let model = completion.model.as_str();
        span.record("gen_ai.response.id", completion.id.as_str());
        span.record("gen_ai.response.model", model);
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(vec![StringValue::from(
                completion.finish_reason.clone(),
            )])),
        );
        if let Some(fp) = &completion.system_fingerprint {
            span.record("openai.response.system_fingerprint", fp.as_str());
        }
        if let Some(tier) = &completion.service_tier {
            span.record("openai.response.service_tier", tier.as_str());
        }
        let groq = &completion.groq;
        if let Some(id) = &groq.request_id {
            span.record("groq.request.id", id.as_str());
        }
        for (field, value) in [
            ("groq.usage.queue_time", groq.queue_time),
            ("groq.usage.prompt_time", groq.prompt_time),
            ("groq.usage.completion_time", groq.completion_time),
            ("groq.usage.total_time", groq.total_time),
        ] {
            if let Some(v) = value {
                span.record(field, v);
            }
        }
        if self.capture_content {
            let output = json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": completion.content}],
                "finish_reason": completion.finish_reason,
            }]);
            span.set_attribute("gen_ai.output.messages", output.to_string());
        }

        m.requests.with_label_values(&[provider, model, "ok"]).inc();
        let labels = ["chat", provider, guard.request_model.as_str(), model, ""];
        m.operation_duration
            .with_label_values(&labels)
            .observe(latency.as_secs_f64());
        let usage = completion.usage?;
        span.record(
            "gen_ai.usage.input_tokens",
            saturating_i64(usage.input_tokens),
        );
        span.record(
            "gen_ai.usage.output_tokens",
            saturating_i64(usage.output_tokens),
        );
        for (kind, count) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            m.tokens
                .with_label_values(&[provider, model, kind])
                .inc_by(count);
            let [op, prov, req, resp, err] = labels;
            m.token_usage
                .with_label_values(&[op, prov, req, resp, err, kind])
                .observe(count as f64);
        }
        let cost = self.pricing.cost(model, usage)?;
        span.record("llmobs.cost.usd", cost);
        m.cost_usd
            .with_label_values(&[provider, model])
            .inc_by(cost);
        Some(cost)
    }

    fn record_rate_limits(&self, provider: &str, report: &UpstreamReport) {
        for (kind, value) in [
            ("requests", report.remaining_requests),
            ("tokens", report.remaining_tokens),
        ] {
            if let Some(v) = value {
                self.metrics
                    .ratelimit_remaining
                    .with_label_values(&[provider, kind])
                    .set(v);
            }
        }
    }
}

/// Records the failure metrics and span status; on drop before the call finished (the client
/// went away and the handler future was dropped) it records the call as `cancelled`.
struct CallGuard<'a> {
    metrics: &'a Metrics,
    span: tracing::Span,
    provider: &'static str,
    model: String,
    request_model: String,
    started: Instant,
    finished: bool,
}

impl CallGuard<'_> {
    fn record_failure(&self, error_type: ErrorType, message: &str, exception_type: &str) {
        let m = self.metrics;
        let kind = error_type.as_str();
        self.span.record("error.type", kind);
        self.span.set_status(Status::error(message.to_owned()));
        self.span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", exception_type.to_owned()),
                KeyValue::new("exception.message", message.to_owned()),
            ],
        );
        let model = self.model.as_str();
        m.requests
            .with_label_values(&[self.provider, model, "error"])
            .inc();
        m.errors
            .with_label_values(&[self.provider, model, kind])
            .inc();
        m.operation_duration
            .with_label_values(&["chat", self.provider, model, "", kind])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics
                .in_flight
                .with_label_values(&[self.provider])
                .dec();
            self.record_failure(
                ErrorType::Cancelled,
                "the client went away before the answer was complete",
                "Cancelled",
            );
        }
    }
}

/// OpenTelemetry integers are i64; `tracing`'s u64 would be exported as a string.
fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn record_input_content(span: &tracing::Span, params: &ChatParams) {
    let input = json!([{"role": "user", "parts": [{"type": "text", "content": params.prompt}]}]);
    span.set_attribute("gen_ai.input.messages", input.to_string());
    if let Some(system) = &params.system {
        let instructions = json!([{"type": "text", "content": system}]);
        span.set_attribute("gen_ai.system_instructions", instructions.to_string());
    }
}
