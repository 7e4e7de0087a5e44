//! A cached chat answer in both shapes: a stream assembled into the whole completion a plain
//! call returns (what is stored), and a stored completion replayed as the provider's stream
//! chunks (what a streaming client gets on a hit). One stored form serves both kinds of client.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::llm::wire::{DONE_EVENT, event_data};

/// Builds the whole chat completion from a stream's chunks, as they arrive.
#[derive(Debug, Default)]
pub struct ChatAssembler {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    system_fingerprint: Option<Value>,
    service_tier: Option<Value>,
    usage: Option<Value>,
    choices: Vec<AssembledChoice>,
    /// A chunk was not a chat chunk: the stream cannot be stored.
    broken: bool,
}

#[derive(Debug, Default)]
struct AssembledChoice {
    content: Option<String>,
    refusal: Option<String>,
    /// Groq's and vLLM's reasoning text (`delta.reasoning`).
    reasoning: Option<String>,
    tool_calls: Vec<AssembledToolCall>,
    finish_reason: Option<Value>,
}

#[derive(Debug, Default)]
struct AssembledToolCall {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

/// Most choices a stream may carry (`n`): a bound on what a chunk can make us allocate.
const MAX_CHOICES: usize = 128;
/// Most tool calls per choice.
const MAX_TOOL_CALLS: usize = 128;

impl ChatAssembler {
    /// One SSE event of the stream, as the upstream sent it (the usage-only chunk included).
    pub fn push(&mut self, event: &[u8]) {
        if self.broken {
            return;
        }
        let Some(data) = event_data(event) else {
            return;
        };
        if data.trim() == "[DONE]" {
            return;
        }
        match serde_json::from_str::<Value>(&data) {
            Ok(Value::Object(chunk)) => self.absorb(chunk),
            _ => self.broken = true,
        }
    }

    fn absorb(&mut self, mut chunk: Map<String, Value>) {
        for (field, slot) in [
            ("id", &mut self.id),
            ("created", &mut self.created),
            ("model", &mut self.model),
            ("system_fingerprint", &mut self.system_fingerprint),
            ("service_tier", &mut self.service_tier),
        ] {
            if let Some(value) = chunk.remove(field).filter(|v| !v.is_null())
                && slot.is_none()
            {
                *slot = Some(value);
            }
        }
        // OpenAI's `include_usage` chunk, or Groq's `x_groq.usage` on the last chunk.
        if let Some(usage) = chunk.remove("usage").filter(Value::is_object) {
            self.usage = Some(usage);
        } else if let Some(usage) = chunk
            .get_mut("x_groq")
            .and_then(|x| x.get_mut("usage"))
            .filter(|u| u.is_object())
        {
            self.usage = Some(usage.take());
        }
        let Some(Value::Array(choices)) = chunk.remove("choices") else {
            return;
        };
        for choice in choices {
            let Some(slot) = slot_at(&mut self.choices, &choice["index"], MAX_CHOICES) else {
                self.broken = true;
                return;
            };
            let delta = &choice["delta"];
            for (field, text) in [
                ("content", &mut slot.content),
                ("refusal", &mut slot.refusal),
                ("reasoning", &mut slot.reasoning),
            ] {
                if let Some(part) = delta[field].as_str() {
                    text.get_or_insert_with(String::new).push_str(part);
                }
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for call in calls {
                    let Some(assembled) =
                        slot_at(&mut slot.tool_calls, &call["index"], MAX_TOOL_CALLS)
                    else {
                        self.broken = true;
                        return;
                    };
                    if assembled.id.is_none() && call["id"].is_string() {
                        assembled.id = Some(call["id"].clone());
                    }
                    if assembled.kind.is_none() && call["type"].is_string() {
                        assembled.kind = Some(call["type"].clone());
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        assembled.name.push_str(name);
                    }
                    if let Some(arguments) = call["function"]["arguments"].as_str() {
                        assembled.arguments.push_str(arguments);
                    }
                }
            }
            if !choice["finish_reason"].is_null() {
                slot.finish_reason = Some(choice["finish_reason"].clone());
            }
        }
    }

    /// The whole completion, if the stream was complete: at least one choice, every choice
    /// finished, every chunk a chat chunk. `None` otherwise: such a stream is never stored.
    pub fn finish(self) -> Option<Bytes> {
        if self.broken
            || self.choices.is_empty()
            || self.choices.iter().any(|c| c.finish_reason.is_none())
        {
            return None;
        }
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(index, choice)| {
                let mut message = Map::new();
                message.insert("role".into(), json!("assistant"));
                message.insert("content".into(), json!(choice.content));
                if let Some(reasoning) = choice.reasoning {
                    message.insert("reasoning".into(), json!(reasoning));
                }
                if let Some(refusal) = choice.refusal {
                    message.insert("refusal".into(), json!(refusal));
                }
                if !choice.tool_calls.is_empty() {
                    let calls: Vec<Value> = choice
                        .tool_calls
                        .into_iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": call.kind.unwrap_or_else(|| json!("function")),
                                "function": {"name": call.name, "arguments": call.arguments},
                            })
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": choice.finish_reason,
                })
            })
            .collect();
        let mut completion = Map::new();
        completion.insert("id".into(), self.id.unwrap_or_else(|| json!("")));
        completion.insert("object".into(), json!("chat.completion"));
        completion.insert("created".into(), self.created.unwrap_or_else(|| json!(0)));
        completion.insert("model".into(), self.model.unwrap_or_else(|| json!("")));
        completion.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            completion.insert("usage".into(), usage);
        }
        for (field, value) in [
            ("system_fingerprint", self.system_fingerprint),
            ("service_tier", self.service_tier),
        ] {
            if let Some(value) = value {
                completion.insert(field.into(), value);
            }
        }
        Some(Bytes::from(Value::Object(completion).to_string()))
    }
}

/// The item a delta's `index` names (0 when absent), grown into as deltas arrive; `None` past
/// `max`, a bound on what one chunk can make us allocate.
fn slot_at<'a, T: Default>(items: &'a mut Vec<T>, index: &Value, max: usize) -> Option<&'a mut T> {
    let index = usize::try_from(index.as_u64().unwrap_or(0))
        .ok()
        .filter(|&i| i < max)?;
    if items.len() <= index {
        items.resize_with(index + 1, T::default);
    }
    items.get_mut(index)
}

/// A stored chat completion as the stream its provider would have sent: one chunk per choice
/// with its whole message (role, content, reasoning, refusal, tool calls with their whole
/// arguments), one chunk with every choice's finish reason, the usage chunk when the client
/// asked for it (`stream_options.include_usage`), then `data: [DONE]`. `None`: the stored body
/// is not a chat completion (it is then treated as a miss).
pub fn replay_chat(completion: &[u8], include_usage: bool) -> Option<Vec<Bytes>> {
    let completion: Value = serde_json::from_slice(completion).ok()?;
    let choices = completion["choices"].as_array()?;
    let chunk = |choices: Value| {
        let mut chunk = Map::new();
        chunk.insert("id".into(), completion["id"].clone());
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), completion["created"].clone());
        chunk.insert("model".into(), completion["model"].clone());
        for field in ["system_fingerprint", "service_tier"] {
            if let Some(value) = completion.get(field).filter(|v| !v.is_null()) {
                chunk.insert(field.into(), value.clone());
            }
        }
        chunk.insert("choices".into(), choices);
        chunk
    };
    let event =
        |chunk: Map<String, Value>| Bytes::from(format!("data: {}\n\n", Value::Object(chunk)));
    let mut events = Vec::with_capacity(choices.len() + 3);
    let mut finishes = Vec::with_capacity(choices.len());
    for (position, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(position));
        let message = choice["message"].as_object()?;
        let mut delta = Map::new();
        delta.insert("role".into(), json!("assistant"));
        for field in ["content", "reasoning", "refusal"] {
            if let Some(text) = message.get(field).filter(|v| v.is_string()) {
                delta.insert(field.into(), text.clone());
            }
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(at, call)| {
                    json!({
                        "index": at,
                        "id": call["id"],
                        "type": call.get("type").cloned().unwrap_or(json!("function")),
                        "function": call["function"],
                    })
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        events.push(event(chunk(json!([{
            "index": index, "delta": delta, "logprobs": null, "finish_reason": null,
        }]))));
        finishes.push(json!({
            "index": index, "delta": {}, "logprobs": null,
            "finish_reason": choice["finish_reason"],
        }));
    }
    events.push(event(chunk(Value::Array(finishes))));
    if include_usage && let Some(usage) = completion.get("usage").filter(|u| u.is_object()) {
        let mut last = chunk(json!([]));
        last.insert("usage".into(), usage.clone());
        events.push(event(last));
    }
    events.push(Bytes::from_static(DONE_EVENT));
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::super::super::wire::{parse_chunk, parse_completion};
    use super::*;

    fn sse(chunk: Value) -> Vec<u8> {
        format!("data: {chunk}\n\n").into_bytes()
    }

    /// A Groq-style stream: role, two content deltas, a finish, usage in `x_groq`.
    fn groq_stream() -> Vec<Vec<u8>> {
        let head = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "llama-3.1-8b-instant", "system_fingerprint": "fp_1"});
        let with = |choices: Value, extra: Option<(&str, Value)>| {
            let mut c = head.clone();
            c["choices"] = choices;
            if let Some((k, v)) = extra {
                c[k] = v;
            }
            sse(c)
        };
        vec![
            with(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
                None,
            ),
            with(
                json!([{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]),
                None,
            ),
            with(
                json!([{"index": 0, "delta": {"content": ", world"}, "finish_reason": null}]),
                None,
            ),
            with(
                json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                Some((
                    "x_groq",
                    json!({"id": "req_1", "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
                )),
            ),
            b"data: [DONE]\n\n".to_vec(),
        ]
    }

    #[test]
    fn a_stream_assembles_into_the_completion_a_plain_call_returns() {
        let mut assembler = ChatAssembler::default();
        for event in groq_stream() {
            assembler.push(&event);
        }
        let body = assembler.finish().expect("complete stream");
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["object"], "chat.completion");
        assert_eq!(value["id"], "chatcmpl-1");
        assert_eq!(value["created"], 7);
        assert_eq!(value["system_fingerprint"], "fp_1");
        assert_eq!(
            value["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello, world"})
        );
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        assert_eq!(value["usage"]["total_tokens"], 8);
        let completion = parse_completion(&body).unwrap();
        assert_eq!(
            completion.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((5, 3))
        );
    }

    #[test]
    fn tool_call_deltas_are_joined_per_call() {
        let mut assembler = ChatAssembler::default();
        let chunks = [
            json!({"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]}),
            json!({"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}, "finish_reason": null}]}),
            json!({"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}, {"index": 1, "id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}, "finish_reason": null}]}),
            json!({"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c", "model": "m", "created": 1, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
        ];
        for chunk in chunks {
            assembler.push(&sse(chunk));
        }
        let value: Value = serde_json::from_slice(&assembler.finish().unwrap()).unwrap();
        let message = &value["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ])
        );
        assert_eq!(value["usage"]["prompt_tokens"], 9);
    }

    #[test]
    fn an_unfinished_or_foreign_stream_is_not_stored() {
        let mut unfinished = ChatAssembler::default();
        for event in &groq_stream()[..3] {
            unfinished.push(event);
        }
        assert!(unfinished.finish().is_none());
        let mut foreign = ChatAssembler::default();
        for event in groq_stream() {
            foreign.push(&event);
        }
        foreign.push(b"data: not json\n\n");
        assert!(foreign.finish().is_none());
        assert!(ChatAssembler::default().finish().is_none());
        let mut too_many = ChatAssembler::default();
        too_many.push(&sse(
            json!({"choices": [{"index": 100000, "delta": {}, "finish_reason": "stop"}]}),
        ));
        assert!(too_many.finish().is_none());
    }

    #[test]
    fn a_completion_replays_as_chunks_that_reassemble_to_it() {
        let completion = json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 11, "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "logprobs": null, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "logprobs": null, "finish_reason": "tool_calls"},
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            "system_fingerprint": "fp_9",
        });
        let body = completion.to_string();
        let events = replay_chat(body.as_bytes(), true).unwrap();
        // Two message chunks, the finish chunk, the usage chunk, [DONE].
        assert_eq!(events.len(), 5);
        assert_eq!(&events[4][..], DONE_EVENT);
        let usage = parse_chunk(&events[3]).unwrap();
        assert!(usage.usage_only);
        assert_eq!(usage.usage.map(|u| u.input_tokens), Some(3));
        let finishes = parse_chunk(&events[2]).unwrap();
        assert_eq!(finishes.finish_reasons, ["stop", "tool_calls"]);
        assert_eq!(
            parse_chunk(&events[0]).unwrap().content.as_deref(),
            Some("Hi there")
        );
        let mut assembler = ChatAssembler::default();
        for event in &events {
            assembler.push(event);
        }
        let reassembled: Value = serde_json::from_slice(&assembler.finish().unwrap()).unwrap();
        assert_eq!(reassembled, completion);
    }

    #[test]
    fn usage_is_replayed_only_when_the_client_asked() {
        let body = json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).to_string();
        let events = replay_chat(body.as_bytes(), false).unwrap();
        assert_eq!(events.len(), 3);
        assert!(
            events
                .iter()
                .all(|e| !String::from_utf8_lossy(e).contains("\"usage\""))
        );
        assert!(replay_chat(b"{\"data\": []}", false).is_none());
        assert!(replay_chat(b"garbage", false).is_none());
    }
}
