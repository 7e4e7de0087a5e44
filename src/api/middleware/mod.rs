//! What wraps requests: the server span and request metrics (`trace`, every route), gateway
//! keys (`auth`) and per-client rate limits (`ratelimit`) on the LLM routes.

mod auth;
mod ratelimit;
mod trace;

pub use auth::{AuthenticatedKey, bearer_token, presented_key, require_gateway_key};
pub use ratelimit::{Buckets, ClientIdentity, ClientRateLimit, client_address, limit_clients};
pub use trace::{TRACE_ID_HEADER, TraceState, trace_requests};
