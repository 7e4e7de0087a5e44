//! The fake Groq upstream (`llmobs_testkit::upstream`): scripted replies, what it received;
//! and Groq's wire format (`groq`) for replies a test writes itself.

pub use llmobs_testkit::groq;
pub use llmobs_testkit::upstream::{API_KEY, FakeUpstream, Reply, STREAM_USAGE, groq_success};
