//! What a provider answers: the completion, its usage, and what the provider observed.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use super::LlmError;

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (`prompt_tokens_details.cached_tokens`),
    /// when reported; included in `input_tokens`.
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache, when the provider reports them
    /// (`prompt_tokens_details.cache_write_tokens`); included in `input_tokens`.
    pub cache_creation_input_tokens: Option<u64>,
    /// Completion tokens spent on reasoning (`completion_tokens_details.reasoning_tokens`),
    /// when reported; included in `output_tokens`.
    pub reasoning_output_tokens: Option<u64>,
}

/// Groq's extra timings (seconds) and request id, when the upstream sends them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroqExtras {
    /// `x_groq.id`.
    pub request_id: Option<String>,
    /// `usage.queue_time`.
    pub queue_time: Option<f64>,
    /// `usage.prompt_time`.
    pub prompt_time: Option<f64>,
    /// `usage.completion_time`.
    pub completion_time: Option<f64>,
    /// `usage.total_time`.
    pub total_time: Option<f64>,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call id.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments, as the JSON text the model produced.
    pub arguments: String,
}

/// One generated choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The generated text.
    pub content: String,
    /// Tool calls, if the model made any.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …).
    pub finish_reason: String,
}

/// A provider's answer.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The completion id (`chatcmpl-…`).
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The choices; at least one.
    pub choices: Vec<Choice>,
    /// Token counts; `None` when the upstream sent none.
    pub usage: Option<Usage>,
    /// `system_fingerprint`, when sent.
    pub system_fingerprint: Option<String>,
    /// `service_tier`, when sent.
    pub service_tier: Option<String>,
    /// Groq's extras.
    pub groq: GroqExtras,
    /// Embeddings: the vectors' length (`gen_ai.embeddings.dimension.count`).
    pub dimensions: Option<usize>,
}

impl Completion {
    /// The first choice's text and finish reason.
    pub fn first(&self) -> (&str, &str) {
        self.choices.first().map_or(("", "unknown"), |c| {
            (c.content.as_str(), c.finish_reason.as_str())
        })
    }
}

/// A successful try: a whole answer (the raw body to relay and what it says), or an open
/// stream whose first bytes have arrived.
#[allow(clippy::large_enum_variant)] // one per call, moved a few times: boxing would cost more
pub enum Answer {
    /// The body and what it says.
    Complete(Bytes, Completion),
    /// The stream's bytes.
    Stream(ByteStream),
}

/// A stream of SSE bytes from the provider.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send>>;

/// What the provider observed besides the answer: time spent waiting on the upstream (for the
/// gateway-overhead metric) and the upstream's remaining rate limits.
#[derive(Debug, Clone, Default)]
pub struct UpstreamReport {
    /// Time spent waiting on the upstream, retries and back-off included.
    pub wait: Duration,
    /// `x-ratelimit-remaining-requests` from the last answer.
    pub remaining_requests: Option<f64>,
    /// `x-ratelimit-remaining-tokens` from the last answer.
    pub remaining_tokens: Option<f64>,
    /// Why each retry happened: `429`, `5xx` or `connection`.
    pub retries: Vec<&'static str>,
}
