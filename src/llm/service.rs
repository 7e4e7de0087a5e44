//! The chat service: the one place where an LLM call is traced and counted.
//!
//! Every endpoint calls [`ChatService::complete`] or [`ChatService::stream`], so every call
//! gets the same GenAI span (`chat {model}`, kind CLIENT, OpenTelemetry GenAI conventions) and
//! the same metrics, whether it is whole or streamed.
//!
//! Label policy: the `model` label is the model the upstream answered with on success; on
//! failure it is the requested model only if it is a known (priced) model, else `unknown`, so a
//! client cannot grow label cardinality with made-up names.
//!
//! Integers go to spans as i64: `tracing-opentelemetry` exports u64 fields as strings.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use prometheus::Histogram;
use serde_json::json;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::limiter::Slot;
use super::wire::{SseSplitter, parse_chunk};
use super::{
    ByteStream, Choice, Completion, ConcurrencyLimit, LlmError, PriceTable, Provider,
    UpstreamReport, UpstreamRequest, scrub_secrets,
};
use crate::error::ErrorType;
use crate::telemetry::Metrics;

/// A successful whole call, with what the gateway adds to the provider's answer.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The upstream's body, to relay unchanged.
    pub raw: Bytes,
    /// What the body says.
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
    /// Time spent waiting on the provider (for streams: until the stream opened).
    pub upstream_wait: Duration,
}

/// One item of an observed stream.
#[derive(Debug)]
pub enum StreamEvent {
    /// An upstream SSE event (complete, with its blank line), to relay as is.
    Event {
        /// The event's bytes.
        raw: Bytes,
        /// The content it adds, if any.
        delta: Option<String>,
    },
    /// The stream ended well; its telemetry is recorded.
    End(StreamSummary),
    /// The stream failed midway; its telemetry is recorded.
    Failed {
        /// What went wrong.
        error: LlmError,
        /// The upstream's own error event was already relayed (as an `Event`).
        relayed: bool,
    },
}

/// What a finished stream amounted to.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Completion id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The first choice's finish reason.
    pub finish_reason: String,
    /// Token counts, when the upstream sent them.
    pub usage: Option<super::Usage>,
    /// Cost in USD, `None` for an unpriced model or missing usage.
    pub cost_usd: Option<f64>,
    /// Wall time from the request to the last chunk.
    pub latency: Duration,
}

/// Runs LLM calls with their telemetry.
#[derive(Debug)]
pub struct ChatService {
    provider: Provider,
    pricing: Arc<PriceTable>,
    metrics: Arc<Metrics>,
    capture_content: bool,
    limit: ConcurrencyLimit,
}

impl ChatService {
    /// A service over one provider.
    pub fn new(
        provider: Provider,
        pricing: PriceTable,
        metrics: Arc<Metrics>,
        capture_content: bool,
        limit: ConcurrencyLimit,
    ) -> Self {
        Self {
            provider,
            pricing: Arc::new(pricing),
            metrics,
            capture_content,
            limit,
        }
    }

    /// A concurrency slot, or the call recorded as `overloaded`.
    async fn slot(&self, call: &mut Call) -> Result<Slot, LlmError> {
        match self.limit.acquire().await {
            Some(slot) => Ok(slot),
            None => {
                self.metrics
                    .rejections
                    .with_label_values(&["concurrency"])
                    .inc();
                call.fail(&LlmError::Overloaded);
                Err(LlmError::Overloaded)
            }
        }
    }

    /// The provider answering calls.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The upstream's model list.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        self.provider.list_models(&self.pricing).await
    }

    /// One traced, counted, whole LLM call.
    pub async fn complete(
        &self,
        request: UpstreamRequest,
    ) -> (Result<ChatOutcome, LlmError>, CallRecord) {
        let mut call = Call::start(self, &request);
        let _slot = match self.slot(&mut call).await {
            Ok(slot) => slot,
            Err(error) => return (Err(error), call.record(Duration::ZERO)),
        };
        let mut report = UpstreamReport::default();
        let result = self
            .provider
            .complete(&request, &call.span, &mut report)
            .await;
        call.upstream_report(&report);
        let mut record = call.record(report.wait);
        let result = match result {
            Ok((raw, completion)) => {
                let latency = call.started.elapsed();
                let cost_usd = call.succeed(&completion);
                record.model = completion.model.clone();
                record.tokens = completion.usage.map(|u| (u.input_tokens, u.output_tokens));
                Ok(ChatOutcome {
                    raw,
                    completion,
                    cost_usd,
                    latency,
                })
            }
            Err(error) => {
                call.fail(&error);
                Err(error)
            }
        };
        (result, record)
    }

    /// One traced, counted, streamed LLM call. The GenAI span and the call's metrics end when
    /// the stream ends; if the stream is dropped first (the client went away), the upstream
    /// request is dropped too and the call is recorded as `cancelled`.
    pub async fn stream(
        &self,
        mut request: UpstreamRequest,
    ) -> (
        Result<impl Stream<Item = StreamEvent> + Send + 'static, LlmError>,
        CallRecord,
    ) {
        request.request_stream_usage();
        let mut call = Call::start(self, &request);
        let slot = match self.slot(&mut call).await {
            Ok(slot) => slot,
            Err(error) => return (Err(error), call.record(Duration::ZERO)),
        };
        let mut report = UpstreamReport::default();
        let opened = self
            .provider
            .stream(&request, &call.span, &mut report)
            .await;
        call.upstream_report(&report);
        let record = call.record(report.wait);
        let upstream = match opened {
            Ok(upstream) => upstream,
            Err(error) => {
                call.fail(&error);
                return (Err(error), record);
            }
        };
        let state = StreamState {
            _slot: slot,
            upstream,
            splitter: SseSplitter::default(),
            call,
            drop_usage_only: request.usage_injected,
            pending: VecDeque::new(),
            finished: false,
            seen: Seen::default(),
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(event) = state.pending.pop_front() {
                    return Some((event, state));
                }
                if state.finished {
                    return None;
                }
                match state.upstream.next().await {
                    Some(Ok(bytes)) => state.absorb(&bytes),
                    Some(Err(error)) => state.fail(error),
                    None => state.end(),
                }
            }
        });
        (Ok(stream), record)
    }
}

/// What a stream has shown so far.
#[derive(Default)]
struct Seen {
    first_chunk_at: Option<Instant>,
    last_chunk_at: Option<Instant>,
    per_chunk: Option<Histogram>,
    id: Option<String>,
    model: Option<String>,
    fingerprint: Option<String>,
    finish_reasons: Vec<String>,
    usage: Option<super::Usage>,
    groq: super::GroqExtras,
    content: String,
}

struct StreamState {
    /// The concurrency slot, held until the stream ends or is dropped.
    _slot: Slot,
    upstream: ByteStream,
    splitter: SseSplitter,
    call: Call,
    drop_usage_only: bool,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    seen: Seen,
}

impl StreamState {
    fn absorb(&mut self, bytes: &[u8]) {
        match self.splitter.push(bytes) {
            Ok(events) => {
                for event in events {
                    if self.finished {
                        break;
                    }
                    self.observe(event);
                }
            }
            Err(error) => self.fail(error),
        }
    }

    /// Reads one event for telemetry and queues it for the client.
    fn observe(&mut self, raw: Bytes) {
        let info = match parse_chunk(&raw) {
            Ok(info) => info,
            Err(error) => return self.fail(error),
        };
        if let Some(message) = info.error {
            // The upstream reported an error inside the stream: the client gets it as sent.
            self.pending
                .push_back(StreamEvent::Event { raw, delta: None });
            return self.fail_with(LlmError::InStream(scrub_secrets(&message)), true);
        }
        if info.done {
            self.pending
                .push_back(StreamEvent::Event { raw, delta: None });
            return self.end();
        }
        let now = Instant::now();
        let seen = &mut self.seen;
        if info.model.is_some() && seen.model.is_none() {
            seen.model = info.model.clone();
        }
        match seen.last_chunk_at {
            None => {
                seen.first_chunk_at = Some(now);
                let ttfc = now - self.call.started;
                self.call
                    .span
                    .record("gen_ai.response.time_to_first_chunk", ttfc.as_secs_f64());
                let labels = self.call.success_labels(seen.model.as_deref());
                let metrics = &self.call.metrics;
                metrics
                    .time_to_first_chunk
                    .with_label_values(&labels)
                    .observe(ttfc.as_secs_f64());
                // Looked up once per stream, then observed per chunk without a label lookup.
                seen.per_chunk = Some(metrics.time_per_output_chunk.with_label_values(&labels));
            }
            Some(previous) => {
                if let Some(histogram) = &seen.per_chunk {
                    histogram.observe((now - previous).as_secs_f64());
                }
            }
        }
        seen.last_chunk_at = Some(now);
        if seen.id.is_none() {
            seen.id = info.id;
        }
        if info.system_fingerprint.is_some() {
            seen.fingerprint = info.system_fingerprint;
        }
        seen.finish_reasons.extend(info.finish_reasons);
        if info.usage.is_some() {
            seen.usage = info.usage;
        }
        if let Some(groq) = info.groq {
            // The usage chunk after Groq's final chunk has timings but no x_groq id: merge.
            let kept = &mut seen.groq;
            kept.request_id = groq.request_id.or(kept.request_id.take());
            kept.queue_time = groq.queue_time.or(kept.queue_time);
            kept.prompt_time = groq.prompt_time.or(kept.prompt_time);
            kept.completion_time = groq.completion_time.or(kept.completion_time);
            kept.total_time = groq.total_time.or(kept.total_time);
        }
        if self.call.capture
            && let Some(text) = &info.content
        {
            seen.content.push_str(text);
        }
        if !(info.usage_only && self.drop_usage_only) {
            self.pending.push_back(StreamEvent::Event {
                raw,
                delta: info.content,
            });
        }
    }

    fn end(&mut self) {
        if self.finished {
            return;
        }
        if let Some(rest) = self.splitter.finish() {
            self.observe(rest);
            if self.finished {
                return;
            }
        }
        let seen = std::mem::take(&mut self.seen);
        if seen.finish_reasons.is_empty() {
            return self.fail(LlmError::Connection(
                "the stream ended before the answer was complete".into(),
            ));
        }
        self.finished = true;
        let completion = Completion {
            id: seen.id.unwrap_or_default(),
            model: seen.model.unwrap_or_default(),
            choices: seen
                .finish_reasons
                .iter()
                .enumerate()
                .map(|(i, reason)| Choice {
                    content: if i == 0 {
                        seen.content.clone()
                    } else {
                        String::new()
                    },
                    tool_calls: vec![],
                    finish_reason: reason.clone(),
                })
                .collect(),
            usage: seen.usage,
            system_fingerprint: seen.fingerprint,
            service_tier: None,
            groq: seen.groq,
        };
        let latency = self.call.started.elapsed();
        let cost_usd = self.call.succeed(&completion);
        let (_, finish_reason) = completion.first();
        self.pending.push_back(StreamEvent::End(StreamSummary {
            finish_reason: finish_reason.to_owned(),
            id: completion.id,
            model: completion.model,
            usage: completion.usage,
            cost_usd,
            latency,
        }));
    }

    fn fail(&mut self, error: LlmError) {
        self.fail_with(error, false);
    }

    fn fail_with(&mut self, error: LlmError, relayed: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.call.fail(&error);
        self.pending
            .push_back(StreamEvent::Failed { error, relayed });
    }
}

/// One LLM call's span and metrics. Dropped before `succeed` or `fail` (the client went away
/// and the handler or stream was dropped), it records the call as `cancelled`.
struct Call {
    metrics: Arc<Metrics>,
    pricing: Arc<PriceTable>,
    span: Span,
    provider: &'static str,
    request_model: String,
    /// The bounded `model` label value for failures.
    model_label: String,
    capture: bool,
    started: Instant,
    done: bool,
}

impl Call {
    fn start(service: &ChatService, request: &UpstreamRequest) -> Self {
        let summary = &request.summary;
        let provider = service.provider.kind().as_str();
        let (address, port) = service.provider.server().unzip();
        let span = tracing::info_span!(
            "chat",
            otel.name = format!("chat {}", summary.model),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = %summary.model,
            gen_ai.request.max_tokens = summary.max_tokens,
            gen_ai.request.temperature = summary.temperature,
            gen_ai.request.top_p = summary.top_p,
            gen_ai.request.frequency_penalty = summary.frequency_penalty,
            gen_ai.request.presence_penalty = summary.presence_penalty,
            gen_ai.request.seed = summary.seed,
            gen_ai.request.choice.count = summary.choice_count,
            gen_ai.request.stream = summary.stream.then_some(true),
            gen_ai.output.type = summary.output_type,
            server.address = address,
            server.port = port.map(i64::from),
            gen_ai.response.id = Empty,
            gen_ai.response.model = Empty,
            gen_ai.response.time_to_first_chunk = Empty,
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
        if !summary.stop_sequences.is_empty() {
            span.set_attribute(
                "gen_ai.request.stop_sequences",
                string_array(summary.stop_sequences.iter().cloned()),
            );
        }
        if service.capture_content {
            record_input_content(&span, request);
        }
        service
            .metrics
            .in_flight
            .with_label_values(&[provider])
            .inc();
        let model_label = if service.pricing.knows(&summary.model) {
            summary.model.clone()
        } else {
            "unknown".to_owned()
        };
        Self {
            metrics: service.metrics.clone(),
            pricing: service.pricing.clone(),
            span,
            provider,
            request_model: summary.model.clone(),
            model_label,
            capture: service.capture_content,
            started: Instant::now(),
            done: false,
        }
    }

    fn record(&self, upstream_wait: Duration) -> CallRecord {
        CallRecord {
            provider: self.provider,
            model: self.model_label.clone(),
            tokens: None,
            upstream_wait,
        }
    }

    /// Labels of the GenAI histograms for a successful call.
    fn success_labels<'a>(&'a self, response_model: Option<&'a str>) -> [&'a str; 5] {
        [
            "chat",
            self.provider,
            self.request_model.as_str(),
            response_model.unwrap_or(self.request_model.as_str()),
            "",
        ]
    }

    /// Rate-limit gauges and retry counts from the provider's report.
    fn upstream_report(&self, report: &UpstreamReport) {
        for reason in &report.retries {
            self.metrics
                .retries
                .with_label_values(&[self.provider, reason])
                .inc();
        }
        for (kind, value) in [
            ("requests", report.remaining_requests),
            ("tokens", report.remaining_tokens),
        ] {
            if let Some(v) = value {
                self.metrics
                    .ratelimit_remaining
                    .with_label_values(&[self.provider, kind])
                    .set(v);
            }
        }
    }

    /// Records the answer on the span and in the metrics; returns the cost.
    fn succeed(&mut self, completion: &Completion) -> Option<f64> {
        self.done = true;
        // tracing-opentelemetry ends a span at its last exit: mark the call's end now (for a
        // stream the span is otherwise last exited when the stream opened).
        let _end = self.span.clone().entered();
        let m = &self.metrics;
        let span = &self.span;
        let provider = self.provider;
        m.in_flight.with_label_values(&[provider]).dec();
        // The upstream accepted the request, so the model it answered with is a real model.
        let model = if completion.model.is_empty() {
            self.request_model.as_str()
        } else {
            completion.model.as_str()
        };
        let usage = completion.usage;
        let cost = usage.and_then(|u| self.pricing.cost(model, u));
        let groq = &completion.groq;
        // One call for every field: each `record` is a subscriber round trip of its own.
        tracing::record_all!(
            span,
            gen_ai.response.id = completion.id.as_str(),
            gen_ai.response.model = model,
            gen_ai.usage.input_tokens = usage.map(|u| saturating_i64(u.input_tokens)),
            gen_ai.usage.output_tokens = usage.map(|u| saturating_i64(u.output_tokens)),
            llmobs.cost.usd = cost,
            openai.response.system_fingerprint = completion.system_fingerprint.as_deref(),
            openai.response.service_tier = completion.service_tier.as_deref(),
            groq.request.id = groq.request_id.as_deref(),
            groq.usage.queue_time = groq.queue_time,
            groq.usage.prompt_time = groq.prompt_time,
            groq.usage.completion_time = groq.completion_time,
            groq.usage.total_time = groq.total_time,
        );
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            string_array(completion.choices.iter().map(|c| c.finish_reason.clone())),
        );
        if self.capture {
            span.set_attribute("gen_ai.output.messages", output_messages(completion));
        }

        m.requests.with_label_values(&[provider, model, "ok"]).inc();
        let labels = self.success_labels(Some(model));
        m.operation_duration
            .with_label_values(&labels)
            .observe(self.started.elapsed().as_secs_f64());
        let usage = usage?;
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
        let cost = cost?;
        m.cost_usd
            .with_label_values(&[provider, model])
            .inc_by(cost);
        Some(cost)
    }

    fn fail(&mut self, error: &LlmError) {
        {
            let _entered = self.span.enter();
            tracing::warn!(error = %error, error.type = error.error_type().as_str(), "LLM call failed");
        }
        self.record_failure(error.error_type(), &error.to_string(), error.kind_name());
    }

    fn record_failure(&mut self, error_type: ErrorType, message: &str, exception_type: &str) {
        self.done = true;
        let _end = self.span.clone().entered();
        let m = &self.metrics;
        let kind = error_type.as_str();
        m.in_flight.with_label_values(&[self.provider]).dec();
        self.span.record("error.type", kind);
        self.span.set_status(Status::error(message.to_owned()));
        self.span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", exception_type.to_owned()),
                KeyValue::new("exception.message", message.to_owned()),
            ],
        );
        let model = self.model_label.as_str();
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

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
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

fn string_array(items: impl Iterator<Item = String>) -> Value {
    Value::Array(Array::String(items.map(StringValue::from).collect()))
}

/// `gen_ai.input.messages` (and `gen_ai.system_instructions`) in the conventions' JSON form.
fn record_input_content(span: &Span, request: &UpstreamRequest) {
    // Instructions given separately (`/api/chat`'s `system`) are not chat history.
    let separate = request.system_instructions.is_some();
    let messages: Vec<serde_json::Value> = request.body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| !(separate && m["role"] == "system"))
                .map(semconv_message)
                .collect()
        })
        .unwrap_or_default();
    span.set_attribute(
        "gen_ai.input.messages",
        serde_json::Value::Array(messages).to_string(),
    );
    if let Some(system) = &request.system_instructions {
        let instructions = json!([{"type": "text", "content": system}]);
        span.set_attribute("gen_ai.system_instructions", instructions.to_string());
    }
}

/// One OpenAI message as a conventions message: role and typed parts.
fn semconv_message(message: &serde_json::Value) -> serde_json::Value {
    let mut parts = Vec::new();
    match &message["content"] {
        serde_json::Value::String(text) if message["role"] == "tool" => parts.push(json!({
            "type": "tool_call_response",
            "id": message["tool_call_id"],
            "result": text,
        })),
        serde_json::Value::String(text) => parts.push(json!({"type": "text", "content": text})),
        serde_json::Value::Array(items) => {
            for item in items {
                if let Some(text) = item["text"].as_str() {
                    parts.push(json!({"type": "text", "content": text}));
                }
            }
        }
        _ => {}
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        for call in calls {
            let arguments = call["function"]["arguments"]
                .as_str()
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                .unwrap_or_else(|| call["function"]["arguments"].clone());
            parts.push(json!({
                "type": "tool_call",
                "id": call["id"],
                "name": call["function"]["name"],
                "arguments": arguments,
            }));
        }
    }
    json!({"role": message["role"], "parts": parts})
}

/// `gen_ai.output.messages` in the conventions' JSON form.
fn output_messages(completion: &Completion) -> String {
    let messages: Vec<serde_json::Value> = completion
        .choices
        .iter()
        .map(|choice| {
            let mut parts = Vec::new();
            if !choice.content.is_empty() {
                parts.push(json!({"type": "text", "content": choice.content}));
            }
            for call in &choice.tool_calls {
                let arguments = serde_json::from_str::<serde_json::Value>(&call.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone()));
                parts.push(json!({"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments}));
            }
            json!({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason})
        })
        .collect();
    serde_json::Value::Array(messages).to_string()
}
