//! Redaction of secrets from the upstream text the gateway relays or logs: error messages and
//! codes, redirect targets, error events inside streams.
//!
//! One function, [`Redactor::redact`], and one definition of what it removes:
//! - **the configured secrets themselves** (the provider key), verbatim, wherever they appear;
//! - **key-like tokens**. A token is a maximal run of `[A-Za-z0-9_-]`; everything else (white
//!   space, quotes, punctuation, a JSON escape such as `\n` or `\u0022`, `?`, `&`, `=`) separates
//!   tokens. A token is key-like if it starts with a known key prefix (`gsk_`, `sk-`, …) at its
//!   start or after an inner `-`/`_`, or if it holds a run of 20 or more letters and digits
//!   with both in it (random-looking; model names are short words joined by `-`);
//! - **credentials by position**: whatever follows `Bearer ` or `Basic `, and the value of a
//!   `key=`, `api_key=`, `token=`, `signature=`, … parameter (URL query strings, form bodies).
//!
//! Each is replaced by `[redacted]`; the rest of the text is kept as it was.

use std::sync::Arc;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Prefixes of provider and platform keys.
const KEY_PREFIXES: &[&str] = &[
    "gsk_",
    "sk-",
    "sk_",
    "xai-",
    "AIza",
    "hf_",
    "ghp_",
    "gho_",
    "github_pat_",
    "glpat-",
    "nvapi-",
    "pplx-",
    "r8_",
    "AKIA",
];

/// Parameter names whose value is a credential (compared in lower case).
const CREDENTIAL_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "token",
    "access_token",
    "refresh_token",
    "auth",
    "authorization",
    "signature",
    "sig",
    "password",
    "secret",
    "client_secret",
];

/// The shortest configured secret replaced verbatim: shorter values would redact ordinary words.
const MIN_SECRET_LEN: usize = 8;

/// A run this long of letters and digits (with both) is random-looking enough to be a key.
const MIN_RANDOM_RUN: usize = 20;

/// Redacts secrets from text; knows the configured secrets to remove verbatim.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is removed whole.
    secrets: Arc<[String]>,
}

impl Redactor {
    /// A redactor that also removes these secrets verbatim (values under 8 characters are
    /// left to the token rules).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(str::to_owned)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self {
            secrets: secrets.into(),
        }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = std::borrow::Cow::Borrowed(text);
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED).into();
            }
        }
        redact_tokens(&text)
    }
}

/// Redacts key-like text with no configured secrets known (same rules as [`Redactor::redact`]).
pub fn scrub_secrets(text: &str) -> String {
    redact_tokens(text)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// What a `Bearer`/`Basic` credential or a parameter value may contain: base64, JWT and
/// URL-encoded characters.
fn is_credential_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// The length of the JSON escape at the start of `bytes` (`\n`, `\"`, `\u0022`), if one is.
fn json_escape_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [b'\\', b'u', hex @ ..] if hex.len() >= 4 && hex[..4].iter().all(u8::is_ascii_hexdigit) => {
            Some(6)
        }
        [
            b'\\',
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't',
            ..,
        ] => Some(2),
        _ => None,
    }
}

fn key_like(token: &str) -> bool {
    let prefixed = |at: usize| {
        let rest = &token[at..];
        KEY_PREFIXES
            .iter()
            .any(|p| rest.starts_with(p) && rest.len() >= p.len() + 4)
    };
    let starts = std::iter::once(0).chain(
        token
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'-' || *b == b'_')
            .map(|(i, _)| i + 1),
    );
    starts.into_iter().any(prefixed)
        || token.split(['-', '_']).any(|run| {
            run.len() >= MIN_RANDOM_RUN
                && run.bytes().any(|b| b.is_ascii_digit())
                && run.bytes().any(|b| b.is_ascii_alphabetic())
        })
}

fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `text[copied..]` is still to be copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    // Replaces text[from..to] and moves on past it.
    let replace = |out: &mut String, copied: &mut usize, from: usize, to: usize| {
        out.push_str(&text[*copied..from]);
        out.push_str(REDACTED);
        *copied = to;
    };
    while i < bytes.len() {
        if let Some(len) = json_escape_len(&bytes[i..]) {
            i += len;
            continue;
        }
        if !is_token_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) && json_escape_len(&bytes[i..]).is_none() {
            i += 1;
        }
        let token = &text[start..i];
        if key_like(token) {
            replace(&mut out, &mut copied, start, i);
            continue;
        }
        let lower = token.to_ascii_lowercase();
        let value_start = if lower == "bearer" || lower == "basic" {
            let mut j = i;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            (j > i).then_some(j)
        } else if CREDENTIAL_PARAMS.contains(&lower.as_str()) && bytes.get(i) == Some(&b'=') {
            Some(i + 1)
        } else {
            None
        };
        if let Some(from) = value_start {
            let mut to = from;
            while to < bytes.len() && is_credential_byte(bytes[to]) {
                to += 1;
            }
            if to > from {
                replace(&mut out, &mut copied, from, to);
                i = to;
            }
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_like_words_go_and_the_rest_stays() {
        assert_eq!(
            scrub_secrets("Invalid API Key: gsk_abc123XYZ, try again"),
            "Invalid API Key: [redacted], try again"
        );
        assert_eq!(
            scrub_secrets("model `foo` does not exist"),
            "model `foo` does not exist"
        );
        assert_eq!(
            scrub_secrets("The model `meta-llama/llama-4-scout-17b-16e-instruct` does not exist"),
            "The model `meta-llama/llama-4-scout-17b-16e-instruct` does not exist",
            "model names are not keys"
        );
    }

    #[test]
    fn every_separator_the_old_splitter_missed_is_handled() {
        for text in [
            "key:\ngsk_live_abcdef123",
            "key:\tgsk_live_abcdef123",
            r#"{"msg":"bad key \"gsk_live_abcdef123\""}"#,
            r"bad key\ngsk_live_abcdef123",
            r"bad key\u0022gsk_live_abcdef123\u0022",
            "https://api.example/v1?key=Abc-short&x=1",
            "https://api.example/v1?api_key=short1&x=1",
            "Authorization: Bearer abc.def+ghi/jkl=",
            "Authorization: Basic dXNlcjpwYXNz",
            "(sk-proj-Abc123def456)",
        ] {
            let redacted = scrub_secrets(text);
            for secret in [
                "gsk_live_abcdef123",
                "Abc-short",
                "short1",
                "abc.def+ghi/jkl=",
                "dXNlcjpwYXNz",
                "sk-proj-Abc123def456",
            ] {
                assert!(!redacted.contains(secret), "{text:?} -> {redacted:?}");
            }
            assert!(redacted.contains(REDACTED), "{text:?} -> {redacted:?}");
        }
    }

    #[test]
    fn configured_secrets_are_removed_verbatim_whatever_their_shape() {
        let redactor = Redactor::new(["plainword-secret", "short"]);
        assert_eq!(
            redactor.redact("echo: plainword-secret!"),
            "echo: [redacted]!"
        );
        // Too short to replace verbatim without eating ordinary words.
        assert_eq!(redactor.redact("a short note"), "a short note");
    }

    /// Keys as providers issue them: a known prefix and random characters, or random
    /// characters alone (with a letter and a digit).
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                prop::sample::select(KEY_PREFIXES.to_vec()),
                "[A-Za-z0-9]{12,48}"
            )
                .prop_map(|(p, rest)| format!("{p}{rest}")),
            "[A-Za-z0-9]{18,48}".prop_map(|rest| format!("a1{rest}")),
        ]
    }

    /// What may stand right before or after a key in a message.
    fn separator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ", "  ", "\n", "\r\n", "\t", "\"", "'", "`", ",", ";", ":", ".", "!", "?", "(", ")",
            "[", "]", "{", "}", "<", ">", "/", "\\n", "\\t", "\\\"", "\\u0022", "\\\\", "?key=",
            "&token=", "=", "#", "Bearer ", "Basic ", "bearer\t", "\u{a0}", "é",
        ])
    }

    /// Ordinary words, never key-like.
    fn words() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "Invalid",
                "API",
                "key",
                "provided",
                "for",
                "model",
                "llama-3.1-8b-instant",
                "please",
                "check",
                "the",
                "request",
                "organization",
                "limit",
            ]),
            0..6,
        )
        .prop_map(|w| w.join(" "))
    }

    proptest! {
        #[test]
        fn a_key_never_survives_whatever_surrounds_it(
            before in words(),
            left in separator(),
            key in key(),
            right in separator(),
            after in words(),
            configured in any::<bool>(),
        ) {
            let text = format!("{before}{left}{key}{right}{after}");
            let redactor = if configured { Redactor::new([key.as_str()]) } else { Redactor::default() };
            let redacted = redactor.redact(&text);
            prop_assert!(!redacted.contains(&key), "{:?} -> {:?}", text, redacted);
            prop_assert!(redacted.contains(REDACTED));
            // The words around it are kept, but for a credential by position (the word right
            // after `Bearer ` or `token=` is one, whatever it says).
            // (A credential runs on through `.`, `/`, `=`: so does one that a `key=` began.)
            let introduces = |text: &str| ["key=", "token=", "Bearer ", "Basic ", "bearer\t"]
                .iter()
                .any(|intro| text.ends_with(intro));
            let credential_next = introduces(right)
                || (introduces(&format!("{before}{left}")) && right.bytes().all(is_credential_byte));
            let after_kept = after.split(' ').skip(usize::from(credential_next));
            for word in before.split(' ').chain(after_kept).filter(|w| !w.is_empty()) {
                prop_assert!(redacted.contains(word), "{:?} lost {:?}: {:?}", text, word, redacted);
            }
        }

        #[test]
        fn text_without_secrets_is_unchanged(text in words()) {
            prop_assert_eq!(scrub_secrets(&text), text);
        }
    }
}
