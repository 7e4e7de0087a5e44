//! OpenAI's own wire formats beyond chat completions, the one place their answers are written:
//! the Responses API (`POST /responses`: the `Response` object and its typed SSE events) and
//! Embeddings (`POST /embeddings`, float or base64 vectors). [`crate::upstream::FakeUpstream`]
//! serves both; tests use the constants and functions here to compute what to expect.
//!
//! Shapes follow the official SDK's types (openai-python `types/responses/response.py`,
//! `response_usage.py`, the `Response*Event` types, `create_embedding_response.py`) and the
//! live API's answers: every field the SDK's models require is present.

use serde_json::{Value, json};

use crate::groq::CREATED;

// ---------------------------------------------------------------- errors

/// OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, all four present.
pub fn error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

// ---------------------------------------------------------------- Responses API

/// The text of a non-streaming response (`output[0].content[0].text`).
pub const RESPONSE_TEXT: &str = "Observability is knowing what your system does.";

/// `id` of a non-streaming response, and of its one output message.
pub const RESPONSE_ID: &str = "resp_fake_1";
pub const RESPONSE_MESSAGE_ID: &str = "msg_fake_resp_1";
/// `id` of a streamed response, and of its one output message.
pub const RESPONSE_STREAM_ID: &str = "resp_fake_stream_1";
pub const RESPONSE_STREAM_MESSAGE_ID: &str = "msg_fake_stream_1";

/// `completed_at` of a completed response (`created_at` is [`CREATED`]).
pub const COMPLETED_AT: u64 = CREATED + 1;

/// A response's `usage`: `total_tokens` is input + output; `cached_tokens` is part of
/// `input_tokens`, `reasoning_tokens` part of `output_tokens` (as OpenAI counts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponsesUsage {
    pub input_tokens: u64,
    /// `input_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    pub output_tokens: u64,
    /// `output_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl ResponsesUsage {
    pub const fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// The `usage` object. `input_tokens_details.cache_write_tokens` (0) is there because the
    /// current SDK's model requires it.
    pub fn to_json(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens(),
        })
    }
}

/// The usage of every non-streaming response of the fake: 15 in (5 cached), 27 out (8
/// reasoning), 42 in all.
pub const RESPONSES_USAGE: ResponsesUsage = ResponsesUsage {
    input_tokens: 15,
    cached_tokens: 5,
    output_tokens: 27,
    reasoning_tokens: 8,
};

/// The usage of every streamed response (in `response.completed`): 11 in (2 cached), 19 out
/// (4 reasoning), 30 in all.
pub const RESPONSES_STREAM_USAGE: ResponsesUsage = ResponsesUsage {
    input_tokens: 11,
    cached_tokens: 2,
    output_tokens: 19,
    reasoning_tokens: 4,
};

/// An `output_text` content part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// An assistant output message: `status` "in_progress" (no content yet) or "completed" (one
/// `output_text` part with `text`).
pub fn output_message(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([output_text(text)]),
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "content": content, "role": "assistant"})
}

/// A `Response` object for `request` (its `model` and the settings a real response echoes:
/// instructions, max_output_tokens, parallel_tool_calls, previous_response_id, store,
/// temperature, text, tool_choice, tools, top_p, truncation, user, metadata, service_tier).
/// `status` "in_progress" leaves `completed_at` null; `usage` None is `"usage": null`.
pub fn response(
    id: &str,
    request: &Value,
    status: &str,
    output: Vec<Value>,
    usage: Option<ResponsesUsage>,
) -> Value {
    let echo = |key: &str, default: Value| match request.get(key) {
        Some(v) if !v.is_null() => v.clone(),
        _ => default,
    };
    let service_tier = match request["service_tier"].as_str() {
        None | Some("auto") => "default",
        Some(tier) => tier,
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": false,
        "completed_at": if status == "completed" { json!(COMPLETED_AT) } else { Value::Null },
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "max_tool_calls": echo("max_tool_calls", Value::Null),
        "model": echo("model", json!("unknown")),
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "prompt_cache_key": echo("prompt_cache_key", Value::Null),
        "reasoning": echo("reasoning", json!({"effort": null, "summary": null})),
        "safety_identifier": echo("safety_identifier", Value::Null),
        "service_tier": service_tier,
        "store": echo("store", json!(true)),
        "temperature": echo("temperature", json!(1.0)),
        "text": echo("text", json!({"format": {"type": "text"}, "verbosity": "medium"})),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_logprobs": echo("top_logprobs", json!(0)),
        "top_p": echo("top_p", json!(1.0)),
        "truncation": echo("truncation", json!("disabled")),
        "usage": usage.map(|u| u.to_json()),
        "user": echo("user", Value::Null),
        "metadata": echo("metadata", json!({})),
    })
}

/// A completed response with one assistant message saying `text`.
pub fn completed_response(
    id: &str,
    message_id: &str,
    request: &Value,
    text: &str,
    usage: ResponsesUsage,
) -> Value {
    let message = output_message(message_id, "completed", Some(text));
    response(id, request, "completed", vec![message], Some(usage))
}

/// The fake's non-streaming answer to `request`: [`RESPONSE_TEXT`], [`RESPONSES_USAGE`].
pub fn responses_success(request: &Value) -> Value {
    completed_response(
        RESPONSE_ID,
        RESPONSE_MESSAGE_ID,
        request,
        RESPONSE_TEXT,
        RESPONSES_USAGE,
    )
}

/// The typed events of one streamed response, numbered by `sequence_number` from 0.
pub struct ResponseStream<'a> {
    pub id: &'a str,
    pub message_id: &'a str,
    pub request: &'a Value,
    next: u64,
}

impl<'a> ResponseStream<'a> {
    pub fn new(id: &'a str, message_id: &'a str, request: &'a Value) -> Self {
        Self {
            id,
            message_id,
            request,
            next: 0,
        }
    }

    /// An event of `kind` with `fields`, taking the next sequence number.
    pub fn event(&mut self, kind: &str, fields: Value) -> Value {
        let mut event = json!({"type": kind, "sequence_number": self.next});
        self.next += 1;
        if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
            event.extend(fields);
        }
        event
    }

    fn in_progress(&self) -> Value {
        response(self.id, self.request, "in_progress", vec![], None)
    }

    /// `response.created`, `response.in_progress`, `response.output_item.added` and
    /// `response.content_part.added`: everything before the first delta.
    pub fn opening(&mut self) -> Vec<Value> {
        let item = output_message(self.message_id, "in_progress", None);
        let (created, in_progress) = (self.in_progress(), self.in_progress());
        vec![
            self.event("response.created", json!({"response": created})),
            self.event("response.in_progress", json!({"response": in_progress})),
            self.event(
                "response.output_item.added",
                json!({"output_index": 0, "item": item}),
            ),
            self.event(
                "response.content_part.added",
                json!({"item_id": self.message_id, "output_index": 0, "content_index": 0,
                       "part": output_text("")}),
            ),
        ]
    }

    /// `response.output_text.delta`.
    pub fn delta(&mut self, text: &str) -> Value {
        let fields = json!({"item_id": self.message_id, "output_index": 0, "content_index": 0,
                            "delta": text, "logprobs": []});
        self.event("response.output_text.delta", fields)
    }

    /// `response.output_text.done`, `response.content_part.done`, `response.output_item.done`
    /// and `response.completed` (the whole response with `usage`), for the whole `text`.
    pub fn closing(&mut self, text: &str, usage: ResponsesUsage) -> Vec<Value> {
        let item = output_message(self.message_id, "completed", Some(text));
        let completed = completed_response(self.id, self.message_id, self.request, text, usage);
        vec![
            self.event(
                "response.output_text.done",
                json!({"item_id": self.message_id, "output_index": 0, "content_index": 0,
                       "text": text, "logprobs": []}),
            ),
            self.event(
                "response.content_part.done",
                json!({"item_id": self.message_id, "output_index": 0, "content_index": 0,
                       "part": output_text(text)}),
            ),
            self.event(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            ),
            self.event("response.completed", json!({"response": completed})),
        ]
    }

    /// The `error` event of a stream that fails: `{"type": "error", "code", "message",
    /// "param": null, "sequence_number"}`.
    pub fn error(&mut self, code: &str, message: &str) -> Value {
        self.event(
            "error",
            json!({"code": code, "message": message, "param": null}),
        )
    }

    /// A whole successful stream: opening, one delta per piece, closing with the pieces joined.
    pub fn events(&mut self, deltas: &[String], usage: ResponsesUsage) -> Vec<Value> {
        let mut events = self.opening();
        events.extend(deltas.iter().map(|d| self.delta(d)));
        events.extend(self.closing(&deltas.concat(), usage));
        events
    }
}

/// One typed SSE event: `event: TYPE`, `data: {json}` and a blank line (the type is the
/// payload's `type`). The Responses API ends a stream with its last event, no `[DONE]`.
pub fn typed_event(data: &Value) -> String {
    let kind = data["type"].as_str().unwrap_or("message");
    format!("event: {kind}\ndata: {data}\n\n")
}

// ---------------------------------------------------------------- Embeddings

/// The dimension of the fake's vectors when the request gives no `dimensions`.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 8;

/// The largest `dimensions` the fake accepts (text-embedding-3-large's); beyond it, 400.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 3072;

/// One input of an embeddings request: a string, or an array of token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbeddingInput {
    Text(String),
    Tokens(Vec<u64>),
}

impl EmbeddingInput {
    /// The fake's token count for it: whitespace-separated words of a text, ids of a token
    /// array.
    pub fn tokens(&self) -> u64 {
        match self {
            EmbeddingInput::Text(text) => text.split_whitespace().count() as u64,
            EmbeddingInput::Tokens(ids) => ids.len() as u64,
        }
    }

    /// What its vector is derived from: the text itself, or the token array's JSON (`[1,2,3]`).
    pub fn key(&self) -> String {
        match self {
            EmbeddingInput::Text(text) => text.clone(),
            EmbeddingInput::Tokens(ids) => json!(ids).to_string(),
        }
    }

    /// Its vector of `dimensions` floats: [`embedding_vector`] of its [`key`](Self::key).
    pub fn vector(&self, dimensions: usize) -> Vec<f32> {
        embedding_vector(&self.key(), dimensions)
    }
}

/// The inputs of an embeddings request's `input`, one per embedding, in order: a string (one
/// input), an array of strings, an array of token ids (one input), or an array of arrays of
/// token ids. `Err` with OpenAI's message for anything else, an empty string, or an empty
/// array.
pub fn embedding_inputs(input: &Value) -> Result<Vec<EmbeddingInput>, String> {
    let invalid = || {
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.".to_owned()
    };
    let text = |v: &Value| match v.as_str() {
        Some(s) if !s.is_empty() => Some(EmbeddingInput::Text(s.to_owned())),
        _ => None,
    };
    let tokens = |v: &Value| {
        let ids = v.as_array()?;
        if ids.is_empty() {
            return None;
        }
        ids.iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()
            .map(EmbeddingInput::Tokens)
    };
    match input {
        Value::String(_) => text(input).map(|t| vec![t]).ok_or_else(invalid),
        Value::Array(items) if items.is_empty() => Err(invalid()),
        Value::Array(items) if items[0].is_string() => items
            .iter()
            .map(text)
            .collect::<Option<_>>()
            .ok_or_else(invalid),
        Value::Array(items) if items[0].is_number() => {
            tokens(input).map(|t| vec![t]).ok_or_else(invalid)
        }
        Value::Array(items) => items
            .iter()
            .map(tokens)
            .collect::<Option<_>>()
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// The fake's token count for a request's `input` (`usage.prompt_tokens` and `total_tokens`):
/// the sum of [`EmbeddingInput::tokens`]; None if the input is invalid.
pub fn embedding_input_tokens(input: &Value) -> Option<u64> {
    let inputs = embedding_inputs(input).ok()?;
    Some(inputs.iter().map(EmbeddingInput::tokens).sum())
}

/// The deterministic unit vector of `dimensions` f32s for `key`: FNV-1a 64 of the key's bytes
/// seeds splitmix64, each draw's top 24 bits become a value in [-1, 1), and the vector is
/// scaled to length 1 (as OpenAI's are).
pub fn embedding_vector(key: &str, dimensions: usize) -> Vec<f32> {
    let mut seed = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut next = || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| (next() >> 40) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// `encoding_format: "base64"`: the vector's little-endian f32 bytes in standard base64 (with
/// padding), what the SDKs decode with `np.frombuffer(..., dtype="float32")`.
pub fn embedding_to_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64_encode(&bytes)
}

/// The inverse of [`embedding_to_base64`]; None if it is not base64 of whole f32s.
pub fn embedding_from_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = base64_decode(text)?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional; None on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// An embeddings answer: `{"object": "list", "data": [{"object": "embedding", "index",
/// "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`, one embedding per
/// input, each a float array or (`base64`) a base64 string.
pub fn embeddings_response(
    model: &str,
    inputs: &[EmbeddingInput],
    dimensions: usize,
    base64: bool,
) -> Value {
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = input.vector(dimensions);
            let embedding = if base64 {
                json!(embedding_to_base64(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(EmbeddingInput::tokens).sum();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// What an embeddings request asks: its inputs, dimension and encoding; `Err` with the 400
/// body OpenAI would send (invalid input, `dimensions` not in 1..=[`MAX_EMBEDDING_DIMENSIONS`],
/// `encoding_format` neither "float" nor "base64", no `model`).
pub fn embeddings_request(body: &Value) -> Result<(Vec<EmbeddingInput>, usize, bool), Value> {
    let bad =
        |message: &str, param: &str| error(message, "invalid_request_error", Some(param), None);
    if !body["model"].is_string() {
        return Err(bad("you must provide a model parameter", "model"));
    }
    let inputs = embedding_inputs(&body["input"]).map_err(|m| bad(&m, "input"))?;
    let dimensions = match &body["dimensions"] {
        Value::Null => DEFAULT_EMBEDDING_DIMENSIONS,
        v => match v.as_u64() {
            Some(d) if (1..=MAX_EMBEDDING_DIMENSIONS as u64).contains(&d) => d as usize,
            _ => {
                return Err(bad(
                    &format!(
                        "Invalid value for 'dimensions' = {v}. Must be between 1 and {MAX_EMBEDDING_DIMENSIONS}."
                    ),
                    "dimensions",
                ));
            }
        },
    };
    let base64 = match &body["encoding_format"] {
        Value::Null => false,
        v if v == "float" => false,
        v if v == "base64" => true,
        _ => {
            return Err(bad(
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                "encoding_format",
            ));
        }
    };
    Ok((inputs, dimensions, base64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors_of_the_asked_dimension() {
        let a = embedding_vector("hello world", 8);
        assert_eq!(a, embedding_vector("hello world", 8));
        assert_ne!(a, embedding_vector("hello world!", 8));
        assert_eq!(a.len(), 8);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert_eq!(embedding_vector("x", 256).len(), 256);
        assert!(embedding_vector("x", 0).is_empty());
    }

    #[test]
    fn base64_round_trips_and_matches_known_encodings() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(base64_decode("Zm9v!").is_none());
        // 1.0f32 is 00 00 80 3f little-endian.
        assert_eq!(embedding_to_base64(&[1.0]), "AACAPw==");
        for dims in [1, 2, 3, 8, 1536] {
            let v = embedding_vector("round trip", dims);
            assert_eq!(embedding_from_base64(&embedding_to_base64(&v)).unwrap(), v);
        }
        assert!(embedding_from_base64("AACA").is_none());
    }

    #[test]
    fn inputs_of_every_shape_and_their_token_counts() {
        let text = |s: &str| EmbeddingInput::Text(s.into());
        assert_eq!(
            embedding_inputs(&json!("a b  c")).unwrap(),
            vec![text("a b  c")]
        );
        assert_eq!(
            embedding_inputs(&json!(["a", "b c"])).unwrap(),
            vec![text("a"), text("b c")]
        );
        assert_eq!(
            embedding_inputs(&json!([1, 2, 3])).unwrap(),
            vec![EmbeddingInput::Tokens(vec![1, 2, 3])]
        );
        assert_eq!(
            embedding_inputs(&json!([[1, 2], [3]])).unwrap(),
            vec![
                EmbeddingInput::Tokens(vec![1, 2]),
                EmbeddingInput::Tokens(vec![3])
            ]
        );
        for bad in [
            json!(""),
            json!([]),
            json!([""]),
            json!([[]]),
            json!(["a", 1]),
            json!(3),
            json!(null),
            json!([1, "a"]),
        ] {
            assert!(embedding_inputs(&bad).is_err(), "{bad}");
        }
        assert_eq!(embedding_input_tokens(&json!("a b  c")), Some(3));
        assert_eq!(
            embedding_input_tokens(&json!(["one two", "three"])),
            Some(3)
        );
        assert_eq!(embedding_input_tokens(&json!([[1, 2], [3]])), Some(3));
        assert_eq!(EmbeddingInput::Tokens(vec![1, 2, 3]).key(), "[1,2,3]");
    }

    #[test]
    fn an_embeddings_answer_has_one_vector_per_input_in_either_encoding() {
        let body = json!({"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 4, "encoding_format": "base64"});
        let (inputs, dims, base64) = embeddings_request(&body).unwrap();
        assert_eq!((dims, base64), (4, true));
        let answer = embeddings_response("text-embedding-3-small", &inputs, dims, base64);
        assert_eq!(answer["object"], "list");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 3, "total_tokens": 3})
        );
        assert_eq!(answer["data"][1]["index"], 1);
        assert_eq!(answer["data"][1]["object"], "embedding");
        let decoded = embedding_from_base64(answer["data"][1]["embedding"].as_str().unwrap());
        assert_eq!(decoded.unwrap(), embedding_vector("c", 4));

        let floats = embeddings_response("m", &inputs, 8, false);
        let v: Vec<f32> = floats["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(v, embedding_vector("a b", 8));

        let (_, dims, base64) = embeddings_request(&json!({"model": "m", "input": "x"})).unwrap();
        assert_eq!((dims, base64), (DEFAULT_EMBEDDING_DIMENSIONS, false));
        for bad in [
            json!({"model": "m", "input": "x", "dimensions": 0}),
            json!({"model": "m", "input": "x", "dimensions": 99999}),
            json!({"model": "m", "input": "x", "encoding_format": "hex"}),
            json!({"input": "x"}),
            json!({"model": "m"}),
        ] {
            let err = embeddings_request(&bad).unwrap_err();
            assert_eq!(err["error"]["type"], "invalid_request_error", "{bad}");
        }
    }

    #[test]
    fn a_response_stream_is_numbered_and_closes_with_the_whole_text() {
        let request = json!({"model": "gpt-4.1-mini", "input": "hi", "stream": true});
        let mut stream = ResponseStream::new("resp_1", "msg_1", &request);
        let events = stream.events(&["Hel".into(), "lo".into()], RESPONSES_STREAM_USAGE);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
        }
        let created = &events[0]["response"];
        assert_eq!(
            (created["status"].as_str(), created["usage"].is_null()),
            (Some("in_progress"), true)
        );
        let done = &events[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], "gpt-4.1-mini");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["total_tokens"], 30);
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 2);
        let sse = typed_event(&events[4]);
        assert!(
            sse.starts_with("event: response.output_text.delta\ndata: {"),
            "{sse}"
        );
        assert!(sse.ends_with("}\n\n"));
    }
}
