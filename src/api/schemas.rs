//! The OpenAPI schemas of the Responses, embeddings and Messages requests: the fields the
//! gateway reads and validates, so that what the document calls valid the gateway accepts (the
//! API fuzzing of `scripts/fuzz-api.sh` holds the two to each other). Every other field is
//! accepted and forwarded untouched: requests are read as JSON values, never as these structs.

#![allow(dead_code)] // schemas only

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};

/// A string, or a non-empty array of `items`.
fn string_or_array(items: impl Into<RefOr<Schema>>) -> Schema {
    let items: RefOr<Schema> = items.into();
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ArrayBuilder::new().items(items).min_items(Some(1)))
        .into()
}

/// Any JSON value: the items the gateway forwards without reading them (the provider judges).
fn anything() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
}

/// `input` of the Responses API (a string, or input items) and of embeddings (a string, or
/// strings, token ids, arrays of token ids): the gateway checks only that it is a string or a
/// non-empty array.
fn input() -> Schema {
    string_or_array(anything())
}

/// An OpenAI Responses API request: the fields the gateway reads.
#[derive(ToSchema)]
#[schema(example = json!({"model": "gpt-4o-mini", "input": "Hello"}))]
pub struct ResponsesRequest {
    /// Model or route; default `LLM_DEFAULT_MODEL`.
    #[schema(min_length = 1, max_length = 256)]
    model: Option<String>,
    /// A string (one user message), or input items.
    #[schema(schema_with = input)]
    input: serde_json::Value,
    /// Answer with the typed server-sent events.
    stream: Option<bool>,
    /// Sampling temperature.
    #[schema(minimum = 0.0, maximum = 2.0)]
    temperature: Option<f64>,
    /// Nucleus sampling.
    #[schema(minimum = 0.0, maximum = 1.0)]
    top_p: Option<f64>,
}

/// An OpenAI embeddings request: the fields the gateway reads.
#[derive(ToSchema)]
#[schema(example = json!({"model": "text-embedding-3-small", "input": ["first text", "second text"]}))]
pub struct EmbeddingsRequest {
    /// Model or route; default `LLM_DEFAULT_MODEL`.
    #[schema(min_length = 1, max_length = 256)]
    model: Option<String>,
    /// A string, strings, token ids, or arrays of token ids.
    #[schema(schema_with = input)]
    input: serde_json::Value,
    /// `float` (default) or `base64` (little-endian `f32`s).
    encoding_format: Option<EncodingFormat>,
}

/// How embeddings are encoded.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// Arrays of numbers.
    Float,
    /// Base64 strings of little-endian `f32`s.
    Base64,
}

/// An Anthropic Messages request: the fields the gateway reads.
#[derive(ToSchema)]
#[schema(example = json!({"model": "claude-haiku-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}))]
pub struct MessagesRequest {
    /// Model or route; default `LLM_DEFAULT_MODEL`.
    #[schema(min_length = 1, max_length = 256)]
    model: Option<String>,
    /// Most output tokens (Anthropic requires it).
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    max_tokens: u64,
    /// The conversation; at least one message.
    #[schema(min_items = 1)]
    messages: Vec<AnthropicMessage>,
    /// Answer with Anthropic's server-sent events.
    stream: Option<bool>,
    /// Sampling temperature (Anthropic's range).
    #[schema(minimum = 0.0, maximum = 1.0)]
    temperature: Option<f64>,
    /// Nucleus sampling.
    #[schema(minimum = 0.0, maximum = 1.0)]
    top_p: Option<f64>,
}

/// An Anthropic token-count request: a Messages request without `max_tokens`.
#[derive(ToSchema)]
#[schema(example = json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hello"}]}))]
pub struct CountTokensRequest {
    /// Model or route; default `LLM_DEFAULT_MODEL`.
    #[schema(min_length = 1, max_length = 256)]
    model: Option<String>,
    /// The conversation; at least one message.
    #[schema(min_items = 1)]
    messages: Vec<AnthropicMessage>,
}

/// One Anthropic message; `content` (a string or content blocks) passes through.
#[derive(ToSchema)]
pub struct AnthropicMessage {
    /// `user` or `assistant`.
    role: String,
}
