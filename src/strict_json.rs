//! Parsing JSON text strictly: I-JSON (RFC 7493) as JCS requires.
//!
//! `serde_json` silently keeps the last of two members with the same name.
//! An audit log must not: a document that two parsers read differently is a
//! way to hide an edit. Unpaired surrogate escapes (`"\ud800"`) and numbers
//! that overflow a double are rejected by `serde_json` itself.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `text` as one JSON value, rejecting duplicate member names.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value.0)
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member name {key:?}")));
            }
            let StrictValue(v) = access.next_value()?;
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn rejects_duplicate_member_names() {
        let err = parse(r#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert!(err.contains("duplicate member name \"c\""), "{err}");
    }

    #[test]
    fn rejects_lone_surrogate_escapes_and_trailing_data() {
        assert!(parse(r#"{"a":"\ud800"}"#).is_err());
        assert!(parse(r#"{"a":"\udc00x"}"#).is_err());
        assert!(parse(r#"{"a":1} {}"#).is_err());
        assert!(parse(r#"{"a":1e400}"#).is_err());
    }

    #[test]
    fn accepts_paired_surrogate_escapes() {
        let v = parse(r#"{"a":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(v["a"], "\u{1f600}");
    }
}
