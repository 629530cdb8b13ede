//! The hashed event envelope (`annal/1`) and its hash.
//!
//! The envelope commits to the payload through `payload_digest`, so the hash
//! chain survives a later erasure of the payload itself.

use crate::error::{Error, Result};
use crate::payload::MAX_SAFE_INTEGER;
use crate::{hex, ids, jcs, strict_json, timestamp, uuid7};
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The conversation this event belongs to. Omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// `hash` of this device's previous event, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of JCS(envelope without `hash`).
    pub hash: String,
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
        jcs::to_string(&self.to_value(true))
    }

    /// The canonical text of the whole envelope, `hash` included.
    pub fn canonical(&self) -> String {
        jcs::to_string(&self.to_value(false))
    }

    /// Recomputes the hash from the other fields.
    pub fn compute_hash(&self) -> String {
        hex::encode(&Sha256::digest(self.canonical_without_hash().as_bytes()))
    }

    /// Sets `hash` from the other fields.
    pub fn seal(&mut self) {
        self.hash = self.compute_hash();
    }

    /// Parses an envelope from JSON text, strictly: unknown or duplicate
    /// fields, `null` optionals and out-of-range values are errors.
    pub fn parse(text: &str) -> std::result::Result<Envelope, String> {
        let value = strict_json::parse(text)?;
        Envelope::from_value(&value)
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
        let envelope: Envelope =
            serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
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
}
