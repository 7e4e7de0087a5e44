//! The OTLP protobuf wire format, written straight from the SDK's `SpanData` in one pass over
//! the borrowed spans (no intermediate message structs), and the one answer field the exporter
//! reads back (partial success), with the field reader gRPC's status details use too.
//!
//! Field numbers: opentelemetry-proto v1 (`collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto`, `common/v1/common.proto`, `resource/v1/resource.proto`). Like prost,
//! proto3 defaults are left out except inside the `AnyValue` oneof. The tests decode the output
//! with opentelemetry-proto's prost types and compare it with the SDK's own conversion.

use std::time::SystemTime;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

/// An OTLP partial success: spans the collector refused in an otherwise successful export,
/// or only a warning (`rejected` 0 with a message).
#[derive(Debug)]
pub struct PartialSuccess {
    /// How many spans were refused.
    pub rejected: u64,
    /// The collector's reason, or its warning.
    pub message: String,
}

/// The body of a `Resource { repeated KeyValue attributes = 1 }` message.
pub fn encode_resource(resource: &Resource) -> Vec<u8> {
    let mut buf = Vec::new();
    for (key, value) in resource.iter() {
        message(&mut buf, 1, 1, |buf| key_value(buf, key.as_str(), value));
    }
    buf
}

/// Reads `ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1 }`, where
/// `ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2 }`. An empty
/// or unreadable answer, or a partial success with neither field set, means full success, as
/// the spec says; a message alone is a warning.
pub fn partial_success(answer: &[u8]) -> Option<PartialSuccess> {
    let inner = fields(answer).find_map(|(field, value)| match (field, value) {
        (1, Field::Bytes(inner)) => Some(inner),
        _ => None,
    })?;
    let mut partial = PartialSuccess {
        rejected: 0,
        message: String::new(),
    };
    for (field, value) in fields(inner) {
        match (field, value) {
            // An int64: a negative count (malformed) refuses nothing.
            (1, Field::Varint(n)) => partial.rejected = u64::try_from(n as i64).unwrap_or(0),
            (2, Field::Bytes(text)) => partial.message = String::from_utf8_lossy(text).into_owned(),
            _ => {}
        }
    }
    (partial.rejected > 0 || !partial.message.is_empty()).then_some(partial)
}

/// A protobuf field's value: what the answer readers need (partial success, gRPC's status
/// details).
pub enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The fields of a protobuf message, stopping at the first malformed one.
pub fn fields(mut data: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    fn read_varint(data: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = data.split_first()?;
            *data = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
    std::iter::from_fn(move || {
        let key = read_varint(&mut data)?;
        let value = match key & 7 {
            0 => Field::Varint(read_varint(&mut data)?),
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                data = data.get(width..)?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(read_varint(&mut data)?).ok()?;
                let (bytes, rest) = (data.get(..len)?, data.get(len..)?);
                data = rest;
                Field::Bytes(bytes)
            }
            _ => return None,
        };
        Some((key >> 3, value))
    })
}

// --- protobuf writing -------------------------------------------------------------------------

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn tag(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(buf, u64::from(field << 3 | wire_type));
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A string or bytes field, left out when empty (the proto3 default).
fn nonempty(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_field(buf, field, bytes);
    }
}

/// A uint32 or enum field, left out when zero.
fn nonzero(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, VARINT);
        varint(buf, value);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    tag(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// An embedded message: its body is written in place after `reserve` bytes kept for its
/// length (a guess: 1 for small messages, more for spans and batches), then the length is put
/// in front, moving the body only when the guess was wrong.
fn message(buf: &mut Vec<u8>, field: u32, reserve: usize, body: impl FnOnce(&mut Vec<u8>)) {
    tag(buf, field, LEN);
    let start = buf.len();
    if reserve == 1 {
        buf.push(0);
    } else {
        buf.resize(start + reserve, 0);
    }
    body(buf);
    let len = buf.len() - start - reserve;
    let needed = varint_len(len as u64);
    if needed != reserve {
        let end = buf.len();
        if needed > reserve {
            buf.resize(end + needed - reserve, 0);
        }
        buf.copy_within(start + reserve..end, start + needed);
        buf.truncate(start + needed + len);
    }
    let mut value = len as u64;
    for byte in &mut buf[start..start + needed] {
        *byte = if value >= 0x80 {
            value as u8 | 0x80
        } else {
            value as u8
        };
        value >>= 7;
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `KeyValue { key = 1; AnyValue value = 2 }`.
fn key_value(buf: &mut Vec<u8>, key: &str, value: &Value) {
    bytes_field(buf, 1, key.as_bytes());
    message(buf, 2, 1, |buf| any_value(buf, value));
}

fn attributes(buf: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        if !scalar_attribute(buf, field, kv.key.as_str(), &kv.value) {
            message(buf, field, 1, |buf| {
                key_value(buf, kv.key.as_str(), &kv.value)
            });
        }
    }
}

/// A `KeyValue` whose value is a string, bool, int or double (nearly every attribute) written
/// with its lengths computed first: no length guessed and moved, one capacity check. False
/// (nothing written) for an array, which the general path writes.
fn scalar_attribute(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) -> bool {
    // `AnyValue`'s body: the oneof field's tag (one byte) and its value.
    let any_len = match value {
        Value::String(s) => 1 + varint_len(s.as_str().len() as u64) + s.as_str().len(),
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        _ => return false,
    };
    let key_value_len =
        1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
    buf.reserve(1 + varint_len(key_value_len as u64) + key_value_len);
    tag(buf, field, LEN);
    varint(buf, key_value_len as u64);
    bytes_field(buf, 1, key.as_bytes());
    tag(buf, 2, LEN);
    varint(buf, any_len as u64);
    any_value(buf, value);
    true
}

/// `AnyValue { oneof: string 1, bool 2, int64 3, double 4, ArrayValue 5 }`; array elements
/// are `ArrayValue { repeated AnyValue values = 1 }`.
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes_field(buf, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            tag(buf, 2, VARINT);
            varint(buf, u64::from(*b));
        }
        Value::I64(i) => {
            tag(buf, 3, VARINT);
            varint(buf, *i as u64);
        }
        Value::F64(f) => fixed64(buf, 4, f.to_bits()),
        Value::Array(array) => message(buf, 5, 1, |buf| match array {
            Array::Bool(v) => elements(buf, v, |b| Value::Bool(*b)),
            Array::I64(v) => elements(buf, v, |i| Value::I64(*i)),
            Array::F64(v) => elements(buf, v, |f| Value::F64(*f)),
            Array::String(v) => {
                for s in v {
                    message(buf, 1, 1, |buf| bytes_field(buf, 1, s.as_str().as_bytes()));
                }
            }
            // A kind added to the API after this was written: its text form, not nothing.
            other => elements(buf, &[other.to_string()], |s| Value::from(s.clone())),
        }),
        other => bytes_field(buf, 1, other.as_str().as_bytes()),
    }
}

fn elements<T>(buf: &mut Vec<u8>, items: &[T], to_value: impl Fn(&T) -> Value) {
    for item in items {
        message(buf, 1, 1, |buf| any_value(buf, &to_value(item)));
    }
}

/// `InstrumentationScope { name 1, version 2, attributes 3 }`.
fn scope(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
    nonempty(buf, 1, scope.name().as_bytes());
    nonempty(buf, 2, scope.version().unwrap_or_default().as_bytes());
    for kv in scope.attributes() {
        message(buf, 3, 1, |buf| key_value(buf, kv.key.as_str(), &kv.value));
    }
}

/// W3C trace flags plus the OTLP bits saying whether the parent is known to be remote.
fn span_flags(trace_flags: u8, parent_is_remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(trace_flags) | HAS_IS_REMOTE | if parent_is_remote { IS_REMOTE } else { 0 }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    tag(buf, field, FIXED32);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// `Span`, field numbers from trace.proto.
fn span(buf: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes_field(buf, 1, &context.trace_id().to_bytes());
    bytes_field(buf, 2, &context.span_id().to_bytes());
    nonempty(buf, 3, context.trace_state().header().as_bytes());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes_field(buf, 4, &span.parent_span_id.to_bytes());
    }
    bytes_field(buf, 5, span.name.as_bytes());
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    nonzero(buf, 6, kind);
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    attributes(buf, 9, &span.attributes);
    nonzero(buf, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(buf, 11, 2, |buf| {
            fixed64(buf, 1, nanos(event.timestamp));
            nonempty(buf, 2, event.name.as_bytes());
            attributes(buf, 3, &event.attributes);
            nonzero(buf, 4, u64::from(event.dropped_attributes_count));
        });
    }
    nonzero(buf, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let context = &link.span_context;
        message(buf, 13, 1, |buf| {
            bytes_field(buf, 1, &context.trace_id().to_bytes());
            bytes_field(buf, 2, &context.span_id().to_bytes());
            nonempty(buf, 3, context.trace_state().header().as_bytes());
            attributes(buf, 4, &link.attributes);
            nonzero(buf, 5, u64::from(link.dropped_attributes_count));
            fixed32(
                buf,
                6,
                span_flags(context.trace_flags().to_u8(), context.is_remote()),
            );
        });
    }
    nonzero(buf, 14, u64::from(span.links.dropped_count));
    // `Status { message 2, code 3 }`.
    message(buf, 15, 1, |buf| match &span.status {
        Status::Unset => {}
        Status::Ok => nonzero(buf, 3, 1),
        Status::Error { description } => {
            nonempty(buf, 2, description.as_bytes());
            nonzero(buf, 3, 2);
        }
    });
    fixed32(
        buf,
        16,
        span_flags(context.trace_flags().to_u8(), span.parent_span_is_remote),
    );
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }` with one
/// `ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; schema_url = 3 }`
/// and one `ScopeSpans { scope = 1; repeated Span spans = 2; schema_url = 3 }` per scope, in
/// order of first appearance.
pub fn encode_request(buf: &mut Vec<u8>, resource: &[u8], schema_url: &str, spans: &[SpanData]) {
    let mut scopes: Vec<&InstrumentationScope> = Vec::with_capacity(1);
    for s in spans {
        if !scopes.contains(&&s.instrumentation_scope) {
            scopes.push(&s.instrumentation_scope);
        }
    }
    message(buf, 1, 3, |buf| {
        message(buf, 1, 2, |buf| buf.extend_from_slice(resource));
        for instrumentation in scopes {
            message(buf, 2, 3, |buf| {
                message(buf, 1, 1, |buf| scope(buf, instrumentation));
                for s in spans
                    .iter()
                    .filter(|s| s.instrumentation_scope == *instrumentation)
                {
                    message(buf, 2, 2, |buf| span(buf, s));
                }
                nonempty(
                    buf,
                    3,
                    instrumentation.schema_url().unwrap_or_default().as_bytes(),
                );
            });
        }
        nonempty(buf, 3, schema_url.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use std::time::Duration;

    fn context(trace: u128, span: u64, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        )
    }

    /// Every kind of field and value the SDK can hand over, and a long attribute so that the
    /// length guesses are wrong at some levels.
    fn spans() -> Vec<SpanData> {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "exception",
            start + Duration::from_millis(3),
            vec![KeyValue::new("exception.message", "boom")],
            2,
        ));
        events.dropped_count = 4;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            context(7, 8, true),
            vec![KeyValue::new("link.kind", "follows")],
            1,
        ));
        links.dropped_count = 5;
        let full = SpanData {
            span_context: context(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef, 42, false),
            parent_span_id: SpanId::from(41),
            parent_span_is_remote: true,
            span_kind: SpanKind::Client,
            name: "chat llama-3.1-8b-instant".into(),
            start_time: start,
            end_time: start + Duration::from_millis(250),
            attributes: vec![
                KeyValue::new("gen_ai.request.model", "llama-3.1-8b-instant"),
                KeyValue::new("gen_ai.usage.input_tokens", 17_i64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("gen_ai.request.temperature", 0.7),
                KeyValue::new("stream", false),
                KeyValue::new("empty", ""),
                KeyValue::new("zero", 0_i64),
                KeyValue::new("long", "x".repeat(300)),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec!["stop".into(), "length".into()])),
                ),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, -2, 300]))),
                KeyValue::new("floats", Value::Array(Array::F64(vec![0.5, -1.25]))),
                KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            ],
            dropped_attributes_count: 3,
            events,
            links,
            status: Status::error("upstream answered 500"),
            instrumentation_scope: InstrumentationScope::builder("llm-observability").build(),
        };
        let mut root = full.clone();
        root.span_context = context(9, 10, false);
        root.parent_span_id = SpanId::INVALID;
        root.parent_span_is_remote = false;
        root.span_kind = SpanKind::Server;
        root.status = Status::Ok;
        root.events = SpanEvents::default();
        root.links = SpanLinks::default();
        let mut other_scope = root.clone();
        other_scope.span_kind = SpanKind::Internal;
        other_scope.status = Status::Unset;
        other_scope.instrumentation_scope = InstrumentationScope::builder("other")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.28.0")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();
        vec![full, other_scope, root]
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("llm-observability-api")
            .with_attribute(KeyValue::new("service.version", "0.1.0"))
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build()
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_request(
            &mut buf,
            &encode_resource(resource),
            resource.schema_url().unwrap_or_default(),
            spans,
        );
        buf
    }

    #[test]
    fn decodes_to_exactly_what_opentelemetry_proto_builds() {
        let resource = resource();
        let decoded = ExportTraceServiceRequest::decode(&ours(&spans(), &resource)[..]).unwrap();
        let reference = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(decoded, reference);
        // Not vacuous: the fields that matter are there.
        let scopes = &decoded.resource_spans[0].scope_spans;
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].spans.len(), 2);
        let span = &scopes[0].spans[0];
        assert_eq!(span.name, "chat llama-3.1-8b-instant");
        assert_eq!(span.attributes.len(), 12);
        assert_eq!(span.events[0].name, "exception");
        assert_eq!(span.links.len(), 1);
        assert_eq!(span.flags, 0x301);
        let tokens = span.attributes[1].value.as_ref().unwrap().value.as_ref();
        assert_eq!(tokens, Some(&any_value::Value::IntValue(17)));
    }

    #[test]
    fn an_empty_batch_and_a_large_batch_decode() {
        let resource = resource();
        let empty = ExportTraceServiceRequest::decode(&ours(&[], &resource)[..]).unwrap();
        assert!(empty.resource_spans[0].scope_spans.is_empty());

        // Hundreds of kilobytes: every length prefix needs several bytes.
        let many: Vec<SpanData> = (0..500).flat_map(|_| spans()).collect();
        let decoded = ExportTraceServiceRequest::decode(&ours(&many, &resource)[..]).unwrap();
        let count: usize = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(count, 1500);
    }

    #[test]
    fn partial_success_is_read_from_the_collectors_answer() {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let answer = |rejected_spans, error_message: &str| {
            ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans,
                    error_message: error_message.into(),
                }),
            }
            .encode_to_vec()
        };
        let refused = partial_success(&answer(7, "span name too long")).unwrap();
        assert_eq!(refused.rejected, 7);
        assert_eq!(refused.message, "span name too long");
        // A warning: nothing refused, but a message.
        let warning = partial_success(&answer(0, "attributes truncated")).unwrap();
        assert_eq!(warning.rejected, 0);
        assert_eq!(warning.message, "attributes truncated");
        assert_eq!(partial_success(&answer(-3, "")).map(|p| p.rejected), None);
        // Full success: no partial_success, an empty one, or an empty body.
        assert!(partial_success(&answer(0, "")).is_none());
        assert!(partial_success(&ExportTraceServiceResponse::default().encode_to_vec()).is_none());
        assert!(partial_success(b"").is_none());
        // Garbage is not an error: the request itself succeeded.
        assert!(partial_success(b"\xff\xff\xff").is_none());
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
        }
    }
}
