//! OTLP/gRPC: the `TraceService/Export` unary call, made by hand over one HTTP/2 connection
//! (hyper's HTTP/2 client), carrying the protobuf `wire` writes for OTLP/HTTP in gRPC's framing.
//!
//! Why by hand: opentelemetry-otlp's tonic exporter only logs a partial success and reports the
//! export as successful, so spans a collector refused were counted exported; and it converts
//! every span into opentelemetry-proto's structs first, the cost the HTTP path avoids. tonic's
//! generated client needs those structs too; tonic's channel with a codec of our own bytes
//! would return the answer, but its message-size limit fails the call as OUT_OF_RANGE, a status
//! a collector may send too and the spec retries, so an answer too long to read would re-send
//! spans the collector took. A unary call is small: POST the framed message with
//! `content-type: application/grpc` and `te: trailers`, read one framed message and the
//! `grpc-status` trailer, or the status alone in the headers ("trailers-only"). What tonic has
//! besides (streaming, compression negotiation, load balancing) export does not use. hyper's
//! HTTP/2 client (h2) replaces tonic, prost and opentelemetry-otlp in the build.
//!
//! No TLS, as before (opentelemetry-otlp was built without its TLS features): an `https://`
//! gRPC endpoint is refused at start-up; OTLP/HTTP does TLS.
//!
//! Statuses follow the OTLP spec: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
//! UNAVAILABLE and DATA_LOSS are retried, RESOURCE_EXHAUSTED only when the collector says when
//! (`google.rpc.RetryInfo` in `grpc-status-details-bin`), and `RetryInfo`'s delay is honoured.
//! An HTTP error without a gRPC status maps as gRPC says (429, 502, 503, 504: UNAVAILABLE).
//! Only the code is logged, never `grpc-message`: a collector may echo credentials in it.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::header::{HeaderMap, HeaderValue};
use axum::http::{Method, Request, StatusCode, Uri, Version};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::http::{Failure, MAX_ANSWER_BYTES, failed};
use super::wire::{Field, fields};
use crate::config::http_uri;
use crate::http_client::Transport::{Broken, Timeout};
use crate::http_client::{collect_at_most, describe, within};

/// The method's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC message's prefix: a compressed flag and the big-endian length.
pub const MESSAGE_PREFIX: usize = 5;

/// gRPC's status codes by number, for the log.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Fills in the prefix of `buf`, which holds [`MESSAGE_PREFIX`] bytes then the message: an
/// uncompressed message of that length.
pub fn frame(buf: &mut [u8]) -> Result<(), String> {
    let len = u32::try_from(buf.len() - MESSAGE_PREFIX)
        .map_err(|_| "a batch of more than 4 GiB cannot be sent over gRPC".to_owned())?;
    buf[0] = 0;
    buf[1..MESSAGE_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The collector's address and one HTTP/2 connection to it, opened on first use and again
/// once it has closed. Its task runs on the exporter's runtime, so only while exporting: a
/// close in between is seen at the next export, and a request that never left the closed
/// connection is sent at once on a new one.
#[derive(Debug)]
pub struct Channel {
    /// `http://host:port` and the method's path.
    uri: Uri,
    host: String,
    port: u16,
    connect_timeout: Duration,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Channel {
    /// A channel to the collector at `endpoint` (`http://host:port`; a path is ignored, as
    /// gRPC's is the method's); fails on a malformed or `https` endpoint. Connects lazily.
    pub fn new(endpoint: &str, connect_timeout: Duration) -> Result<Self, String> {
        let parsed = http_uri(endpoint)
            .ok_or_else(|| format!("OTLP endpoint {endpoint:?} is not an http(s) URL"))?;
        if parsed.scheme_str() == Some("https") {
            return Err(format!(
                "OTLP endpoint {endpoint:?}: gRPC export does not do TLS; use an http:// \
                 collector, or OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for an https one"
            ));
        }
        let (Some(authority), Some(host)) = (parsed.authority(), parsed.host()) else {
            return Err(format!("OTLP endpoint {endpoint:?} has no host"));
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query(EXPORT_PATH)
            .build()
            .map_err(|e| format!("OTLP endpoint {endpoint:?}: {e}"))?;
        Ok(Self {
            uri,
            // An IPv6 literal comes bracketed.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: parsed.port_u16().unwrap_or(80),
            connect_timeout,
            connection: Mutex::new(None),
        })
    }

    /// One `Export` call with `body` (a framed message), answered within `limit`: the answer
    /// message (empty if there is none or it is too long to read).
    pub async fn export(
        &self,
        mut headers: HeaderMap,
        body: Bytes,
        limit: Duration,
    ) -> Result<Bytes, Failure> {
        if let Ok(timeout) = HeaderValue::try_from(timeout_header(limit)) {
            headers.insert("grpc-timeout", timeout);
        }
        let request = || {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = self.uri.clone();
            *request.version_mut() = Version::HTTP_2;
            *request.headers_mut() = headers.clone();
            request
        };
        let mut sender = self.connect(limit, true).await?;
        let mut sent = tokio::time::timeout(limit, sender.send_request(request())).await;
        if matches!(&sent, Ok(Err(e)) if e.is_canceled()) {
            // The kept connection closed before the request left: at once, on a new one.
            sender = self.connect(limit, false).await?;
            sent = tokio::time::timeout(limit, sender.send_request(request())).await;
        }
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(failed("cannot reach the collector")(Broken(describe(&e)))),
            Err(_) => return Err(failed("cannot reach the collector")(Timeout)),
        };
        let http_status = response.status();
        if http_status != StatusCode::OK {
            let code = from_http(http_status);
            let mut failure = status_failure(code, None);
            failure.message = format!("the collector answered {http_status} ({})", name(code));
            return Err(failure);
        }
        // Trailers-only: the status alone, no message.
        if let Some(code) = status(response.headers()) {
            return answer(code, response.headers(), Bytes::new());
        }
        let read = collect_at_most(response.into_body(), MESSAGE_PREFIX + MAX_ANSWER_BYTES);
        let Some((message, trailers)) = within(limit, read)
            .await
            .map_err(failed("the collector's answer broke off"))?
        else {
            // A message too long to read: a server sends one only for a successful call.
            return Ok(Bytes::new());
        };
        let trailers = trailers.unwrap_or_default();
        match status(&trailers) {
            Some(code) => answer(code, &trailers, message),
            None => Err(Failure {
                retry: false,
                delay: None,
                message: "the collector's gRPC answer ended without a status".into(),
            }),
        }
    }

    /// The open connection if `reuse` and it is still open, else a new one.
    async fn connect(
        &self,
        limit: Duration,
        reuse: bool,
    ) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let open = reuse
            .then(|| self.connection.lock().ok().and_then(|c| c.clone()))
            .flatten();
        if open.is_some() {
            // The connection's task last ran during the previous export: one turn of the
            // runtime lets it see what the socket says now (a close, a GOAWAY).
            tokio::task::yield_now().await;
        }
        if let Some(mut sender) = open
            && !sender.is_closed()
            && within(limit, sender.ready()).await.is_ok()
        {
            return Ok(sender);
        }
        let address = (self.host.as_str(), self.port);
        let stream = within(
            limit.min(self.connect_timeout),
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(failed("cannot reach the collector"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = within(
            limit,
            Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(failed("cannot reach the collector"))?;
        // Ends when the connection closes; its errors show as the calls' errors.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if let Ok(mut open) = self.connection.lock() {
            *open = Some(sender.clone());
        }
        Ok(sender)
    }
}

/// The outcome of a call whose gRPC status is `code`: the answer message when OK.
fn answer(code: u32, metadata: &HeaderMap, message: Bytes) -> Result<Bytes, Failure> {
    if code != 0 {
        return Err(status_failure(code, retry_info(metadata)));
    }
    // An uncompressed message (we accept no compression), whole; anything else is unreadable,
    // which the spec says means full success.
    let whole = message.len() >= MESSAGE_PREFIX
        && message[0] == 0
        && message[1..MESSAGE_PREFIX] == ((message.len() - MESSAGE_PREFIX) as u32).to_be_bytes();
    Ok(if whole {
        message.slice(MESSAGE_PREFIX..)
    } else {
        Bytes::new()
    })
}

/// The failure for a non-OK status, retried as the OTLP spec says.
fn status_failure(code: u32, retry_info: Option<Duration>) -> Failure {
    let retry = match code {
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
        1 | 4 | 10 | 11 | 14 | 15 => true,
        // RESOURCE_EXHAUSTED: only if the collector can say when.
        8 => retry_info.is_some(),
        _ => false,
    };
    Failure {
        retry,
        delay: retry_info.filter(|delay| retry && !delay.is_zero()),
        message: format!("the collector answered gRPC status {}", name(code)),
    }
}

/// A status code's name, for the log.
fn name(code: u32) -> String {
    match CODES.get(code as usize) {
        Some(name) => format!("{code} {name}"),
        None => code.to_string(),
    }
}

/// The gRPC status for an HTTP error without one (gRPC's http-grpc-status-mapping).
fn from_http(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// `grpc-status`, if present and a number.
fn status(metadata: &HeaderMap) -> Option<u32> {
    metadata.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// `grpc-timeout`: at most 8 digits, in milliseconds while they fit, else in seconds.
fn timeout_header(limit: Duration) -> String {
    match limit.as_millis() {
        ms if ms < 100_000_000 => format!("{}m", ms.max(1)),
        _ => format!("{}S", limit.as_secs().min(99_999_999)),
    }
}

/// The delay of a `google.rpc.RetryInfo` in `grpc-status-details-bin`, a base64
/// `google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3 }`, where
/// `Any { string type_url = 1; bytes value = 2 }`, `RetryInfo { Duration retry_delay = 1 }`
/// and `Duration { int64 seconds = 1; int32 nanos = 2 }`.
fn retry_info(metadata: &HeaderMap) -> Option<Duration> {
    let status = base64_decode(metadata.get("grpc-status-details-bin")?.as_bytes())?;
    let bytes_field = |message: &[u8], wanted: u64| -> Option<Vec<u8>> {
        fields(message).find_map(|(field, value)| match (field, value) {
            (f, Field::Bytes(bytes)) if f == wanted => Some(bytes.to_vec()),
            _ => None,
        })
    };
    let retry_info = fields(&status).find_map(|(field, value)| match (field, value) {
        (3, Field::Bytes(any)) => bytes_field(any, 1)
            .filter(|url| url.ends_with(b"/google.rpc.RetryInfo"))
            .and_then(|_| bytes_field(any, 2)),
        _ => None,
    })?;
    let delay = bytes_field(&retry_info, 1)?;
    let (mut seconds, mut nanos) = (0u64, 0u64);
    for (field, value) in fields(&delay) {
        match (field, value) {
            (1, Field::Varint(n)) => seconds = n,
            (2, Field::Varint(n)) => nanos = n,
            _ => {}
        }
    }
    // Negative (as a varint, huge) or malformed: no delay to honour.
    let seconds = u64::try_from(seconds as i64).ok()?;
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}

/// Standard base64, padded or not (gRPC sends binary metadata unpadded).
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let end = text.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let mut out = Vec::with_capacity(end * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for &c in &text[..end] {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6 | u32::from(value)) & 0xff_ffff;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded() {
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert_eq!(base64_decode(b"Zg").unwrap(), b"f");
        assert_eq!(base64_decode(b"Zg==").unwrap(), b"f");
        assert_eq!(base64_decode(b"Zm8").unwrap(), b"fo");
        assert_eq!(base64_decode(b"Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode(b"Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode(b"+/8").unwrap(), [0xfb, 0xff]);
        assert!(base64_decode(b"Zm9v!").is_none());
    }

    #[test]
    fn retry_info_is_read_from_the_status_details() {
        // google.rpc.Status { code: 8, details: [Any { RetryInfo { 1.5 s } }] }, by hand.
        let duration = [0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]; // 1 s, 500,000,000 ns
        let mut info = vec![0x0a, duration.len() as u8];
        info.extend_from_slice(&duration);
        let url = b"type.googleapis.com/google.rpc.RetryInfo";
        let mut any = vec![0x0a, url.len() as u8];
        any.extend_from_slice(url);
        any.extend_from_slice(&[0x12, info.len() as u8]);
        any.extend_from_slice(&info);
        let mut status = vec![0x08, 0x08, 0x1a, any.len() as u8];
        status.extend_from_slice(&any);
        let encoded = {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut text = String::new();
            for chunk in status.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
                for i in 0..=chunk.len() {
                    text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                }
            }
            text
        };
        let mut metadata = HeaderMap::new();
        metadata.insert(
            "grpc-status-details-bin",
            HeaderValue::from_str(&encoded).unwrap(),
        );
        assert_eq!(retry_info(&metadata), Some(Duration::from_millis(1500)));
        assert_eq!(retry_info(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_are_retried_as_the_otlp_spec_says() {
        for code in [1, 4, 10, 11, 14, 15] {
            assert!(status_failure(code, None).retry, "{code}");
        }
        for code in [2, 3, 5, 6, 7, 9, 12, 13, 16, 99] {
            assert!(!status_failure(code, None).retry, "{code}");
        }
        assert!(!status_failure(8, None).retry);
        let throttled = status_failure(8, Some(Duration::from_secs(2)));
        assert!(throttled.retry);
        assert_eq!(throttled.delay, Some(Duration::from_secs(2)));
        assert_eq!(
            status_failure(14, None).message,
            "the collector answered gRPC status 14 UNAVAILABLE"
        );
        assert_eq!(from_http(StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(from_http(StatusCode::UNAUTHORIZED), 16);
        assert_eq!(from_http(StatusCode::IM_A_TEAPOT), 2);
    }

    #[test]
    fn the_answer_message_is_unframed_and_anything_else_reads_as_empty() {
        let ok = Bytes::from_static(&[0, 0, 0, 0, 2, 0x0a, 0x00]);
        assert_eq!(answer(0, &HeaderMap::new(), ok).unwrap(), [0x0a, 0x00][..]);
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 2, 0x0a, 0x00]);
        assert!(answer(0, &HeaderMap::new(), compressed).unwrap().is_empty());
        let short = Bytes::from_static(&[0, 0, 0, 0, 9, 0x0a]);
        assert!(answer(0, &HeaderMap::new(), short).unwrap().is_empty());
        assert!(
            answer(0, &HeaderMap::new(), Bytes::new())
                .unwrap()
                .is_empty()
        );
        assert!(answer(14, &HeaderMap::new(), Bytes::new()).is_err());
    }

    #[test]
    fn the_timeout_header_has_at_most_8_digits() {
        assert_eq!(timeout_header(Duration::from_millis(10_000)), "10000m");
        assert_eq!(timeout_header(Duration::ZERO), "1m");
        assert_eq!(timeout_header(Duration::from_secs(200_000)), "200000S");
        assert_eq!(timeout_header(Duration::MAX), "99999999S");
    }

    #[test]
    fn https_endpoints_are_refused_and_the_path_is_the_methods() {
        let error = Channel::new("https://collector:4317", Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("TLS"), "{error}");
        let channel = Channel::new("http://[::1]:4317/ignored", Duration::from_secs(1)).unwrap();
        assert_eq!(
            channel.uri.to_string(),
            format!("http://[::1]:4317{EXPORT_PATH}")
        );
        assert_eq!((channel.host.as_str(), channel.port), ("::1", 4317));
    }
}
