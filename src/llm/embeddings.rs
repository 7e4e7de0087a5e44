//! OpenAI's embeddings (`POST /v1/embeddings`): what the gateway reads of an answer (model,
//! input tokens, the vectors' dimension), and the simulated provider's deterministic vectors.
//! Requests and answers are forwarded and relayed untouched.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Completion, LlmError, Usage};

/// The simulated provider's vector length when the request names no `dimensions`.
pub const SIMULATED_DIMENSIONS: usize = 256;
/// Longest vector the simulated provider makes (OpenAI's largest model has 3,072).
const MAX_DIMENSIONS: usize = 4096;

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

/// The texts to embed: a string, strings, or token ids (counted as they are).
fn inputs(body: &Value) -> Vec<String> {
    match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![body["input"].to_string()]
        }
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A unit vector derived from the text alone: the same text always gives the same vector.
fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut state = super::simulated::fnv1a(text.as_bytes()) | 1;
    let mut values: Vec<f32> = (0..dimensions)
        .map(|_| {
            // xorshift64*: cheap, deterministic, well spread.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (bits >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = values
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    values.iter_mut().for_each(|v| *v /= norm);
    values
}

/// The simulated provider's embeddings answer for a request body, in OpenAI's shape (floats, or
/// base64 when asked), and what it says. Err: a `dimensions` out of range.
pub fn simulate(body: &Value, model: &str) -> Result<(Value, Completion), LlmError> {
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => SIMULATED_DIMENSIONS,
        Some(d) => d
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| LlmError::UpstreamClient {
                status: 400,
                message: format!("dimensions: must be a whole number from 1 to {MAX_DIMENSIONS}"),
                code: None,
            })?,
    };
    let base64 = body["encoding_format"] == "base64";
    let texts = inputs(body);
    let input_tokens: u64 = texts
        .iter()
        .map(|t| super::simulated::estimate_tokens(t))
        .sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let values = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let answer = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    });
    let completion = Completion {
        model: model.to_owned(),
        usage: Some(Usage {
            input_tokens,
            ..Usage::default()
        }),
        dimensions: Some(dimensions),
        ..Completion::default()
    };
    Ok((answer, completion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_vectors_are_deterministic_unit_vectors_of_the_asked_dimension() {
        let body = json!({"model": "m", "input": ["alpha", "beta", "alpha"], "dimensions": 64});
        let (answer, completion) = simulate(&body, "m").unwrap();
        let vectors: Vec<Vec<f64>> = answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
            .collect();
        assert_eq!(vectors.len(), 3);
        assert_eq!(vectors[0].len(), 64);
        assert_eq!(vectors[0], vectors[2], "same text, same vector");
        assert_ne!(vectors[0], vectors[1]);
        let norm: f64 = vectors[1].iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(completion.dimensions, Some(64));
        // The answer reads back as what it says.
        let read = parse_embeddings(answer.to_string().as_bytes()).unwrap();
        assert_eq!(read.dimensions, Some(64));
        assert_eq!(read.usage, completion.usage);
        assert!(simulate(&json!({"input": "x", "dimensions": 0}), "m").is_err());
    }

    #[test]
    fn base64_vectors_are_little_endian_floats() {
        let body = json!({"input": "hello", "encoding_format": "base64"});
        let (answer, _) = simulate(&body, "m").unwrap();
        let read = parse_embeddings(answer.to_string().as_bytes()).unwrap();
        assert_eq!(read.dimensions, Some(SIMULATED_DIMENSIONS));
        let floats = simulate(&json!({"input": "hello"}), "m").unwrap().0;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answer["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(
            f64::from(first),
            floats["data"][0]["embedding"][0].as_f64().unwrap()
        );
    }
}
