//! The simulated provider: no network, a deterministic answer derived from the prompt, so that
//! the gateway and all its telemetry can be seen working offline. Every answer says it is
//! simulated, and responses carry `"provider": "simulated"`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::wire::{DONE_EVENT, render_chunk, render_completion};
use super::{
    ByteStream, Choice, Completion, DEFAULT_MAX_TOKENS, LlmError, Operation, PriceTable,
    UpstreamReport, UpstreamRequest, Usage, anthropic, responses,
};

/// Words per streamed chunk.
const WORDS_PER_CHUNK: usize = 4;

/// Words the filler text is drawn from.
const VOCABULARY: &[&str] = &[
    "traces",
    "metrics",
    "latency",
    "tokens",
    "spans",
    "signals",
    "requests",
    "errors",
    "dashboards",
    "alerts",
    "context",
    "sampling",
    "throughput",
    "budgets",
    "queues",
    "models",
    "providers",
    "histograms",
    "percentiles",
    "exporters",
    "collectors",
    "attributes",
    "services",
    "operators",
];

/// The offline provider.
#[derive(Debug, Clone)]
pub struct Simulated {
    latency: Duration,
}

impl Simulated {
    /// A provider that answers after `latency`.
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }

    /// Answers deterministically: the same prompt always gives the same text.
    pub async fn complete(
        &self,
        request: &UpstreamRequest,
        model: &str,
        report: &mut UpstreamReport,
    ) -> Result<(Bytes, Completion), LlmError> {
        self.wait(report).await;
        match request.operation {
            Operation::Embeddings => {
                let (answer, completion) = simulate_embeddings(&request.json(), model)?;
                Ok((Bytes::from(answer.to_string()), completion))
            }
            Operation::Responses => {
                let completion = generate(request, model);
                let answer = responses::render_response(&completion, now());
                Ok((Bytes::from(answer.to_string()), completion))
            }
            Operation::Messages => {
                let completion = generate(request, model);
                let answer = anthropic::render_message(&completion);
                Ok((Bytes::from(answer.to_string()), completion))
            }
            Operation::Chat => {
                let completion = generate(request, model);
                Ok((render_completion(&completion, now()), completion))
            }
        }
    }

    /// The same answer as a Groq-style SSE stream: the latency before the first chunk, then
    /// a few words a chunk, usage in the final chunk's `x_groq`, then `[DONE]`.
    pub async fn stream(
        &self,
        request: &UpstreamRequest,
        model: &str,
        report: &mut UpstreamReport,
    ) -> Result<ByteStream, LlmError> {
        self.wait(report).await;
        let completion = generate(request, model);
        let created = now();
        let (id, model) = (completion.id.as_str(), completion.model.as_str());
        let (content, finish_reason) = completion.first();
        let words: Vec<&str> = content.split(' ').collect();
        if matches!(
            request.operation,
            Operation::Responses | Operation::Messages
        ) {
            let pieces: Vec<String> = words
                .chunks(WORDS_PER_CHUNK)
                .enumerate()
                .map(|(i, group)| format!("{}{}", if i > 0 { " " } else { "" }, group.join(" ")))
                .collect();
            let events = if request.operation == Operation::Messages {
                anthropic::render_events(&completion, &pieces)
            } else {
                responses::render_events(&completion, created, &pieces)
            };
            return Ok(Box::pin(futures_util::stream::iter(
                events.into_iter().map(|e| Ok(Bytes::from(e))),
            )));
        }
        let mut events = vec![render_chunk(
            id,
            model,
            created,
            json!({"role": "assistant", "content": ""}),
            None,
            None,
        )];
        for (i, group) in words.chunks(WORDS_PER_CHUNK).enumerate() {
            let mut text = group.join(" ");
            if i > 0 {
                text.insert(0, ' ');
            }
            events.push(render_chunk(
                id,
                model,
                created,
                json!({"content": text}),
                None,
                None,
            ));
        }
        events.push(render_chunk(
            id,
            model,
            created,
            json!({}),
            Some(finish_reason),
            completion.usage,
        ));
        let include_usage = request.include_usage();
        if let (true, Some(usage)) = (include_usage, completion.usage) {
            let chunk = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [],
                "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                          "total_tokens": usage.input_tokens + usage.output_tokens},
            });
            events.push(Bytes::from(format!("data: {chunk}\n\n")));
        }
        events.push(Bytes::from_static(DONE_EVENT));
        Ok(Box::pin(futures_util::stream::iter(
            events.into_iter().map(Ok),
        )))
    }

    /// Anthropic's token count of a Messages request, estimated as for the simulated answers.
    pub fn count_tokens(body: &[u8]) -> Bytes {
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        fn texts(value: &Value, tokens: &mut u64) {
            match value {
                Value::String(text) => *tokens += estimate_tokens(text),
                Value::Array(items) => items.iter().for_each(|item| texts(item, tokens)),
                Value::Object(object) => {
                    for key in ["text", "content"] {
                        if let Some(inner) = object.get(key) {
                            texts(inner, tokens);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut tokens = 0;
        texts(&request["system"], &mut tokens);
        texts(&request["messages"], &mut tokens);
        Bytes::from(json!({"input_tokens": tokens}).to_string())
    }

    /// The priced models, as an OpenAI model list.
    pub fn list_models(known: &PriceTable) -> Bytes {
        let data: Vec<Value> = known
            .models()
            .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "simulated"}))
            .collect();
        Bytes::from(json!({"object": "list", "data": data}).to_string())
    }

    async fn wait(&self, report: &mut UpstreamReport) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        report.wait += self.latency;
    }
}

// ---------------------------------------------------------------- embeddings

/// Vector length of simulated embeddings when the request names no `dimensions`.
pub const SIMULATED_DIMENSIONS: usize = 256;
/// Longest simulated vector: OpenAI's largest embedding model's (the OpenAPI document's limit).
const MAX_DIMENSIONS: usize = 3072;

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
    let mut state = fnv1a(text.as_bytes()) | 1;
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

/// The embeddings answer for a request body, in OpenAI's shape (floats, or
/// base64 when asked), and what it says. Err: a `dimensions` out of range.
fn simulate_embeddings(body: &Value, model: &str) -> Result<(Value, Completion), LlmError> {
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
    let input_tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The deterministic completion for a request, answered as `model`.
fn generate(request: &UpstreamRequest, model: &str) -> Completion {
    let (prompt, system) = request.prompt_and_system();
    let system = request.system_instructions.clone().or(system);
    let max_tokens = request
        .summary
        .max_tokens
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let seed = fnv1a(prompt.as_bytes());
    let (content, output_tokens, finish_reason) = answer(&prompt, max_tokens, seed);
    let input_tokens = estimate_tokens(&prompt) + system.as_deref().map_or(0, estimate_tokens);
    Completion {
        id: format!("chatcmpl-sim-{seed:016x}"),
        model: model.to_owned(),
        choices: vec![Choice {
            content,
            tool_calls: vec![],
            finish_reason: finish_reason.into(),
        }],
        usage: Some(Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        }),
        ..Completion::default()
    }
}

/// About four characters a token, as for English text with common tokenizers.
pub(super) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Builds the answer one word (one token) at a time, stopping at `max_tokens`.
fn answer(prompt: &str, max_tokens: u32, seed: u64) -> (String, u64, &'static str) {
    let mut words: Vec<&str> = "[simulated] This answer comes from the gateway's simulated provider; no LLM was called. You asked about:"
        .split(' ')
        .collect();
    words.extend(prompt.split_whitespace().take(12));
    let wanted = words.len() + 20 + (seed % 40) as usize;
    let mut state = seed;
    while words.len() < wanted {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        words.push(VOCABULARY[(state >> 33) as usize % VOCABULARY.len()]);
    }
    let limit = max_tokens as usize;
    let finish_reason = if words.len() > limit {
        words.truncate(limit);
        "length"
    } else {
        "stop"
    };
    (words.join(" "), words.len() as u64, finish_reason)
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatParams;
    use futures_util::StreamExt;

    fn request(prompt: &str, max_tokens: u32) -> UpstreamRequest {
        UpstreamRequest::from_params(
            ChatParams {
                model: "llama-3.1-8b-instant".into(),
                system: None,
                prompt: prompt.into(),
                max_tokens,
                temperature: 0.7,
            },
            false,
        )
    }

    #[tokio::test]
    async fn same_prompt_same_answer_and_max_tokens_truncates() {
        let sim = Simulated::new(Duration::ZERO);
        let mut report = UpstreamReport::default();
        let (_, a) = sim
            .complete(&request("Explain observability", 256), "m", &mut report)
            .await
            .unwrap();
        let (_, b) = sim
            .complete(&request("Explain observability", 256), "m", &mut report)
            .await
            .unwrap();
        assert_eq!(a.first(), b.first());
        assert_eq!(a.first().1, "stop");
        assert!(a.first().0.starts_with("[simulated]"));
        let (_, short) = sim
            .complete(&request("Explain observability", 5), "m", &mut report)
            .await
            .unwrap();
        assert_eq!(short.first().1, "length");
        assert_eq!(short.usage.unwrap().output_tokens, 5);
        assert_eq!(short.first().0.split(' ').count(), 5);
    }

    #[tokio::test]
    async fn the_stream_carries_the_same_text_and_usage() {
        let sim = Simulated::new(Duration::ZERO);
        let mut report = UpstreamReport::default();
        let req = request("Explain observability", 256);
        let (_, whole) = sim.complete(&req, "m", &mut report).await.unwrap();
        let events: Vec<Bytes> = sim
            .stream(&req, "m", &mut report)
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
            .await;
        let mut text = String::new();
        let mut usage = None;
        for event in &events {
            let info = crate::llm::wire::parse_chunk(event).unwrap();
            text.push_str(info.content.as_deref().unwrap_or(""));
            usage = usage.or(info.usage);
        }
        assert_eq!(text, whole.first().0);
        assert_eq!(usage, whole.usage);
        assert_eq!(&events.last().unwrap()[..], DONE_EVENT);
    }

    #[test]
    fn simulated_vectors_are_deterministic_unit_vectors_of_the_asked_dimension() {
        let body = json!({"model": "m", "input": ["alpha", "beta", "alpha"], "dimensions": 64});
        let (answer, completion) = simulate_embeddings(&body, "m").unwrap();
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
        let read = crate::llm::embeddings::parse_embeddings(answer.to_string().as_bytes()).unwrap();
        assert_eq!(read.dimensions, Some(64));
        assert_eq!(read.usage, completion.usage);
        assert!(simulate_embeddings(&json!({"input": "x", "dimensions": 0}), "m").is_err());
    }

    #[test]
    fn base64_vectors_are_little_endian_floats() {
        let body = json!({"input": "hello", "encoding_format": "base64"});
        let (answer, _) = simulate_embeddings(&body, "m").unwrap();
        let read = crate::llm::embeddings::parse_embeddings(answer.to_string().as_bytes()).unwrap();
        assert_eq!(read.dimensions, Some(SIMULATED_DIMENSIONS));
        let floats = simulate_embeddings(&json!({"input": "hello"}), "m")
            .unwrap()
            .0;
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
