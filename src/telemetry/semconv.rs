//! What the spans share of the OpenTelemetry semantic conventions: the schema URL of the
//! version they follow, and the attribute values more than one layer records.

use axum::http::Version;

/// The semantic-conventions version the spans follow, as the instrumentation scope's schema
/// URL: v1.41.0, the last release of the semantic-conventions repository that holds the GenAI
/// conventions (README, "Semantic conventions").
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.41.0";

/// `network.protocol.version` of an HTTP exchange; `None` when the version is not known.
pub fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}
