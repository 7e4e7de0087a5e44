//! Outgoing HTTP, in one place: the client that calls LLM providers and the lean client that
//! exports spans.
//!
//! - **Providers** ([`ProviderClient`]): hyper-util's pooled client over hyper-rustls (rustls
//!   with aws-lc-rs and the platform's verifier, no OpenSSL) when the provider is reached
//!   directly; **reqwest** when an egress proxy or an extra CA is configured, for what an
//!   egress path needs: an HTTP proxy for `http://` upstreams and a CONNECT tunnel for
//!   `https://` ones, proxy credentials, `NO_PROXY`, extra root certificates
//!   (`LLM_CA_CERT_FILE`). Proxies come from the settings (`HTTPS_PROXY`, `HTTP_PROXY`,
//!   `ALL_PROXY`, `NO_PROXY`), never from reqwest's own reading of the environment, so the
//!   settings stay the one reader of the environment. Redirects are not followed either way: a
//!   provider that redirects is misconfigured, and the caller turns a 3xx into a clear error.
//!   Why two: reqwest's per-call layers cost every call (its redirect layer parses the URL
//!   twice even with redirects off); the direct path sends what reqwest would (the same
//!   headers, `Accept: */*` included).
//! - **OTLP export: hyper-util's pooled client** over hyper-rustls, driven by the export
//!   thread's own single-threaded runtime. A collector is reached directly (no proxy), and this
//!   client costs about 25,000 fewer instructions per call than reqwest's layers
//!   (BENCHMARKS.md), which matters at a few batches per second less than per request, but the
//!   export thread shares the cores with requests.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::ProxySettings;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The client for calls to LLM providers: pooled HTTP/1.1, no redirects, the configured
/// proxies and extra root certificates. Errors name the setting at fault.
fn provider_client(
    connect_timeout: Duration,
    proxy: &ProxySettings,
    extra_ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // The provider client retries itself (llm/openai.rs). With no retries allowed, reqwest's
        // retry layer does not clone every request in case it needs to send it again.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .http1_only()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT);
    let no_proxy = proxy
        .no_proxy
        .as_deref()
        .and_then(reqwest::NoProxy::from_string);
    for (var, url) in [
        ("HTTPS_PROXY", &proxy.https),
        ("HTTP_PROXY", &proxy.http),
        ("ALL_PROXY", &proxy.all),
    ] {
        let Some(url) = url else { continue };
        let configured = match var {
            "HTTPS_PROXY" => reqwest::Proxy::https(url.expose()),
            "HTTP_PROXY" => reqwest::Proxy::http(url.expose()),
            _ => reqwest::Proxy::all(url.expose()),
        }
        // reqwest's message would quote the URL, credentials included: ours does not.
        .map_err(|_| format!("invalid configuration: {var}: not a usable proxy URL"))?;
        builder = builder.proxy(configured.no_proxy(no_proxy.clone()));
    }
    if let Some(path) = extra_ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            format!("invalid configuration: LLM_CA_CERT_FILE={path:?}: cannot read it: {e}")
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| {
                format!(
                    "invalid configuration: LLM_CA_CERT_FILE={path:?}: expected PEM certificates"
                )
            })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the provider HTTP client: {}", describe(&e)))
}

/// The client of one provider. Calls go through hyper-util's pooled client (what reqwest is
/// built on) unless an egress proxy or an extra CA is configured, which reqwest provides
/// (proxy tunnels, credentials, `NO_PROXY`, extra roots). reqwest's layers cost every call:
/// its redirect layer, installed even with redirects off, parses the URL going out and the
/// answer's URL coming back (about 14,000 instructions a call; BENCHMARKS.md, issue 18).
#[derive(Debug, Clone)]
pub enum ProviderClient {
    /// Straight to the provider.
    Direct(HttpClient),
    /// Through reqwest: a proxy or an extra CA is configured.
    Proxied(reqwest::Client),
}

/// An error of a provider call, with its cause chain ([`describe`] it).
pub type CallError = Box<dyn std::error::Error + Send + Sync>;

/// A provider's answer: its head, and its body read whole or a chunk at a time.
#[derive(Debug)]
pub struct ProviderResponse {
    /// The status.
    pub status: StatusCode,
    /// The HTTP version spoken.
    pub version: Version,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The address connected to: the provider's, or the egress proxy's.
    pub peer: Option<SocketAddr>,
    body: ProviderBody,
}

#[derive(Debug)]
enum ProviderBody {
    Direct(Incoming),
    Proxied(reqwest::Body),
}

impl ProviderClient {
    /// The client for one provider; errors name the setting at fault.
    pub fn new(
        connect_timeout: Duration,
        proxy: &ProxySettings,
        extra_ca_file: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        if proxy.is_set() || extra_ca_file.is_some() {
            return provider_client(connect_timeout, proxy, extra_ca_file).map(Self::Proxied);
        }
        client(connect_timeout)
            .map(Self::Direct)
            .map_err(|e| format!("cannot set up the provider HTTP client: {e}"))
    }

    /// Sends one request (`uri` and `url` name the same endpoint, for each client).
    pub async fn send(
        &self,
        method: Method,
        (url, uri): (&reqwest::Url, &Uri),
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<ProviderResponse, CallError> {
        match self {
            Self::Direct(client) => {
                // What reqwest sends when the caller sets none.
                headers
                    .entry(header::ACCEPT)
                    .or_insert(HeaderValue::from_static("*/*"));
                let response = client.request(request(method, uri, headers, body)).await?;
                let peer = response
                    .extensions()
                    .get::<HttpInfo>()
                    .map(HttpInfo::remote_addr);
                let (head, body) = response.into_parts();
                Ok(ProviderResponse {
                    status: head.status,
                    version: head.version,
                    headers: head.headers,
                    peer,
                    body: ProviderBody::Direct(body),
                })
            }
            Self::Proxied(client) => {
                let mut request = reqwest::Request::new(method, url.clone());
                *request.headers_mut() = headers;
                *request.body_mut() = Some(body.into());
                let response = client
                    .execute(request)
                    .await
                    .map_err(reqwest::Error::without_url)?;
                let peer = response.remote_addr();
                let (head, body) = axum::http::Response::from(response).into_parts();
                Ok(ProviderResponse {
                    status: head.status,
                    version: head.version,
                    headers: head.headers,
                    peer,
                    body: ProviderBody::Proxied(body),
                })
            }
        }
    }
}

impl ProviderResponse {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, CallError> {
        loop {
            let frame = match &mut self.body {
                ProviderBody::Direct(body) => body.frame().await.transpose()?,
                ProviderBody::Proxied(body) => body
                    .frame()
                    .await
                    .transpose()
                    .map_err(reqwest::Error::without_url)?,
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                return Ok(Some(data));
            }
        }
    }

    /// The whole body (a body that came in one piece is not copied).
    pub async fn bytes(mut self) -> Result<Bytes, CallError> {
        let Some(first) = self.chunk().await? else {
            return Ok(Bytes::new());
        };
        let Some(second) = self.chunk().await? else {
            return Ok(first);
        };
        let mut whole = bytes::BytesMut::from(&first[..]);
        whole.extend_from_slice(&second);
        while let Some(chunk) = self.chunk().await? {
            whole.extend_from_slice(&chunk);
        }
        Ok(whole.freeze())
    }
}

/// A pooled client sending whole bodies (OTLP export, and providers reached directly).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http` and `https` URLs. No proxy and no redirects: a collector answers
/// directly, and the exporter does its own retries.
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
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
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

/// A response body of at most `limit` bytes, with its trailers (gRPC's status); `None` once
/// it is longer: the rest is not read (the connection is then not reused), so a huge or
/// endless answer costs at most `limit` bytes.
pub async fn collect_at_most(
    mut body: Incoming,
    limit: usize,
) -> Result<Option<(Bytes, Option<HeaderMap>)>, hyper::Error> {
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(chunk) if data.len() + chunk.len() > limit => return Ok(None),
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok(Some((data.into(), trailers)))
}

/// How a transport step failed.
pub enum Transport {
    /// The deadline passed.
    Timeout,
    /// Anything else, with its cause chain.
    Broken(String),
}

/// Runs a client future (a request, reading a body) under a deadline, classifying its failure.
pub async fn within<T, E: Into<CallError>>(
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Transport> {
    match tokio::time::timeout(limit, future).await {
        Err(_) => Err(Transport::Timeout),
        Ok(Err(e)) => Err(Transport::Broken(describe(&*e.into()))),
        Ok(Ok(value)) => Ok(value),
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as a wait from
/// `now`. A date in the past means no wait; anything else unreadable is `None`.
pub fn retry_after(
    value: &axum::http::HeaderValue,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        let value = |v: &'static str| HeaderValue::from_static(v);
        assert_eq!(retry_after(&value("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&value(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&value("Wed, 21 Oct 2015 07:28:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&value("Wed, 21 Oct 2015 07:27:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        for bad in ["soon", "-1", "1.5", ""] {
            assert_eq!(retry_after(&value(bad), now), None, "{bad}");
        }
        assert!(retry_after(&value("1"), SystemTime::now()).is_some());
    }
}
