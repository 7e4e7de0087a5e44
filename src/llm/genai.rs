//! The telemetry of one LLM call, in one place: the GenAI span (`{operation} {model}`: `chat …`
//! or `embeddings …`, kind CLIENT, OpenTelemetry GenAI conventions), its metrics, and the
//! conventions' message JSON for captured prompts and completions.
//!
//! The span describes the logical call: `gen_ai.request.model` is the name the client asked
//! for (a route's name, say), while `gen_ai.provider.name`, `server.*` and the `provider` label
//! are those of the target that answered (or was asked last); each HTTP attempt is a child span
//! (`openai.rs`).
//!
//! Label policy: the `model` label is the model the upstream answered with on success; on
//! failure it is the requested model only if it is a route or a model its provider prices,
//! else `unknown`, so a client cannot grow label cardinality with made-up names.
//!
//! Integers go to spans as i64: `tracing-opentelemetry` exports u64 fields as strings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use prometheus::Histogram;
use serde_json::json;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::cache::{CacheKey, CacheStatus};
use super::recent::RecentCalls;
use super::spend::{Charge, Payer, Prompt};
use super::{
    Completion, ErrorType, LlmError, Operation, Provider, UpstreamReport, UpstreamRequest, Usage,
};
use crate::telemetry::{CallLabels, Experiment, Metrics};

/// What every call's telemetry shares: the metrics and the content opt-in.
#[derive(Debug, Clone)]
pub(super) struct Observer {
    pub(super) metrics: Arc<Metrics>,
    pub(super) capture_content: bool,
    /// Where ended calls are noted for feedback (`POST /v1/feedback`).
    pub(super) recent: Arc<RecentCalls>,
}

/// What the request log line and the overhead metric need from a call, success or not.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// `provider` label: the provider that answered (or was asked last).
    pub provider: Arc<str>,
    /// The bounded `model` label value.
    pub model: String,
    /// Input and output tokens, when known.
    pub tokens: Option<(u64, u64)>,
    /// Time spent waiting on the provider (for streams: until the stream opened).
    pub upstream_wait: Duration,
    /// What the response cache did (`x-llmobs-cache`); `None` when the call is not cacheable
    /// or the cache is off.
    pub cache: Option<CacheStatus>,
}

/// One LLM call's span and metrics. Dropped before `succeed` or `fail` (the client went away
/// and the handler or stream was dropped), it records the call as `cancelled`.
pub(super) struct Call {
    metrics: Arc<Metrics>,
    /// The GenAI span: the parent of the attempts' HTTP client spans.
    pub(super) span: Span,
    /// The provider asked now; at the end, the one that answered.
    provider: Arc<Provider>,
    /// The API the call speaks.
    operation: Operation,
    /// The model id that provider is asked for (prices a dated answer, `gpt-4o-mini-…`).
    upstream_model: String,
    request_model: String,
    /// The span names its provider (a route's: once the route has ended).
    provider_recorded: bool,
    /// A route's call's `service_tier` request, for `openai.request.service_tier`.
    service_tier: Option<String>,
    /// The bounded `model` label value for failures.
    model_label: String,
    /// Prompts and completions are recorded (opted in).
    pub(super) capture: bool,
    /// When the call started.
    pub(super) started: Instant,
    done: bool,
    /// Told the cost when the call ends.
    payer: Option<Arc<dyn Payer>>,
    /// Notes the call when it ends, for feedback.
    recent: Arc<RecentCalls>,
    /// The GenAI span's context (its trace and span ids, whether sampled).
    span_context: opentelemetry::trace::SpanContext,
    /// The prompt the client named.
    prompt: Option<Prompt>,
    /// The route and A/B variant of the target asked now (at the end: the one that answered).
    variant: Option<(Arc<str>, Arc<str>)>,
    /// What the call has used so far, for a call that ends before the provider says: input
    /// estimated from the request's size, output counted in stream chunks.
    pub(super) partial: Usage,
}

impl Call {
    /// Opens the GenAI span and counts the call as in flight at its first provider.
    /// `model_label` is the bounded `model` label for a failure; `route`, the route's name.
    pub(super) fn start(
        observer: &Observer,
        request: &UpstreamRequest,
        first: (&Arc<Provider>, &str),
        route: Option<&str>,
        model_label: String,
    ) -> Self {
        let summary = &request.summary;
        let (provider, upstream_model) = first;
        // A route's answering target is known only at its end: its attributes are recorded
        // then, once (a span attribute recorded twice is exported twice).
        let single = route.is_none();
        let (address, port) = provider.server().filter(|_| single).unzip();
        let openai = is_openai(provider);
        let operation = request.operation.gen_ai_name();
        let span = tracing::info_span!(
            "gen_ai",
            otel.name = format!("{operation} {}", summary.model),
            otel.kind = "client",
            gen_ai.operation.name = operation,
            gen_ai.provider.name = single.then_some(&**provider.gen_ai_name()),
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
            llmobs.provider.name = single.then_some(&**provider.name()),
            llmobs.route.name = route,
            llmobs.key.name = request.caller.key.as_deref(),
            llmobs.team.name = request.caller.team.as_deref(),
            user.id = request.caller.user.as_deref(),
            gen_ai.conversation.id = request.caller.conversation.as_deref(),
            gen_ai.prompt.name = request.caller.prompt.as_ref().map(|p| p.name.as_str()),
            llmobs.prompt.version = request.caller.prompt.as_ref().map(|p| p.version.as_str()),
            llmobs.route.attempts = Empty,
            llmobs.route.variant = Empty,
            llmobs.route.fallback_reason = Empty,
            gen_ai.response.id = Empty,
            gen_ai.response.model = Empty,
            gen_ai.response.time_to_first_chunk = Empty,
            gen_ai.embeddings.dimension.count = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.usage.reasoning.output_tokens = Empty,
            llmobs.cost.usd = Empty,
            llmobs.cost.estimated = Empty,
            llmobs.cache.result = Empty,
            llmobs.cache.hit = Empty,
            llmobs.cache.key = Empty,
            openai.api.type = request
                .operation
                .openai_api_type()
                .filter(|_| single && openai),
            openai.request.service_tier = Empty,
            openai.response.system_fingerprint = Empty,
            openai.response.service_tier = Empty,
            groq.request.id = Empty,
            groq.usage.queue_time = Empty,
            groq.usage.prompt_time = Empty,
            groq.usage.completion_time = Empty,
            groq.usage.total_time = Empty,
            error.type = Empty,
        );
        if !summary.encoding_formats.is_empty() {
            span.set_attribute(
                "gen_ai.request.encoding_formats",
                string_array(summary.encoding_formats.iter().cloned()),
            );
        }
        if !summary.stop_sequences.is_empty() {
            span.set_attribute(
                "gen_ai.request.stop_sequences",
                string_array(summary.stop_sequences.iter().cloned()),
            );
        }
        if single
            && openai
            && let Some(tier) = &summary.service_tier
        {
            span.record("openai.request.service_tier", tier.as_str());
        }
        // For a route, recorded with its answering provider if that is OpenAI.
        let service_tier = summary.service_tier.clone().filter(|_| !single);
        if observer.capture_content {
            record_input_content(&span, request);
        }
        observer.metrics.record_call_start(provider.name());
        let span_context = span.context().span().span_context().clone();
        Self {
            metrics: observer.metrics.clone(),
            span_context,
            span,
            provider: provider.clone(),
            operation: request.operation,
            upstream_model: upstream_model.to_owned(),
            request_model: summary.model.clone(),
            provider_recorded: single,
            service_tier,
            model_label,
            capture: observer.capture_content,
            started: Instant::now(),
            done: false,
            payer: request.caller.payer.clone(),
            recent: observer.recent.clone(),
            prompt: request.caller.prompt.clone(),
            variant: None,
            partial: Usage {
                // About four bytes per token in JSON-wrapped English text.
                input_tokens: request.body.len() as u64 / 4,
                ..Usage::default()
            },
        }
    }

    /// The call moves on to another target: it counts as in flight there.
    pub(super) fn switch_target(
        &mut self,
        provider: &Arc<Provider>,
        upstream_model: &str,
        variant: Option<(&Arc<str>, &Arc<str>)>,
    ) {
        self.variant = variant.map(|(route, name)| (route.clone(), name.clone()));
        upstream_model.clone_into(&mut self.upstream_model);
        if !Arc::ptr_eq(provider, &self.provider) {
            self.metrics
                .record_call_moved(self.provider.name(), provider.name());
            self.provider = provider.clone();
        }
    }

    /// How the route went: the provider that answered (or was asked last), the targets tried
    /// and, if it fell back, why (the first failure's `error.type`).
    pub(super) fn record_route(&mut self, attempts: u32, fallback_reason: Option<&'static str>) {
        self.record_provider();
        tracing::record_all!(
            self.span,
            llmobs.route.attempts = i64::from(attempts),
            llmobs.route.fallback_reason = fallback_reason,
            llmobs.route.variant = self.variant.as_ref().map(|(_, v)| &**v),
        );
    }

    /// The provider's attributes on the span, once.
    fn record_provider(&mut self) {
        if std::mem::replace(&mut self.provider_recorded, true) {
            return;
        }
        let provider = &self.provider;
        let (address, port) = provider.server().unzip();
        let openai = is_openai(provider);
        tracing::record_all!(
            self.span,
            gen_ai.provider.name = &**provider.gen_ai_name(),
            llmobs.provider.name = &**provider.name(),
            server.address = address,
            server.port = port.map(i64::from),
            openai.api.type = self.operation.openai_api_type().filter(|_| openai),
            openai.request.service_tier = self.service_tier.as_deref().filter(|_| openai),
        );
    }

    /// A span event for each move to the route's next target: from, to, and why.
    pub(super) fn note_fallback(&self, from: &str, to: &str, reason: &'static str) {
        self.span.add_event(
            "llmobs.route.fallback",
            vec![
                KeyValue::new("llmobs.route.from_provider", from.to_owned()),
                KeyValue::new("llmobs.route.to_provider", to.to_owned()),
                KeyValue::new("llmobs.route.fallback_reason", reason),
            ],
        );
    }

    /// The provider asked now.
    pub(super) fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// What the request log line and the overhead metric need, before the answer is known.
    pub(super) fn record(&self, upstream_wait: Duration) -> CallRecord {
        CallRecord {
            provider: self.provider.name().clone(),
            model: self.model_label.clone(),
            tokens: None,
            upstream_wait,
            cache: None,
        }
    }

    /// The model id the provider asked now is asked for.
    pub(super) fn upstream_model(&self) -> &str {
        &self.upstream_model
    }

    /// What the response cache did for the call: `llmobs.cache.result` (`hit`, `miss`,
    /// `bypass`), `llmobs.cache.hit`, and the key's first 16 hex digits (never the content).
    pub(super) fn record_cache(&self, status: CacheStatus, key: &CacheKey) {
        tracing::record_all!(
            self.span,
            llmobs.cache.result = status.as_str(),
            llmobs.cache.hit = status == CacheStatus::Hit,
            llmobs.cache.key = key.prefix().as_str(),
        );
    }

    /// The call was served from the cache: no provider was asked. The span names the provider
    /// whose answer it is (`answered_by`, when still configured) and the response, without
    /// usage or cost (nothing was spent); the call metrics are left alone (they count calls to
    /// providers) and the answer's tokens and cost count as saved. Returns the saved cost.
    pub(super) fn hit(
        &mut self,
        answered_by: Option<&Arc<Provider>>,
        upstream_model: &str,
        completion: &Completion,
    ) -> Option<f64> {
        self.done = true;
        self.metrics.record_call_end_uncounted(self.provider.name());
        if let Some(provider) = answered_by {
            self.provider = provider.clone();
        }
        self.record_provider();
        let _end = self.span.clone().entered();
        let model = self.response_model(completion);
        let embeddings = self.operation == Operation::Embeddings;
        tracing::record_all!(
            self.span,
            gen_ai.response.id = completion.id.as_str(),
            gen_ai.response.model = model,
            gen_ai.embeddings.dimension.count = completion.dimensions.map(|d| d as i64),
        );
        self.record_choices(completion);
        let usage = completion.usage?;
        let cost = self.provider.prices().cost(model, upstream_model, usage);
        self.metrics.record_cache_saved(
            usage.input_tokens,
            (!embeddings).then_some(usage.output_tokens),
            cost,
        );
        cost
    }

    /// `gen_ai.response.model`: the model the answer names, else the one asked for. (The
    /// upstream accepted the request, so the model it answered with is a real model.)
    fn response_model<'a>(&'a self, completion: &'a Completion) -> &'a str {
        if completion.model.is_empty() {
            &self.request_model
        } else {
            &completion.model
        }
    }

    /// The answer's finish reasons and, when opted in, its messages (chat only: embeddings
    /// have neither).
    fn record_choices(&self, completion: &Completion) {
        if self.operation == Operation::Embeddings {
            return;
        }
        self.span.set_attribute(
            "gen_ai.response.finish_reasons",
            string_array(completion.choices.iter().map(|c| c.finish_reason.clone())),
        );
        if self.capture {
            self.span
                .set_attribute("gen_ai.output.messages", output_messages(completion));
        }
    }

    /// Labels of the GenAI histograms for a successful call.
    fn success_labels<'a>(&'a self, response_model: Option<&'a str>) -> CallLabels<'a> {
        CallLabels {
            operation: self.operation.gen_ai_name(),
            provider: self.provider.name(),
            gen_ai_provider: self.provider.gen_ai_name(),
            request_model: &self.request_model,
            response_model: response_model.unwrap_or(&self.request_model),
            error_type: "",
            trace: self.exemplar_trace(),
        }
    }

    /// A stream's first chunk: the span's time to first chunk and its histogram; returns the
    /// time-per-chunk histogram for the later chunks.
    pub(super) fn record_first_chunk(&self, response_model: Option<&str>) -> Histogram {
        let elapsed = self.started.elapsed();
        self.span
            .record("gen_ai.response.time_to_first_chunk", elapsed.as_secs_f64());
        self.metrics
            .record_first_chunk(&self.success_labels(response_model), elapsed)
    }

    /// Rate-limit gauges and retry counts from the provider's report.
    pub(super) fn upstream_report(&self, report: &UpstreamReport) {
        let provider = self.provider.name();
        for reason in &report.retries {
            self.metrics.record_upstream_retry(provider, reason);
        }
        for (kind, value) in [
            ("requests", report.remaining_requests),
            ("tokens", report.remaining_tokens),
        ] {
            if let Some(remaining) = value {
                self.metrics
                    .record_provider_ratelimit(provider, kind, remaining);
            }
        }
    }

    /// Records the answer on the span and in the metrics; returns the cost.
    pub(super) fn succeed(&mut self, completion: &Completion) -> Option<f64> {
        self.done = true;
        // tracing-opentelemetry ends a span at its last exit: mark the call's end now (for a
        // stream the span is otherwise last exited when the stream opened).
        let _end = self.span.clone().entered();
        let span = &self.span;
        let model = self.response_model(completion);
        let usage = completion.usage;
        let cost = usage.and_then(|u| self.provider.prices().cost(model, &self.upstream_model, u));
        let groq = &completion.groq;
        let openai = is_openai(&self.provider);
        let embeddings = self.operation == Operation::Embeddings;
        // One call for every field: each `record` is a subscriber round trip of its own.
        tracing::record_all!(
            span,
            gen_ai.response.id = completion.id.as_str(),
            gen_ai.response.model = model,
            gen_ai.usage.input_tokens = usage.map(|u| saturating_i64(u.input_tokens)),
            // Embeddings produce no tokens: the conventions record their input only.
            gen_ai.usage.output_tokens = usage
                .filter(|_| !embeddings)
                .map(|u| saturating_i64(u.output_tokens)),
            gen_ai.embeddings.dimension.count = completion.dimensions.map(|d| d as i64),
            gen_ai.usage.cache_read.input_tokens = usage
                .and_then(|u| u.cache_read_input_tokens)
                .map(saturating_i64),
            gen_ai.usage.cache_creation.input_tokens = usage
                .and_then(|u| u.cache_creation_input_tokens)
                .map(saturating_i64),
            gen_ai.usage.reasoning.output_tokens = usage
                .and_then(|u| u.reasoning_output_tokens)
                .map(saturating_i64),
            llmobs.cost.usd = cost,
            openai.response.system_fingerprint =
                completion.system_fingerprint.as_deref().filter(|_| openai),
            openai.response.service_tier = completion.service_tier.as_deref().filter(|_| openai),
            groq.request.id = groq.request_id.as_deref(),
            groq.usage.queue_time = groq.queue_time,
            groq.usage.prompt_time = groq.prompt_time,
            groq.usage.completion_time = groq.completion_time,
            groq.usage.total_time = groq.total_time,
        );
        self.record_choices(completion);

        self.metrics.record_call_success(
            &self.success_labels(Some(model)),
            self.started.elapsed(),
            usage.map(|u| (u.input_tokens, u.output_tokens)),
            cost,
        );
        self.note_recent(Some(&completion.id));
        self.record_experiments("ok", usage.map(|u| (u.input_tokens, u.output_tokens)), cost);
        if let Some(payer) = &self.payer {
            payer.charge(Charge {
                cost_usd: cost.unwrap_or(0.0),
                tokens: usage.map_or(0, |u| u.input_tokens + u.output_tokens),
                provider: self.provider.name(),
                model: &self.model_label,
                estimated: false,
            });
        }
        cost
    }

    /// The call in the prompt-version and A/B-variant metrics, when it has either.
    fn record_experiments(&self, status: &str, tokens: Option<(u64, u64)>, cost: Option<f64>) {
        let elapsed = self.started.elapsed();
        let prompt = self.prompt.as_ref().map(|Prompt { labels, .. }| {
            (Experiment::Prompt, labels.0.as_str(), labels.1.as_str())
        });
        let variant = self
            .variant
            .as_ref()
            .map(|(route, variant)| (Experiment::Variant, &**route, &**variant));
        for (experiment, first, second) in prompt.into_iter().chain(variant) {
            self.metrics.record_experiment(
                experiment,
                (first, second),
                status,
                elapsed,
                tokens,
                cost,
            );
        }
    }

    /// The call's trace, when it is sampled: its metrics' exemplar.
    fn exemplar_trace(&self) -> Option<opentelemetry::trace::TraceId> {
        self.span_context
            .is_sampled()
            .then(|| self.span_context.trace_id())
    }

    /// Notes the ended call (its GenAI span, its response id) for feedback.
    fn note_recent(&self, response_id: Option<&str>) {
        let span = self.span_context.clone();
        let prompt = self
            .prompt
            .as_ref()
            .map(|p| (p.name.clone(), p.version.clone()));
        self.recent
            .record(span, response_id, prompt, self.variant.clone());
    }

    /// A call that ends without the provider's usage is charged what it has likely used
    /// (`partial`): when the client left, or a stream broke after its first chunk. A call that
    /// failed before any answer costs nothing.
    fn charge_partial(&self, cancelled: bool) {
        let Some(payer) = &self.payer else { return };
        if !cancelled && self.partial.output_tokens == 0 {
            return;
        }
        let usage = self.partial;
        let cost = self
            .provider
            .prices()
            .cost(&self.upstream_model, &self.upstream_model, usage);
        tracing::record_all!(
            self.span,
            llmobs.cost.usd = cost,
            llmobs.cost.estimated = true,
        );
        payer.charge(Charge {
            cost_usd: cost.unwrap_or(0.0),
            tokens: usage.input_tokens + usage.output_tokens,
            provider: self.provider.name(),
            model: &self.model_label,
            estimated: true,
        });
    }

    /// Records a failure on the span (status, `error.type`, an exception event) and in the
    /// metrics.
    pub(super) fn fail(&mut self, error: &LlmError) {
        {
            let _entered = self.span.enter();
            tracing::warn!(error = %error, error.type = error.error_type().as_str(), "LLM call failed");
        }
        self.record_failure(error.error_type(), &error.to_string(), error.kind_name());
    }

    fn record_failure(&mut self, error_type: ErrorType, message: &str, exception_type: &str) {
        self.done = true;
        self.note_recent(None);
        self.record_experiments("error", None, None);
        self.charge_partial(error_type == ErrorType::Cancelled);
        // A route the client left midway: the target asked last.
        self.record_provider();
        let _end = self.span.clone().entered();
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
        let labels = CallLabels {
            operation: self.operation.gen_ai_name(),
            provider: self.provider.name(),
            gen_ai_provider: self.provider.gen_ai_name(),
            request_model: &self.model_label,
            response_model: "",
            error_type: kind,
            trace: self.exemplar_trace(),
        };
        self.metrics
            .record_call_failure(&labels, self.started.elapsed());
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

/// The `openai.*` attributes apply: the OpenAI conventions scope them to
/// `gen_ai.provider.name = openai`.
fn is_openai(provider: &Provider) -> bool {
    &**provider.gen_ai_name() == "openai"
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
    let messages: Vec<serde_json::Value> = request
        .messages()
        .iter()
        .filter(|m| !(separate && m["role"] == "system"))
        .map(semconv_message)
        .collect();
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
