//! Event payloads and the input rules every JSON value must obey.
//!
//! A payload is a JSON object held as its canonical (JCS) text. The rules
//! make the canonical text, and therefore the hash, identical wherever the
//! value came from: a JavaScript object, JSON text or Rust.

use crate::error::{Error, Result};
use crate::{jcs, strict_json};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// Largest payload, in bytes of its canonical UTF-8 form.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects allowed in a payload.
pub const MAX_DEPTH: usize = 64;
/// 2^53 − 1: the largest integer a JavaScript number holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Length of the random salt mixed into each payload digest.
pub const SALT_LEN: usize = 16;

/// A valid payload: a JSON object, kept as its canonical text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// Checks `value` against the input rules and canonicalizes it.
    pub fn from_value(value: &Value) -> Result<Payload> {
        if !value.is_object() {
            return Err(Error::validation(
                "payload",
                format!(
                    "payload must be a JSON object, got {}; wrap the value, e.g. {{ \"value\": ... }}",
                    kind(value)
                ),
            ));
        }
        check_value(value, 0).map_err(|e| e.within("payload"))?;
        Payload::from_canonical_checked(jcs::to_string(value))
    }

    /// Parses JSON text strictly, then applies [`Payload::from_value`].
    pub fn parse(text: &str) -> Result<Payload> {
        let value = strict_json::parse(text)
            .map_err(|e| Error::validation("payload", format!("payload is not valid JSON: {e}")))?;
        Payload::from_value(&value)
    }

    /// Wraps text known to be canonical JCS after checking its size.
    pub(crate) fn from_canonical_checked(text: String) -> Result<Payload> {
        if text.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::validation(
                "payload",
                format!(
                    "payload is {} bytes of canonical JSON, over the {MAX_PAYLOAD_BYTES}-byte limit; \
                     store large attachments elsewhere and keep a reference in the event",
                    text.len()
                ),
            ));
        }
        Ok(Payload(text))
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps text that is already known to be canonical (read back from
    /// storage). Its digest is checked by the reader, not here.
    pub fn from_stored(text: String) -> Payload {
        Payload(text)
    }

    /// `payload_digest`: lowercase hex SHA-256 of `salt ‖ canonical bytes`.
    pub fn digest(&self, salt: &[u8; SALT_LEN]) -> String {
        digest_bytes(salt, self.0.as_bytes())
    }
}

/// `payload_digest` over raw stored bytes.
pub fn digest_bytes(salt: &[u8; SALT_LEN], canonical: &[u8]) -> String {
    crate::hex::encode(&digest_raw(salt, canonical))
}

/// Whether `digest` is the `payload_digest` of the raw stored bytes.
pub fn digest_matches(salt: &[u8; SALT_LEN], canonical: &[u8], digest: &str) -> bool {
    crate::hex::is_encoding_of(&digest_raw(salt, canonical), digest)
}

fn digest_raw(salt: &[u8; SALT_LEN], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Checks one JSON value (recursively) against the input rules. The error's
/// `field` is the path below `value`, such as `items[2].dose`.
pub fn check_value(value: &Value, depth: usize) -> Result<()> {
    match value {
        Value::Number(n) => check_number(n).map_err(|m| Error::validation("", m)),
        Value::Array(items) => {
            check_depth(depth)?;
            for (i, item) in items.iter().enumerate() {
                check_value(item, depth + 1).map_err(|e| e.within(&format!("[{i}]")))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            check_depth(depth)?;
            for (key, item) in map {
                check_value(item, depth + 1).map_err(|e| e.within(key))?;
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

fn check_depth(depth: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(Error::validation(
            "",
            format!("value nests deeper than {MAX_DEPTH} levels; flatten it"),
        ));
    }
    Ok(())
}

/// `n` as a count: a whole number from 0 to 2^53−1, whichever way the JSON
/// or JavaScript number was written.
pub fn safe_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().and_then(safe_count_f64))
        .filter(|n| *n <= MAX_SAFE_INTEGER)
}

/// [`safe_count`] for a double.
pub fn safe_count_f64(f: f64) -> Option<u64> {
    (f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(&f)).then_some(f as u64)
}

/// The number rule: integers must be safe, doubles must be finite. `-0` is
/// accepted and canonicalized as `0`.
pub fn check_number(n: &Number) -> std::result::Result<(), String> {
    let unsafe_integer = if let Some(u) = n.as_u64() {
        u > MAX_SAFE_INTEGER
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs() > MAX_SAFE_INTEGER
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() {
            return Err("NaN and Infinity are not JSON numbers; use null or a string".into());
        }
        f.fract() == 0.0 && f.abs() > MAX_SAFE_INTEGER as f64
    };
    if unsafe_integer {
        return Err(format!(
            "{n} is an integer beyond ±(2^53−1), which a JavaScript number cannot hold exactly; \
             store it as a string"
        ));
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn field_of(text: &str) -> (ErrorCode, Option<String>) {
        let e = Payload::parse(text).unwrap_err();
        (e.code, e.field)
    }

    #[test]
    fn canonicalizes_and_normalizes_negative_zero() {
        let p = Payload::parse(r#"{"b": -0.0, "a": [1.50, "é"]}"#).unwrap();
        assert_eq!(p.as_str(), r#"{"a":[1.5,"é"],"b":0}"#);
    }

    #[test]
    fn rejects_non_objects() {
        for text in ["[]", "1", "\"x\"", "null", "true"] {
            assert_eq!(field_of(text).1.as_deref(), Some("payload"), "{text}");
        }
    }

    #[test]
    fn rejects_unsafe_integers_with_their_path() {
        let (code, field) = field_of(r#"{"items":[{"dose":9007199254740992}]}"#);
        assert_eq!(code, ErrorCode::Validation);
        assert_eq!(field.as_deref(), Some("payload.items[0].dose"));
        assert!(Payload::parse(r#"{"n":-9007199254740992}"#).is_err());
        assert!(Payload::parse(r#"{"n":1e300}"#).is_err());
        assert!(Payload::parse(r#"{"n":18446744073709551616}"#).is_err());
        assert!(
            Payload::parse(r#"{"n":9007199254740991,"m":-9007199254740991,"f":1.5e300}"#).is_err()
        );
        assert!(
            Payload::parse(r#"{"n":9007199254740991,"m":-9007199254740991,"f":1.5e-300}"#).is_ok()
        );
    }

    #[test]
    fn rejects_overflowing_numbers_and_lone_surrogates() {
        assert!(Payload::parse(r#"{"n":1e400}"#).is_err());
        assert!(Payload::parse(r#"{"s":"\udfff"}"#).is_err());
    }

    #[test]
    fn enforces_the_size_limit_on_canonical_bytes() {
        // Whitespace does not count; canonical bytes do.
        let filler = "x".repeat(MAX_PAYLOAD_BYTES - 8);
        let ok = format!("{{ \"a\" :   \"{filler}\" }}");
        assert_eq!(
            Payload::parse(&ok).unwrap().as_str().len(),
            MAX_PAYLOAD_BYTES
        );
        let over = format!("{{\"a\":\"{filler}é\"}}");
        let e = Payload::parse(&over).unwrap_err();
        assert!(
            e.message.contains("over the 1048576-byte limit"),
            "{}",
            e.message
        );
    }

    #[test]
    fn limits_depth() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        let e = Payload::from_value(&json!({ "deep": v })).unwrap_err();
        assert!(e.message.contains("nests deeper"), "{}", e.message);
    }

    #[test]
    fn digest_commits_to_salt_and_bytes() {
        let p = Payload::parse(r#"{"severity":3}"#).unwrap();
        let a = p.digest(&[0u8; 16]);
        let b = p.digest(&[1u8; 16]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
