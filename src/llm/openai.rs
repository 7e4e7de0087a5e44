//! The HTTP client of every remote provider: Groq, OpenAI and any OpenAI-compatible API
//! (chat completions, the Responses API, embeddings), and Anthropic's Messages API (native, or
//! an OpenAI-shaped chat call translated by `anthropic.rs`).
//!
//! One pooled reqwest client per provider (`crate::http_client::provider_client`, with the
//! configured egress proxy). Each attempt is its own HTTP client span carrying `traceparent`
//! upstream; retries (connection errors, 429, 5xx) back off exponentially with jitter and all
//! fit inside one overall deadline. Redirects are not followed and not retried. A stream counts
//! as open once its first bytes arrive, so that a stream failing before them is retried (or
//! falls back to the route's next target) before the client has received anything.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, Uri};
use bytes::Bytes;
use serde::Deserialize;
use tracing::{Span, field::Empty};

use super::wire::parse_completion;
use super::{
    Answer, Attempt, ByteStream, Completion, LlmError, Operation, Redactor, UpstreamReport,
    UpstreamRequest, anthropic, embeddings, responses,
};
use crate::config::{ProviderKind, ProviderSettings, ProxySettings};
use crate::http_client::{
    CallError, ProviderClient, ProviderResponse, Transport, retry_after, within,
};

/// Longest `Retry-After` we wait out ourselves; beyond it the 429 goes to the client.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// First back-off step; doubled on each retry, plus up to 100% jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// `Retry-After` for a 429 whose provider gave no hint at all (README, "Errors").
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// OpenAI's (Groq, OpenAI, OpenAI-compatible servers).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// A remote provider.
#[derive(Debug)]
pub struct OpenAiCompatible {
    dialect: Dialect,
    /// The configured name (`llmobs.provider.name` on attempt spans).
    name: Arc<str>,
    /// `gen_ai.provider.name` on attempt spans.
    gen_ai_name: Arc<str>,
    client: ProviderClient,
    /// Parsed once: parsing a URL string on every request showed in profiles. For Anthropic
    /// `chat_url` is its Messages endpoint (an OpenAI chat call is translated to it).
    chat_url: Endpoint,
    responses_url: Endpoint,
    embeddings_url: Endpoint,
    models_url: Endpoint,
    /// `Authorization` and the configured extra headers, sent with every request.
    headers: HeaderMap,
    host: String,
    port: u16,
    timeout: Duration,
    max_retries: u32,
    /// Removes the key (and anything key-like) from the upstream text we relay.
    redactor: Redactor,
}

/// A successful HTTP attempt: a whole answer (the body to relay and what it says), or a
/// stream with its first bytes.
enum Reply {
    Complete(Bytes, Completion),
    Stream(ProviderResponse, Bytes),
}

/// An endpoint, parsed once for each client: reqwest's `Url` (proxied calls, `url.full`) and
/// the `Uri` hyper-util takes.
#[derive(Debug)]
struct Endpoint {
    url: reqwest::Url,
    uri: Uri,
}

impl Endpoint {
    fn new(url: reqwest::Url) -> Result<Self, String> {
        let uri = url
            .as_str()
            .parse()
            .map_err(|e| format!("invalid upstream URL {url}: {e}"))?;
        Ok(Self { url, uri })
    }

    fn both(&self) -> (&reqwest::Url, &Uri) {
        (&self.url, &self.uri)
    }
}

/// One failed attempt, and whether another may follow.
struct AttemptError {
    error: LlmError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl OpenAiCompatible {
    /// Builds the client; the key goes into a sensitive header value once.
    pub fn new(
        settings: &ProviderSettings,
        name: Arc<str>,
        gen_ai_name: Arc<str>,
        proxy: &ProxySettings,
        extra_ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let timeout = settings.timeout;
        let endpoint = |path: &str| {
            reqwest::Url::parse(&format!("{}/{path}", settings.base_url))
                .map_err(|e| format!("invalid upstream URL {}: {e}", settings.base_url))
                .and_then(Endpoint::new)
        };
        let dialect = if settings.kind == ProviderKind::Anthropic {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        };
        let chat_url = match dialect {
            Dialect::OpenAi => endpoint("chat/completions")?,
            Dialect::Anthropic => endpoint("v1/messages")?,
        };
        let host = chat_url.url.host_str().unwrap_or_default().to_owned();
        let port = chat_url.url.port_or_known_default().unwrap_or(443);
        let mut headers = HeaderMap::new();
        for (header, value) in &settings.headers {
            let (Ok(header), Ok(mut value)) = (
                header::HeaderName::try_from(header.as_str()),
                HeaderValue::try_from(value.expose()),
            ) else {
                return Err(format!(
                    "provider {}: invalid header {header}",
                    settings.name
                ));
            };
            // Extra headers often carry credentials (`api-key`, `x-portkey-api-key`).
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        if let Some(key) = &settings.api_key {
            // A key with characters no header can carry can never authenticate; sending it
            // without one makes the upstream answer 401, which maps to `authentication`.
            let (name, value) = match dialect {
                Dialect::OpenAi => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
                Dialect::Anthropic => (
                    header::HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
            };
            if let Ok(mut value) = HeaderValue::from_str(&value) {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        if dialect == Dialect::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::ANTHROPIC_VERSION),
            );
        }
        let client =
            ProviderClient::new(settings.connect_timeout.min(timeout), proxy, extra_ca_file)?;
        Ok(Self {
            dialect,
            name,
            gen_ai_name,
            client,
            models_url: match dialect {
                Dialect::OpenAi => endpoint("models")?,
                Dialect::Anthropic => endpoint("v1/models")?,
            },
            responses_url: endpoint("responses")?,
            embeddings_url: endpoint("embeddings")?,
            chat_url,
            headers,
            host,
            port,
            timeout,
            max_retries: settings.max_retries,
            redactor: Redactor::new(settings.api_key.iter().map(|k| k.expose())),
        })
    }

    /// The upstream's host and port.
    pub fn server(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// What removes this provider's key and key-like text from relayed upstream text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A whole completion (the raw body, relayed as is, and what it says), or an open stream
    /// of SSE bytes. A stream's deadline covers the wait for its first bytes; after that each
    /// chunk may take up to the timeout (a long answer is not cut off).
    pub async fn answer(
        &self,
        request: &UpstreamRequest,
        attempt: &Attempt<'_>,
        stream: bool,
        parent: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Answer, LlmError> {
        let operation = request.operation;
        let call = Call {
            operation,
            url: match (self.dialect, operation) {
                (Dialect::OpenAi, Operation::Responses) => &self.responses_url,
                (Dialect::OpenAi, Operation::Embeddings) => &self.embeddings_url,
                _ => &self.chat_url,
            },
            body: match (self.dialect, operation) {
                (Dialect::Anthropic, Operation::Chat) => {
                    let openai: serde_json::Value = serde_json::from_slice(&attempt.body)
                        .map_err(|e| LlmError::BadResponse(e.to_string()))?;
                    anthropic::messages_request(&openai, attempt.model, stream)
                        .map_err(LlmError::Untranslatable)?
                }
                _ => attempt.body.clone(),
            },
            forwarded_headers: &request.forwarded_headers,
        };
        let (response, first) = match self.send(&call, attempt, stream, parent, report).await? {
            Reply::Complete(raw, completion) => return Ok(Answer::Complete(raw, completion)),
            Reply::Stream(response, first) => (response, first),
        };
        let idle = self.timeout;
        let rest = futures_util::stream::unfold(response, move |mut response| async move {
            let next = match tokio::time::timeout(idle, response.chunk()).await {
                Err(_) => Some(Err(LlmError::Timeout(idle))),
                Ok(Ok(None)) => None,
                Ok(Ok(Some(bytes))) => Some(Ok(bytes)),
                Ok(Err(e)) => Some(Err(broken_stream(e))),
            };
            next.map(|item| (item, response))
        });
        let first = futures_util::stream::once(async move { Ok::<_, LlmError>(first) });
        let stream: ByteStream = Box::pin(futures_util::StreamExt::chain(first, rest));
        Ok(Answer::Stream(match (self.dialect, operation) {
            // An OpenAI client asked: Anthropic's events become OpenAI chunks.
            (Dialect::Anthropic, Operation::Chat) => {
                anthropic_as_openai(stream, request.include_usage(), self.redactor.clone())
            }
            _ => stream,
        }))
    }

    /// Whether it implements an API.
    pub fn supports(&self, operation: Operation) -> bool {
        match self.dialect {
            Dialect::OpenAi => operation != Operation::Messages,
            Dialect::Anthropic => matches!(operation, Operation::Chat | Operation::Messages),
        }
    }

    /// A successful whole answer: the body to relay and what it says.
    fn read(&self, operation: Operation, bytes: Bytes) -> Result<(Bytes, Completion), LlmError> {
        match (self.dialect, operation) {
            (Dialect::OpenAi, Operation::Responses) => {
                responses::parse_response(&bytes).map(|c| (bytes, c))
            }
            (Dialect::OpenAi, Operation::Embeddings) => {
                embeddings::parse_embeddings(&bytes).map(|c| (bytes, c))
            }
            (Dialect::Anthropic, Operation::Chat) => anthropic::chat_completion(&bytes, unix_now()),
            (Dialect::Anthropic, _) => anthropic::parse_message(&bytes).map(|c| (bytes, c)),
            (Dialect::OpenAi, _) => parse_completion(&bytes).map(|c| (bytes, c)),
        }
    }

    /// A failed answer, in the provider's own error format.
    fn error_for_status(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> (LlmError, bool) {
        match self.dialect {
            Dialect::OpenAi => error_for_status(status, headers, body, &self.redactor),
            Dialect::Anthropic => {
                anthropic::error_for_status(status, headers, body, &self.redactor)
            }
        }
    }

    /// Anthropic's `POST /v1/messages/count_tokens`, relayed as is (not an LLM call).
    pub async fn count_tokens(
        &self,
        body: Bytes,
        forwarded_headers: &[(header::HeaderName, HeaderValue)],
    ) -> Result<Bytes, LlmError> {
        let mut url = self.chat_url.url.clone();
        url.set_path(&format!("{}/count_tokens", self.chat_url.url.path()));
        let endpoint = Endpoint::new(url).map_err(LlmError::Connection)?;
        let mut headers = self.headers.clone();
        pass_on(&mut headers, forwarded_headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.fetch(Method::POST, &endpoint, headers, body).await
    }

    /// `GET {base}/models`, relayed as is.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        self.fetch(
            Method::GET,
            &self.models_url,
            self.headers.clone(),
            Bytes::new(),
        )
        .await
    }

    /// One request outside a call (no span, no retry) within the timeout: its body, or its
    /// error in the provider's format.
    async fn fetch(
        &self,
        method: Method,
        endpoint: &Endpoint,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Bytes, LlmError> {
        let failed = |failure| match failure {
            Transport::Timeout => LlmError::Timeout(self.timeout),
            Transport::Broken(detail) => LlmError::Connection(detail),
        };
        let send = self.client.send(method, endpoint.both(), headers, body);
        let response = within(self.timeout, send).await.map_err(failed)?;
        let status = response.status;
        let headers = response.headers.clone();
        let bytes = within(self.timeout, response.bytes())
            .await
            .map_err(failed)?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(self.error_for_status(status.as_u16(), &headers, &bytes).0)
    }

    /// Sends the chat request, retrying what is worth retrying within the deadline.
    async fn send(
        &self,
        call: &Call<'_>,
        attempt: &Attempt<'_>,
        stream: bool,
        parent: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Reply, LlmError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut retry: u32 = 0;
        let result = loop {
            // Never entered: it ends when dropped, after the attempt.
            let span = tracing::info_span!(
                parent: parent,
                "POST",
                otel.name = "POST",
                otel.kind = "client",
                otel.status_code = Empty,
                gen_ai.provider.name = &*self.gen_ai_name,
                gen_ai.request.model = attempt.model,
                llmobs.provider.name = &*self.name,
                llmobs.attempt.kind = match (retry, attempt.fallback) {
                    (0, false) => "initial",
                    (0, true) => "fallback",
                    _ => "retry",
                },
                http.request.method = "POST",
                http.request.resend_count = (retry > 0).then_some(i64::from(retry)),
                http.response.status_code = Empty,
                network.peer.address = Empty,
                network.peer.port = Empty,
                network.protocol.version = Empty,
                server.address = %self.host,
                server.port = i64::from(self.port),
                url.full = %call.url.url,
                error.type = Empty,
            );
            let outcome = self.attempt(call, stream, deadline, &span, report).await;
            let failure = match outcome {
                Ok(answer) => break Ok(answer),
                Err(failure) => failure,
            };
            span.record("otel.status_code", "error");
            if !failure.retryable || retry >= self.max_retries {
                break Err(failure.error);
            }
            let backoff = failure.retry_after.unwrap_or_else(|| {
                let step = BASE_BACKOFF * 2u32.saturating_pow(retry);
                step + step.mul_f64(fastrand::f64())
            });
            if failure.retry_after.is_some_and(|d| d > MAX_RETRY_AFTER)
                || Instant::now() + backoff >= deadline
            {
                break Err(failure.error);
            }
            tracing::debug!(parent: &span, retry, ?backoff, error = %failure.error, "retrying the upstream");
            report.retries.push(match failure.error {
                LlmError::RateLimited { .. } => "429",
                LlmError::UpstreamServer { .. } => "5xx",
                _ => "connection",
            });
            tokio::time::sleep(backoff).await;
            retry += 1;
        };
        report.wait += started.elapsed();
        result
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        stream: bool,
        deadline: Instant,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Reply, AttemptError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut headers = self.headers.clone();
        pass_on(&mut headers, call.forwarded_headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        crate::telemetry::write_traceparent(span, &mut headers);
        let transport_failure = |failure: Transport| {
            let (kind, error, retryable) = match failure {
                // A timeout used up the deadline: nothing is left for a retry.
                Transport::Timeout => ("timeout", LlmError::Timeout(self.timeout), false),
                Transport::Broken(detail) => {
                    ("connection_error", LlmError::Connection(detail), true)
                }
            };
            span.record("error.type", kind);
            AttemptError {
                error,
                retryable,
                retry_after: None,
            }
        };

        // Only the wait for a stream's headers is bounded here; its chunks have an idle timeout.
        let send = self
            .client
            .send(Method::POST, call.url.both(), headers, call.body.clone());
        let response = within(remaining, send).await.map_err(transport_failure)?;
        let status = response.status;
        let failed = !status.is_success();
        // The address actually connected to: the provider's, or the egress proxy's.
        let peer = response.peer;
        tracing::record_all!(
            span,
            http.response.status_code = i64::from(status.as_u16()),
            network.peer.address = peer.map(|p| crate::telemetry::address_text(p.ip().to_canonical())),
            network.peer.port = peer.map(|p| i64::from(p.port())),
            network.protocol.version = crate::telemetry::protocol_version(response.version),
            error.type = failed.then(|| {
                if status.is_client_error() || status.is_server_error() {
                    status.as_str()
                } else {
                    "bad_response"
                }
            }),
        );
        record_rate_limits(&response.headers, report);
        let retry_after = response
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| retry_after(v, SystemTime::now()));
        if stream && status.is_success() {
            return first_bytes(response, deadline, span).await;
        }
        let headers = if failed {
            response.headers.clone()
        } else {
            HeaderMap::new()
        };
        // What is left of the same deadline, not a fresh one: the call as a whole must end
        // within LLM_TIMEOUT_SECS.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bytes = within(remaining, response.bytes())
            .await
            .map_err(transport_failure)?;

        if status.is_success() {
            return self
                .read(call.operation, bytes)
                .map(|(raw, completion)| Reply::Complete(raw, completion))
                .map_err(|error| {
                    span.record("error.type", "bad_response");
                    AttemptError {
                        error,
                        retryable: false,
                        retry_after: None,
                    }
                });
        }
        let (error, retryable) = self.error_for_status(status.as_u16(), &headers, &bytes);
        Err(AttemptError {
            error,
            retryable,
            retry_after,
        })
    }
}

/// What one call sends: where, the body, and the client's headers it passes on.
struct Call<'a> {
    operation: Operation,
    url: &'a Endpoint,
    body: Bytes,
    forwarded_headers: &'a [(header::HeaderName, HeaderValue)],
}

/// The client's headers the provider must see (`anthropic-version` replaces ours; every
/// `anthropic-beta` value is kept).
fn pass_on(headers: &mut HeaderMap, forwarded: &[(header::HeaderName, HeaderValue)]) {
    for (name, _) in forwarded {
        headers.remove(name);
    }
    for (name, value) in forwarded {
        headers.append(name.clone(), value.clone());
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Anthropic's stream as OpenAI chat chunks: split into events, each translated.
fn anthropic_as_openai(
    upstream: ByteStream,
    include_usage: bool,
    redactor: Redactor,
) -> ByteStream {
    use futures_util::StreamExt;
    let translator = anthropic::StreamTranslator::new(include_usage, unix_now());
    let state = (
        upstream,
        super::sse::SseSplitter::default(),
        translator,
        false,
    );
    Box::pin(
        futures_util::stream::unfold(
            state,
            move |(mut upstream, mut splitter, mut translator, ended)| {
                let redactor = redactor.clone();
                async move {
                    if ended {
                        return None;
                    }
                    let translated = match upstream.next().await {
                        None => {
                            let rest = splitter.finish();
                            let out = match rest {
                                Some(event) => translator.translate(&event, &redactor),
                                None => Ok(Vec::new()),
                            };
                            return Some((
                                out.map(|e| Bytes::from(e.concat())),
                                (upstream, splitter, translator, true),
                            ));
                        }
                        Some(Err(error)) => Err(error),
                        Some(Ok(bytes)) => splitter.push(&bytes).and_then(|events| {
                            let mut out = Vec::new();
                            for event in events {
                                out.extend(translator.translate(&event, &redactor)?);
                            }
                            Ok(out)
                        }),
                    };
                    let ended = translated.is_err();
                    Some((
                        translated.map(|e| Bytes::from(e.concat())),
                        (upstream, splitter, translator, ended),
                    ))
                }
            },
        )
        .filter(|item| std::future::ready(!matches!(item, Ok(bytes) if bytes.is_empty()))),
    )
}

/// Waits (within the deadline) for a stream's first bytes: until they arrive nothing has been
/// relayed, so a failure here is retried or falls back like a failed status.
async fn first_bytes(
    mut response: ProviderResponse,
    deadline: Instant,
    span: &Span,
) -> Result<Reply, AttemptError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let failure = |kind: &'static str, error: LlmError, retryable: bool| {
        span.record("error.type", kind);
        Err(AttemptError {
            error,
            retryable,
            retry_after: None,
        })
    };
    match tokio::time::timeout(remaining, response.chunk()).await {
        Ok(Ok(Some(first))) => Ok(Reply::Stream(response, first)),
        Ok(Ok(None)) => failure(
            "connection_error",
            LlmError::Connection("the stream ended before its first event".into()),
            true,
        ),
        Ok(Err(e)) => failure("connection_error", broken_stream(e), true),
        // The deadline is used up: nothing is left for a retry.
        Err(_) => failure("timeout", LlmError::Timeout(remaining), false),
    }
}

/// A stream whose connection broke.
fn broken_stream(error: CallError) -> LlmError {
    let detail = crate::http_client::describe(&*error);
    LlmError::Connection(format!("the stream broke: {detail}"))
}

/// Maps an upstream status other than 2xx to our error and whether it is worth retrying. A
/// redirect (or any other 1xx/3xx) is a misconfigured base URL: one attempt, a clear error.
fn error_for_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    redactor: &Redactor,
) -> (LlmError, bool) {
    super::error::error_for_status(
        status,
        headers,
        parse_error_body(body, status, redactor),
        || client_retry_after(headers, SystemTime::now()),
        redactor,
    )
}

/// The `Retry-After` a client gets with a 429, in whole seconds: the provider's own (seconds or
/// HTTP date); else, from its rate-limit headers, the longest `x-ratelimit-reset-*` among the
/// limits it says are exhausted (`x-ratelimit-remaining-*: 0`), or the shortest reset given;
/// else [`DEFAULT_RETRY_AFTER`]. A 429 always tells the client when to come back.
fn client_retry_after(headers: &HeaderMap, now: SystemTime) -> u64 {
    let wait = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| retry_after(v, now))
        .or_else(|| {
            let resets: Vec<(bool, Duration)> = ["requests", "tokens"]
                .into_iter()
                .filter_map(|kind| {
                    let value = |name: String| headers.get(name)?.to_str().ok();
                    let reset = parse_reset(value(format!("x-ratelimit-reset-{kind}"))?)?;
                    let exhausted = value(format!("x-ratelimit-remaining-{kind}"))
                        .is_some_and(|v| v.trim().parse::<f64>() == Ok(0.0));
                    Some((exhausted, reset))
                })
                .collect();
            let exhausted = resets.iter().filter(|(e, _)| *e).map(|(_, d)| *d).max();
            exhausted.or_else(|| resets.iter().map(|(_, d)| *d).min())
        })
        .unwrap_or(DEFAULT_RETRY_AFTER);
    // Whole seconds, rounded up: retrying early only earns another 429.
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A rate-limit reset as providers write it: Groq's and OpenAI's `2m59.56s`, `7.66s`, `20ms`,
/// `1h0m0s`, or plain seconds (`12`, `0.5`).
fn parse_reset(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = [("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0)]
            .into_iter()
            .find(|(unit, _)| rest.starts_with(unit))?;
        total += number * seconds;
        rest = &rest[unit.len()..];
    }
    Duration::try_from_secs_f64(total).ok()
}

fn record_rate_limits(headers: &HeaderMap, report: &mut UpstreamReport) {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(n) = number("x-ratelimit-remaining-requests") {
        report.remaining_requests = Some(n);
    }
    if let Some(n) = number("x-ratelimit-remaining-tokens") {
        report.remaining_tokens = Some(n);
    }
}

/// Reads OpenAI's/Groq's `{"error": {"message", "type", "code"}}`, scrubbing key-like text.
fn parse_error_body(bytes: &[u8], status: u16, redactor: &Redactor) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: Option<String>,
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(body) => (
            redactor.redact(
                &body
                    .error
                    .message
                    .unwrap_or_else(|| format!("upstream answered HTTP {status}")),
            ),
            body.error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(redactor.redact(&s)),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
        ),
        Err(_) => (format!("the LLM provider answered HTTP {status}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_reset_durations_are_read_as_groq_and_openai_write_them() {
        for (text, millis) in [
            ("2m59.56s", 179_560),
            ("7.66s", 7_660),
            ("20ms", 20),
            ("1h0m0s", 3_600_000),
            ("6m0s", 360_000),
            ("12", 12_000),
            ("0.5", 500),
        ] {
            assert_eq!(
                parse_reset(text),
                Some(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in ["", "soon", "5x", "m", "-1s"] {
            assert_eq!(parse_reset(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_429_without_retry_after_takes_it_from_the_rate_limit_headers() {
        let now = SystemTime::now();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        // The provider's own Retry-After wins, seconds or date.
        let given = headers(&[("retry-after", "3"), ("x-ratelimit-reset-tokens", "50s")]);
        assert_eq!(client_retry_after(&given, now), 3);
        // The exhausted limit's reset, rounded up.
        let tokens_out = headers(&[
            ("x-ratelimit-remaining-requests", "14399"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ]);
        assert_eq!(client_retry_after(&tokens_out, now), 8);
        // Nothing says which is exhausted: the earliest reset.
        let unknown = headers(&[
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ]);
        assert_eq!(client_retry_after(&unknown, now), 8);
        assert_eq!(
            client_retry_after(&HeaderMap::new(), now),
            1,
            "the documented default"
        );
    }

    #[test]
    fn error_body_message_and_code_are_read_and_scrubbed() {
        let (message, code) = parse_error_body(
            br#"{"error":{"message":"Invalid API Key gsk_live_abcdef","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            401,
            &Redactor::default(),
        );
        assert_eq!(message, "Invalid API Key [redacted]");
        assert_eq!(code.as_deref(), Some("invalid_api_key"));
    }
}
