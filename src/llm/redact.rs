//! Redaction of secrets from text the gateway relays or logs (upstream error messages).

/// Replaces anything that looks like an API key with `[redacted]`, so upstream messages that
/// echo a key never reach a client, a log or a span.
pub fn scrub_secrets(text: &str) -> String {
    let looks_like_key = |word: &str| {
        let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        w.starts_with("gsk_")
            || w.starts_with("sk-")
            || w.starts_with("Bearer")
            || (w.len() >= 32
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    };
    if !text.split_whitespace().any(looks_like_key) {
        return text.to_owned();
    }
    text.split(' ')
        .map(|word| {
            if looks_like_key(word) {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_key_like_words_and_keeps_the_rest() {
        assert_eq!(
            scrub_secrets("Invalid API Key: gsk_abc123XYZ, try again"),
            "Invalid API Key: [redacted] try again"
        );
        assert_eq!(
            scrub_secrets("model `foo` does not exist"),
            "model `foo` does not exist"
        );
    }
}
