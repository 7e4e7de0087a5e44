//! LLM requests: `/api/chat`'s parameters and their validation, the OpenAI chat body that goes
//! upstream, and what the GenAI span records of it. The request limits are defined here once.

use std::sync::Arc;

use serde_json::{Value, json};

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
}

/// A chat request as it goes upstream: the OpenAI JSON body and what telemetry reads of it.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The OpenAI chat request, forwarded as is (unknown fields included).
    pub body: Value,
    /// What the GenAI span records.
    pub summary: RequestSummary,
    /// We added `stream_options.include_usage` ourselves, so its usage-only chunk is ours to
    /// consume, not the client's to receive.
    pub usage_injected: bool,
    /// System instructions given separately from the messages (`/api/chat`'s `system`).
    pub system_instructions: Option<String>,
}

impl UpstreamRequest {
    /// The upstream request for an `/api/chat` call.
    pub fn from_params(params: &ChatParams, stream: bool) -> Self {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &params.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": params.prompt}));
        let body = json!({
            "model": params.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": stream,
        });
        let mut request = Self::from_body(body);
        request.system_instructions = params.system.clone();
        request
    }

    /// Validates an OpenAI chat request body; the error message names the field.
    pub fn from_openai(mut body: Value, limits: &RequestLimits) -> Result<Self, String> {
        let object = body
            .as_object_mut()
            .ok_or("the body must be a JSON object")?;
        match object.get("model") {
            None | Some(Value::Null) => {
                object.insert("model".into(), Value::from(&*limits.default_model));
            }
            Some(Value::String(m)) if !m.is_empty() && m.len() <= MAX_MODEL_LEN => {}
            Some(_) => {
                return Err(format!(
                    "model: must be a string of 1 to {MAX_MODEL_LEN} characters"
                ));
            }
        }
        match object.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {
                if messages.iter().any(|m| !m["role"].is_string()) {
                    return Err("messages: every message needs a string `role`".into());
                }
            }
            _ => return Err("messages: must be a non-empty array".into()),
        }
        if let Some(stream) = object.get("stream")
            && !(stream.is_boolean() || stream.is_null())
        {
            return Err("stream: must be a boolean".into());
        }
        for (field, range) in [("temperature", 0.0..=2.0), ("top_p", 0.0..=1.0)] {
            if let Some(v) = object.get(field)
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
        Ok(Self::from_body(body))
    }

    fn from_body(body: Value) -> Self {
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
        let summary = RequestSummary {
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
        };
        Self {
            body,
            summary,
            usage_injected: false,
            system_instructions: None,
        }
    }

    /// For streams: ask for the usage chunk (token counts for telemetry) unless the client
    /// already decided about it.
    pub fn request_stream_usage(&mut self) {
        if let Some(object) = self.body.as_object_mut()
            && !object.contains_key("stream_options")
        {
            object.insert("stream_options".into(), json!({"include_usage": true}));
            self.usage_injected = true;
        }
    }

    /// The text of the last user message and the first system message (simulated provider).
    pub fn prompt_and_system(&self) -> (String, Option<String>) {
        let messages = self.body["messages"].as_array();
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
