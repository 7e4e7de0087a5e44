//! Integration tests, one binary so the crate links once. Modules by feature.

mod support;

mod apis;
mod cache;
mod chat;
mod docs;
mod egress;
mod experiments;
mod export;
mod feedback;
mod keys;
mod limits;
mod metrics;
mod openai;
mod process;
mod prometheus;
mod reload;
mod routing;
mod sdk;
mod telemetry;
mod upstream_apis;
mod upstream_errors;
mod validation;
