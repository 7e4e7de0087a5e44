//! `POST /v1/feedback`: a score or label for an earlier call, named by its trace id or by the
//! response id the gateway returned. Exported as an `evaluation {name}` span linked to the
//! call's GenAI span (an OpenTelemetry span link), with the conventions' evaluation attributes
//! and their `gen_ai.evaluation.result` event, and counted (`llm_feedback_total`,
//! `llm_feedback_score`) with bounded label values.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::telemetry;

/// The longest comment kept (bytes); a longer one is refused with 413.
pub const MAX_COMMENT_BYTES: usize = 4096;
/// The longest evaluation name or label.
const MAX_NAME_CHARS: usize = 128;

/// Feedback on one call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"response_id": "chatcmpl-123", "name": "helpfulness", "score": 4, "label": "good", "comment": "Clear and correct."}))]
pub struct FeedbackRequest {
    /// The call's trace id (32 hex digits, the `x-trace-id` header of its answer); or give
    /// `response_id` (with both, they must name the same call).
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    pub trace_id: Option<String>,
    /// The `id` of the call's answer (`chatcmpl-…`, `resp_…`, `msg_…`); or give `trace_id`.
    #[schema(min_length = 1)]
    pub response_id: Option<String>,
    /// The evaluation's name (`gen_ai.evaluation.name`).
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// Its score (`gen_ai.evaluation.score.value`).
    pub score: Option<f64>,
    /// Its label (`gen_ai.evaluation.score.label`), e.g. `good`, `correct`, `pass`.
    #[schema(min_length = 1, max_length = 128)]
    pub label: Option<String>,
    /// Why (`gen_ai.evaluation.explanation`): at most 4096 bytes (413 beyond; the schema's
    /// 1024 characters always fit).
    #[schema(max_length = 1024)]
    pub comment: Option<String>,
}

/// What was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackRecorded {
    /// The trace of the call the feedback is about.
    pub linked_trace_id: String,
    /// The trace of this feedback request (its `evaluation` span).
    pub trace_id: Option<String>,
}

/// Record feedback (a score, a label, a comment) on an earlier call.
#[utoipa::path(
    post,
    path = "/v1/feedback",
    tag = "feedback",
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "Recorded: an `evaluation {name}` span linked to the call's span, and the feedback metrics", body = FeedbackRecorded),
        (status = 400, description = "Malformed JSON", body = super::ErrorBody),
        (status = 401, description = "Missing or wrong gateway key (when keys are configured)", body = super::ErrorBody),
        (status = 404, description = "No call with that trace id or response id (or both, of one call) within the feedback window, or no id given", body = super::ErrorBody),
        (status = 413, description = "The comment is over 4096 bytes", body = super::ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = super::ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn feedback(
    State(state): State<AppState>,
    body: Result<Json<FeedbackRequest>, JsonRejection>,
) -> Result<Json<FeedbackRecorded>, ApiError> {
    let Json(feedback) = body?;
    let name = feedback.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name: expected the evaluation's name, 1 to 128 characters",
        ));
    }
    if let Some(label) = &feedback.label
        && (label.trim().is_empty() || label.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ApiError::validation("label: expected 1 to 128 characters"));
    }
    if feedback
        .comment
        .as_ref()
        .is_some_and(|c| c.len() > MAX_COMMENT_BYTES)
    {
        return Err(ApiError::InvalidRequest {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("comment: at most {MAX_COMMENT_BYTES} bytes"),
        });
    }
    let recent = state.chat.recent();
    let trace = match feedback.trace_id.as_deref().map(str::trim) {
        None | Some("") => None,
        // An all-zero trace id is well formed and names no call.
        Some(text) if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(parse_trace_id(text).unwrap_or([0; 16]))
        }
        Some(_) => return Err(ApiError::validation("trace_id: expected 32 hex digits")),
    };
    let response_id = feedback
        .response_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let call = match (trace, response_id) {
        (Some(trace), None) => recent.by_trace_id(trace),
        (None, Some(id)) => recent.by_response_id(id),
        // Both: the same call, or none.
        (Some(trace), Some(id)) => recent
            .by_response_id(id)
            .filter(|call| call.span.trace_id().to_bytes() == trace),
        (None, None) => {
            return Err(ApiError::InvalidRequest {
                status: StatusCode::NOT_FOUND,
                message: "no call named: give trace_id or response_id".into(),
            });
        }
    };
    let Some(call) = call else {
        return Err(ApiError::InvalidRequest {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no call with that {} in the last {} s (the feedback window)",
                match (trace, response_id) {
                    (Some(_), Some(_)) => "response_id in that trace",
                    (Some(_), None) => "trace_id",
                    _ => "response_id",
                },
                recent.window().as_secs()
            ),
        });
    };
    let label = feedback.label.as_deref().map(str::trim);
    let span = tracing::info_span!(
        "evaluation",
        otel.name = format!("evaluation {name}"),
        otel.kind = "internal",
        gen_ai.evaluation.name = name,
        gen_ai.evaluation.score.value = feedback.score,
        gen_ai.evaluation.score.label = label,
        gen_ai.evaluation.explanation = feedback.comment.as_deref(),
        gen_ai.response.id = Empty,
        gen_ai.prompt.name = call.prompt.as_ref().map(|p| p.0.as_str()),
        llmobs.prompt.version = call.prompt.as_ref().map(|p| p.1.as_str()),
        llmobs.route.name = call.variant.as_ref().map(|v| &*v.0),
        llmobs.route.variant = call.variant.as_ref().map(|v| &*v.1),
    );
    span.add_link(call.span.clone());
    let response_id = feedback
        .response_id
        .as_deref()
        .or(call.response_id.as_deref());
    if let Some(id) = response_id {
        span.record("gen_ai.response.id", id);
    }
    // The conventions' form of an evaluation, on the span that carries it.
    let mut attributes = vec![KeyValue::new("gen_ai.evaluation.name", name.to_owned())];
    if let Some(score) = feedback.score {
        attributes.push(KeyValue::new("gen_ai.evaluation.score.value", score));
    }
    if let Some(label) = label {
        attributes.push(KeyValue::new(
            "gen_ai.evaluation.score.label",
            label.to_owned(),
        ));
    }
    if let Some(id) = response_id {
        attributes.push(KeyValue::new("gen_ai.response.id", id.to_owned()));
    }
    span.add_event("gen_ai.evaluation.result", attributes);
    // Ends now: tracing-opentelemetry ends a span at its last exit.
    drop(span.enter());
    drop(span);

    let bounded = |value: &str, declared: &[String]| {
        if declared.iter().any(|d| d == value) {
            value.to_owned()
        } else {
            "other".to_owned()
        }
    };
    let settings = &state.feedback;
    let name_label = bounded(name, &settings.names);
    let label_label = label.map_or(String::new(), |l| bounded(l, &settings.labels));
    state
        .metrics
        .record_feedback(&name_label, &label_label, feedback.score);
    if let Some(score) = feedback.score {
        if let Some((prompt, version)) = &call.prompt {
            let (prompt, version) = state.prompts.labels(prompt, version);
            state
                .metrics
                .record_prompt_feedback((&prompt, &version), &name_label, score);
        }
        if let Some((route, variant)) = &call.variant {
            state
                .metrics
                .record_variant_feedback((route, variant), &name_label, score);
        }
    }
    Ok(Json(FeedbackRecorded {
        linked_trace_id: call.span.trace_id().to_string(),
        trace_id: telemetry::current_trace_id(),
    }))
}

/// 32 hex digits, not all zero.
fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    (bytes != [0; 16]).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_32_hex_digits_not_all_zero() {
        assert_eq!(
            parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").map(|b| b[0]),
            Some(0x4b)
        );
        assert_eq!(parse_trace_id("00000000000000000000000000000000"), None);
        assert_eq!(parse_trace_id("4bf92f3577b34da6"), None);
        assert_eq!(parse_trace_id("zz f92f3577b34da6a3ce929d0e0e4736"), None);
    }
}
