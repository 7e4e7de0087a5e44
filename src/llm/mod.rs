//! The LLM layer: what a request to a provider is, the providers, and the one service through
//! which every call is made, traced and counted.
//!
//! - `request`: `/api/chat` parameters and their validation, the OpenAI body sent upstream,
//!   what the GenAI span records of it; the request limits.
//! - `completion`: what a provider answers; `error`: why a call failed and its class.
//! - `provider`: a configured provider over its API, `openai` (Groq, OpenAI and any
//!   OpenAI-compatible API) or `simulated`; `wire` is OpenAI's JSON and chunk format, `sse`
//!   splits streams into events; `pricing` is each provider's price table.
//! - `router`: which provider answers a model name (routes, `provider/model`, the default
//!   provider), the order a route's targets are tried in, and the live configuration that
//!   `SIGHUP` swaps; `breaker` is a target's circuit breaker.
//! - `spend`: who makes a call (key, team, end user) and the `Payer` told its cost.
//! - `cache`: the response cache (exact keys, the in-process and Redis backends, a stream
//!   stored whole and replayed as a stream).
//! - `service`: the entry point (`ChatService`): routing and fallback, with `limiter`
//!   (concurrency), `genai` (the call's span and metrics) and `stream` (the stream relay);
//!   `redact` keeps secrets out of relayed upstream text.
//!
//! The layer depends on `config`, `http_client` and `telemetry`, never on `api`.

mod anthropic;
mod breaker;
mod cache;
mod completion;
mod embeddings;
mod error;
mod genai;
mod limiter;
mod openai;
pub mod pricing;
mod provider;
mod recent;
mod redact;
mod request;
mod responses;
mod router;
mod service;
mod simulated;
mod spend;
pub mod sse;
mod stream;
pub mod wire;

pub use breaker::BreakerState;
pub use cache::{BodyDigest, CacheRequest, CacheStatus, ResponseCache, body_digest, tenant_digest};
pub use completion::{
    Answer, ByteStream, Choice, Completion, GroqExtras, ToolCall, UpstreamReport, Usage,
};
pub use error::{ErrorType, LlmError};
pub use genai::CallRecord;
pub use limiter::ConcurrencyLimit;
pub use openai::OpenAiCompatible;
pub use pricing::PriceTable;
pub use provider::Provider;
pub use recent::{RecentCall, RecentCalls};
pub use redact::{Redactor, scrub_secrets};
pub use request::{
    Attempt, ChatInput, ChatParams, DEFAULT_MAX_TOKENS, MAX_MODEL_LEN, MAX_TOKENS_LIMIT, Operation,
    RequestLimits, RequestSummary, UpstreamRequest,
};
pub use router::{ModelRouter, Routes};
pub use service::{ChatOutcome, ChatService};
pub use simulated::Simulated;
pub use spend::{Caller, Charge, Payer, Prompt};
pub use stream::{StreamEvent, StreamSummary};
