//! What the response cache stores and under which key, and its one binary encoding.
//!
//! The encoding is what both tiers hold (the shared tier as a Redis string), so it is
//! versioned: a gateway that finds an entry it cannot read (another version's, or damaged)
//! treats it as corrupt, a miss, never a panic and never a wrong answer. Layout, integers
//! big-endian:
//!
//! ```text
//! "LLMC" | version (1 byte, 1) | stored_at (u64) | provider (u32 length, UTF-8)
//!        | upstream_model (u32 length, UTF-8) | body (u32 length, bytes)
//! ```
//!
//! The body comes last and the value ends exactly where the body does.

use bytes::Bytes;

/// The four bytes every encoded entry starts with.
const MAGIC: &[u8; 4] = b"LLMC";
/// The encoding's version; a change of layout takes a new one (and a new Redis key prefix).
const VERSION: u8 = 1;
/// Bytes before the first length-prefixed field: magic, version, `stored_at`.
const HEADER_LEN: usize = MAGIC.len() + 1 + 8;

/// What an entry costs in memory beyond its body and strings: the struct, its key, and the
/// in-process cache's bookkeeping per entry (hash-table slot, recency and expiry lists, timer
/// wheel). An estimate, deliberately on the high side so that byte bounds hold.
pub const ENTRY_OVERHEAD: usize = 256;

/// A cache key: SHA-256 of the request's canonical form (computed elsewhere).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The whole key as 64 lowercase hex characters.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }

    /// The first 16 hex characters: enough to tell entries apart in spans and logs, short
    /// enough to read.
    pub fn prefix(&self) -> String {
        let mut text = self.hex();
        text.truncate(16);
        text
    }

    /// The key in Redis: `llmobs:cache:v1:` and the hex key. The prefix names the owner (other
    /// data may share the Redis) and the encoding's version.
    pub fn redis_key(&self) -> String {
        format!("llmobs:cache:v1:{}", self.hex())
    }
}

/// One stored answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedAnswer {
    /// The answer's body as a whole (non-streamed) call returns it: an OpenAI chat completion
    /// or an embeddings list, JSON bytes.
    pub body: Bytes,
    /// The configured name of the provider that answered.
    pub provider: String,
    /// The model id that provider was asked for.
    pub upstream_model: String,
    /// When it was stored, seconds since the Unix epoch.
    pub stored_at: u64,
}

impl CachedAnswer {
    /// The versioned binary form (module docs): what the tiers store.
    ///
    /// Lengths are `u32`: a field longer than 4 GiB (far beyond any body the gateway accepts)
    /// would be written with a wrong length and read back as corrupt, never as something else.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN + 12 + self.provider.len() + self.upstream_model.len() + self.body.len(),
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.stored_at.to_be_bytes());
        for field in [
            self.provider.as_bytes(),
            self.upstream_model.as_bytes(),
            &self.body,
        ] {
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s form. Anything else (another magic or version, a
    /// truncated value, bytes after the body, a length past the end, names that are not
    /// UTF-8) is [`CacheError::Corrupt`], never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, CacheError> {
        let corrupt = |what: &str| CacheError::Corrupt(what.to_owned());
        if !bytes.starts_with(MAGIC) {
            return Err(corrupt("not a cache entry (wrong magic)"));
        }
        let mut reader = Reader {
            rest: &bytes[MAGIC.len()..],
        };
        let version = reader.take(1).ok_or_else(|| corrupt("truncated header"))?[0];
        if version != VERSION {
            return Err(CacheError::Corrupt(format!(
                "version {version}, expected {VERSION}"
            )));
        }
        let stored_at = reader
            .take(8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("truncated header"))?;
        let provider = reader
            .text()
            .map_err(|e| corrupt(&format!("provider: {e}")))?;
        let upstream_model = reader
            .text()
            .map_err(|e| corrupt(&format!("upstream_model: {e}")))?;
        let body = reader.field().map_err(|e| corrupt(&format!("body: {e}")))?;
        if !reader.rest.is_empty() {
            return Err(CacheError::Corrupt(format!(
                "{} bytes after the body",
                reader.rest.len()
            )));
        }
        Ok(Self {
            body: Bytes::copy_from_slice(body),
            provider,
            upstream_model,
            stored_at,
        })
    }

    /// The bytes it weighs in memory: body, strings and [`ENTRY_OVERHEAD`]. What the
    /// in-process tier's byte bound counts.
    pub fn size(&self) -> usize {
        self.body.len() + self.provider.len() + self.upstream_model.len() + ENTRY_OVERHEAD
    }
}

/// A cursor over an encoded entry.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `n` bytes, if there are that many.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// A `u32`-length-prefixed field.
    fn field(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self
            .take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or("truncated length")?;
        let len = usize::try_from(len).map_err(|_| "length out of range")?;
        self.take(len).ok_or("length past the end")
    }

    /// A length-prefixed UTF-8 field.
    fn text(&mut self) -> Result<String, &'static str> {
        let bytes = self.field()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "not UTF-8")
    }
}

/// Why a cache tier could not answer. Every variant is a miss to the caller (the request goes
/// upstream); the kind labels the metric of failed lookups and writes.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The shared tier has no connection (Redis not reached yet, or never configured).
    #[error("not connected")]
    Unavailable,
    /// The tier did not answer within its deadline (milliseconds).
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// Redis answered with an error, or the connection failed: the error's kind and
    /// description, never a URL.
    #[error("redis error: {0}")]
    Backend(String),
    /// A stored value that does not decode: another version's, or damaged.
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

impl CacheError {
    /// A fixed label for metrics: `unavailable`, `timeout`, `backend` or `corrupt`.
    pub fn kind(&self) -> &'static str {
        match self {
            CacheError::Unavailable => "unavailable",
            CacheError::Timeout(_) => "timeout",
            CacheError::Backend(_) => "backend",
            CacheError::Corrupt(_) => "corrupt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn answer() -> CachedAnswer {
        CachedAnswer {
            body: Bytes::from_static(br#"{"id":"chatcmpl-1"}"#),
            provider: "groq".into(),
            upstream_model: "llama-3.1-8b-instant".into(),
            stored_at: 1_764_700_000,
        }
    }

    fn corrupt_reason(bytes: &[u8]) -> String {
        match CachedAnswer::decode(bytes) {
            Err(CacheError::Corrupt(reason)) => reason,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn key_renders_as_hex_prefix_and_redis_key() {
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(8).wrapping_add(0x0f);
        }
        let key = CacheKey(bytes);
        assert_eq!(
            key.hex(),
            "0f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff07"
        );
        assert_eq!(key.prefix(), "0f171f272f373f47");
        assert_eq!(
            key.redis_key(),
            "llmobs:cache:v1:0f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff07"
        );
        assert_eq!(CacheKey([0xab; 32]).hex(), "ab".repeat(32));
    }

    #[test]
    fn encoding_is_the_documented_layout() {
        let encoded = answer().encode();
        let mut expected = b"LLMC\x01".to_vec();
        expected.extend_from_slice(&1_764_700_000u64.to_be_bytes());
        expected.extend_from_slice(b"\x00\x00\x00\x04groq");
        expected.extend_from_slice(b"\x00\x00\x00\x14llama-3.1-8b-instant");
        expected.extend_from_slice(b"\x00\x00\x00\x13{\"id\":\"chatcmpl-1\"}");
        assert_eq!(encoded, expected);
        assert_eq!(CachedAnswer::decode(&encoded).unwrap(), answer());
    }

    #[test]
    fn decode_names_what_is_wrong() {
        let good = answer().encode();
        assert_eq!(corrupt_reason(b""), "not a cache entry (wrong magic)");
        assert_eq!(
            corrupt_reason(b"{\"id\":1}"),
            "not a cache entry (wrong magic)"
        );
        let mut other_version = good.clone();
        other_version[4] = 2;
        assert_eq!(corrupt_reason(&other_version), "version 2, expected 1");
        assert_eq!(corrupt_reason(&good[..10]), "truncated header");
        assert_eq!(corrupt_reason(&good[..15]), "provider: truncated length");
        assert_eq!(corrupt_reason(&good[..20]), "provider: length past the end");
        assert_eq!(
            corrupt_reason(&good[..good.len() - 1]),
            "body: length past the end"
        );
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"xy");
        assert_eq!(corrupt_reason(&trailing), "2 bytes after the body");
        let mut bad_utf8 = good.clone();
        bad_utf8[17] = 0xff; // the provider's first byte
        assert_eq!(corrupt_reason(&bad_utf8), "provider: not UTF-8");
        let mut huge_length = good;
        huge_length[13..17].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            corrupt_reason(&huge_length),
            "provider: length past the end"
        );
    }

    #[test]
    fn size_counts_body_strings_and_overhead() {
        assert_eq!(answer().size(), 19 + 4 + 20 + ENTRY_OVERHEAD);
    }

    #[test]
    fn error_kinds_are_fixed_labels() {
        assert_eq!(CacheError::Unavailable.kind(), "unavailable");
        assert_eq!(CacheError::Timeout(50).kind(), "timeout");
        assert_eq!(CacheError::Backend("x".into()).kind(), "backend");
        assert_eq!(CacheError::Corrupt("x".into()).kind(), "corrupt");
        assert_eq!(CacheError::Timeout(50).to_string(), "timed out after 50 ms");
        assert_eq!(
            CacheError::Backend("I/O error: connection refused".into()).to_string(),
            "redis error: I/O error: connection refused"
        );
    }

    fn answers() -> impl Strategy<Value = CachedAnswer> {
        (
            proptest::collection::vec(any::<u8>(), 0..512),
            ".{0,40}",
            ".{0,80}",
            any::<u64>(),
        )
            .prop_map(|(body, provider, upstream_model, stored_at)| CachedAnswer {
                body: body.into(),
                provider,
                upstream_model,
                stored_at,
            })
    }

    proptest! {
        #[test]
        fn decode_reads_back_what_encode_wrote(answer in answers()) {
            prop_assert_eq!(CachedAnswer::decode(&answer.encode()).unwrap(), answer);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = CachedAnswer::decode(&bytes);
            let mut with_magic = b"LLMC\x01".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = CachedAnswer::decode(&with_magic);
        }

        #[test]
        fn every_truncation_of_a_valid_entry_is_corrupt(answer in answers(), cut in any::<prop::sample::Index>()) {
            let encoded = answer.encode();
            let len = cut.index(encoded.len());
            prop_assert!(matches!(CachedAnswer::decode(&encoded[..len]), Err(CacheError::Corrupt(_))));
        }

        #[test]
        fn a_flipped_byte_is_corrupt_or_decodes_to_something_else(answer in answers(), at in any::<prop::sample::Index>(), flip in 1u8..) {
            let mut encoded = answer.encode();
            let i = at.index(encoded.len());
            encoded[i] ^= flip;
            // A flip inside a field's contents can still decode (to a different answer); any
            // other flip must be caught. Either way: no panic, never the original answer.
            match CachedAnswer::decode(&encoded) {
                Ok(decoded) => prop_assert_ne!(decoded, answer),
                Err(e) => prop_assert!(matches!(e, CacheError::Corrupt(_))),
            }
        }
    }
}
