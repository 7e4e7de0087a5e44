//! The HTTP server span, request metrics and request log line, for every route.
//!
//! Spans and labels use the matched route template (`MatchedPath`), never the raw URI, so
//! names and label values stay bounded. The parent comes from an incoming W3C `traceparent`.
//! The span's client is the one `client_address` names (the peer, or whom a trusted proxy
//! vouches for); a query string is recorded with its credentials redacted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::client_address;
use crate::api::Rejection;
use crate::llm::{CacheStatus, CallRecord, scrub_secrets};
use crate::telemetry::{
    self, LOG_SPAN, Metrics, REQUEST_IDS, RequestIds, address_text, protocol_version,
};

/// Response header carrying the trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The response header that says what the response cache did: `hit`, `miss` or `bypass`
/// (absent when the cache is off or the call is not cacheable).
pub const CACHE_HEADER: &str = "x-llmobs-cache";
/// The server span's `tracing` name (its exported name is `{METHOD} {route}`).
const SERVER_SPAN: &str = "http_server";

/// Query parameters whose values the HTTP conventions say to replace by `REDACTED` (compared
/// ignoring case); other credentials in a query are left to `scrub_secrets`.
const REDACTED_QUERY_KEYS: [&str; 7] = [
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
];

/// What the middleware needs: the metrics, and the proxies trusted to name the client
/// (`TRUSTED_PROXIES`, the same list the rate limiter uses).
#[derive(Debug, Clone)]
pub struct TraceState {
    metrics: Arc<Metrics>,
    trusted_proxies: Arc<[IpNet]>,
}

impl TraceState {
    /// The middleware's state.
    pub fn new(metrics: Arc<Metrics>, trusted_proxies: &[IpNet]) -> Self {
        Self {
            metrics,
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

/// Middleware: server span, `http_server_request_duration_seconds`, gateway overhead and one
/// log line per request.
pub async fn trace_requests(
    State(state): State<TraceState>,
    request: Request,
    next: Next,
) -> Response {
    let metrics = &state.metrics;
    let started = Instant::now();
    let method = known_method(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let span_name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let client =
        peer.map(|peer| client_address(peer.ip(), request.headers(), &state.trusted_proxies));
    let (server_address, server_port) = server_host(request.uri(), request.headers());
    let span = tracing::info_span!(
        SERVER_SPAN,
        otel.name = span_name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route.as_deref(),
        url.path = request.uri().path(),
        url.query = request.uri().query().map(redact_query),
        url.scheme = "http",
        network.protocol.version = protocol_version(request.version()),
        client.address = client.map(address_text),
        network.peer.address = peer.map(|p| address_text(p.ip().to_canonical())),
        network.peer.port = peer.map(|p| i64::from(p.port())),
        server.address = server_address,
        server.port = server_port.map(i64::from),
        user_agent.original = user_agent,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    // W3C trace context, the one propagation format served; read with the propagator itself
    // rather than through the global one, which sits behind a lock every request would take.
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer is installed; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    let span_context = span.context().span().span_context().clone();
    let ids = span_context.is_valid().then(|| RequestIds {
        trace_id: span_context.trace_id().to_string(),
        span_id: span_context.span_id(),
    });
    // Every log line of the request carries the ids. Plain lines read them from the task-local
    // `REQUEST_IDS`; JSON and coloured lines need a span of their own, created with its fields
    // (no `record` afterwards, which the JSON log formatter pays for by re-parsing), and
    // entered outside the server span so that the spans below keep the server span as parent.
    // (Do not guard this with `tracing::enabled!`: with per-layer filters that call leaves a
    // filter state behind that disabled the next span, the GenAI span, in the OpenTelemetry
    // layer.)
    let log_span = match &ids {
        Some(ids) if telemetry::log_span_wanted() => tracing::info_span!(
            parent: None,
            LOG_SPAN,
            trace_id = ids.trace_id.as_str(),
            span_id = %ids.span_id
        ),
        _ => tracing::Span::none(),
    };

    let mut response = REQUEST_IDS
        .scope(
            ids.clone(),
            next.run(request)
                .instrument(span.clone())
                .instrument(log_span.clone()),
        )
        .await;

    let status = response.status();
    let elapsed = started.elapsed();
    // Server spans are errors on 5xx only (HTTP semantic conventions).
    let server_error = status.is_server_error();
    tracing::record_all!(
        span,
        http.response.status_code = i64::from(status.as_u16()),
        error.type = server_error.then(|| status.as_str()),
        otel.status_code = server_error.then_some("error"),
    );
    if let Some(ids) = &ids
        && let Ok(value) = HeaderValue::from_str(&ids.trace_id)
    {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    metrics.record_http_request(
        method,
        route.as_deref().unwrap_or(""),
        status.as_str(),
        elapsed,
        span_context.is_sampled().then(|| span_context.trace_id()),
    );
    if let Some(Rejection(reason)) = response.extensions().get::<Rejection>() {
        metrics.record_rejection(reason);
    }
    let cache = response
        .extensions()
        .get::<CallRecord>()
        .and_then(|c| c.cache)
        .map(CacheStatus::as_str);
    if let Some(cache) = cache {
        response
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static(cache));
    }
    let call = response.extensions().get::<CallRecord>();
    if let Some(call) = call {
        metrics.record_gateway_overhead(&call.provider, elapsed.saturating_sub(call.upstream_wait));
    }
    let (input_tokens, output_tokens) = call.and_then(|c| c.tokens).unzip();
    REQUEST_IDS.sync_scope(ids, || {
        let _entered = log_span.enter();
        tracing::info!(
            method,
            route = route.as_deref().unwrap_or(""),
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            model = call.map(|c| c.model.as_str()),
            input_tokens,
            output_tokens,
            cache,
            "request completed"
        );
    });
    response
}

/// `server.address` and `server.port`: the name the client used, from the request target's
/// authority (HTTP/2's `:authority`) or else the `Host` header; the port only when it names one.
fn server_host<'a>(
    uri: &'a axum::http::Uri,
    headers: &'a HeaderMap,
) -> (Option<&'a str>, Option<u16>) {
    let authority = uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    });
    let Some(authority) = authority.filter(|a| !a.is_empty()) else {
        return (None, None);
    };
    // `[::1]:8080`, `example.com:8080`, `example.com`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()),
        _ => (authority, None),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (Some(host), port)
}

/// `url.query` with credentials redacted: `scrub_secrets` removes them (`key=`, `token=`,
/// key-like values), and the values of the keys the conventions list become `REDACTED`.
fn redact_query(query: &str) -> String {
    let scrubbed = scrub_secrets(query);
    let pairs: Vec<String> = scrubbed
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _))
                if REDACTED_QUERY_KEYS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key)) =>
            {
                format!("{key}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect();
    pairs.join("&")
}

/// The method, or `_OTHER` for anything non-standard (bounded label values).
fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_keeps_its_shape_and_loses_its_credentials() {
        assert_eq!(redact_query("x=1&y=two"), "x=1&y=two");
        let redacted = redact_query("api_key=secret&x=1");
        assert!(!redacted.contains("secret"), "{redacted}");
        assert!(redacted.ends_with("&x=1"), "{redacted}");
        assert_eq!(
            redact_query("X-Amz-Signature=abc&sig=def&q=OpenTelemetry"),
            "X-Amz-Signature=REDACTED&sig=REDACTED&q=OpenTelemetry"
        );
    }

    #[test]
    fn the_server_name_and_port_come_from_the_host() {
        let uri: axum::http::Uri = "/v1/models".parse().unwrap();
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
            headers
        };
        let h = host("gateway.example:8080");
        assert_eq!(server_host(&uri, &h), (Some("gateway.example"), Some(8080)));
        let h = host("gateway.example");
        assert_eq!(server_host(&uri, &h), (Some("gateway.example"), None));
        let h = host("[::1]:9000");
        assert_eq!(server_host(&uri, &h), (Some("::1"), Some(9000)));
        let h = host("[::1]");
        assert_eq!(server_host(&uri, &h), (Some("::1"), None));
        assert_eq!(server_host(&uri, &HeaderMap::new()), (None, None));
    }
}
