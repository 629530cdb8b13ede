//! RFC 8785 JSON Canonicalization Scheme (JCS) over `serde_json::Value`.
//!
//! The hash of every event is defined over these bytes, so this module is
//! the single source of truth for "canonical" on every side: browser,
//! server and `annal-verify`.
//!
//! - Object members are sorted by the UTF-16 code units of their names.
//! - Strings are escaped exactly as ECMAScript `JSON.stringify` does.
//! - Numbers are IEEE-754 doubles printed as ECMAScript `Number.prototype.toString`
//!   does (`-0` prints as `0`). Integers outside ±(2^53−1) must have been
//!   rejected earlier by [`crate::payload`]; this module assumes valid input.
//! - No whitespace.

use serde_json::{Map, Number, Value};

/// The canonical serialization of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value);
    out
}

/// Appends the canonical serialization of `value` to `out`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| compare_utf16(a, b));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

/// Orders two strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
/// This differs from byte order only when a character above U+FFFF meets one
/// in U+E000..=U+FFFF.
pub fn compare_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Appends `s` as a JSON string literal, escaped as `JSON.stringify` does.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape: Option<&str> = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x09 => Some("\\t"),
            0x0a => Some("\\n"),
            0x0c => Some("\\f"),
            0x0d => Some("\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(byte >> 4) as usize] as char);
                out.push(HEX[(byte & 0xf) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a number as ECMAScript prints the double it denotes.
pub fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else {
        write_f64(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// Appends a finite double as ECMAScript's `Number.prototype.toString`.
pub fn write_f64(out: &mut String, f: f64) {
    if f == 0.0 {
        // Both +0 and -0 print as "0" (RFC 8785 §3.2.2.3).
        out.push('0');
        return;
    }
    let mut buf = ryu_js::Buffer::new();
    out.push_str(buf.format_finite(f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_members_by_utf16_code_units() {
        // U+1F600 (surrogates D83D DE00) sorts before U+FB01 in UTF-16
        // although it sorts after it in UTF-8 byte order.
        let v = json!({"\u{fb01}": 1, "\u{1f600}": 2, "b": 3, "a": 4});
        assert_eq!(
            to_string(&v),
            "{\"a\":4,\"b\":3,\"\u{1f600}\":2,\"\u{fb01}\":1}"
        );
    }

    #[test]
    fn escapes_like_json_stringify() {
        let v = json!("q\"b\\\u{8}\u{9}\u{a}\u{c}\u{d}\u{1}\u{1f}\u{7f}\u{2028}é");
        assert_eq!(
            to_string(&v),
            "\"q\\\"b\\\\\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}\u{2028}é\""
        );
    }

    #[test]
    fn prints_numbers_like_ecmascript() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (123456789012345680000.0, "123456789012345680000"),
            (4.5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.000001, "0.000001"),
            (333333333.3333333, "333333333.3333333"),
        ];
        for (f, expected) in cases {
            let mut out = String::new();
            write_f64(&mut out, *f);
            assert_eq!(&out, expected, "formatting {f:e}");
        }
    }

    #[test]
    fn canonicalizes_nested_values_without_whitespace() {
        let v: Value = serde_json::from_str(
            r#" { "b" : [ 1.0 , true , null , { "z" : 1 , "y" : -0.0 } ] , "a" : "x" } "#,
        )
        .unwrap();
        assert_eq!(
            to_string(&v),
            r#"{"a":"x","b":[1,true,null,{"y":0,"z":1}]}"#
        );
    }
}
