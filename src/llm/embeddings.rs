//! OpenAI's embeddings (`POST /v1/embeddings`): what the gateway reads of an answer (model,
//! input tokens, the vectors' dimension). Requests and answers are forwarded and relayed
//! untouched; the simulated provider's vectors are in `simulated.rs`.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

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
    embedding: Value,
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
    let dimensions = wire.data.first().and_then(|first| match &first.embedding {
        Value::Array(values) => Some(values.len()),
        Value::String(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .map(|bytes| bytes.len() / 4),
        _ => None,
    });
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
