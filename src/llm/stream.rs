//! The stream relay: upstream SSE bytes → complete events → observed (time to first chunk,
//! time per chunk, usage, finish reasons) → relayed to the client as they arrive. The call's
//! telemetry ends with the stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use prometheus::Histogram;

use super::cache::PendingStore;
use super::genai::Call;
use super::limiter::Slot;
use super::sse::SseSplitter;
use super::wire::ChunkInfo;
use super::{ByteStream, Choice, Completion, GroqExtras, LlmError, Redactor, Usage};

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
    pub usage: Option<Usage>,
    /// Cost in USD, `None` for an unpriced model or missing usage.
    pub cost_usd: Option<f64>,
    /// Wall time from the request to the last chunk.
    pub latency: Duration,
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
    service_tier: Option<String>,
    finish_reasons: Vec<String>,
    usage: Option<Usage>,
    groq: GroqExtras,
    content: String,
}

/// A relayed stream: the upstream's bytes split into events, observed, and queued for the client.
pub(super) struct StreamState {
    /// Removes secrets from upstream error events before they are relayed.
    redactor: Redactor,
    /// The concurrency slot, held until the stream ends or is dropped.
    _slot: Slot,
    upstream: ByteStream,
    splitter: SseSplitter,
    call: Call,
    drop_usage_only: bool,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    seen: Seen,
    /// Reads one event of the stream's API (chat chunks, Responses events, Anthropic's).
    parse: ChunkParser,
    /// Assembles the answer for the response cache, when it is to be stored.
    store: Option<PendingStore>,
}

/// Reads one SSE event of a stream for telemetry.
pub(super) type ChunkParser = fn(&[u8]) -> Result<ChunkInfo, LlmError>;

impl StreamState {
    pub(super) fn new(
        slot: Slot,
        upstream: ByteStream,
        call: Call,
        drop_usage_only: bool,
        redactor: Redactor,
        parse: ChunkParser,
        store: Option<PendingStore>,
    ) -> Self {
        Self {
            redactor,
            _slot: slot,
            upstream,
            splitter: SseSplitter::default(),
            call,
            drop_usage_only,
            pending: VecDeque::new(),
            finished: false,
            seen: Seen::default(),
            parse,
            store,
        }
    }

    /// The client's events, in order; the call's telemetry is recorded when the last is taken
    /// (or as `cancelled` when the stream is dropped before).
    pub(super) fn into_events(self) -> impl Stream<Item = StreamEvent> + Send + 'static {
        futures_util::stream::unfold(self, |mut state| async move {
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
        })
    }

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
        let info = match (self.parse)(&raw) {
            Ok(info) => info,
            Err(error) => return self.fail(error),
        };
        if let Some(message) = info.error {
            // The upstream reported an error inside the stream: the client gets it as sent,
            // less any secret it echoes.
            let text = String::from_utf8_lossy(&raw);
            let redacted = self.redactor.redact(&text);
            let raw = if redacted == text {
                raw
            } else {
                Bytes::from(redacted)
            };
            self.pending
                .push_back(StreamEvent::Event { raw, delta: None });
            return self.fail_with(LlmError::InStream(self.redactor.redact(&message)), true);
        }
        // Chat's `[DONE]` carries nothing: it only ends the stream. A final event that carries
        // the usage (the Responses API's `response.completed`) is observed first, below.
        let done = info.done;
        if done && info.usage.is_none() && info.finish_reasons.is_empty() {
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
                // Looked up once per stream, then observed per chunk without a label lookup.
                seen.per_chunk = Some(self.call.record_first_chunk(seen.model.as_deref()));
            }
            Some(previous) => {
                if let Some(histogram) = &seen.per_chunk {
                    histogram.observe((now - previous).as_secs_f64());
                }
            }
        }
        seen.last_chunk_at = Some(now);
        // Charged if the stream ends before its usage (the client leaves): about a token a chunk.
        if info.content.is_some() {
            self.call.partial.output_tokens += 1;
        }
        if seen.id.is_none() {
            seen.id = info.id;
        }
        if info.system_fingerprint.is_some() {
            seen.fingerprint = info.system_fingerprint;
        }
        if info.service_tier.is_some() {
            seen.service_tier = info.service_tier;
        }
        seen.finish_reasons.extend(info.finish_reasons);
        if let Some(mut usage) = info.usage {
            // Anthropic's stream gives the input counts in `message_start` and the output in
            // `message_delta`, which may leave its input counts out: keep the earlier ones.
            if let Some(earlier) = seen.usage
                && usage.input_tokens == 0
                && usage.cache_read_input_tokens.is_none()
                && usage.cache_creation_input_tokens.is_none()
            {
                usage.input_tokens = earlier.input_tokens;
                usage.cache_read_input_tokens = earlier.cache_read_input_tokens;
                usage.cache_creation_input_tokens = earlier.cache_creation_input_tokens;
            }
            if usage.input_tokens > 0 {
                self.call.partial.input_tokens = usage.input_tokens;
            }
            seen.usage = Some(usage);
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
        // The usage-only chunk too, whether the client receives it or not: the stored answer
        // carries its usage.
        if let Some(store) = &mut self.store {
            store.observe(&raw);
        }
        if !(info.usage_only && self.drop_usage_only) {
            self.pending.push_back(StreamEvent::Event {
                raw,
                delta: info.content,
            });
        }
        if done {
            self.end();
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
            service_tier: seen.service_tier,
            groq: seen.groq,
            dimensions: None,
        };
        let latency = self.call.started.elapsed();
        let cost_usd = self.call.succeed(&completion);
        if let Some(store) = self.store.take() {
            store.finish(
                &completion,
                self.call.provider().name(),
                self.call.upstream_model(),
            );
        }
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
