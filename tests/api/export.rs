//! The OTLP exporter against a scripted collector (the testkit's receiver), through the real
//! binary: what a collector sees of an export, how its `Retry-After` is obeyed, a partial
//! success with only a warning, an answer too big to read. Outcomes are read from
//! `llm_gateway_spans_total` on the metrics port, warnings from the JSON log.

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

#[tokio::test]
async fn the_collector_sees_a_user_agent_and_the_configured_headers() {
    let receiver = OtlpReceiver::start();
    let service = exporting_to(
        &receiver,
        &[("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")],
    );

    chat_ok(&service).await;

    let requests = receiver.wait_for_requests(1).await;
    let headers = &requests[0].headers;
    assert_eq!(headers["user-agent"], USER_AGENT, "{headers:?}");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-tenant"], "team-a");
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
    receiver.script([Answer::HttpStatus {
        status: 503,
        retry_after: Some(in_an_hour),
    }]);
    let service = exporting_to(&receiver, &[("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")]);

    chat_ok(&service).await;

    // No retry that the collector asked not to get: the spans fail at once.
    assert_eq!(
        outcomes_until(&service, |o| o.0 + o.1 >= 2.0).await,
        (0.0, 2.0, 0.0)
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_partial_success_with_only_a_message_is_logged_and_counted_exported() {
    let receiver = OtlpReceiver::start();
    receiver.script([Answer::PartialSuccess {
        rejected: Some(0),
        message: "span attributes truncated to 4 KiB".into(),
    }]);
    let service = exporting_to(&receiver, &[]);

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
    assert_eq!(receiver.requests().len(), 2);
}
