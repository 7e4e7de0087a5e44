//! Test support by concern. Everything is real HTTP on 127.0.0.1: the app on port 0 (in
//! process, or the binary as a child process), a fake Groq upstream speaking Groq's wire format
//! and an OTLP/HTTP receiver decoding real protobuf (both from the `llmobs-testkit` crate), and
//! a real Prometheus server.

pub mod app;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod upstream;
