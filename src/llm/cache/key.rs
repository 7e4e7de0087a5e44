//! The cache key: SHA-256 over everything that can change an answer, in a canonical form.
//!
//! What goes in, in this order (README, "Response cache", lists it for users):
//! 1. a version tag, so that a change of this form never reads an older entry;
//! 2. the API (`chat` or `embeddings`);
//! 3. the tenant: the SHA-256 of the gateway key the client presented (when keys are
//!    configured), so that one client never receives another's answer;
//! 4. where the call goes: a route's name and every target (provider and upstream model), or
//!    the one provider and model a name resolves to, so that an answer from one provider is
//!    never served for another and a reloaded route starts afresh;
//! 5. the request body, every field (unknown ones included: a field the gateway does not know
//!    may change the answer) except `stream` and `stream_options`, which change only how the
//!    answer is delivered: a streamed and a whole call of the same request share an entry.
//!
//! The body's canonical form is JSON with every object's keys sorted (at every depth), no
//! whitespace, strings and numbers as `serde_json` prints them: field order and spacing do not
//! change the key; anything else does. It is written here rather than relying on `serde_json`'s
//! map order, which a dependency enabling `preserve_order` would silently change.

use aws_lc_rs::digest::{Context, SHA256};
use serde_json::Value;

use super::entry::CacheKey;

/// Changes whenever the key's inputs or their form change.
const KEY_VERSION: &[u8] = b"llmobs-cache-key-v1\0";

/// The fields of a request body that are not part of its key.
const DELIVERY_FIELDS: [&str; 2] = ["stream", "stream_options"];

/// The SHA-256 of a request body's canonical form, less its delivery fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDigest(pub(super) [u8; 32]);

/// The digest of `body` (a JSON object, as the client sent it or as `/api/chat` built it).
pub fn body_digest(body: &Value) -> BodyDigest {
    let mut canonical = Vec::with_capacity(256);
    match body {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| !DELIVERY_FIELDS.contains(&k.as_str()))
                .collect();
            keys.sort_unstable();
            write_object(&mut canonical, keys.into_iter().map(|k| (k, &map[k])));
        }
        other => write_canonical(&mut canonical, other),
    }
    BodyDigest(sha256(&[&canonical]))
}

/// The tenant's part of the key: the SHA-256 of the presented gateway key (never the key).
pub fn tenant_digest(gateway_key: &str) -> [u8; 32] {
    sha256(&[b"llmobs-tenant\0", gateway_key.as_bytes()])
}

/// The full key: the version, the API, the tenant (`None`: keys are not configured), where the
/// call goes (`destination`: the route and its targets, or the provider and model) and the body.
pub fn cache_key(
    api: &str,
    tenant: Option<&[u8; 32]>,
    destination: &[u8],
    body: &BodyDigest,
) -> CacheKey {
    let tenant: &[u8] = tenant.map_or(b"-", |t| t.as_slice());
    // Every variable-length part is length-prefixed: no two different inputs concatenate alike.
    CacheKey(sha256(&[
        KEY_VERSION,
        &len(api.len()),
        api.as_bytes(),
        &len(tenant.len()),
        tenant,
        &len(destination.len()),
        destination,
        &body.0,
    ]))
}

fn len(n: usize) -> [u8; 8] {
    (n as u64).to_be_bytes()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(out, entries.into_iter());
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        // Scalars print the same whatever the order around them: serde_json's own form.
        scalar => {
            // Writing a scalar Value to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_object<'a>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    out.push(b'{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        write_canonical(out, value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn digest(text: &str) -> BodyDigest {
        body_digest(&serde_json::from_str(text).expect("test JSON"))
    }

    fn base() -> Value {
        json!({
            "model": "llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "Hi"}],
        })
    }

    #[test]
    fn field_order_and_spacing_do_not_change_the_digest() {
        assert_eq!(
            digest(
                r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}"#
            ),
            digest(
                r#"{ "temperature": 0.5, "messages": [ { "content": "Hi", "role": "user" } ], "model": "m" }"#
            ),
        );
    }

    #[test]
    fn delivery_fields_are_not_part_of_the_digest() {
        let mut streamed = base();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        assert_eq!(body_digest(&streamed), body_digest(&base()));
    }

    #[test]
    fn a_nested_stream_field_is_part_of_the_digest() {
        // Only the top-level delivery fields are left out.
        let mut with = base();
        with["metadata"] = json!({"stream": true});
        assert_ne!(body_digest(&with), body_digest(&base()));
    }

    /// Every field the issue names, and an unknown one, changes the digest; so does changing
    /// any of them to another value.
    #[test]
    fn every_answer_changing_field_changes_the_digest() {
        let fields = [
            ("model", json!("llama-3.3-70b-versatile")),
            ("messages", json!([{"role": "user", "content": "Hello"}])),
            (
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]),
            ),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
            ),
            ("tool_choice", json!("required")),
            ("response_format", json!({"type": "json_object"})),
            ("temperature", json!(0.2)),
            ("top_p", json!(0.9)),
            ("seed", json!(7)),
            ("max_tokens", json!(10)),
            ("max_completion_tokens", json!(10)),
            ("stop", json!(["\n"])),
            ("n", json!(2)),
            ("frequency_penalty", json!(0.5)),
            ("presence_penalty", json!(0.5)),
            ("logit_bias", json!({"50256": -100})),
            ("some_future_field", json!(true)),
        ];
        let plain = body_digest(&base());
        for (field, value) in fields {
            let mut changed = base();
            changed[field] = value;
            assert_ne!(
                body_digest(&changed),
                plain,
                "{field} must be part of the key"
            );
        }
    }

    #[test]
    fn the_key_separates_apis_tenants_and_destinations() {
        let body = body_digest(&base());
        let alice = tenant_digest("key-alice");
        let bob = tenant_digest("key-bob");
        let key = cache_key("chat", Some(&alice), b"p:groq:m", &body);
        assert_eq!(key, cache_key("chat", Some(&alice), b"p:groq:m", &body));
        assert_ne!(key, cache_key("chat", Some(&bob), b"p:groq:m", &body));
        assert_ne!(key, cache_key("chat", None, b"p:groq:m", &body));
        assert_ne!(
            key,
            cache_key("embeddings", Some(&alice), b"p:groq:m", &body)
        );
        assert_ne!(key, cache_key("chat", Some(&alice), b"p:openai:m", &body));
    }

    #[test]
    fn the_tenant_digest_is_not_the_key() {
        let digest = tenant_digest("gk-secret");
        assert!(!digest.windows(9).any(|w| w == b"gk-secret"));
    }

    /// Arbitrary JSON values, nested.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\é ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z]{1,6}", inner), 0..5)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    /// The same object with its keys in reverse order, at every depth, printed by hand (so
    /// that the text's order really differs whatever serde_json's map type).
    fn reversed_text(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| b.0.cmp(a.0));
                let parts: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{} : {}", Value::from(k.as_str()), reversed_text(v)))
                    .collect();
                format!("{{ {} }}", parts.join(" , "))
            }
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(reversed_text).collect();
                format!("[{}]", parts.join(", "))
            }
            scalar => scalar.to_string(),
        }
    }

    proptest! {
        #[test]
        fn key_order_never_changes_the_digest(fields in prop::collection::vec(("[a-z]{1,6}", json_value()), 0..6)) {
            // Both read from text, as a client's body is (serde_json's float parsing is not an
            // exact round trip of an f64 printed from memory).
            let body: Value = serde_json::from_str(&Value::Object(fields.into_iter().collect()).to_string()).expect("valid JSON");
            let reordered: Value = serde_json::from_str(&reversed_text(&body)).expect("valid JSON");
            prop_assert_eq!(body_digest(&reordered), body_digest(&body));
        }

        #[test]
        fn different_bodies_have_different_digests(a in json_value(), b in json_value()) {
            let (a, b) = (json!({"x": a}), json!({"x": b}));
            prop_assert_eq!(a == b, body_digest(&a) == body_digest(&b));
        }
    }
}
