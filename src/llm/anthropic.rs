//! Anthropic's Messages API behind OpenAI's chat format: an OpenAI chat completions request
//! becomes a Messages request ([`messages_request`]), and Claude's answer, whole
//! ([`chat_completion`]) or streamed ([`StreamTranslator`]), becomes the OpenAI answer the client
//! expects. Native Messages answers and events, relayed unchanged by the `/v1/messages` front, are
//! read for telemetry ([`parse_message`], [`parse_event`]); error answers map to [`LlmError`]
//! ([`error_for_status`]). Pure functions: the HTTP side belongs to the provider.
//!
//! The format is Anthropic's as of `anthropic-version: 2023-06-01` (its SDKs' types: `Message`,
//! `RawMessageStreamEvent`, `ErrorResponse`). What does not translate, and why:
//!
//! - **Dropped request fields**, with no Anthropic meaning: `frequency_penalty`,
//!   `presence_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `seed`, `service_tier`,
//!   `store`, `metadata` (OpenAI's stored-completion tags: Anthropic's `metadata` holds only
//!   `user_id`, which comes from `user`), `reasoning_effort` (Anthropic's `output_config.effort`
//!   exists only on some models: sending it would make other models refuse the request),
//!   `modalities`, `audio`, `prediction`, `web_search_options`, `prompt_cache_key`,
//!   `safety_identifier`, `verbosity`, `stream_options` (the usage chunk is made here, see
//!   [`StreamTranslator::new`]), a message's `name`, an image's `detail`, a function's `strict`,
//!   and `response_format` of type `text` (the default) or `json_object` (Anthropic has no
//!   schema-less JSON mode). `response_format` `json_schema` becomes `output_config.format`.
//! - **Refused requests** (the caller answers 400, the message names the field): `n` other than
//!   1, audio and file content parts, the deprecated `functions`/`function_call`, tools other than
//!   functions, tool call arguments that are not a JSON object.
//! - **`temperature`**: OpenAI's range is 0–2, Anthropic's 0–1. Values above 1 are sent as 1.0:
//!   clamped, not halved, so that the common 0.2 or 0.7 keep their meaning. **`top_p`** 1 (no
//!   cut, OpenAI's default) is not sent: Anthropic's newer models refuse it beside `temperature`.
//! - **Empty text**: Anthropic refuses empty and blank text blocks, which OpenAI clients send
//!   (an assistant turn with `"content": ""` beside its tool calls): they are left out, and a
//!   message left with nothing is left out.
//! - **System prompts**: Anthropic has no system role; every `system`/`developer` message, wherever
//!   it stands in the conversation, goes into the top-level `system`.
//! - **Answers**: `thinking` and `redacted_thinking` blocks are dropped (the chat format has no
//!   place for them, and a client could not send their signature back anyway), and so are server
//!   tool blocks (`server_tool_use`, `web_search_tool_result`, …: Anthropic ran those tools
//!   itself; they are not calls for the client to make).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::{self, HeaderMap};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::wire::ChunkInfo;
use super::{Choice, Completion, LlmError, Redactor, ToolCall, Usage};

/// `anthropic-version` sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when the OpenAI request gives none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The OpenAI stream terminator.
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// `Retry-After` for a 429 that says nothing of when to come back: the gateway's documented
/// default (README, "Errors"; the OpenAI client's too). Our own constant: `openai` uses this
/// module, so using it back would make a cycle.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The rate limits whose `anthropic-ratelimit-{kind}-reset` headers say when a 429 ends.
const RATE_LIMITS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];

// ---------------------------------------------------------------------------------------------
// Request: OpenAI chat completions → Anthropic Messages.

/// An OpenAI chat completions request body (already validated JSON object) → the Anthropic
/// Messages request body for `model`, with `"stream": stream`. Err: a client-facing message
/// naming the field that cannot be translated (the caller answers 400).
pub fn messages_request(openai: &Value, model: &str, stream: bool) -> Result<Bytes, String> {
    let request = openai.as_object().ok_or("the body must be a JSON object")?;
    // `null` means "not given" for every optional OpenAI field.
    let field = |name: &str| request.get(name).filter(|v| !v.is_null());
    if let Some(n) = field("n")
        && n.as_u64() != Some(1)
    {
        return Err("n: Anthropic answers one choice".into());
    }
    for deprecated in ["functions", "function_call"] {
        if field(deprecated).is_some() {
            return Err(format!(
                "{deprecated}: the deprecated functions API is not translated for Anthropic; use tools"
            ));
        }
    }
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: must be a non-empty array")?;
    let (system, messages) = conversation(messages)?;

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), max_tokens(request)?.into());
    body.insert("messages".into(), messages);
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    if let Some(stop) = field("stop").map(stop_sequences).transpose()?.flatten() {
        body.insert("stop_sequences".into(), stop);
    }
    if let Some(temperature) = field("temperature") {
        let t = temperature
            .as_f64()
            .ok_or("temperature: must be a number")?;
        body.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    }
    if let Some(top_p) = field("top_p") {
        let p = top_p.as_f64().ok_or("top_p: must be a number")?;
        // 1 (OpenAI's default, which clients often send) cuts nothing; left out, because
        // Anthropic's newer models refuse `temperature` and `top_p` together.
        if p < 1.0 {
            body.insert("top_p".into(), top_p.clone());
        }
    }
    // Not OpenAI's, but sent by clients written for vLLM and the like; Anthropic has it.
    if let Some(top_k) = field("top_k") {
        let k = top_k.as_u64().ok_or("top_k: must be a positive integer")?;
        body.insert("top_k".into(), k.into());
    }
    if let Some(user) = field("user") {
        let user = user.as_str().ok_or("user: must be a string")?;
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    tools(request, &mut body)?;
    if let Some(format) = field("response_format")
        .map(output_format)
        .transpose()?
        .flatten()
    {
        body.insert("output_config".into(), json!({ "format": format }));
    }
    body.insert("stream".into(), stream.into());
    Ok(Bytes::from(Value::Object(body).to_string()))
}

/// `max_completion_tokens` (OpenAI's current name) or `max_tokens`, else the default.
fn max_tokens(request: &Map<String, Value>) -> Result<u64, String> {
    for name in ["max_completion_tokens", "max_tokens"] {
        match request.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v
                    .as_u64()
                    .ok_or_else(|| format!("{name}: must be a positive integer"));
            }
        }
    }
    Ok(DEFAULT_MAX_TOKENS)
}

/// `stop`, a string or an array of strings → `stop_sequences` (none for an empty list).
fn stop_sequences(stop: &Value) -> Result<Option<Value>, String> {
    let sequences: Vec<Value> = match stop {
        Value::String(s) => vec![s.as_str().into()],
        Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
        _ => return Err("stop: must be a string or an array of strings".into()),
    };
    Ok((!sequences.is_empty()).then_some(Value::Array(sequences)))
}

/// `response_format` → `output_config.format`: only a JSON schema has an Anthropic equivalent.
fn output_format(format: &Value) -> Result<Option<Value>, String> {
    match format["type"].as_str() {
        Some("text" | "json_object") => Ok(None),
        Some("json_schema") => match &format["json_schema"]["schema"] {
            schema @ Value::Object(_) => Ok(Some(json!({"type": "json_schema", "schema": schema}))),
            _ => Err("response_format.json_schema.schema: must be a JSON Schema object".into()),
        },
        _ => Err("response_format.type: must be text, json_object or json_schema".into()),
    }
}

/// `tools`, `tool_choice` and `parallel_tool_calls` → Anthropic's `tools` and `tool_choice`.
fn tools(request: &Map<String, Value>, body: &mut Map<String, Value>) -> Result<(), String> {
    let field = |name: &str| request.get(name).filter(|v| !v.is_null());
    let tools = match field("tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool(i, t))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("tools: must be an array".into()),
    };
    let choice = field("tool_choice").map(tool_choice).transpose()?;
    let parallel = match field("parallel_tool_calls") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("parallel_tool_calls: must be a boolean".into()),
    };
    // Without tools there is nothing to choose from: Anthropic is not told about choices.
    if tools.is_empty() {
        return Ok(());
    }
    body.insert("tools".into(), Value::Array(tools));
    let choice = match (choice, parallel) {
        (None, false) => Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        // `{"type": "none"}` has no `disable_parallel_tool_use`: no tool, none in parallel.
        (Some(mut c), false) if c["type"] != "none" => {
            c["disable_parallel_tool_use"] = true.into();
            Some(c)
        }
        (choice, _) => choice,
    };
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    Ok(())
}

/// One OpenAI function tool → `{name, description, input_schema}`.
fn tool(i: usize, tool: &Value) -> Result<Value, String> {
    if tool["type"] != "function" {
        return Err(format!(
            "tools[{i}].type: only function tools translate to Anthropic"
        ));
    }
    let function = &tool["function"];
    let name = function["name"]
        .as_str()
        .ok_or_else(|| format!("tools[{i}].function.name: must be a string"))?;
    let schema = match &function["parameters"] {
        // OpenAI allows a function without parameters; Anthropic requires an object schema.
        Value::Null => json!({"type": "object", "properties": {}}),
        Value::Object(schema) => {
            let mut schema = schema.clone();
            schema.entry("type").or_insert_with(|| "object".into());
            Value::Object(schema)
        }
        _ => {
            return Err(format!(
                "tools[{i}].function.parameters: must be a JSON Schema object"
            ));
        }
    };
    let mut out = json!({"name": name, "input_schema": schema});
    if let Some(description) = function["description"].as_str() {
        out["description"] = description.into();
    }
    Ok(out)
}

/// `tool_choice` → Anthropic's: auto → auto, required → any, none → none, a function → tool.
fn tool_choice(choice: &Value) -> Result<Value, String> {
    let kind = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => "auto",
            "required" => "any",
            "none" => "none",
            _ => return Err("tool_choice: must be auto, required, none or a function".into()),
        },
        Value::Object(_) if choice["type"] == "function" => {
            let name = choice["function"]["name"]
                .as_str()
                .ok_or("tool_choice.function.name: must be a string")?;
            return Ok(json!({"type": "tool", "name": name}));
        }
        _ => return Err("tool_choice: must be auto, required, none or a function".into()),
    };
    Ok(json!({ "type": kind }))
}

/// One Anthropic message in the making.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// OpenAI `messages` → Anthropic's `system` and `messages`. Anthropic wants alternating roles:
/// consecutive messages of one role (tool results, which are user content, included) become one.
fn conversation(messages: &[Value]) -> Result<(Option<Value>, Value), String> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message["role"]
            .as_str()
            .ok_or_else(|| format!("{at}.role: must be a string"))?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(system_blocks(&message["content"], &at)?);
                continue;
            }
            "user" => (
                "user",
                user_blocks(&message["content"], &format!("{at}.content"))?,
            ),
            "assistant" => ("assistant", assistant_blocks(message, &at)?),
            "tool" => ("user", vec![tool_result(message, &at)?]),
            "function" => {
                return Err(format!(
                    "{at}.role: function messages (the deprecated functions API) are not translated for Anthropic; use tool"
                ));
            }
            other => return Err(format!("{at}.role: unknown role {other:?}")),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    if turns.is_empty() {
        return Err("messages: no user or assistant message has content to send".into());
    }
    let system = match system.as_slice() {
        [] => None,
        [only] if only.get("cache_control").is_none() => Some(only["text"].clone()),
        _ => Some(Value::Array(system)),
    };
    let messages = turns
        .into_iter()
        .map(|turn| json!({"role": turn.role, "content": content(turn.blocks)}))
        .collect();
    Ok((system, Value::Array(messages)))
}

/// A message's blocks as Anthropic's content: one plain text block as the string shorthand.
fn content(mut blocks: Vec<Value>) -> Value {
    if let [only] = blocks.as_mut_slice()
        && only["type"] == "text"
        && only.get("cache_control").is_none()
    {
        return only["text"].take();
    }
    Value::Array(blocks)
}

/// A text block, or none for blank text (Anthropic refuses empty text blocks). A part's
/// `cache_control` (not OpenAI's; some clients send it for Anthropic) is kept.
fn text_block(text: &str, part: Option<&Value>) -> Option<Value> {
    if text.trim().is_empty() {
        return None;
    }
    let mut block = json!({"type": "text", "text": text});
    copy_cache_control(part, &mut block);
    Some(block)
}

fn copy_cache_control(part: Option<&Value>, block: &mut Value) {
    if let Some(cache) = part
        .and_then(|p| p.get("cache_control"))
        .filter(|c| c.is_object())
    {
        block["cache_control"] = cache.clone();
    }
}

/// A system or developer message's content: text only.
fn system_blocks(content: &Value, at: &str) -> Result<Vec<Value>, String> {
    match content {
        Value::String(text) => Ok(text_block(text, None).into_iter().collect()),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(text)) => blocks.extend(text_block(text, Some(part))),
                    _ => {
                        return Err(format!(
                            "{at}.content[{j}]: a system message holds only text parts"
                        ));
                    }
                }
            }
            Ok(blocks)
        }
        _ => Err(format!(
            "{at}.content: must be a string or an array of text parts"
        )),
    }
}

/// A user message's (or a tool result's) content: text and images. `at` names the content.
fn user_blocks(content: &Value, at: &str) -> Result<Vec<Value>, String> {
    let parts = match content {
        Value::String(text) => return Ok(text_block(text, None).into_iter().collect()),
        Value::Array(parts) => parts,
        _ => {
            return Err(format!(
                "{at}: must be a string or an array of content parts"
            ));
        }
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match part["type"].as_str() {
            Some("text") => {
                let text = part["text"]
                    .as_str()
                    .ok_or_else(|| format!("{at}.text: must be a string"))?;
                blocks.extend(text_block(text, Some(part)));
            }
            Some("image_url") => blocks.push(image_block(part, &at)?),
            Some(other) => {
                return Err(format!(
                    "{at}.type: {other} content has no Anthropic translation"
                ));
            }
            None => return Err(format!("{at}.type: must be a string")),
        }
    }
    Ok(blocks)
}

/// An `image_url` part → an image block: a base64 source for a data URL, else a URL source.
fn image_block(part: &Value, at: &str) -> Result<Value, String> {
    let url = match &part["image_url"] {
        // Some clients send the URL itself rather than `{"url": …}`.
        Value::String(url) => url.as_str(),
        image => image["url"]
            .as_str()
            .ok_or_else(|| format!("{at}.image_url.url: must be a string"))?,
    };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let source = if lower.starts_with("data:") {
        // data:image/png;base64,iVBORw0KGgo…
        let (header, data) = url[5..]
            .split_once(',')
            .filter(|(header, _)| header.ends_with(";base64"))
            .ok_or_else(|| {
                format!("{at}.image_url.url: a data URL must be base64 (data:image/png;base64,…)")
            })?;
        let media_type = header.split(';').next().unwrap_or_default();
        json!({"type": "base64", "media_type": media_type, "data": data})
    } else if lower.starts_with("https://") || lower.starts_with("http://") {
        json!({"type": "url", "url": url})
    } else {
        return Err(format!(
            "{at}.image_url.url: must be an http(s) URL or a base64 data URL"
        ));
    };
    let mut block = json!({"type": "image", "source": source});
    copy_cache_control(Some(part), &mut block);
    Ok(block)
}

/// An assistant message: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value, at: &str) -> Result<Vec<Value>, String> {
    if !message["function_call"].is_null() {
        return Err(format!(
            "{at}.function_call: the deprecated functions API is not translated for Anthropic; use tool_calls"
        ));
    }
    let mut blocks = Vec::new();
    match &message["content"] {
        Value::Null => {}
        Value::String(text) => blocks.extend(text_block(text, None)),
        Value::Array(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part["type"].as_str() {
                    Some("text") => part["text"].as_str(),
                    // A refusal the model gave is what it said.
                    Some("refusal") => part["refusal"].as_str(),
                    _ => None,
                }
                .ok_or_else(|| {
                    format!(
                        "{at}.content[{j}]: an assistant message holds only text and refusal parts"
                    )
                })?;
                blocks.extend(text_block(text, Some(part)));
            }
        }
        _ => {
            return Err(format!(
                "{at}.content: must be a string, an array of text parts or null"
            ));
        }
    }
    match &message["tool_calls"] {
        Value::Null => {}
        Value::Array(calls) => {
            for (k, call) in calls.iter().enumerate() {
                blocks.push(tool_use(call, &format!("{at}.tool_calls[{k}]"))?);
            }
        }
        _ => return Err(format!("{at}.tool_calls: must be an array")),
    }
    Ok(blocks)
}

/// One OpenAI tool call → a `tool_use` block; its input is the arguments, parsed.
fn tool_use(call: &Value, at: &str) -> Result<Value, String> {
    if !(call["type"].is_null() || call["type"] == "function") {
        return Err(format!(
            "{at}.type: only function calls translate to Anthropic"
        ));
    }
    let id = call["id"]
        .as_str()
        .ok_or_else(|| format!("{at}.id: must be a string"))?;
    let function = &call["function"];
    let name = function["name"]
        .as_str()
        .ok_or_else(|| format!("{at}.function.name: must be a string"))?;
    let input = match &function["arguments"] {
        // A function without parameters is often called with "" rather than "{}".
        Value::String(text) if text.trim().is_empty() => json!({}),
        Value::String(text) => serde_json::from_str(text)
            .map_err(|e| format!("{at}.function.arguments: not valid JSON: {e}"))?,
        // Some clients echo the arguments parsed.
        Value::Object(_) => function["arguments"].clone(),
        _ => {
            return Err(format!("{at}.function.arguments: must be a string of JSON"));
        }
    };
    if !input.is_object() {
        return Err(format!(
            "{at}.function.arguments: must be a JSON object (Anthropic's tool input)"
        ));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A `tool` message → a `tool_result` block (user content).
fn tool_result(message: &Value, at: &str) -> Result<Value, String> {
    let id = message["tool_call_id"]
        .as_str()
        .ok_or_else(|| format!("{at}.tool_call_id: must be a string"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    // `content` is optional for Anthropic, and an empty one is left out.
    let content = match &message["content"] {
        Value::Null => Value::Null,
        Value::String(text) if text.trim().is_empty() => Value::Null,
        Value::String(text) => text.as_str().into(),
        parts @ Value::Array(_) => {
            let blocks = user_blocks(parts, &format!("{at}.content"))?;
            if blocks.is_empty() {
                Value::Null
            } else {
                Value::Array(blocks)
            }
        }
        _ => {
            return Err(format!(
                "{at}.content: must be a string or an array of content parts"
            ));
        }
    };
    if !content.is_null() {
        block["content"] = content;
    }
    Ok(block)
}

// ---------------------------------------------------------------------------------------------
// Answers: Anthropic Message → OpenAI chat completion, and for telemetry.

/// A Messages answer (`Message`), or `message_start`'s message.
#[derive(Deserialize)]
struct WireMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

/// A content block; the kinds we do not translate are `Other`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's `usage`: `input_tokens` excludes the cache reads and writes. In `message_delta`
/// every count is cumulative and any may be absent, hence all optional.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens_details: Option<WireOutputDetails>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
struct WireOutputDetails {
    thinking_tokens: Option<u64>,
}

/// `{"type": "rate_limit_error", "message": "…"}`.
#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

impl WireUsage {
    /// Our usage: input counts every input token, cached or not (the GenAI conventions'
    /// `gen_ai.usage.input_tokens`, and OpenAI's `prompt_tokens`, which includes cached ones).
    fn usage(self) -> Usage {
        let read = self.cache_read_input_tokens;
        let write = self.cache_creation_input_tokens;
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read.unwrap_or(0))
                .saturating_add(write.unwrap_or(0)),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_read_input_tokens: read,
            cache_creation_input_tokens: write,
            reasoning_output_tokens: self.output_tokens_details.and_then(|d| d.thinking_tokens),
        }
    }

    /// Takes the later counts (a `message_delta`'s are cumulative) over the earlier ones.
    fn update(&mut self, later: WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.output_tokens_details = later.output_tokens_details.or(self.output_tokens_details);
    }
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason`. A reason added after this was written
/// is passed on as it is: more telling than a guess.
fn finish_reason(stop_reason: Option<&str>) -> String {
    match stop_reason {
        // pause_turn: a server tool's long turn paused; what was said so far is complete.
        Some("end_turn" | "stop_sequence" | "pause_turn") => "stop",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        Some(other) => other,
        None => "unknown",
    }
    .to_owned()
}

/// OpenAI's `usage` object. The cache fields appear only when Anthropic reported them, so that
/// `wire::parse_chunk` and `parse_completion` read back exactly our [`Usage`].
fn openai_usage(usage: &Usage) -> Value {
    let mut out = json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
    });
    let mut details = Map::new();
    if let Some(read) = usage.cache_read_input_tokens {
        details.insert("cached_tokens".into(), read.into());
    }
    if let Some(write) = usage.cache_creation_input_tokens {
        // What `wire` reads as cache writes (OpenAI's newer models, OpenRouter).
        details.insert("cache_write_tokens".into(), write.into());
    }
    if !details.is_empty() {
        out["prompt_tokens_details"] = Value::Object(details);
    }
    if let Some(reasoning) = usage.reasoning_output_tokens {
        out["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    out
}

/// A native Messages answer, read for telemetry (the `/v1/messages` front relays it unchanged).
/// Text blocks are concatenated, `tool_use` blocks become tool calls (arguments: the input as
/// JSON text), the stop reason is mapped to OpenAI's finish reasons, and usage counts cached
/// input in `input_tokens`.
pub fn parse_message(body: &[u8]) -> Result<Completion, LlmError> {
    let wire: WireMessage = serde_json::from_slice(body)
        .map_err(|e| LlmError::BadResponse(format!("not an Anthropic message: {e}")))?;
    if wire.kind.as_deref() == Some("error") {
        let kind = wire.error.and_then(|e| e.kind).unwrap_or_default();
        return Err(LlmError::BadResponse(format!(
            "an error ({kind}) with a success status"
        )));
    }
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for block in wire.content {
        match block {
            WireBlock::Text { text } => content.push_str(&text),
            WireBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                },
            }),
            WireBlock::Other => {}
        }
    }
    Ok(Completion {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        choices: vec![Choice {
            content,
            tool_calls,
            finish_reason: finish_reason(wire.stop_reason.as_deref()),
        }],
        usage: wire.usage.map(WireUsage::usage),
        ..Completion::default()
    })
}

/// An Anthropic Messages answer (JSON body) → the OpenAI chat completion body the client gets
/// (bytes, OpenAI's exact shape: `id`, `object` "chat.completion", `created`, `model`,
/// `choices[0].message {role, content, tool_calls}`, `finish_reason`, `usage {prompt_tokens,
/// completion_tokens, total_tokens, prompt_tokens_details.cached_tokens}`) and what it says
/// (`Completion`).
///
/// The id stays Anthropic's (`msg_…`). `content` is null when the answer is only tool calls, as
/// OpenAI's is; `prompt_tokens_details` also carries `cache_write_tokens` (cache creation).
pub fn chat_completion(body: &[u8], created: u64) -> Result<(Bytes, Completion), LlmError> {
    let completion = parse_message(body)?;
    let choice = &completion.choices[0];
    let content = if choice.content.is_empty() && !choice.tool_calls.is_empty() {
        Value::Null
    } else {
        choice.content.as_str().into()
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !choice.tool_calls.is_empty() {
        message["tool_calls"] = choice
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
    }
    let mut out = json!({
        "id": completion.id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": choice.finish_reason,
        }],
    });
    if let Some(usage) = &completion.usage {
        out["usage"] = openai_usage(usage);
    }
    Ok((Bytes::from(out.to_string()), completion))
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// One Anthropic stream event (`RawMessageStreamEvent`, plus `ping` and `error`). Event types
/// added later are `Other`: Anthropic's versioning policy asks clients to ignore them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: WireBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: WireDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: WireMessageDelta,
        usage: Option<WireUsage>,
    },
    MessageStop {},
    Error {
        error: WireError,
    },
    // content_block_stop, ping, and whatever comes next.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    // thinking_delta, signature_delta, citations_delta.
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct WireMessageDelta {
    stop_reason: Option<String>,
}

/// The event in one SSE event's `data:` lines (joined as the SSE specification says), or None
/// for an event without data. The JSON's own `type` names the event, as Anthropic's `event:`
/// line does.
fn read_event(event: &[u8]) -> Result<Option<WireEvent>, LlmError> {
    let data = super::wire::event_data(event);
    let Some(data) = data else { return Ok(None) };
    serde_json::from_str(&data)
        .map(Some)
        .map_err(|e| LlmError::BadResponse(format!("not an Anthropic stream event: {e}")))
}

/// Anthropic stream events → OpenAI chat chunk events, one upstream event at a time.
///
/// Every chunk is `{"id","object":"chat.completion.chunk","created","model","choices":[{"index":0,
/// "delta":{…},"logprobs":null,"finish_reason":…}]}`, with the id and model of `message_start`.
/// Tool calls are numbered from 0 in the order their `tool_use` blocks start, as OpenAI numbers
/// them; text and thinking blocks take no number.
#[derive(Debug)]
pub struct StreamTranslator {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    /// The counts so far: `message_start`'s, updated by each `message_delta`.
    usage: WireUsage,
    /// For each `tool_use` block, its content-block index; its position is its tool call index.
    tool_blocks: Vec<u64>,
}

impl StreamTranslator {
    /// `include_usage`: emit OpenAI's usage-only chunk (`choices: []`, `usage`) before `[DONE]`; as
    /// OpenAI does then, every other chunk carries `"usage": null`. `created`: every chunk's.
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self {
            include_usage,
            created,
            id: String::new(),
            model: String::new(),
            usage: WireUsage::default(),
            tool_blocks: Vec::new(),
        }
    }

    /// One complete Anthropic SSE event (`event: …\ndata: {…}\n\n`, as `SseSplitter` yields it)
    /// → zero or more OpenAI SSE events (`data: {json}\n\n`), and after `message_stop` also
    /// `data: [DONE]\n\n`. `ping` → nothing. An `error` event → one OpenAI-style error event
    /// `data: {"error": {"message", "type", "code"}}\n\n` (message scrubbed with `redactor`).
    ///
    /// The error event's `type` is the gateway's class for an in-stream failure
    /// (`upstream_server_error`, what the call's telemetry records) and its `code` Anthropic's
    /// error type (`overloaded_error`), as the gateway's own OpenAI error events have them.
    /// Err: an event that is not Anthropic's JSON (`bad_response`).
    pub fn translate(&mut self, event: &[u8], redactor: &Redactor) -> Result<Vec<Bytes>, LlmError> {
        let Some(event) = read_event(event)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        match event {
            WireEvent::MessageStart { message } => {
                self.id = message.id.unwrap_or_default();
                self.model = message.model.unwrap_or_default();
                if let Some(usage) = message.usage {
                    self.usage.update(usage);
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                // A text block starts empty; its text comes in deltas.
                WireBlock::Text { text } if !text.is_empty() => {
                    out.push(self.chunk(ContentDelta { content: &text }, None));
                }
                WireBlock::ToolUse { id, name, .. } => {
                    let call = self.tool_blocks.len();
                    self.tool_blocks.push(index);
                    out.push(self.chunk(
                        json!({"tool_calls": [{
                            "index": call,
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        None,
                    ));
                }
                _ => {}
            },
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                WireDelta::TextDelta { text } if !text.is_empty() => {
                    out.push(self.chunk(ContentDelta { content: &text }, None));
                }
                // The first piece is often "": nothing to send.
                WireDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    if let Some(call) = self.tool_blocks.iter().position(|&b| b == index) {
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": call,
                                "function": {"arguments": partial_json},
                            }]}),
                            None,
                        ));
                    }
                }
                _ => {}
            },
            WireEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.update(usage);
                }
                if let Some(reason) = delta.stop_reason {
                    let reason = finish_reason(Some(&reason));
                    out.push(self.chunk(json!({}), Some(reason)));
                }
            }
            WireEvent::MessageStop {} => {
                if self.include_usage {
                    let usage = openai_usage(&self.usage.usage());
                    out.push(sse(&json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    })));
                }
                out.push(Bytes::from_static(DONE_EVENT));
            }
            WireEvent::Error { error } => {
                let message = redactor.redact(
                    error
                        .message
                        .as_deref()
                        .unwrap_or("the LLM provider reported an error"),
                );
                let code = error.kind.as_deref().map(|k| redactor.redact(k));
                let kind = LlmError::InStream(String::new()).error_type().as_str();
                out.push(sse(
                    &json!({"error": {"message": message, "type": kind, "code": code}}),
                ));
            }
            WireEvent::Other => {}
        }
        Ok(out)
    }

    /// One chat chunk as an SSE event, written straight from borrowed fields: a text delta is
    /// the stream's commonest event, and building a `serde_json::Value` for each (a map, the id
    /// and model cloned into it) then printing it cost more than the rest of its relay.
    fn chunk<D: Serialize>(&self, delta: D, finish_reason: Option<String>) -> Bytes {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChoiceOut {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            // OpenAI sends `"usage": null` on every chunk but the last when usage is asked for.
            usage: self.include_usage.then_some(()),
        };
        let mut event = Vec::with_capacity(160 + self.id.len() + self.model.len());
        event.extend_from_slice(b"data: ");
        // Serialising borrowed strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut event, &chunk);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }
}

/// An OpenAI chat chunk, as [`StreamTranslator::chunk`] writes it.
#[derive(Serialize)]
struct ChunkOut<'a, D> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<D>; 1],
    /// `Some(())` is written `null`; `None` leaves the field out.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<()>,
}

#[derive(Serialize)]
struct ChoiceOut<D> {
    index: u32,
    delta: D,
    /// Always `null`: Anthropic has no log probabilities.
    logprobs: Option<()>,
    finish_reason: Option<String>,
}

/// A text delta: `{"content": "…"}`.
#[derive(Serialize)]
struct ContentDelta<'a> {
    content: &'a str,
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// One native Anthropic stream event read for telemetry (the front relays it unchanged):
/// `message_start` gives id, model and input usage (incl. cache tokens), `content_block_delta`
/// text, `message_delta` stop_reason (mapped) and output usage, `message_stop` → done,
/// `error` → error message. Same `ChunkInfo` struct as OpenAI's.
///
/// Each event is read alone, so usage comes in two parts that the reader must combine:
/// `message_start`'s usage has the input counts (and an early `output_tokens`), and
/// `message_delta`'s the final `output_tokens`, with input counts only when Anthropic repeats them
/// there (its newer answers do, cumulatively). A `message_delta` usage whose `input_tokens` is 0
/// and whose cache counts are None means "input not repeated": keep `message_start`'s input.
/// `ping`, `content_block_start`/`stop` and unknown events give an empty `ChunkInfo`.
pub fn parse_event(event: &[u8]) -> Result<ChunkInfo, LlmError> {
    let Some(event) = read_event(event)? else {
        return Ok(ChunkInfo::default());
    };
    let mut info = ChunkInfo::default();
    match event {
        WireEvent::MessageStart { message } => {
            info.id = message.id;
            info.model = message.model;
            info.usage = message.usage.map(WireUsage::usage);
        }
        WireEvent::ContentBlockStart {
            content_block: WireBlock::Text { text },
            ..
        }
        | WireEvent::ContentBlockDelta {
            delta: WireDelta::TextDelta { text },
            ..
        } if !text.is_empty() => info.content = Some(text),
        WireEvent::MessageDelta { delta, usage } => {
            if let Some(reason) = delta.stop_reason {
                info.finish_reasons.push(finish_reason(Some(&reason)));
            }
            info.usage = usage.map(WireUsage::usage);
        }
        WireEvent::MessageStop {} => info.done = true,
        WireEvent::Error { error } => {
            info.error = Some(
                error
                    .message
                    .unwrap_or_else(|| error.kind.unwrap_or_else(|| "error".to_owned())),
            );
        }
        _ => {}
    }
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// An Anthropic error answer (status other than 2xx, its headers and body
/// `{"type":"error","error":{"type":"rate_limit_error","message":"…"}}`) → our error and
/// whether a retry of the same provider is worth it.
///
/// By status, as Anthropic's SDKs classify errors: 429 → rate limited (retryable; `retry_after`
/// from `retry-after`, else the `anthropic-ratelimit-*-reset` headers, else 1 s); 401/403 →
/// authentication; 407 (only a proxy sends it) → the egress proxy's credentials; other 4xx
/// (`invalid_request_error` 400, `billing_error`, `not_found_error` 404, `request_too_large` 413)
/// → the upstream's client error with its message (scrubbed) and its error type as code; 5xx,
/// Anthropic's 529 `overloaded_error` included → server error, retryable. 1xx/3xx: a redirect,
/// not followed (a misconfigured base URL).
pub fn error_for_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    redactor: &Redactor,
) -> (LlmError, bool) {
    super::error::error_for_status(
        status,
        headers,
        parse_error_body(body, status, redactor),
        || client_retry_after(headers, SystemTime::now()),
        redactor,
    )
}

/// Reads Anthropic's `{"type":"error","error":{"type","message"}}`: the message (scrubbed) and
/// the error type as the code.
fn parse_error_body(body: &[u8], status: u16, redactor: &Redactor) -> (String, Option<String>) {
    #[derive(Deserialize)]
    struct Body {
        error: WireError,
    }
    let fallback = || format!("the LLM provider answered HTTP {status}");
    match serde_json::from_slice::<Body>(body) {
        Ok(body) => (
            redactor.redact(&body.error.message.unwrap_or_else(fallback)),
            body.error.kind.map(|k| redactor.redact(&k)),
        ),
        Err(_) => (fallback(), None),
    }
}

/// The `Retry-After` a client gets with a 429, in whole seconds: Anthropic's `retry-after`
/// (seconds, or an HTTP date); else, from its rate-limit headers (RFC 3339 times), the latest
/// `anthropic-ratelimit-{kind}-reset` among the limits it says are exhausted
/// (`…-remaining: 0`), or the earliest reset given; else the gateway's documented default (1 s).
fn client_retry_after(headers: &HeaderMap, now: SystemTime) -> u64 {
    let wait = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| crate::http_client::retry_after(v, now))
        .or_else(|| {
            let value = |name: String| headers.get(name)?.to_str().ok();
            let resets: Vec<(bool, Duration)> = RATE_LIMITS
                .into_iter()
                .filter_map(|kind| {
                    let at = parse_rfc3339(value(format!("anthropic-ratelimit-{kind}-reset"))?)?;
                    let exhausted = value(format!("anthropic-ratelimit-{kind}-remaining"))
                        .is_some_and(|v| v.trim().parse::<f64>() == Ok(0.0));
                    Some((exhausted, at.duration_since(now).unwrap_or(Duration::ZERO)))
                })
                .collect();
            let exhausted = resets.iter().filter(|(e, _)| *e).map(|(_, d)| *d).max();
            exhausted.or_else(|| resets.iter().map(|(_, d)| *d).min())
        })
        .unwrap_or(DEFAULT_RETRY_AFTER);
    // Whole seconds, rounded up: retrying early only earns another 429.
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// An RFC 3339 timestamp (`2024-05-01T12:00:30Z`, `…30.5+02:00`), as Anthropic's rate-limit
/// resets are written. No crate for it is in the tree, and the grammar is small.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t = text.trim().as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = t.get(from..to)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    let punctuation = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(i, c)| t.get(i) != Some(&c))
        || !matches!(t.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60: a leap second.
    if second > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in fraction[..digits.min(9)].iter().enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let [h1, h2, m1, m2] = digits.map(|d| i64::from(d - b'0'));
            let minutes = (h1 * 10 + h2) * 60 + m1 * 10 + m2;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The simulated provider's answer in the Messages API's shape (`/v1/messages` offline).
pub fn render_message(c: &Completion) -> Value {
    let usage = c.usage.unwrap_or_default();
    let (text, finish) = c.first();
    json!({
        "id": c.id.replacen("chatcmpl", "msg", 1),
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": if finish == "length" { "max_tokens" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": usage.output_tokens,
        },
    })
}

/// The simulated provider's answer as the Messages API's event stream: `message_start`, one
/// text block in `pieces`, `message_delta` with the stop reason and output tokens,
/// `message_stop`.
pub fn render_events(c: &Completion, pieces: &[String]) -> Vec<Vec<u8>> {
    let message = render_message(c);
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut events = vec![
        json!({"type": "message_start", "message": start}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ];
    for piece in pieces {
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }));
    events.push(json!({"type": "message_stop"}));
    events
        .into_iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or_default()
            )
            .into_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::super::sse::SseSplitter;
    use super::super::wire::{parse_chunk, parse_completion};
    use super::*;

    fn request(openai: Value) -> Value {
        let bytes = messages_request(&openai, "claude-sonnet-4-5", false).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn refused(openai: Value) -> String {
        messages_request(&openai, "claude-sonnet-4-5", false).unwrap_err()
    }

    #[test]
    fn a_multi_turn_conversation_with_a_system_prompt() {
        let body = request(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
                {"role": "user", "content": "Can you explain LLMs in plain English?"},
            ],
        }));
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": DEFAULT_MAX_TOKENS,
                "system": "You are a terse assistant.",
                "messages": [
                    {"role": "user", "content": "Hello there."},
                    {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
                    {"role": "user", "content": "Can you explain LLMs in plain English?"},
                ],
                "stream": false,
            })
        );
    }

    #[test]
    fn several_system_and_developer_messages_become_text_blocks_wherever_they_stand() {
        let body = request(json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": [
                    {"type": "text", "text": "Answer in French."},
                    {"type": "text", "text": "  "},
                ]},
            ],
        }));
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Answer in French."},
            ])
        );
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        let image_in_system = refused(json!({"messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "user", "content": "Hi"},
        ]}));
        assert!(
            image_in_system.starts_with("messages[0].content[0]:"),
            "{image_in_system}"
        );
    }

    #[test]
    fn images_by_url_and_as_base64_data_urls() {
        let body = request(json!({
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in these images?"},
                {"type": "image_url", "image_url": {
                    "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg",
                    "detail": "high",
                }},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
            ]}],
        }));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is in these images?"},
                {"type": "image", "source": {
                    "type": "url",
                    "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg",
                }},
                {"type": "image", "source": {
                    "type": "base64",
                    "media_type": "image/png",
                    "data": "iVBORw0KGgoAAAANSUhEUg==",
                }},
            ])
        );
        let not_base64 = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}},
        ]}]}));
        assert!(
            not_base64.starts_with("messages[0].content[0].image_url.url:"),
            "{not_base64}"
        );
        let local_file = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
        ]}]}));
        assert!(
            local_file.starts_with("messages[0].content[1].image_url.url:"),
            "{local_file}"
        );
        let audio = refused(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        ]}]}));
        assert_eq!(
            audio,
            "messages[0].content[0].type: input_audio content has no Anthropic translation"
        );
    }

    #[test]
    fn tool_calls_and_tool_results_become_tool_use_and_merged_tool_result_blocks() {
        let body = request(json!({
            "messages": [
                {"role": "user", "content": "What's the weather in Paris and in London?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"London\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12°C, rain"}]},
                {"role": "user", "content": "Which is warmer?"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "The city"}},
                    "required": ["location"],
                },
                "strict": true,
            }}],
        }));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "What's the weather in Paris and in London?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "London"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C, sunny"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "12°C, rain"}]},
                    {"type": "text", "text": "Which is warmer?"},
                ]},
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "The city"}},
                    "required": ["location"],
                },
            }])
        );
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn tool_arguments_must_be_a_json_object() {
        let call = |arguments: Value| {
            json!({"messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}},
                ]},
            ]})
        };
        let invalid = refused(call("{\"city\": ".into()));
        assert!(
            invalid.starts_with("messages[1].tool_calls[0].function.arguments: not valid JSON"),
            "{invalid}"
        );
        let array = refused(call("[1, 2]".into()));
        assert!(
            array
                .starts_with("messages[1].tool_calls[0].function.arguments: must be a JSON object"),
            "{array}"
        );
        // A call without arguments ("" is what some models write) has an empty input.
        let empty = request(call("".into()));
        assert_eq!(empty["messages"][1]["content"][0]["input"], json!({}));
    }

    #[test]
    fn tool_choice_and_parallel_tool_calls() {
        let with = |extra: Value| {
            let mut openai = json!({
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "get_time"}}],
            });
            for (k, v) in extra.as_object().unwrap() {
                openai[k] = v.clone();
            }
            request(openai)
        };
        assert_eq!(
            with(json!({}))["tools"],
            json!([{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}])
        );
        for (openai, anthropic) in [
            (json!("auto"), json!({"type": "auto"})),
            (json!("required"), json!({"type": "any"})),
            (json!("none"), json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "get_time"}}),
                json!({"type": "tool", "name": "get_time"}),
            ),
        ] {
            assert_eq!(
                with(json!({"tool_choice": openai}))["tool_choice"],
                anthropic
            );
        }
        assert_eq!(
            with(json!({"parallel_tool_calls": false}))["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            with(json!({"parallel_tool_calls": false, "tool_choice": "required"}))["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            with(json!({"parallel_tool_calls": false, "tool_choice": "none"}))["tool_choice"],
            json!({"type": "none"})
        );
        assert!(
            with(json!({"parallel_tool_calls": true}))
                .get("tool_choice")
                .is_none()
        );
        let custom = refused(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "custom", "custom": {"name": "grammar"}}],
        }));
        assert_eq!(
            custom,
            "tools[0].type: only function tools translate to Anthropic"
        );
        let bad_choice = refused(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tool_choice": "sometimes",
        }));
        assert!(bad_choice.starts_with("tool_choice:"), "{bad_choice}");
    }

    #[test]
    fn sampling_limits_stop_user_and_stream() {
        let body = messages_request(
            &json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100,
                "temperature": 1.6,
                "top_p": 0.9,
                "stop": "\n\nHuman:",
                "user": "user-1234",
                "n": 1,
                "seed": 7,
                "presence_penalty": 0.5,
                "frequency_penalty": 0.5,
                "logit_bias": {"50256": -100},
                "logprobs": true,
                "metadata": {"team": "search"},
                "stream_options": {"include_usage": true},
                "response_format": {"type": "json_object"},
                "service_tier": "auto",
            }),
            "claude-haiku-4-5",
            true,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1.0,
                "top_p": 0.9,
                "stop_sequences": ["\n\nHuman:"],
                "metadata": {"user_id": "user-1234"},
                "stream": true,
            })
        );
        let newer = request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100,
            "max_completion_tokens": 300,
            "temperature": 0.2,
            "stop": ["END", "STOP"],
        }));
        assert_eq!(newer["max_tokens"], 300);
        assert_eq!(newer["temperature"], 0.2);
        assert_eq!(newer["stop_sequences"], json!(["END", "STOP"]));
        let no_cut = request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.7,
            "top_p": 1,
        }));
        assert!(no_cut.get("top_p").is_none());
        assert_eq!(no_cut["temperature"], 0.7);
        let nulls = request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": null, "temperature": null, "stop": null, "user": null, "n": null,
        }));
        assert_eq!(nulls["max_tokens"], DEFAULT_MAX_TOKENS);
        for absent in ["temperature", "stop_sequences", "metadata", "top_p"] {
            assert!(nulls.get(absent).is_none(), "{absent}");
        }
        assert_eq!(
            refused(json!({"messages": [{"role": "user", "content": "hi"}], "n": 2})),
            "n: Anthropic answers one choice"
        );
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}))
                .starts_with("max_tokens:")
        );
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}))
                .starts_with("stop:")
        );
    }

    #[test]
    fn a_json_schema_response_format_becomes_output_config() {
        let schema = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": false,
        });
        let body = request(json!({
            "messages": [{"role": "user", "content": "Extract the name: John Smith"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": schema}},
        }));
        assert_eq!(
            body["output_config"],
            json!({"format": {"type": "json_schema", "schema": schema}})
        );
    }

    #[test]
    fn consecutive_messages_of_a_role_merge_and_empty_ones_are_left_out() {
        let body = request(json!({
            "messages": [
                {"role": "user", "content": "First."},
                {"role": "user", "content": [{"type": "text", "text": "Second."}]},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "Third."},
            ],
        }));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "First."},
                {"type": "text", "text": "Second."},
                {"type": "text", "text": "Third."},
            ]}])
        );
        assert_eq!(
            refused(json!({"messages": [{"role": "user", "content": ""}]})),
            "messages: no user or assistant message has content to send"
        );
        assert_eq!(
            refused(json!({"messages": [{"role": "narrator", "content": "x"}]})),
            "messages[0].role: unknown role \"narrator\""
        );
        assert!(
            refused(json!({"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]}))
                .starts_with("functions:")
        );
    }

    /// The answer from Anthropic's tool use documentation, with text, a tool call, a thinking
    /// block (dropped) and cache counts.
    const MESSAGE: &str = r#"{
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "The user wants the weather.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},
            {"type": "text", "text": "I'll check the current weather in San Francisco"},
            {"type": "text", "text": " for you."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 472,
            "cache_creation_input_tokens": 1024,
            "cache_read_input_tokens": 2048,
            "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 89,
            "service_tier": "standard"
        }
    }"#;

    #[test]
    fn an_answer_becomes_openais_chat_completion() {
        let (body, completion) = chat_completion(MESSAGE.as_bytes(), 1_700_000_000).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let arguments = r#"{"location":"San Francisco, CA","unit":"celsius"}"#;
        assert_eq!(
            body,
            json!({
                "id": "msg_01Aq9w938a90dw8q",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "I'll check the current weather in San Francisco for you.",
                        "refusal": null,
                        "tool_calls": [{
                            "id": "toolu_01A09q90qw90lq917835lq9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments},
                        }],
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls",
                }],
                "usage": {
                    "prompt_tokens": 472 + 1024 + 2048,
                    "completion_tokens": 89,
                    "total_tokens": 472 + 1024 + 2048 + 89,
                    "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 1024},
                },
            })
        );
        let expected = Usage {
            input_tokens: 3544,
            output_tokens: 89,
            cache_read_input_tokens: Some(2048),
            cache_creation_input_tokens: Some(1024),
            reasoning_output_tokens: None,
        };
        assert_eq!(completion.usage, Some(expected));
        assert_eq!(completion.id, "msg_01Aq9w938a90dw8q");
        assert_eq!(
            completion.choices[0].tool_calls,
            [ToolCall {
                id: "toolu_01A09q90qw90lq917835lq9".into(),
                name: "get_weather".into(),
                arguments: arguments.into(),
            }]
        );
        // What the gateway's OpenAI reader makes of the translated body is the same.
        let (body, _) = chat_completion(MESSAGE.as_bytes(), 1).unwrap();
        let reread = parse_completion(&body).unwrap();
        assert_eq!(reread.usage, Some(expected));
        assert_eq!(reread.choices, completion.choices);
    }

    #[test]
    fn tool_calls_alone_have_null_content_and_text_alone_has_no_tool_calls() {
        let only_tool = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5",
            "content":[{"type":"tool_use","id":"toolu_1","name":"get_time","input":{}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}"#;
        let (body, completion) = chat_completion(only_tool.as_bytes(), 1).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        // No cache counts reported: none invented.
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
        );
        assert_eq!(completion.usage.unwrap().cache_read_input_tokens, None);

        let text = r#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-haiku-4-5",
            "content":[{"type":"text","text":"Hi! My name is Claude."}],
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":2095,"output_tokens":503,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;
        let (body, completion) = chat_completion(text.as_bytes(), 1).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hi! My name is Claude."
        );
        // Reported as 0: kept as 0.
        let usage = completion.usage.unwrap();
        assert_eq!(usage.cache_read_input_tokens, Some(0));
        assert_eq!(usage.cache_creation_input_tokens, Some(0));
        assert_eq!(
            body["usage"]["prompt_tokens_details"],
            json!({"cached_tokens": 0, "cache_write_tokens": 0})
        );
    }

    #[test]
    fn every_stop_reason_maps_to_a_finish_reason() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("pause_turn", "stop"),
            ("refusal", "content_filter"),
            ("model_context_window_exceeded", "length"),
            ("something_new", "something_new"),
        ] {
            let body = format!(
                r#"{{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{{"type":"text","text":"x"}}],"stop_reason":"{stop}","usage":{{"input_tokens":1,"output_tokens":1}}}}"#
            );
            let (bytes, completion) = chat_completion(body.as_bytes(), 1).unwrap();
            assert_eq!(completion.choices[0].finish_reason, finish, "{stop}");
            let bytes: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(bytes["choices"][0]["finish_reason"], finish, "{stop}");
            let info = parse_event(
                format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":15}}}}\n\n").as_bytes(),
            )
            .unwrap();
            assert_eq!(info.finish_reasons, [finish], "{stop}");
        }
    }

    #[test]
    fn a_native_answer_is_read_for_telemetry_and_bad_bodies_are_bad_responses() {
        let completion = parse_message(MESSAGE.as_bytes()).unwrap();
        assert_eq!(completion.model, "claude-sonnet-4-5-20250929");
        assert_eq!(
            completion.first(),
            (
                "I'll check the current weather in San Francisco for you.",
                "tool_calls"
            )
        );
        let thinking = r#"{"id":"msg_3","type":"message","role":"assistant","model":"claude-opus-4-1",
            "content":[{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"},{"type":"text","text":"27 * 453 = 12,231"}],
            "stop_reason":"end_turn","usage":{"input_tokens":50,"output_tokens":300,"output_tokens_details":{"thinking_tokens":250}}}"#;
        let completion = parse_message(thinking.as_bytes()).unwrap();
        assert_eq!(completion.first().0, "27 * 453 = 12,231");
        assert_eq!(completion.usage.unwrap().reasoning_output_tokens, Some(250));
        for bad in [
            &b"not json"[..],
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ] {
            assert!(matches!(parse_message(bad), Err(LlmError::BadResponse(_))));
        }
    }

    /// Anthropic's documented tool use stream, with thinking, a ping and cache counts added;
    /// the tool input arrives in three pieces after an empty one.
    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1-20250805\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"The user wants the weather.\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\", let's check the weather.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\", \"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"unit\\\": \\\"fahrenheit\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    /// The stream split as the relay splits it, each event translated.
    fn translate_all(stream: &str, include_usage: bool) -> Vec<Bytes> {
        let mut splitter = SseSplitter::default();
        let mut translator = StreamTranslator::new(include_usage, 1_700_000_000);
        // Cut in odd places, as the network would.
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(37) {
            for event in splitter.push(piece).unwrap() {
                out.extend(translator.translate(&event, &Redactor::default()).unwrap());
            }
        }
        assert!(splitter.finish().is_none());
        out
    }

    fn data(event: &Bytes) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_streamed_answer_with_text_and_a_tool_call() {
        let events = translate_all(STREAM, true);
        assert_eq!(
            events.last().unwrap(),
            &Bytes::from_static(b"data: [DONE]\n\n")
        );
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(data).collect();
        for chunk in &chunks {
            assert_eq!(chunk["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], 1_700_000_000);
            assert_eq!(chunk["model"], "claude-opus-4-1-20250805");
        }
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|c| &c["delta"])
            .collect();
        assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(chunks[0]["usage"], Value::Null);
        let text: String = deltas
            .iter()
            .filter_map(|d| d["content"].as_str())
            .collect();
        assert_eq!(text, "Okay, let's check the weather.");
        assert_eq!(
            deltas[3],
            &json!({"tool_calls": [{
                "index": 0,
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }]})
        );
        let pieces: Vec<&str> = deltas
            .iter()
            .filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str())
            .filter(|a| !a.is_empty())
            .collect();
        assert_eq!(pieces.len(), 3);
        let arguments: Value = serde_json::from_str(&pieces.concat()).unwrap();
        assert_eq!(
            arguments,
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        for delta in &deltas[4..7] {
            assert_eq!(delta["tool_calls"][0]["index"], 0);
        }
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({
                "prompt_tokens": 2572,
                "completion_tokens": 89,
                "total_tokens": 2661,
                "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 100},
            })
        );

        // What the gateway's stream observer reads from the translated events.
        let infos: Vec<ChunkInfo> = events.iter().map(|e| parse_chunk(e).unwrap()).collect();
        let content: String = infos.iter().filter_map(|i| i.content.clone()).collect();
        assert_eq!(content, "Okay, let's check the weather.");
        let reasons: Vec<&String> = infos.iter().flat_map(|i| &i.finish_reasons).collect();
        assert_eq!(reasons, ["tool_calls"]);
        let usage: Vec<Usage> = infos.iter().filter_map(|i| i.usage).collect();
        assert_eq!(
            usage,
            [Usage {
                input_tokens: 2572,
                output_tokens: 89,
                cache_read_input_tokens: Some(2000),
                cache_creation_input_tokens: Some(100),
                reasoning_output_tokens: None,
            }]
        );
        assert!(infos[infos.len() - 2].usage_only);
        assert!(infos.last().unwrap().done);
        assert!(infos.iter().all(|i| i.error.is_none()));
        assert_eq!(infos[0].id.as_deref(), Some("msg_014p7gG3wDgGV9EUtLvnow3U"));
    }

    #[test]
    fn without_include_usage_there_is_no_usage_chunk_and_no_usage_member() {
        let events = translate_all(STREAM, false);
        assert_eq!(
            events.last().unwrap(),
            &Bytes::from_static(b"data: [DONE]\n\n")
        );
        for event in &events[..events.len() - 1] {
            let chunk = data(event);
            assert!(chunk.get("usage").is_none());
            assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
        }
    }

    #[test]
    fn the_documented_text_stream_and_usage_repeated_in_message_delta() {
        // Anthropic's "basic streaming request" example, with newer cumulative delta usage.
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-opus-4-1-20250805\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n",
            "event: ping\n",
            "data: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\": \"content_block_stop\", \"index\": 0}\n\n",
            "event: message_delta\n",
            "data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"input_tokens\": 25, \"cache_creation_input_tokens\": 0, \"cache_read_input_tokens\": 0, \"output_tokens\": 15}}\n\n",
            "event: message_stop\n",
            "data: {\"type\": \"message_stop\"}\n\n",
        );
        let events = translate_all(stream, true);
        // message_start, two text deltas, the finish, usage, [DONE]: the ping and block
        // start/stop give nothing.
        assert_eq!(events.len(), 6);
        let usage = parse_chunk(&events[4]).unwrap().usage.unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 25,
                output_tokens: 15,
                cache_read_input_tokens: Some(0),
                cache_creation_input_tokens: Some(0),
                reasoning_output_tokens: None,
            }
        );
        assert_eq!(data(&events[3])["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn ping_unknown_events_and_blank_events_give_nothing() {
        let mut translator = StreamTranslator::new(true, 1);
        let redactor = Redactor::default();
        for event in [
            &b"event: ping\ndata: {\"type\": \"ping\"}\n\n"[..],
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            b"event: some_future_event\ndata: {\"type\":\"some_future_event\",\"x\":1}\n\n",
            b": a comment\n\n",
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n",
        ] {
            assert!(translator.translate(event, &redactor).unwrap().is_empty());
            let info = parse_event(event).unwrap();
            assert!(!info.done && info.content.is_none() && info.usage.is_none());
        }
        assert!(matches!(
            translator.translate(b"data: {not json\n\n", &redactor),
            Err(LlmError::BadResponse(_))
        ));
    }

    #[test]
    fn an_error_event_mid_stream_becomes_an_openai_error_event() {
        let mut translator = StreamTranslator::new(true, 1);
        let redactor = Redactor::new(["sk-ant-api03-secretsecret"]);
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n";
        assert_eq!(
            translator
                .translate(start.as_bytes(), &redactor)
                .unwrap()
                .len(),
            1
        );
        let error = b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
        let out = translator.translate(error, &redactor).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            data(&out[0]),
            json!({"error": {"message": "Overloaded", "type": "upstream_server_error", "code": "overloaded_error"}})
        );
        assert_eq!(
            parse_chunk(&out[0]).unwrap().error.as_deref(),
            Some("Overloaded")
        );
        assert_eq!(
            parse_event(error).unwrap().error.as_deref(),
            Some("Overloaded")
        );

        let leaky = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"bad key sk-ant-api03-secretsecret\"}}\n\n";
        let out = translator.translate(leaky, &redactor).unwrap();
        assert_eq!(data(&out[0])["error"]["message"], "bad key [redacted]");
    }

    #[test]
    fn native_events_are_read_for_telemetry() {
        let events: Vec<Bytes> = {
            let mut splitter = SseSplitter::default();
            splitter.push(STREAM.as_bytes()).unwrap()
        };
        let infos: Vec<ChunkInfo> = events.iter().map(|e| parse_event(e).unwrap()).collect();
        assert_eq!(infos[0].id.as_deref(), Some("msg_014p7gG3wDgGV9EUtLvnow3U"));
        assert_eq!(infos[0].model.as_deref(), Some("claude-opus-4-1-20250805"));
        assert_eq!(
            infos[0].usage,
            Some(Usage {
                input_tokens: 2572,
                output_tokens: 2,
                cache_read_input_tokens: Some(2000),
                cache_creation_input_tokens: Some(100),
                reasoning_output_tokens: None,
            })
        );
        let text: String = infos.iter().filter_map(|i| i.content.clone()).collect();
        assert_eq!(text, "Okay, let's check the weather.");
        let delta = &infos[infos.len() - 2];
        assert_eq!(delta.finish_reasons, ["tool_calls"]);
        assert_eq!(
            delta.usage,
            Some(Usage {
                output_tokens: 89,
                ..Usage::default()
            })
        );
        assert!(infos.last().unwrap().done);
        assert_eq!(infos.iter().filter(|i| i.done).count(), 1);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn error_body(kind: &str, message: &str) -> Vec<u8> {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_anthropic_error_type_maps_to_our_error() {
        let redactor = Redactor::new(["sk-ant-api03-secretsecret"]);
        let none = HeaderMap::new();
        let map = |status, kind, message| {
            error_for_status(status, &none, &error_body(kind, message), &redactor)
        };

        let (error, retry) = map(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        );
        assert!(retry);
        assert!(matches!(
            &error,
            LlmError::RateLimited { message, retry_after: Some(1) }
                if message == "Number of request tokens has exceeded your per-minute rate limit"
        ));
        for (status, kind) in [(401, "authentication_error"), (403, "permission_error")] {
            let (error, retry) = map(status, kind, "invalid x-api-key");
            assert!(!retry);
            assert!(matches!(error, LlmError::Authentication { status: s } if s == status));
        }
        for (status, kind, message) in [
            (
                400,
                "invalid_request_error",
                "messages: text content blocks must be non-empty",
            ),
            (404, "not_found_error", "model: claude-nonexistent"),
            (
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            (
                402,
                "billing_error",
                "Your credit balance is too low to access the Anthropic API.",
            ),
        ] {
            let (error, retry) = map(status, kind, message);
            assert!(!retry, "{status}");
            assert_eq!(error.error_type().as_str(), "upstream_client_error");
            assert!(
                matches!(
                    &error,
                    LlmError::UpstreamClient { status: s, message: m, code: Some(c) }
                        if *s == status && m == message && c == kind
                ),
                "{error:?}"
            );
        }
        for (status, kind) in [
            (500, "api_error"),
            (529, "overloaded_error"),
            (504, "timeout_error"),
        ] {
            let (error, retry) = map(status, kind, "Overloaded");
            assert!(retry, "{status}");
            assert!(matches!(error, LlmError::UpstreamServer { status: s } if s == status));
        }
        // The message is scrubbed; an unreadable body still gives the status.
        let (error, _) = map(
            400,
            "invalid_request_error",
            "key sk-ant-api03-secretsecret is bad",
        );
        assert_eq!(error.client_message(), "key [redacted] is bad");
        let (error, _) = error_for_status(400, &none, b"<html>Bad Request</html>", &redactor);
        assert!(matches!(
            &error,
            LlmError::UpstreamClient { message, code: None, .. }
                if message == "the LLM provider answered HTTP 400"
        ));
        let (error, retry) = error_for_status(407, &none, b"", &redactor);
        assert!(!retry && matches!(error, LlmError::Connection(_)));
    }

    #[test]
    fn a_redirect_is_not_followed_and_its_location_keeps_no_query() {
        let (error, retry) = error_for_status(
            301,
            &headers(&[("location", "https://api.anthropic.com/v1/messages?key=abc")]),
            b"",
            &Redactor::default(),
        );
        assert!(!retry);
        assert!(matches!(
            error,
            LlmError::Redirected { status: 301, location: Some(l) } if l == "https://api.anthropic.com/v1/messages"
        ));
    }

    #[test]
    fn a_429_waits_as_retry_after_or_the_rate_limit_resets_say() {
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800); // 2024-05-01T12:00:00Z
        let given = headers(&[
            ("retry-after", "7"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:01:00Z"),
        ]);
        assert_eq!(client_retry_after(&given, now), 7);
        // The exhausted limit's reset, rounded up.
        let tokens_out = headers(&[
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:02Z"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2024-05-01T12:00:20.250Z",
            ),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:12Z"),
        ]);
        assert_eq!(client_retry_after(&tokens_out, now), 21);
        // Nothing says which is exhausted: the earliest reset.
        let unknown = headers(&[
            ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:30Z"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2024-05-01T14:00:05+02:00",
            ),
        ]);
        assert_eq!(client_retry_after(&unknown, now), 5);
        // A reset already past: retry now.
        let past = headers(&[("anthropic-ratelimit-requests-reset", "2024-05-01T11:59:00Z")]);
        assert_eq!(client_retry_after(&past, now), 0);
        assert_eq!(
            client_retry_after(&HeaderMap::new(), now),
            1,
            "the documented default"
        );
        let (error, _) = error_for_status(
            429,
            &headers(&[("retry-after", "3")]),
            &error_body("rate_limit_error", "slow down"),
            &Redactor::default(),
        );
        assert_eq!(error.retry_after(), Some(3));
    }

    #[test]
    fn rfc_3339_times_are_read() {
        let at = |s| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(at("2024-05-01T12:00:30Z"), Some(1_714_564_830.0));
        assert_eq!(at("2024-05-01t12:00:30.5z"), Some(1_714_564_830.5));
        assert_eq!(at("2024-05-01T14:00:30+02:00"), Some(1_714_564_830.0));
        assert_eq!(at("2024-05-01T07:00:30-05:00"), Some(1_714_564_830.0));
        assert_eq!(at("2000-02-29T00:00:00Z"), Some(951_782_400.0));
        // The same instants as HTTP dates read them.
        for (rfc3339, http) in [
            ("2024-02-29T23:59:59Z", "Thu, 29 Feb 2024 23:59:59 GMT"),
            ("2025-12-31T00:00:01Z", "Wed, 31 Dec 2025 00:00:01 GMT"),
        ] {
            assert_eq!(
                parse_rfc3339(rfc3339),
                Some(httpdate::parse_http_date(http).unwrap()),
                "{rfc3339}"
            );
        }
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:30",
            "2024-13-01T12:00:30Z",
            "2024-05-01T12:00:30.Z",
            "2024-05-01T12:00:30+0200",
            "Wed, 01 May 2024 12:00:30 GMT",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_version_and_default_are_anthropics() {
        assert_eq!(ANTHROPIC_VERSION, "2023-06-01");
        assert_eq!(
            request(json!({"messages": [{"role": "user", "content": "x"}]}))["max_tokens"],
            4096
        );
    }
}
