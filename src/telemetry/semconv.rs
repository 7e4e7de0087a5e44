//! What the spans share of the OpenTelemetry semantic conventions: attribute values more than
//! one layer records.

use axum::http::Version;

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
