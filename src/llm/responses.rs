//! OpenAI's Responses API (`POST /v1/responses`): what the gateway reads of an answer and of
//! its typed stream events, and the simulated provider's answer in the same shape. Requests
//! and answers are forwarded and relayed untouched; this is only the observer's reading.

use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::ChunkInfo;
use super::{Choice, Completion, LlmError, ToolCall, Usage};

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    incomplete_details: Option<WireIncomplete>,
    #[serde(default)]
    output: Vec<Value>,
    usage: Option<WireUsage>,
    service_tier: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireIncomplete {
    reason: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    input_tokens_details: Option<WireInputDetails>,
    output_tokens_details: Option<WireOutputDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireInputDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireOutputDetails {
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.input_tokens_details.and_then(|d| d.cached_tokens),
            cache_creation_input_tokens: None,
            reasoning_output_tokens: self.output_tokens_details.and_then(|d| d.reasoning_tokens),
        }
    }
}

/// The finish reason a response amounts to, in the chat vocabulary the GenAI conventions use:
/// `tool_calls` when it asks for a function call, `length` when cut off by
/// `max_output_tokens`, `content_filter`, else `stop`.
fn finish_reason(response: &WireResponse) -> String {
    if response.status.as_deref() == Some("incomplete") {
        return match response
            .incomplete_details
            .as_ref()
            .and_then(|d| d.reason.as_deref())
        {
            Some("max_output_tokens") => "length".into(),
            Some("content_filter") => "content_filter".into(),
            Some(other) => other.into(),
            None => "incomplete".into(),
        };
    }
    if response
        .output
        .iter()
        .any(|item| item["type"] == "function_call")
    {
        return "tool_calls".into();
    }
    "stop".into()
}

/// The answer's text and function calls, for captured content.
fn choice(response: &WireResponse) -> Choice {
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for item in &response.output {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    if let Some(text) = part["text"].as_str() {
                        content.push_str(text);
                    }
                }
            }
            Some("function_call") => tool_calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                name: item["name"].as_str().unwrap_or_default().to_owned(),
                arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => {}
        }
    }
    Choice {
        content,
        tool_calls,
        finish_reason: finish_reason(response),
    }
}

fn completion(response: WireResponse) -> Completion {
    Completion {
        choices: vec![choice(&response)],
        id: response.id.unwrap_or_default(),
        model: response.model.unwrap_or_default(),
        usage: response.usage.map(WireUsage::usage),
        service_tier: response.service_tier,
        ..Completion::default()
    }
}

/// Reads a whole Responses API answer.
pub fn parse_response(bytes: &[u8]) -> Result<Completion, LlmError> {
    let response: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::BadResponse(format!("not a Responses API answer: {e}")))?;
    if response.status.as_deref() == Some("failed") {
        return Err(LlmError::InStream(failure_message(response.error.as_ref())));
    }
    Ok(completion(response))
}

fn failure_message(error: Option<&Value>) -> String {
    error
        .and_then(|e| e["message"].as_str())
        .unwrap_or("the response failed")
        .to_owned()
}

/// Reads one typed stream event (`event: response.…` / `data: {"type": …}`): the id and model
/// from `response.created`, text from `response.output_text.delta`, usage and the finish reason
/// from the terminal `response.completed` (or `response.incomplete`), which ends the stream;
/// `response.failed` and `error` are failures.
pub fn parse_event(event: &[u8]) -> Result<ChunkInfo, LlmError> {
    let Some(data) = super::wire::event_data(event) else {
        return Ok(ChunkInfo::default());
    };
    let value: Value = serde_json::from_str(&data)
        .map_err(|e| LlmError::BadResponse(format!("a stream event that is not JSON: {e}")))?;
    let mut info = ChunkInfo::default();
    match value["type"].as_str().unwrap_or_default() {
        "response.created" | "response.in_progress" => {
            info.id = value["response"]["id"].as_str().map(str::to_owned);
            info.model = value["response"]["model"].as_str().map(str::to_owned);
        }
        "response.output_text.delta" => {
            info.content = value["delta"].as_str().map(str::to_owned);
        }
        "response.completed" | "response.incomplete" => {
            let response: WireResponse = serde_json::from_value(value["response"].clone())
                .map_err(|e| LlmError::BadResponse(format!("a malformed final response: {e}")))?;
            info.finish_reasons.push(finish_reason(&response));
            info.usage = response.usage.map(WireUsage::usage);
            info.service_tier = response.service_tier;
            info.id = response.id;
            info.model = response.model;
            info.done = true;
        }
        "response.failed" => {
            info.error = Some(failure_message(value["response"].get("error")));
        }
        "error" => {
            info.error = Some(
                value["message"]
                    .as_str()
                    .unwrap_or("the upstream reported an error")
                    .to_owned(),
            );
        }
        _ => {}
    }
    Ok(info)
}

/// The simulated provider's answer in the Responses API's shape.
pub fn render_response(c: &Completion, created: u64) -> Value {
    let usage = c.usage.unwrap_or_default();
    let (text, finish) = c.first();
    json!({
        "id": c.id.replacen("chatcmpl", "resp", 1),
        "object": "response",
        "created_at": created,
        "status": if finish == "length" { "incomplete" } else { "completed" },
        "incomplete_details": (finish == "length").then(|| json!({"reason": "max_output_tokens"})),
        "error": null,
        "instructions": null,
        "model": c.model,
        "output": [{
            "type": "message",
            "id": c.id.replacen("chatcmpl", "msg", 1),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }],
        "parallel_tool_calls": true,
        "temperature": null,
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    })
}

/// The simulated provider's answer as the Responses API's typed events: created, the text in
/// deltas of `pieces`, done events, completed.
pub fn render_events(c: &Completion, created: u64, pieces: &[String]) -> Vec<Vec<u8>> {
    let mut response = render_response(c, created);
    let item_id = response["output"][0]["id"].clone();
    let (text, _) = c.first();
    let mut events = Vec::new();
    let mut sequence = 0;
    let mut push = |kind: &str, mut body: Value| {
        body["type"] = Value::from(kind);
        body["sequence_number"] = Value::from(sequence);
        sequence += 1;
        events.push(format!("event: {kind}\ndata: {body}\n\n").into_bytes());
    };
    let mut pending = response.clone();
    pending["status"] = Value::from("in_progress");
    pending["output"] = json!([]);
    pending["usage"] = Value::Null;
    push("response.created", json!({"response": pending}));
    let part = json!({"type": "output_text", "text": "", "annotations": []});
    let location = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}}),
    );
    let with = |extra: Value| {
        let mut body = location.clone();
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        body
    };
    push("response.content_part.added", with(json!({"part": part})));
    for piece in pieces {
        push(
            "response.output_text.delta",
            with(json!({"delta": piece, "logprobs": []})),
        );
    }
    push(
        "response.output_text.done",
        with(json!({"text": text, "logprobs": []})),
    );
    push(
        "response.content_part.done",
        with(json!({"part": response["output"][0]["content"][0].clone()})),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": response["output"][0].clone()}),
    );
    let kind = if response["status"] == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    push(kind, json!({"response": response.take()}));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-4o-mini-2024-07-18","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi there","annotations":[]}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123},"service_tier":"default"}"#;

    #[test]
    fn a_whole_answer_gives_text_usage_and_finish_reason() {
        let c = parse_response(ANSWER.as_bytes()).unwrap();
        assert_eq!(
            (c.id.as_str(), c.model.as_str()),
            ("resp_1", "gpt-4o-mini-2024-07-18")
        );
        assert_eq!(c.first(), ("Hi there", "stop"));
        let usage = c.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (36, 87));
        assert_eq!(usage.cache_read_input_tokens, Some(8));
        assert_eq!(usage.reasoning_output_tokens, Some(64));
        let cut: String = ANSWER.replace(
            r#""status":"completed","model""#,
            r#""status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model""#,
        );
        assert_eq!(parse_response(cut.as_bytes()).unwrap().first().1, "length");
        let call = r#"{"id":"r","status":"completed","model":"m","output":[{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]}"#;
        let c = parse_response(call.as_bytes()).unwrap();
        assert_eq!(c.first().1, "tool_calls");
        assert_eq!(c.choices[0].tool_calls[0].name, "get_weather");
        let failed = r#"{"id":"r","status":"failed","error":{"code":"server_error","message":"boom"},"output":[]}"#;
        assert!(
            matches!(parse_response(failed.as_bytes()), Err(LlmError::InStream(m)) if m == "boom")
        );
    }

    #[test]
    fn the_simulated_events_read_back_as_the_answer_they_stream() {
        let c = Completion {
            id: "chatcmpl-sim-1".into(),
            model: "m".into(),
            choices: vec![Choice {
                content: "a b c".into(),
                tool_calls: vec![],
                finish_reason: "stop".into(),
            }],
            usage: Some(Usage {
                input_tokens: 3,
                output_tokens: 3,
                ..Usage::default()
            }),
            ..Completion::default()
        };
        let events = render_events(&c, 1, &["a ".into(), "b ".into(), "c".into()]);
        let mut text = String::new();
        let mut last = ChunkInfo::default();
        for event in &events {
            let info = parse_event(event).unwrap();
            text.push_str(info.content.as_deref().unwrap_or_default());
            last = info;
        }
        assert_eq!(text, "a b c");
        assert!(last.done);
        assert_eq!(last.finish_reasons, ["stop"]);
        assert_eq!(last.usage.unwrap().output_tokens, 3);
        let whole = render_response(&c, 1).to_string();
        assert_eq!(
            parse_response(whole.as_bytes()).unwrap().first(),
            ("a b c", "stop")
        );
        let error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"overloaded\",\"param\":null,\"sequence_number\":3}\n\n";
        assert_eq!(
            parse_event(error).unwrap().error.as_deref(),
            Some("overloaded")
        );
    }
}
