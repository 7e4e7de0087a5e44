//! The LLM layer: what a request to a provider is, the providers, and the one service through
//! which every call is made, traced and counted.
//!
//! - `request`: `/api/chat` parameters and their validation, the OpenAI body sent upstream,
//!   what the GenAI span records of it; the request limits.
//! - `completion`: what a provider answers; `error`: why a call failed and its class.
//! - `provider`: the provider enum over `openai` (Groq and any OpenAI-compatible API) and
//!   `simulated`; `wire` is OpenAI's JSON and chunk format, `sse` splits streams into events.
//! - `service`: the entry point (`ChatService`), with `limiter` (concurrency), `genai` (the
//!   call's span and metrics) and `stream` (the stream relay); `pricing` prices the tokens and
//!   `redact` keeps secrets out of relayed upstream text.
//!
//! The layer depends on `config`, `http_client` and `telemetry`, never on `api`.

mod completion;
mod error;
mod genai;
mod limiter;
mod openai;
pub mod pricing;
mod provider;
mod redact;
mod request;
mod service;
mod simulated;
pub mod sse;
mod stream;
pub mod wire;

pub use completion::{ByteStream, Choice, Completion, GroqExtras, ToolCall, UpstreamReport, Usage};
pub use error::{ErrorType, LlmError};
pub use genai::CallRecord;
pub use limiter::ConcurrencyLimit;
pub use openai::OpenAiCompatible;
pub use pricing::PriceTable;
pub use provider::Provider;
pub use redact::{Redactor, scrub_secrets};
pub use request::{
    ChatInput, ChatParams, DEFAULT_MAX_TOKENS, MAX_MODEL_LEN, MAX_TOKENS_LIMIT, RequestLimits,
    RequestSummary, UpstreamRequest,
};
pub use service::{ChatOutcome, ChatService};
pub use simulated::Simulated;
pub use stream::{StreamEvent, StreamSummary};
