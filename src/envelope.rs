//! The hashed event envelope (`annal/1`) and its hash.
//!
//! The envelope commits to the payload through `payload_digest`, so the hash
//! chain survives a later erasure of the payload itself.

use crate::error::{Error, Result};
use crate::payload::MAX_SAFE_INTEGER;
use crate::{hex, ids, jcs, timestamp, uuid7};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The value of `format` in every envelope of this version.
pub const FORMAT: &str = "annal/1";
/// `prev_hash` of a device's first event: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed envelope: exactly these fields, no others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`FORMAT`].
    pub format: String,
    /// UUIDv7, lowercase and hyphenated.
    pub event_id: String,
    /// The study or organisation this record belongs to.
    pub tenant_id: String,
    /// Kind of aggregate, e.g. `diary`.
    pub aggregate_type: String,
    /// The aggregate this event belongs to.
    pub aggregate_id: String,
    /// What happened, e.g. `symptom-recorded`.
    pub event_type: String,
    /// Version of the payload's schema, ≥ 1.
    pub schema_version: u64,
    /// Lowercase hex SHA-256 of `salt ‖ JCS(payload)`.
    pub payload_digest: String,
    /// The user who recorded the event.
    pub user_id: String,
    /// The device (store) whose chain this event extends.
    pub device_id: String,
    /// Position in the device chain: 1, 2, 3, … with no gaps.
    pub device_seq: u64,
    /// Device time, `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub created_at: String,
    /// The aggregate version this event creates, from 1.
    pub aggregate_version: u64,
    /// The event that caused this one. Omitted when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_causation_id"
    )]
    pub causation_id: Option<String>,
    /// The conversation this event belongs to. Omitted when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_correlation_id"
    )]
    pub correlation_id: Option<String>,
    /// `hash` of this device's previous event, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of JCS(envelope without `hash`).
    pub hash: String,
}

fn present<'de, D: serde::Deserializer<'de>>(
    field: &str,
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(id) => Ok(Some(id)),
        None => Err(serde::de::Error::custom(format!(
            "{field} is null; absent optional fields must be omitted"
        ))),
    }
}

fn present_causation_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    present("causation_id", deserializer)
}

fn present_correlation_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    present("correlation_id", deserializer)
}

impl Envelope {
    /// The envelope as a JSON object, with `hash` unless `without_hash`.
    pub fn to_value(&self, without_hash: bool) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if without_hash {
            if let Value::Object(map) = &mut value {
                map.remove("hash");
            }
        }
        value
    }

    /// The bytes the hash is computed over: JCS of the envelope without `hash`.
    pub fn canonical_without_hash(&self) -> String {
        let mut out = String::with_capacity(640);
        self.write_canonical(&mut out, false);
        out
    }

    /// The canonical text of the whole envelope, `hash` included.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(720);
        self.write_canonical(&mut out, true);
        out
    }

    /// Appends the JCS text of the envelope, written straight from the
    /// fields: the members in RFC 8785 order (all names are ASCII, so byte
    /// order), absent optionals omitted. Equal to `jcs::to_string` of
    /// [`Envelope::to_value`], which a test checks, without building a tree.
    pub fn write_canonical(&self, out: &mut String, with_hash: bool) {
        fn text(out: &mut String, first: bool, key: &str, value: &str) {
            out.push_str(if first { "{\"" } else { ",\"" });
            out.push_str(key);
            out.push_str("\":");
            jcs::write_string(out, value);
        }
        fn number(out: &mut String, key: &str, value: u64) {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut n = value;
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for &d in &digits[at..] {
                out.push(d as char);
            }
        }
        text(out, true, "aggregate_id", &self.aggregate_id);
        text(out, false, "aggregate_type", &self.aggregate_type);
        number(out, "aggregate_version", self.aggregate_version);
        if let Some(id) = &self.causation_id {
            text(out, false, "causation_id", id);
        }
        if let Some(id) = &self.correlation_id {
            text(out, false, "correlation_id", id);
        }
        text(out, false, "created_at", &self.created_at);
        text(out, false, "device_id", &self.device_id);
        number(out, "device_seq", self.device_seq);
        text(out, false, "event_id", &self.event_id);
        text(out, false, "event_type", &self.event_type);
        text(out, false, "format", &self.format);
        if with_hash {
            text(out, false, "hash", &self.hash);
        }
        text(out, false, "payload_digest", &self.payload_digest);
        text(out, false, "prev_hash", &self.prev_hash);
        number(out, "schema_version", self.schema_version);
        text(out, false, "tenant_id", &self.tenant_id);
        text(out, false, "user_id", &self.user_id);
        out.push('}');
    }

    /// Recomputes the hash from the other fields.
    pub fn compute_hash(&self) -> String {
        Envelope::hash_of(&self.canonical_without_hash())
    }

    /// The hash (§5 of docs/FORMAT.md) of an envelope's canonical text
    /// without `hash`.
    pub fn hash_of(canonical_without_hash: &str) -> String {
        hex::encode(&Sha256::digest(canonical_without_hash.as_bytes()))
    }

    /// Sets `hash` from the other fields.
    pub fn seal(&mut self) {
        self.hash = self.compute_hash();
    }

    /// Parses an envelope from JSON text, strictly: unknown or duplicate
    /// fields, `null` optionals and out-of-range values are errors.
    ///
    /// The text is read straight into the fields: the derived reader already
    /// refuses unknown and repeated members, lone surrogate escapes and
    /// non-integers, and the optionals refuse `null`, so this is as strict as
    /// [`crate::strict_json::parse`] followed by [`Envelope::from_value`].
    pub fn parse(text: &str) -> std::result::Result<Envelope, String> {
        let envelope = Envelope::parse_fields(text)?;
        envelope.check_shape().map_err(|e| e.message)?;
        Ok(envelope)
    }

    /// [`Envelope::parse`] without [`Envelope::check_shape`]: for a reader
    /// that picks records by their fields first and checks the shape and
    /// hash of the ones it keeps.
    pub fn parse_fields(text: &str) -> std::result::Result<Envelope, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads an envelope from a JSON object, strictly (see [`Envelope::parse`]).
    pub fn from_value(value: &Value) -> std::result::Result<Envelope, String> {
        let Value::Object(map) = value else {
            return Err("envelope is not a JSON object".into());
        };
        if let Some((k, _)) = map.iter().find(|(_, v)| v.is_null()) {
            return Err(format!(
                "{k} is null; absent optional fields must be omitted"
            ));
        }
        let envelope = Envelope::deserialize(value).map_err(|e| e.to_string())?;
        envelope.check_shape().map_err(|e| e.message)?;
        Ok(envelope)
    }

    /// Checks every field's own rules (not the hash or the chain).
    pub fn check_shape(&self) -> Result<()> {
        let bad = |field: &str, why: &str| Err(Error::validation(field, format!("{field} {why}")));
        if self.format != FORMAT {
            return bad("format", "must be \"annal/1\"");
        }
        if !uuid7::is_uuid7(&self.event_id) {
            return bad("event_id", "must be a lowercase hyphenated UUIDv7");
        }
        for (field, id) in [
            ("tenant_id", &self.tenant_id),
            ("aggregate_type", &self.aggregate_type),
            ("aggregate_id", &self.aggregate_id),
            ("event_type", &self.event_type),
            ("user_id", &self.user_id),
            ("device_id", &self.device_id),
        ] {
            ids::check_id(field, id)?;
        }
        for (field, id) in [
            ("causation_id", &self.causation_id),
            ("correlation_id", &self.correlation_id),
        ] {
            if let Some(id) = id {
                ids::check_id(field, id)?;
            }
        }
        for (field, n) in [
            ("schema_version", self.schema_version),
            ("device_seq", self.device_seq),
            ("aggregate_version", self.aggregate_version),
        ] {
            if !(1..=MAX_SAFE_INTEGER).contains(&n) {
                return bad(field, "must be an integer from 1 to 2^53−1");
            }
        }
        if timestamp::parse_ms(&self.created_at).is_none() {
            return bad("created_at", "must be exactly YYYY-MM-DDTHH:MM:SS.sssZ");
        }
        for (field, h) in [
            ("payload_digest", &self.payload_digest),
            ("prev_hash", &self.prev_hash),
            ("hash", &self.hash),
        ] {
            if !hex::is_lower_hex(h, 32) {
                return bad(field, "must be 64 lowercase hex digits");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;

    const VECTORS: &str = include_str!("../docs/vectors/envelopes.json");
    const FORMAT_DOC: &str = include_str!("../docs/FORMAT.md");

    fn vectors() -> Vec<Value> {
        serde_json::from_str::<Value>(VECTORS)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn golden_vectors_hash_as_published() {
        let vectors = vectors();
        assert!(vectors.len() >= 3);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let envelope = Envelope::from_value(&v["envelope"]).unwrap();
            assert_eq!(
                envelope.canonical_without_hash(),
                v["canonical"],
                "{name}: canonical bytes"
            );
            assert_eq!(envelope.compute_hash(), v["hash"], "{name}: hash");
            assert_eq!(envelope.hash, v["hash"], "{name}: stored hash");
            let payload = Payload::from_value(&v["payload"]).unwrap();
            assert_eq!(
                payload.as_str(),
                v["payload_canonical"],
                "{name}: payload canonical bytes"
            );
            let salt = crate::hex::decode::<16>(v["salt"].as_str().unwrap()).unwrap();
            assert_eq!(
                payload.digest(&salt),
                envelope.payload_digest,
                "{name}: payload digest"
            );
        }
    }

    #[test]
    fn format_doc_quotes_every_golden_vector() {
        for v in vectors() {
            for key in ["canonical", "hash", "payload_canonical", "salt"] {
                let text = v[key].as_str().unwrap();
                assert!(
                    FORMAT_DOC.contains(text),
                    "docs/FORMAT.md does not quote {key} of {:?}",
                    v["name"]
                );
            }
        }
    }

    #[test]
    fn parse_is_strict() {
        let v = &vectors()[0]["envelope"];
        let text = crate::jcs::to_string(v);
        assert!(Envelope::parse(&text).is_ok());
        let with = |k: &str, val: Value| {
            let mut m = v.clone();
            m[k] = val;
            Envelope::from_value(&m)
        };
        assert!(with("causation_id", Value::Null)
            .unwrap_err()
            .contains("must be omitted"));
        assert!(with("extra", "x".into()).is_err());
        assert!(with("device_seq", 0.into()).is_err());
        assert!(with("created_at", "2023-11-14T22:13:20Z".into()).is_err());
        assert!(with("hash", "ABC".into()).is_err());
        assert!(with("event_id", "018bcfe5-6800-4000-8000-000000000001".into()).is_err());
        assert!(Envelope::parse(&text.replacen("{", "{\"format\":\"annal/1\",", 1)).is_err());
    }

    /// Every rule of the tree path (strict_json, then from_value) holds when
    /// the text is read straight into the fields.
    #[test]
    fn parsing_text_is_as_strict_as_the_tree() {
        let v = &vectors()[0]["envelope"];
        let text = crate::jcs::to_string(v);
        let insert = |member: &str| text.replacen('{', &format!("{{{member},"), 1);
        let cases = [
            insert("\"causation_id\":null"),
            insert("\"correlation_id\":null"),
            insert("\"extra\":1"),
            insert("\"device_seq\":1"),
            insert("\"hash\":\"00\""),
            text.replace("\"device_seq\":", "\"device_seq\":1.5,\"x\":"),
            text.replace("\"schema_version\":1", "\"schema_version\":1.0"),
            text.replace("\"schema_version\":1", "\"schema_version\":-1"),
            text.replace("\"schema_version\":1", "\"schema_version\":1e0"),
            text.replace("\"user_id\":\"", "\"user_id\":\"\\ud800"),
            text.replace(
                "\"schema_version\":1",
                "\"schema_version\":9007199254740992",
            ),
            format!("{text} x"),
            format!("[{text}]"),
        ];
        for case in &cases {
            let tree =
                crate::strict_json::parse(case).and_then(|value| Envelope::from_value(&value));
            assert!(tree.is_err(), "the tree path accepts {case}");
            assert!(Envelope::parse(case).is_err(), "parse accepts {case}");
        }
        assert!(Envelope::parse(&insert("\"causation_id\":null"))
            .unwrap_err()
            .contains("must be omitted"));
        assert_eq!(
            Envelope::parse(&text).unwrap(),
            Envelope::from_value(v).unwrap()
        );
    }

    /// The direct writer gives the bytes of JCS over the JSON tree, for the
    /// golden vectors and for fields that need escaping or are absent.
    #[test]
    fn the_direct_writer_matches_jcs_of_the_tree() {
        let mut envelopes: Vec<Envelope> = vectors()
            .iter()
            .map(|v| Envelope::from_value(&v["envelope"]).unwrap())
            .collect();
        let mut odd = envelopes[0].clone();
        odd.aggregate_id = "q\"b\\\u{1}\u{1f}\u{7f}\u{2028}é\u{1f600}".into();
        odd.event_type = String::new();
        odd.causation_id = Some("c\n".into());
        odd.correlation_id = None;
        odd.device_seq = u64::MAX;
        odd.schema_version = 0;
        envelopes.push(odd.clone());
        odd.causation_id = None;
        odd.correlation_id = Some("\u{fb01}".into());
        envelopes.push(odd);
        for e in &envelopes {
            assert_eq!(e.canonical(), jcs::to_string(&e.to_value(false)));
            assert_eq!(
                e.canonical_without_hash(),
                jcs::to_string(&e.to_value(true))
            );
        }
    }
}
