//! The outside world of llm-observability's tests and benchmark, over real HTTP on 127.0.0.1:
//! a fake Groq/OpenAI upstream and an OTLP/HTTP receiver. It knows nothing of the gateway.
//!
//! * [`groq`]: Groq's wire format, the one place its answers are written.
//! * [`upstream`]: the scriptable fake for the tests, and the fast one for the benchmark.
//! * [`otlp`]: the trace receiver, decoding (tests) or counting (benchmark).
//! * [`bench`]: the benchmark's server, both of the above on one port with `/stats`.

pub mod bench;
pub mod groq;
pub mod otlp;
pub mod upstream;

pub use otlp::{ExportedSpan, OtlpReceiver};
pub use upstream::{FakeUpstream, Received, Reply};
