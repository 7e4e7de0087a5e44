//! What the spans share of the OpenTelemetry semantic conventions: the schema URL of the
//! version they follow, and the attribute values more than one layer records.

use std::net::IpAddr;

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

/// `client.address` and `network.peer.address`: an IP address as its `Display` writes it.
/// IPv4 is written digit by digit: `Ipv4Addr`'s `Display` goes through the formatter's padding
/// machinery, about 1,500 instructions, three times a request.
pub fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_their_display() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.100.255",
            "192.168.1.20",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
        }
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(address_text(mapped), "::ffff:10.0.0.5");
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 2, 7]);
            assert_eq!(address_text(ip), ip.to_string());
        }
    }
}
