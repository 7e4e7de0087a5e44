//! LLM requests: `/api/chat`'s parameters and their validation, the OpenAI chat body that goes
//! upstream, and what the GenAI span records of it. The request limits are defined here once.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::cache::{BodyDigest, CacheRequest, body_digest};
use super::spend::Caller;

/// `max_tokens` when an `/api/chat` request (or a simulated call) sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// `temperature` when an `/api/chat` request sets none.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// Largest `max_tokens` `/api/chat` accepts.
pub const MAX_TOKENS_LIMIT: u32 = 32_768;
/// Model names are short; anything longer is a mistake, not a model.
pub const MAX_MODEL_LEN: usize = 256;

/// What the configuration says about requests: the default model and the prompt limit.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Model used when a request names none.
    pub default_model: Arc<str>,
    /// Longest accepted `/api/chat` prompt, in characters.
    pub max_prompt_chars: usize,
}

/// `/api/chat`'s fields as the client sent them, before defaults and validation.
#[derive(Debug, Clone, Default)]
pub struct ChatInput {
    /// The user's prompt.
    pub prompt: String,
    /// Optional system instructions.
    pub system: Option<String>,
    /// Model to ask.
    pub model: Option<String>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
}

impl ChatInput {
    /// Applies the defaults and checks every field; the error message names the field.
    pub fn validate(self, limits: &RequestLimits) -> Result<ChatParams, String> {
        if self.prompt.trim().is_empty() {
            return Err("prompt: must not be empty".into());
        }
        let max_prompt_chars = limits.max_prompt_chars;
        if self.prompt.chars().count() > max_prompt_chars {
            return Err(format!(
                "prompt: longer than MAX_PROMPT_CHARS ({max_prompt_chars} characters)"
            ));
        }
        let max_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(1..=MAX_TOKENS_LIMIT).contains(&max_tokens) {
            return Err(format!(
                "max_tokens: must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}"
            ));
        }
        let temperature = self.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(format!(
                "temperature: must be between 0.0 and 2.0, got {temperature}"
            ));
        }
        let model = match self.model {
            None => limits.default_model.to_string(),
            Some(m) if m.is_empty() || m.len() > MAX_MODEL_LEN => {
                return Err(format!("model: must be 1 to {MAX_MODEL_LEN} characters"));
            }
            Some(m) => m,
        };
        Ok(ChatParams {
            model,
            system: self.system.filter(|s| !s.trim().is_empty()),
            prompt: self.prompt,
            max_tokens,
            temperature,
        })
    }
}

/// One `/api/chat` request, validated.
#[derive(Debug, Clone)]
pub struct ChatParams {
    /// Model to ask.
    pub model: String,
    /// Optional system instructions.
    pub system: Option<String>,
    /// The user's prompt.
    pub prompt: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
}

/// The request attributes the GenAI span records, read once from the request body.
#[derive(Debug, Clone, Default)]
pub struct RequestSummary {
    /// `gen_ai.request.model`.
    pub model: String,
    /// `gen_ai.request.max_tokens` (`max_completion_tokens` or `max_tokens`).
    pub max_tokens: Option<i64>,
    /// `gen_ai.request.temperature`.
    pub temperature: Option<f64>,
    /// `gen_ai.request.top_p`.
    pub top_p: Option<f64>,
    /// `gen_ai.request.frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `gen_ai.request.presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `gen_ai.request.seed`.
    pub seed: Option<i64>,
    /// `gen_ai.request.choice.count`, recorded when not 1.
    pub choice_count: Option<i64>,
    /// `gen_ai.request.stop_sequences`.
    pub stop_sequences: Vec<String>,
    /// `gen_ai.request.stream`.
    pub stream: bool,
    /// `gen_ai.output.type`: `json` or `text` when the request sets a response format.
    pub output_type: Option<&'static str>,
    /// `openai.request.service_tier`: the request's `service_tier`, unless `auto` (recorded
    /// only then, and only for OpenAI, as the OpenAI conventions say).
    pub service_tier: Option<String>,
    /// `gen_ai.request.encoding_formats` (embeddings), when the request names one.
    pub encoding_formats: Vec<String>,
}

/// Which API a call speaks: what the client sent, what goes upstream, how the answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// OpenAI's chat completions (`/v1/chat/completions`, `/api/chat`).
    #[default]
    Chat,
    /// OpenAI's Responses API (`/v1/responses`).
    Responses,
    /// OpenAI's embeddings (`/v1/embeddings`).
    Embeddings,
    /// Anthropic's Messages API (`/v1/messages`).
    Messages,
}

impl Operation {
    /// `gen_ai.operation.name` and the `gen_ai_operation_name` label: the conventions'
    /// well-known value (the Responses and Messages APIs generate chat answers).
    pub fn gen_ai_name(self) -> &'static str {
        match self {
            Operation::Embeddings => "embeddings",
            Operation::Chat | Operation::Responses | Operation::Messages => "chat",
        }
    }

    /// `openai.api.type`, for a call to OpenAI.
    pub fn openai_api_type(self) -> Option<&'static str> {
        match self {
            Operation::Chat => Some("chat_completions"),
            Operation::Responses => Some("responses"),
            Operation::Embeddings => Some("embeddings"),
            Operation::Messages => None,
        }
    }

    /// The API's name in messages (`the route's provider does not implement …`).
    pub fn api_name(self) -> &'static str {
        match self {
            Operation::Chat => "chat completions",
            Operation::Responses => "the Responses API",
            Operation::Embeddings => "embeddings",
            Operation::Messages => "Anthropic's Messages API",
        }
    }
}

/// A chat request as it goes upstream: the exact bytes sent, and what telemetry reads of it.
///
/// The body is built once and never re-serialised: `/v1` forwards the client's own bytes (with
/// `"model"` or `"stream_options"` spliced in after the opening brace when the gateway adds
/// them), `/api/chat` serialises a typed body. Going through a `serde_json::Value` and printing
/// it again cost a tenth of a request's instructions (BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The OpenAI chat request, exactly as sent upstream (unknown fields included).
    pub body: Bytes,
    /// What the body was made from: the client's JSON, or `/api/chat`'s parameters.
    source: Source,
    /// What the GenAI span records.
    pub summary: RequestSummary,
    /// We added `stream_options.include_usage` ourselves, so its usage-only chunk is ours to
    /// consume, not the client's to receive.
    pub usage_injected: bool,
    /// System instructions given separately from the messages (`/api/chat`'s `system`).
    pub system_instructions: Option<String>,
    /// The API it speaks.
    pub operation: Operation,
    /// Client headers the provider must see as sent: Anthropic's `anthropic-version` and
    /// `anthropic-beta` on `/v1/messages` (Claude Code's beta features), nothing else.
    pub forwarded_headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// What the request asks of the response cache (set by the API layer when the cache is on
    /// and the call is cacheable).
    pub cache: Option<CacheRequest>,
    /// Who makes the call and who pays for it (set by the API layer).
    pub caller: Caller,
}

#[derive(Debug, Clone)]
enum Source {
    /// An OpenAI request body, parsed.
    OpenAi(Value),
    /// `/api/chat`'s parameters.
    Chat(ChatParams),
}

/// `/api/chat`'s upstream body.
#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: &'a [ChatMessage<'a>],
    max_tokens: u32,
    temperature: f64,
    stream: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

impl UpstreamRequest {
    /// The upstream request for an `/api/chat` call.
    pub fn from_params(params: ChatParams, stream: bool) -> Self {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &params.system {
            messages.push(ChatMessage {
                role: "system",
                content: system,
            });
        }
        messages.push(ChatMessage {
            role: "user",
            content: &params.prompt,
        });
        let body = ChatBody {
            model: &params.model,
            messages: &messages,
            max_tokens: params.max_tokens,
            temperature: params.temperature,
            stream,
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let summary = RequestSummary {
            model: params.model.clone(),
            max_tokens: Some(i64::from(params.max_tokens)),
            temperature: Some(params.temperature),
            stream,
            ..RequestSummary::default()
        };
        Self {
            body,
            summary,
            usage_injected: false,
            system_instructions: params.system.clone(),
            operation: Operation::Chat,
            forwarded_headers: Vec::new(),
            cache: None,
            caller: Caller::default(),
            source: Source::Chat(params),
        }
    }

    /// Validates an OpenAI chat request (`raw`, parsed as `body`); the error message names the
    /// field. `raw` is what goes upstream, unless the default model has to replace a `null`.
    pub fn from_openai(raw: Bytes, body: Value, limits: &RequestLimits) -> Result<Self, String> {
        let (raw, body) = with_model(raw, body, limits)?;
        check_messages(&body)?;
        check_stream_and_sampling(&body)?;
        Ok(Self {
            body: raw,
            summary: summarize(&body),
            usage_injected: false,
            system_instructions: None,
            operation: Operation::Chat,
            forwarded_headers: Vec::new(),
            cache: None,
            caller: Caller::default(),
            source: Source::OpenAi(body),
        })
    }

    /// Validates a Responses API request (`input` and the model); the body goes upstream as
    /// the client sent it.
    pub fn from_responses(raw: Bytes, body: Value, limits: &RequestLimits) -> Result<Self, String> {
        let (raw, body) = with_model(raw, body, limits)?;
        match body.get("input") {
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) if !items.is_empty() => {}
            _ => return Err("input: must be a string or a non-empty array".into()),
        }
        check_stream_and_sampling(&body)?;
        let mut summary = summarize(&body);
        summary.max_tokens = body.get("max_output_tokens").and_then(Value::as_i64);
        summary.output_type = body["text"]["format"]["type"]
            .as_str()
            .map(|t| if t == "text" { "text" } else { "json" });
        let system_instructions = body["instructions"].as_str().map(str::to_owned);
        Ok(Self {
            body: raw,
            summary,
            usage_injected: false,
            system_instructions,
            operation: Operation::Responses,
            forwarded_headers: Vec::new(),
            cache: None,
            caller: Caller::default(),
            source: Source::OpenAi(body),
        })
    }

    /// Validates an embeddings request (`input` and the model).
    pub fn from_embeddings(
        raw: Bytes,
        body: Value,
        limits: &RequestLimits,
    ) -> Result<Self, String> {
        let (raw, body) = with_model(raw, body, limits)?;
        match body.get("input") {
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) if !items.is_empty() => {}
            _ => {
                return Err(
                    "input: must be a string or a non-empty array (of strings or token ids)".into(),
                );
            }
        }
        let encoding_formats = match body.get("encoding_format") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(format)) if ["float", "base64"].contains(&format.as_str()) => {
                vec![format.clone()]
            }
            Some(_) => return Err("encoding_format: must be \"float\" or \"base64\"".into()),
        };
        let summary = RequestSummary {
            model: body["model"].as_str().unwrap_or_default().to_owned(),
            encoding_formats,
            ..RequestSummary::default()
        };
        Ok(Self {
            body: raw,
            summary,
            usage_injected: false,
            system_instructions: None,
            operation: Operation::Embeddings,
            forwarded_headers: Vec::new(),
            cache: None,
            caller: Caller::default(),
            source: Source::OpenAi(body),
        })
    }

    /// Validates an Anthropic Messages request (`messages` with roles, the model); it goes
    /// upstream as the client sent it.
    pub fn from_messages(raw: Bytes, body: Value, limits: &RequestLimits) -> Result<Self, String> {
        // JSON Schema counts 100.0 as a whole number too.
        let whole = body["max_tokens"]
            .as_f64()
            .is_some_and(|n| n.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&n));
        if !whole {
            return Err(format!(
                "max_tokens: required, a whole number from 1 to {}",
                u32::MAX
            ));
        }
        Self::from_count_tokens(raw, body, limits)
    }

    /// Validates an Anthropic token-count request: a Messages request without `max_tokens`.
    pub fn from_count_tokens(
        raw: Bytes,
        body: Value,
        limits: &RequestLimits,
    ) -> Result<Self, String> {
        let (raw, body) = with_model(raw, body, limits)?;
        check_messages(&body)?;
        // Anthropic's range: temperature 0–1.
        check_sampling(&body, 1.0)?;
        let mut summary = summarize(&body);
        summary.stop_sequences = body["stop_sequences"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        summary.service_tier = None;
        let system_instructions = match &body["system"] {
            Value::String(text) => Some(text.clone()),
            Value::Array(blocks) => Some(
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        };
        Ok(Self {
            body: raw,
            summary,
            usage_injected: false,
            system_instructions,
            operation: Operation::Messages,
            forwarded_headers: Vec::new(),
            cache: None,
            caller: Caller::default(),
            source: Source::OpenAi(body),
        })
    }

    /// The end user the client names in the body: OpenAI's `user` (chat, Responses,
    /// embeddings) or Anthropic's `metadata.user_id`; `None` when absent or not a string.
    pub fn end_user(&self) -> Option<&str> {
        let Source::OpenAi(body) = &self.source else {
            return None;
        };
        let user = match self.operation {
            Operation::Messages => &body["metadata"]["user_id"],
            _ => &body["user"],
        };
        user.as_str().filter(|u| !u.is_empty())
    }

    /// The prompt an OpenAI body names in `metadata.prompt_name` and `metadata.prompt_version`
    /// (both strings, not empty).
    pub fn prompt_metadata(&self) -> Option<(&str, &str)> {
        let Source::OpenAi(body) = &self.source else {
            return None;
        };
        let metadata = &body["metadata"];
        let name = metadata["prompt_name"].as_str().filter(|n| !n.is_empty())?;
        let version = metadata["prompt_version"]
            .as_str()
            .filter(|v| !v.is_empty())?;
        Some((name, version))
    }

    /// The request body as JSON (an Anthropic provider translates it).
    pub fn json(&self) -> Cow<'_, Value> {
        match &self.source {
            Source::OpenAi(body) => Cow::Borrowed(body),
            Source::Chat(_) => {
                Cow::Owned(serde_json::from_slice(&self.body).unwrap_or(Value::Null))
            }
        }
    }

    /// For streams: ask for the usage chunk (token counts for telemetry) unless the client
    /// already decided about it.
    pub fn request_stream_usage(&mut self) {
        // Only chat completions have `stream_options`: the Responses API's and Anthropic's
        // streams report usage in their final events, and their APIs refuse unknown fields.
        if self.operation != Operation::Chat {
            return;
        }
        let decided = match &self.source {
            Source::OpenAi(body) => body.get("stream_options").is_some(),
            Source::Chat(_) => false,
        };
        if !decided && !self.usage_injected {
            self.body = splice_field(
                &self.body,
                "stream_options",
                &json!({"include_usage": true}),
            );
            self.usage_injected = true;
        }
    }

    /// The client asked for a chat stream's usage chunk (`stream_options.include_usage`):
    /// what a replayed stream (a cache hit) must then end with.
    pub fn client_wants_stream_usage(&self) -> bool {
        matches!(&self.source, Source::OpenAi(body) if body["stream_options"]["include_usage"] == true)
    }

    /// The response cache serves this API: chat completions (whole and streamed; `/api/chat`
    /// too) and embeddings. The Responses API's stored state (`previous_response_id`,
    /// `store`) makes its answers depend on more than the request, and Anthropic's Messages
    /// API would need its own stream replay: both always go upstream.
    pub fn is_cacheable(&self) -> bool {
        matches!(self.operation, Operation::Chat | Operation::Embeddings)
    }

    /// The body's part of the response cache key (`cache::key`): the client's JSON as parsed,
    /// or `/api/chat`'s upstream body.
    pub fn body_digest(&self) -> BodyDigest {
        match &self.source {
            Source::OpenAi(body) => body_digest(body),
            Source::Chat(_) => {
                body_digest(&serde_json::from_slice(&self.body).unwrap_or(Value::Null))
            }
        }
    }

    /// The body for a provider that knows the model as `model`: the same bytes when that is
    /// the name the client used, else with the top-level `"model"` value replaced in place
    /// (the rest of the client's bytes untouched).
    pub fn body_for(&self, model: &str) -> Bytes {
        if model == self.summary.model {
            return self.body.clone();
        }
        replace_member(&self.body, "model", &Value::from(model)).unwrap_or_else(|| {
            // Unreachable for a body we parsed; print it again rather than send the wrong model.
            let mut body: Value = serde_json::from_slice(&self.body).unwrap_or_default();
            body["model"] = Value::from(model);
            Bytes::from(body.to_string())
        })
    }

    /// Whether the upstream is asked for the usage-only chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.usage_injected
            || matches!(&self.source, Source::OpenAi(body)
                if body["stream_options"]["include_usage"] == Value::Bool(true))
    }

    /// The conversation as OpenAI messages (for captured content): the client's, or
    /// `/api/chat`'s system and user messages.
    pub fn messages(&self) -> Cow<'_, [Value]> {
        match &self.source {
            // The Responses API's `input`: a string (one user message) or message items.
            Source::OpenAi(body) if self.operation == Operation::Responses => {
                match &body["input"] {
                    Value::String(text) => {
                        Cow::Owned(vec![json!({"role": "user", "content": text})])
                    }
                    Value::Array(items) => Cow::Borrowed(items.as_slice()),
                    _ => Cow::Borrowed(&[][..]),
                }
            }
            Source::OpenAi(body) => {
                Cow::Borrowed(body["messages"].as_array().map_or(&[][..], Vec::as_slice))
            }
            Source::Chat(params) => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = &params.system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": params.prompt}));
                Cow::Owned(messages)
            }
        }
    }

    /// The text of the last user message and the first system message (simulated provider).
    pub fn prompt_and_system(&self) -> (String, Option<String>) {
        let body = match &self.source {
            Source::Chat(params) => return (params.prompt.clone(), params.system.clone()),
            Source::OpenAi(body) => body,
        };
        let input = match self.operation {
            Operation::Responses | Operation::Embeddings => match &body["input"] {
                Value::String(text) => return (text.clone(), None),
                other => other.as_array(),
            },
            _ => body["messages"].as_array(),
        };
        if self.operation == Operation::Embeddings {
            let texts: Vec<&str> = input
                .map(|items| items.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return (texts.join("\n"), None);
        }
        let messages = input;
        let text_of = |m: &Value| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        let find = |role: &str| {
            messages.and_then(|ms| ms.iter().rev().find(|m| m["role"] == role).map(text_of))
        };
        (find("user").unwrap_or_default(), find("system"))
    }
}

/// One try of a route target: the model id it is asked for and the body naming it.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The upstream model id.
    pub model: &'a str,
    /// The request body, with that model.
    pub body: Bytes,
    /// An earlier target failed: this try is a fallback.
    pub fallback: bool,
}

/// The body with the default model when it names none (spliced in, or printed again for a
/// `null`), or the error naming a bad `model`.
fn with_model(
    raw: Bytes,
    mut body: Value,
    limits: &RequestLimits,
) -> Result<(Bytes, Value), String> {
    let object = body
        .as_object_mut()
        .ok_or("the body must be a JSON object")?;
    let raw = match object.get("model") {
        None => {
            let model = Value::from(&*limits.default_model);
            let raw = splice_field(&raw, "model", &model);
            object.insert("model".into(), model);
            raw
        }
        Some(Value::Null) => {
            object.insert("model".into(), Value::from(&*limits.default_model));
            Bytes::from(body.to_string())
        }
        Some(Value::String(m)) if !m.is_empty() && m.len() <= MAX_MODEL_LEN => raw,
        Some(_) => {
            return Err(format!(
                "model: must be a string of 1 to {MAX_MODEL_LEN} characters"
            ));
        }
    };
    Ok((raw, body))
}

/// `messages`: a non-empty array of messages with a `role`.
fn check_messages(body: &Value) -> Result<(), String> {
    match body.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => {
            if messages.iter().any(|m| !m["role"].is_string()) {
                return Err("messages: every message needs a string `role`".into());
            }
            Ok(())
        }
        _ => Err("messages: must be a non-empty array".into()),
    }
}

/// `stream` a boolean; `temperature` (0–2, OpenAI's range) and `top_p` in range.
fn check_stream_and_sampling(body: &Value) -> Result<(), String> {
    check_sampling(body, 2.0)
}

/// `stream` a boolean; `temperature` (0 to `max_temperature`) and `top_p` (0–1) in range.
fn check_sampling(body: &Value, max_temperature: f64) -> Result<(), String> {
    if let Some(stream) = body.get("stream")
        && !(stream.is_boolean() || stream.is_null())
    {
        return Err("stream: must be a boolean".into());
    }
    for (field, range) in [("temperature", 0.0..=max_temperature), ("top_p", 0.0..=1.0)] {
        if let Some(v) = body.get(field)
            && !v.is_null()
            && !v.as_f64().is_some_and(|x| range.contains(&x))
        {
            return Err(format!(
                "{field}: must be a number between {} and {}",
                range.start(),
                range.end()
            ));
        }
    }
    Ok(())
}

/// What the GenAI span records of an OpenAI request body.
fn summarize(body: &Value) -> RequestSummary {
    let number = |field: &str| body.get(field).and_then(Value::as_f64);
    let integer = |field: &str| body.get(field).and_then(Value::as_i64);
    let stop_sequences = match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    };
    let output_type = body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .map(|t| if t == "text" { "text" } else { "json" });
    RequestSummary {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        max_tokens: integer("max_completion_tokens").or_else(|| integer("max_tokens")),
        temperature: number("temperature"),
        top_p: number("top_p"),
        frequency_penalty: number("frequency_penalty"),
        presence_penalty: number("presence_penalty"),
        seed: integer("seed"),
        choice_count: integer("n").filter(|n| *n != 1),
        stop_sequences,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        output_type,
        service_tier: body
            .get("service_tier")
            .and_then(Value::as_str)
            .filter(|tier| *tier != "auto")
            .map(str::to_owned),
        encoding_formats: Vec::new(),
    }
}

/// `body` (a JSON object with at least one member) with `"name": value` added as its first
/// member; `name` must not be in it already.
fn splice_field(body: &[u8], name: &str, value: &Value) -> Bytes {
    let member = format!("{}:{value},", Value::from(name));
    // The object's opening brace (only white space may come before it).
    let after_brace = body.iter().position(|b| *b == b'{').map_or(0, |i| i + 1);
    let (head, tail) = body.split_at(after_brace);
    let mut spliced = Vec::with_capacity(body.len() + member.len());
    spliced.extend_from_slice(head);
    spliced.extend_from_slice(member.as_bytes());
    spliced.extend_from_slice(tail);
    Bytes::from(spliced)
}

/// `body` (a JSON object) with the value of every top-level member called `name` replaced by
/// `value`; `None` if `body` is not a JSON object or has no such member. Nested members of the
/// same name (a message's `"model"` field, say) are left alone.
fn replace_member(body: &[u8], name: &str, value: &Value) -> Option<Bytes> {
    let mut spans = Vec::new();
    let mut i = skip_space(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(body, i + 1);
    while body.get(i)? != &b'}' {
        let key_end = skip_string(body, i)?;
        let raw_key = &body[i..key_end];
        let is_name = if raw_key.contains(&b'\\') {
            serde_json::from_slice::<String>(raw_key).ok()? == name
        } else {
            &raw_key[1..raw_key.len() - 1] == name.as_bytes()
        };
        i = skip_space(body, key_end);
        if body.get(i)? != &b':' {
            return None;
        }
        let value_start = skip_space(body, i + 1);
        let value_end = skip_value(body, value_start)?;
        if is_name {
            spans.push(value_start..value_end);
        }
        i = skip_space(body, value_end);
        match body.get(i)? {
            b',' => i = skip_space(body, i + 1),
            b'}' => {}
            _ => return None,
        }
    }
    if spans.is_empty() {
        return None;
    }
    let value = value.to_string();
    let mut out = Vec::with_capacity(body.len() + value.len());
    let mut copied = 0;
    for span in spans {
        out.extend_from_slice(&body[copied..span.start]);
        out.extend_from_slice(value.as_bytes());
        copied = span.end;
    }
    out.extend_from_slice(&body[copied..]);
    Some(Bytes::from(out))
}

fn skip_space(body: &[u8], mut i: usize) -> usize {
    while body.get(i).is_some_and(|b| b" \t\r\n".contains(b)) {
        i += 1;
    }
    i
}

/// The index after the string starting at `i` (its opening quote).
fn skip_string(body: &[u8], i: usize) -> Option<usize> {
    if body.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match body.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index after the JSON value starting at `i`.
fn skip_value(body: &[u8], i: usize) -> Option<usize> {
    match body.get(i)? {
        b'"' => skip_string(body, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match body.get(j)? {
                    b'"' => {
                        j = skip_string(body, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while body.get(j).is_some_and(|b| !b" \t\r\n,}]".contains(b)) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            default_model: "default-model".into(),
            max_prompt_chars: 100,
        }
    }

    fn openai(raw: &str) -> UpstreamRequest {
        let body: Value = serde_json::from_str(raw).unwrap();
        UpstreamRequest::from_openai(Bytes::copy_from_slice(raw.as_bytes()), body, &limits())
            .unwrap()
    }

    #[test]
    fn the_clients_bytes_go_upstream_untouched_or_with_only_our_member_spliced_in() {
        let raw = r#" {"messages":[{"role":"user","content":"hi"}], "model":"m1", "x": 1.50}"#;
        assert_eq!(&openai(raw).body[..], raw.as_bytes(), "byte for byte");

        let no_model = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let request = openai(no_model);
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["model"], "default-model");
        assert_eq!(sent["messages"][0]["content"], "hi");
        assert_eq!(request.summary.model, "default-model");

        let null_model = r#"{"model":null,"messages":[{"role":"user","content":"hi"}]}"#;
        let sent: Value = serde_json::from_slice(&openai(null_model).body).unwrap();
        assert_eq!(sent["model"], "default-model", "no duplicate key");
        assert_eq!(sent.as_object().unwrap().len(), 2);

        let mut stream =
            openai(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#);
        stream.request_stream_usage();
        stream.request_stream_usage();
        let sent: Value = serde_json::from_slice(&stream.body).unwrap();
        assert_eq!(sent["stream_options"], json!({"include_usage": true}));
        assert!(stream.usage_injected && stream.include_usage());

        let mut decided = openai(
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}"#,
        );
        decided.request_stream_usage();
        assert!(!decided.usage_injected && !decided.include_usage());
    }

    #[test]
    fn a_route_target_gets_the_clients_bytes_with_only_the_top_level_model_replaced() {
        for raw in [
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
            r#" { "messages" : [ {"role":"user","content":"say \"model\": x } ]"} ] , "model" : "fast" , "n": 1 } "#,
            r#"{"metadata":{"model":"keep-me"},"model":"fast","messages":[{"role":"user","content":[{"type":"text","text":"{[\\"}]}],"temperature":0.5,"stop":null,"tools":[]}"#,
            r#"{"mod\u0065l":"fast","messages":[{"role":"user","content":"é ✓"}]}"#,
        ] {
            let request = openai(raw);
            assert_eq!(
                request.body_for("fast"),
                raw.as_bytes(),
                "same name: same bytes"
            );
            let body = request.body_for("llama3.1:8b");
            let sent: Value = serde_json::from_slice(&body).unwrap();
            let mut expected: Value = serde_json::from_str(raw).unwrap();
            expected["model"] = Value::from("llama3.1:8b");
            assert_eq!(sent, expected, "{raw}");
            assert_eq!(
                body.len(),
                raw.len() + "llama3.1:8b".len() - "fast".len(),
                "nothing else reprinted: {raw}"
            );
        }
        // /api/chat's typed body, with the stream usage we add.
        let mut chat = UpstreamRequest::from_params(
            ChatParams {
                model: "fast".into(),
                system: None,
                prompt: "hi".into(),
                max_tokens: 5,
                temperature: 0.1,
            },
            true,
        );
        chat.request_stream_usage();
        let sent: Value = serde_json::from_slice(&chat.body_for("m2")).unwrap();
        assert_eq!(sent["model"], "m2");
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }

    #[test]
    fn api_chat_params_become_an_openai_body() {
        let params = ChatInput {
            prompt: "hello".into(),
            system: Some("be brief".into()),
            ..ChatInput::default()
        }
        .validate(&limits())
        .unwrap();
        let mut request = UpstreamRequest::from_params(params, true);
        request.request_stream_usage();
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            sent,
            json!({"model": "default-model", "max_tokens": DEFAULT_MAX_TOKENS,
                   "temperature": DEFAULT_TEMPERATURE, "stream": true,
                   "stream_options": {"include_usage": true},
                   "messages": [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello"}]})
        );
        assert_eq!(request.summary.max_tokens, Some(256));
        assert_eq!(request.messages().len(), 2);
        assert_eq!(
            request.prompt_and_system(),
            ("hello".to_owned(), Some("be brief".to_owned()))
        );
    }
}
