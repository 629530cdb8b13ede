//! What an app asks to append, validated before any transaction starts.

use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::{hex, ids, jcs};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A validated append request. Everything that can be checked without the
/// database has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Kind of aggregate.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Event type.
    pub event_type: String,
    /// Payload schema version, default 1.
    pub schema_version: u64,
    /// Canonical payload.
    pub payload: Payload,
    /// Optional causation id.
    pub causation_id: Option<String>,
    /// Optional correlation id.
    pub correlation_id: Option<String>,
    /// Optimistic concurrency: the version the aggregate must be at (0 = new).
    pub expected_version: Option<u64>,
    /// Makes a repeated append return the first event instead of a new one.
    pub idempotency_key: Option<String>,
}

const FIELDS: [&str; 9] = [
    "aggregateType",
    "aggregateId",
    "eventType",
    "payload",
    "schemaVersion",
    "causationId",
    "correlationId",
    "expectedVersion",
    "idempotencyKey",
];

impl Draft {
    /// Reads and validates a draft from its JSON object form (the fields of
    /// `store.append(...)`, camelCase).
    pub fn from_value(value: &Value) -> Result<Draft> {
        Draft::from_fields(value, None)
    }

    /// [`Draft::from_value`] for a draft whose payload arrives apart, as
    /// text already in canonical form: `fields` holds the other members.
    /// The caller vouches that `canonical` is the JCS text of a JSON object
    /// that obeys the input rules of [`Payload::from_value`]; only its size
    /// is checked here. The browser's JavaScript walk (src/web/js_json.js)
    /// writes such text.
    pub fn from_canonical_payload(fields: &Value, canonical: String) -> Result<Draft> {
        Draft::from_fields(fields, Some(canonical))
    }

    /// The checks in order: the object, unknown fields, the payload (from
    /// `canonical`, else the `payload` member), then each field.
    fn from_fields(value: &Value, canonical: Option<String>) -> Result<Draft> {
        let Value::Object(map) = value else {
            return Err(Error::validation(
                "event",
                "an event must be an object such as { aggregateType, aggregateId, eventType, payload }",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let hint = FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(unknown))
                .map(|f| format!("; did you mean {f}?"))
                .unwrap_or_else(|| format!("; the fields are {}", FIELDS.join(", ")));
            return Err(Error::validation(
                unknown.as_str(),
                format!("unknown field {unknown}{hint}"),
            ));
        }
        let payload =
            match (canonical, map.get("payload")) {
                (Some(text), _) => Payload::from_canonical_checked(text)?,
                (None, Some(p)) => Payload::from_value(p)?,
                (None, None) => return Err(Error::validation(
                    "payload",
                    "payload is required; pass a JSON object, e.g. {} for an event without data",
                )),
            };
        Ok(Draft {
            aggregate_type: required_id(map, "aggregateType")?,
            aggregate_id: required_id(map, "aggregateId")?,
            event_type: required_id(map, "eventType")?,
            schema_version: integer(map, "schemaVersion", 1)?.unwrap_or(1),
            payload,
            causation_id: optional_id(map, "causationId")?,
            correlation_id: optional_id(map, "correlationId")?,
            expected_version: integer(map, "expectedVersion", 0)?,
            idempotency_key: optional_id(map, "idempotencyKey")?,
        })
    }

    /// A digest of everything the app supplied, to tell a true retry (same
    /// idempotency key, same event) from a key reused for another event.
    pub fn fingerprint(&self) -> String {
        let mut map = Map::new();
        map.insert("aggregate_type".into(), self.aggregate_type.clone().into());
        map.insert("aggregate_id".into(), self.aggregate_id.clone().into());
        map.insert("event_type".into(), self.event_type.clone().into());
        map.insert("schema_version".into(), self.schema_version.into());
        map.insert("payload".into(), self.payload.as_str().into());
        if let Some(c) = &self.causation_id {
            map.insert("causation_id".into(), c.clone().into());
        }
        if let Some(c) = &self.correlation_id {
            map.insert("correlation_id".into(), c.clone().into());
        }
        let text = jcs::to_string(&Value::Object(map));
        hex::encode(&Sha256::digest(text.as_bytes()))
    }
}

fn required_id(map: &Map<String, Value>, field: &str) -> Result<String> {
    match optional_id(map, field)? {
        Some(id) => Ok(id),
        None => Err(Error::validation(
            field,
            format!("{field} is required; give a non-empty string"),
        )),
    }
}

fn optional_id(map: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => {
            ids::check_id(field, s)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(Error::validation(
            field,
            format!("{field} must be a string, got {other}"),
        )),
    }
}

fn integer(map: &Map<String, Value>, field: &str, min: u64) -> Result<Option<u64>> {
    let Some(value) = map.get(field) else {
        return Ok(None);
    };
    match crate::payload::safe_count(value) {
        Some(n) if n >= min => Ok(Some(n)),
        _ => Err(Error::validation(
            field,
            format!("{field} must be an integer from {min} to 2^53−1, got {value}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"aggregateType": "diary", "aggregateId": "d-1", "eventType": "noted", "payload": {"a": 1}})
    }

    #[test]
    fn defaults_schema_version_to_one() {
        let d = Draft::from_value(&base()).unwrap();
        assert_eq!(d.schema_version, 1);
        assert_eq!(d.expected_version, None);
    }

    #[test]
    fn names_the_bad_field() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"aggregateId": "d", "eventType": "e", "payload": {}}),
                "aggregateType",
            ),
            (
                json!({"aggregateType": "", "aggregateId": "d", "eventType": "e", "payload": {}}),
                "aggregateType",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": 5, "eventType": "e", "payload": {}}),
                "aggregateId",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e"}),
                "payload",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": []}),
                "payload",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": {}, "schemaVersion": 0}),
                "schemaVersion",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": {}, "schemaVersion": 1.5}),
                "schemaVersion",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": {}, "expectedVersion": -1}),
                "expectedVersion",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": {}, "aggregateID": "x"}),
                "aggregateID",
            ),
            (
                json!({"aggregateType": "t", "aggregateId": "d\u{0}", "eventType": "e", "payload": {}}),
                "aggregateId",
            ),
        ];
        for (value, field) in cases {
            let e = Draft::from_value(&value).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{value}: {}", e.message);
        }
        let e = Draft::from_value(&json!({"aggregateType": "t", "aggregateId": "d", "eventType": "e", "payload": {}, "aggregateID": "x"})).unwrap_err();
        assert!(
            e.message.contains("did you mean aggregateId?"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_canonical_payload_apart_gives_the_same_draft() {
        let mut fields = base();
        fields["expectedVersion"] = json!(3);
        let whole = Draft::from_value(&fields).unwrap();
        let payload = fields.as_object_mut().unwrap().remove("payload").unwrap();
        let apart =
            Draft::from_canonical_payload(&fields, crate::jcs::to_string(&payload)).unwrap();
        assert_eq!(apart, whole);
        // The other fields are checked the same way, and an oversized
        // payload is refused.
        fields["aggregateId"] = json!("");
        let e = Draft::from_canonical_payload(&fields, "{}".into()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("aggregateId"));
        let big = format!(
            "{{\"a\":\"{}\"}}",
            "x".repeat(crate::payload::MAX_PAYLOAD_BYTES)
        );
        let e = Draft::from_canonical_payload(&base(), big).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("payload"));
    }

    #[test]
    fn fingerprint_depends_on_content_not_on_keys() {
        let a = Draft::from_value(&base()).unwrap();
        let mut with_key = base();
        with_key["idempotencyKey"] = json!("form-1");
        let b = Draft::from_value(&with_key).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut other = base();
        other["payload"] = json!({"a": 2});
        assert_ne!(
            a.fingerprint(),
            Draft::from_value(&other).unwrap().fingerprint()
        );
    }
}
