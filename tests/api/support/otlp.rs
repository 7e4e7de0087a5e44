//! The OTLP/HTTP receiver (`llmobs_testkit::otlp`), and the one every in-process app exports to.

use std::sync::OnceLock;
use std::time::Duration;

use llm_observability::telemetry::{self, TelemetryGuard};
pub use llmobs_testkit::otlp::{ExportedSpan, OtlpReceiver, attr, hex};

use crate::support::app::base_settings;

/// The receiver shared by every in-process app; telemetry is process-global.
pub fn otlp() -> &'static OtlpReceiver {
    static TELEMETRY: OnceLock<(OtlpReceiver, TelemetryGuard)> = OnceLock::new();
    &TELEMETRY
        .get_or_init(|| {
            let receiver = OtlpReceiver::start();
            let mut settings = base_settings(&[]).telemetry;
            settings.traces_endpoint = receiver.traces_endpoint();
            settings.batch_schedule_delay = Some(Duration::from_millis(50));
            // Thousands of injected faults would each log a warning; the binary tests cover logs.
            settings.log_filter = "error".into();
            let guard = telemetry::init(&settings).expect("telemetry init");
            (receiver, guard)
        })
        .0
}
