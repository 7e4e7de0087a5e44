//! OpenAI's embeddings (`POST /v1/embeddings`): what the gateway reads of an answer (model,
//! input tokens, the vectors' dimension). Requests and answers are forwarded and relayed
//! untouched; the simulated provider's vectors are in `simulated.rs`.

use base64::Engine;
use serde::Deserialize;

use super::{Completion, LlmError, Usage};

#[derive(Deserialize)]
struct WireEmbeddings {
    model: Option<String>,
    #[serde(default)]
    data: Vec<WireEmbedding>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Dimensions,
}

/// An embedding read only for its length: a float array's elements are skipped, not parsed
/// into values (reading them as a `serde_json::Value` cost 20 µs for two 256-float vectors),
/// and a base64 string of little-endian `f32`s counts a quarter of its decoded bytes.
struct Dimensions(Option<usize>);

impl<'de> Deserialize<'de> for Dimensions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Dimensions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of floats or a base64 string")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Dimensions, A::Error> {
                let mut count = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(Dimensions(Some(count)))
            }
            fn visit_str<E: serde::de::Error>(self, encoded: &str) -> Result<Dimensions, E> {
                Ok(Dimensions(
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .ok()
                        .map(|bytes| bytes.len() / 4),
                ))
            }
            // Any other shape says nothing of the dimension, as before: not an error.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Dimensions, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Dimensions(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Dimensions, E> {
                Ok(Dimensions(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Dimensions, E> {
                Ok(Dimensions(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Dimensions, E> {
                Ok(Dimensions(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Dimensions, E> {
                Ok(Dimensions(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Dimensions, E> {
                Ok(Dimensions(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
}

/// Reads an embeddings answer: the model, the input tokens, and the vectors' length (a float
/// array's, or a base64 string's of little-endian `f32`s).
pub fn parse_embeddings(bytes: &[u8]) -> Result<Completion, LlmError> {
    let wire: WireEmbeddings = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::BadResponse(format!("not an embeddings answer: {e}")))?;
    let dimensions = wire.data.first().and_then(|first| first.embedding.0);
    Ok(Completion {
        model: wire.model.unwrap_or_default(),
        usage: wire.usage.map(|u| Usage {
            input_tokens: u.prompt_tokens,
            ..Usage::default()
        }),
        dimensions,
        ..Completion::default()
    })
}
