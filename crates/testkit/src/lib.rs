//! The outside world of llm-observability's tests and benchmark, over real HTTP on 127.0.0.1:
//! fake LLM providers (Groq/OpenAI, Anthropic) and an OTLP receiver. It knows nothing of the
//! gateway.
//!
//! * [`groq`]: Groq's wire format (chat completions), the one place its answers are written.
//! * [`openai`]: OpenAI's Responses API and Embeddings wire formats, likewise.
//! * [`upstream`]: the scriptable fake Groq/OpenAI for the tests (chat completions, Responses,
//!   Embeddings), and the fast one for the benchmark.
//! * [`anthropic`]: Anthropic's Messages API wire format and its scriptable fake.
//! * [`otlp`]: the trace receiver, decoding (tests) or counting (benchmark).
//! * [`redis`](mod@redis): a real `redis-server` per test (Debian's), to kill, restart and pause.
//! * [`bench`](mod@bench): the benchmark's server, the fast upstream and a counting receiver on one port
//!   with `/stats`.

pub mod anthropic;
pub mod bench;
pub mod groq;
pub mod openai;
pub mod otlp;
pub mod redis;
pub mod upstream;

pub use anthropic::{AnthropicReply, FakeAnthropic};
pub use otlp::{ExportedSpan, OtlpReceiver};
pub use redis::RedisServer;
pub use upstream::{FakeUpstream, Received, Reply};
