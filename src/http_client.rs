//! The process's one outgoing-HTTP set-up: hyper-util's pooled HTTP/1.1 client over
//! hyper-rustls (aws-lc-rs, the platform's certificate verifier), for the LLM upstream and for
//! OTLP export alike.
//!
//! Why not reqwest: it turns each request's `Uri` back into a `Url` twice (redirect policy,
//! response URL) and wraps every call in redirect and retry layers the gateway does not use,
//! about 25,000 instructions per request (BENCHMARKS.md); its blocking client, used for OTLP,
//! hands each export to a runtime thread of its own and back. hyper-util and hyper-rustls are
//! the pieces reqwest itself is built on.

use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled client sending whole bodies.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http` and `https` URLs. No proxy and no redirects: an LLM API and a collector
/// answer directly, and callers do their own retries.
pub fn client(connect_timeout: Duration) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(https))
}

/// A request with a whole body.
pub fn request(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers;
    request
}

/// How a transport step failed.
pub enum Transport {
    /// The deadline passed.
    Timeout,
    /// Anything else, with its cause chain.
    Broken(String),
}

/// Runs a client future (a request, reading a body) under a deadline, classifying its failure.
pub async fn within<T, E: std::error::Error>(
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Transport> {
    match tokio::time::timeout(limit, future).await {
        Err(_) => Err(Transport::Timeout),
        Ok(Err(e)) => Err(Transport::Broken(describe(&e))),
        Ok(Ok(value)) => Ok(value),
    }
}

/// A whole response body.
pub async fn collect(body: Incoming) -> Result<Bytes, hyper::Error> {
    Ok(body.collect().await?.to_bytes())
}

/// An error with its cause chain (the top-level message alone says little).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `url` parsed, if it is an absolute `http://` or `https://` URL with a host.
pub fn http_uri(url: &str) -> Option<Uri> {
    url.parse::<Uri>().ok().filter(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
    })
}
