//! The OTLP exporter against a scripted collector (the testkit's receiver), through the real
//! binary: what a collector sees of an export, how its `Retry-After` is obeyed, a partial
//! success with only a warning, an answer too big to read; over OTLP/HTTP and OTLP/gRPC.
//! Outcomes are read from `llm_gateway_spans_total` on the metrics port, warnings from the JSON
//! log. A request's two spans may be exported in one batch or two: scripts cover both.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::process::{chat_ok, span_outcomes};
use crate::support::otlp::OtlpReceiver;
use crate::support::process::{ServiceProcess, start_binary};
use llmobs_testkit::otlp::Answer;

/// What the exporter says it is, in every export's `User-Agent`.
const USER_AGENT: &str = concat!(
    "llm-observability/",
    env!("CARGO_PKG_VERSION"),
    " OTel-OTLP-Exporter-Rust"
);

/// The binary exporting over OTLP/HTTP to `receiver`, batches every 50 ms, with `extra` vars.
fn exporting_to(receiver: &OtlpReceiver, extra: &[(&str, &str)]) -> ServiceProcess {
    let endpoint = receiver.traces_endpoint();
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    vars.extend_from_slice(extra);
    start_binary(&vars)
}

/// The binary exporting over OTLP/gRPC to `receiver` (started with
/// [`OtlpReceiver::start_grpc`]), batches every 50 ms, with `extra` vars.
fn exporting_over_grpc_to(receiver: &OtlpReceiver, extra: &[(&str, &str)]) -> ServiceProcess {
    let endpoint = receiver.grpc_endpoint();
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    vars.extend_from_slice(extra);
    start_binary(&vars)
}

/// Waits (with a deadline) until `(exported, failed, dropped)` spans satisfy `done`.
async fn outcomes_until(
    service: &ServiceProcess,
    done: impl Fn((f64, f64, f64)) -> bool,
) -> (f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let outcomes = span_outcomes(service).await;
        if done(outcomes) {
            return outcomes;
        }
        assert!(Instant::now() < deadline, "span outcomes: {outcomes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (with a deadline) for a JSON log line whose message contains `text`.
async fn log_line(service: &ServiceProcess, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = service.log();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text))
            });
        if let Some(line) = found {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An OTLP transport: how the receiver is started and the binary pointed at it.
#[derive(Clone, Copy)]
enum Transport {
    Http,
    Grpc,
}

impl Transport {
    fn receiver(self) -> OtlpReceiver {
        match self {
            Transport::Http => OtlpReceiver::start(),
            Transport::Grpc => OtlpReceiver::start_grpc(),
        }
    }

    fn exporting_to(self, receiver: &OtlpReceiver, extra: &[(&str, &str)]) -> ServiceProcess {
        match self {
            Transport::Http => exporting_to(receiver, extra),
            Transport::Grpc => exporting_over_grpc_to(receiver, extra),
        }
    }
}

/// Every export carries the `User-Agent`, the transport's content type and the configured
/// headers (gRPC metadata).
async fn the_collector_sees_who_exports(transport: Transport) -> axum::http::HeaderMap {
    let receiver = transport.receiver();
    let service = transport.exporting_to(
        &receiver,
        &[("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")],
    );

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
    let requests = receiver.wait_for_requests(1).await;
    let headers = requests[0].headers.clone();
    assert_eq!(headers["user-agent"], USER_AGENT, "{headers:?}");
    assert_eq!(headers["x-tenant"], "team-a");
    headers
}

#[tokio::test]
async fn the_collector_sees_a_user_agent_and_the_configured_headers() {
    let headers = the_collector_sees_who_exports(Transport::Http).await;
    assert_eq!(headers["content-type"], "application/x-protobuf");
}

#[tokio::test]
async fn grpc_the_collector_sees_a_user_agent_and_the_configured_metadata() {
    let headers = the_collector_sees_who_exports(Transport::Grpc).await;
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["te"], "trailers");
}

/// A partial success refusing nothing but carrying a message: the spans count as exported and
/// the collector's warning is logged.
async fn a_warning_only_partial_success_is_logged(transport: Transport) {
    let receiver = transport.receiver();
    receiver.script([Answer::PartialSuccess {
        rejected: Some(0),
        message: "span attributes truncated to 4 KiB".into(),
    }]);
    let service = transport.exporting_to(&receiver, &[]);

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
    let line = log_line(
        &service,
        "the OTLP collector accepted the spans with a warning",
    )
    .await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(
        line["fields"]["warning"], "span attributes truncated to 4 KiB",
        "{line}"
    );
}

#[tokio::test]
async fn a_partial_success_with_only_a_message_is_logged_and_counted_exported() {
    a_warning_only_partial_success_is_logged(Transport::Http).await;
}

#[tokio::test]
async fn grpc_a_partial_success_with_only_a_message_is_logged_and_counted_exported() {
    a_warning_only_partial_success_is_logged(Transport::Grpc).await;
}

#[tokio::test]
async fn a_retry_after_http_date_is_waited_for_before_the_next_attempt() {
    let receiver = OtlpReceiver::start();
    // Whole seconds: 2 to 3 s from now, 1.5 s at least from the first attempt.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    receiver.script([Answer::HttpStatus {
        status: 503,
        retry_after: Some(at),
    }]);
    let service = exporting_to(&receiver, &[]);

    chat_ok(&service).await;

    let requests = receiver.wait_for_requests(2).await;
    let waited = requests[1].at - requests[0].at;
    // Not the exact timing: only that the date was waited for, not the 100 ms back-off.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
}

#[tokio::test]
async fn a_retry_after_http_date_past_the_export_timeout_ends_the_export() {
    let receiver = OtlpReceiver::start();
    let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    // Twice: the two spans of a request may come in two batches.
    let throttled = Answer::HttpStatus {
        status: 503,
        retry_after: Some(in_an_hour),
    };
    receiver.script([throttled.clone(), throttled.clone()]);
    let service = exporting_to(&receiver, &[("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")]);

    chat_ok(&service).await;

    // No retry that the collector asked not to get: the spans fail at once.
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (0.0, 2.0, 0.0)
    );
    let answers: Vec<Answer> = receiver.requests().into_iter().map(|r| r.answer).collect();
    assert!(answers.iter().all(|a| *a == throttled), "{answers:?}");
}

#[tokio::test]
async fn an_answer_too_big_to_read_does_not_break_export() {
    let receiver = OtlpReceiver::start();
    receiver.script([Answer::Endless]);
    let service = exporting_to(&receiver, &[("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")]);

    chat_ok(&service).await;

    // A success status: the spans were taken, whatever follows.
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
    // And the next export goes through (on a new connection).
    chat_ok(&service).await;
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 4.0).await,
        (4.0, 0.0, 0.0)
    );
}

// ---------------------------------------------------------------- OTLP/gRPC

#[tokio::test]
async fn grpc_spans_a_collector_refuses_in_a_partial_success_are_counted_failed() {
    let receiver = OtlpReceiver::start_grpc();
    let refused = Answer::PartialSuccess {
        rejected: None,
        message: "quota exceeded for tenant".into(),
    };
    receiver.script([refused.clone(), refused]);
    let service = exporting_over_grpc_to(&receiver, &[]);

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (0.0, 2.0, 0.0)
    );
    log_line(&service, "exporting spans to the OTLP collector failed").await;
    assert!(
        service
            .log()
            .contains("the collector refused spans: quota exceeded for tenant"),
        "{}",
        service.log()
    );
}

#[tokio::test]
async fn grpc_unavailable_and_throttling_with_retry_info_are_retried() {
    let receiver = OtlpReceiver::start_grpc();
    receiver.script([
        Answer::GrpcStatus {
            code: 14,
            message: "unavailable".into(),
            retry_delay: None,
        },
        // RESOURCE_EXHAUSTED is retried only when the collector says when (RetryInfo).
        Answer::GrpcStatus {
            code: 8,
            message: "slow down".into(),
            retry_delay: Some(Duration::from_secs(1)),
        },
        // An HTTP 503 without gRPC status is UNAVAILABLE.
        Answer::HttpStatus {
            status: 503,
            retry_after: None,
        },
    ]);
    let service = exporting_over_grpc_to(&receiver, &[]);

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
    let requests = receiver.requests();
    assert!(requests.len() >= 4, "{requests:?}");
    let waited = requests[2].at - requests[1].at;
    assert!(
        waited >= Duration::from_millis(700),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn grpc_errors_the_spec_does_not_retry_fail_the_spans_at_once() {
    let receiver = OtlpReceiver::start_grpc();
    let exhausted = Answer::GrpcStatus {
        code: 8,
        message: "quota exhausted".into(),
        retry_delay: None,
    };
    receiver.script([exhausted.clone(), exhausted.clone()]);
    let service = exporting_over_grpc_to(&receiver, &[]);

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (0.0, 2.0, 0.0)
    );
    let answers: Vec<Answer> = receiver.requests().into_iter().map(|r| r.answer).collect();
    assert!(answers.iter().all(|a| *a == exhausted), "{answers:?}");
}

#[tokio::test]
async fn grpc_an_answer_too_big_to_read_counts_as_exported_and_is_not_retried() {
    let receiver = OtlpReceiver::start_grpc();
    receiver.script([Answer::Endless, Answer::Endless]);
    let service = exporting_over_grpc_to(&receiver, &[("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")]);

    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (2.0, 0.0, 0.0)
    );
    // Spans the collector took are not sent again.
    let answers: Vec<Answer> = receiver.requests().into_iter().map(|r| r.answer).collect();
    assert!(answers.iter().all(|a| *a == Answer::Endless), "{answers:?}");
    // And the next export goes through.
    chat_ok(&service).await;
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 4.0).await,
        (4.0, 0.0, 0.0)
    );
}

#[tokio::test]
async fn grpc_export_goes_on_when_the_collector_closes_the_connection() {
    let receiver = OtlpReceiver::start_grpc();
    let service = exporting_over_grpc_to(&receiver, &[]);
    chat_ok(&service).await;
    outcomes_until(&service, |o| o.0 >= 2.0).await;

    // The next export finds the connection it kept closed, and opens another.
    receiver.close_connections();
    chat_ok(&service).await;

    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 4.0).await,
        (4.0, 0.0, 0.0)
    );
}

#[tokio::test]
async fn grpc_export_resumes_when_the_collector_comes_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let service = start_binary(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    chat_ok(&service).await;
    outcomes_until(&service, |o| o.1 >= 2.0).await;

    let receiver = OtlpReceiver::start_grpc_on(port);
    let trace_id = chat_ok(&service).await;

    receiver.wait_for_trace(&trace_id, 2).await;
    assert_eq!(
        outcomes_until(&service, |o| o.0 >= 2.0).await,
        (2.0, 2.0, 0.0)
    );
}
