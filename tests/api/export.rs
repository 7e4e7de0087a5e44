//! The OTLP exporter against a scripted collector (the testkit's receiver), through the real
//! binary: what a collector sees of an export.

use crate::process::chat_ok;
use crate::support::otlp::OtlpReceiver;
use crate::support::process::{ServiceProcess, start_binary};

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
