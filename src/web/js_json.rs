//! JavaScript values to JSON, checked on the way in.
//!
//! `JSON.stringify` would quietly turn NaN into null, drop functions, call
//! `toJSON` on dates and replace lone surrogates, so the hash would no
//! longer match what the app passed. This walk refuses all of those with the
//! path of the offending value, and otherwise yields exactly the JSON the
//! app meant. Object members whose value is `undefined` are skipped, as in
//! `JSON.stringify`.

use crate::error::{Error, Result};
use crate::payload::MAX_DEPTH;
use js_sys::{Array, JsString, Object, Reflect};
use serde_json::{Map, Number, Value};
use wasm_bindgen::{JsCast, JsValue};

/// Converts `value`, naming errors from `root` (e.g. `"event"`).
pub(crate) fn to_json(value: &JsValue, root: &str) -> Result<Value> {
    convert(value, 0).map_err(|mut e| {
        let field = match e.field.take() {
            Some(f) if !f.is_empty() => f,
            _ => root.to_string(),
        };
        e.message = format!("{field} {}", e.message);
        e.with_field(field)
    })
}

fn bad(message: String) -> Error {
    Error::validation("", message)
}

fn convert(value: &JsValue, depth: usize) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(f) = value.as_f64() {
        return number(f);
    }
    if let Some(s) = value.dyn_ref::<JsString>() {
        return Ok(Value::String(string(s)?));
    }
    if value.is_undefined() {
        return Err(bad(
            "is undefined, which JSON cannot hold; use null or leave the member out".into(),
        ));
    }
    if value.is_bigint() {
        return Err(bad(
            "is a BigInt, which JSON cannot hold; store it as a string".into(),
        ));
    }
    if value.is_function() || value.is_symbol() {
        return Err(bad("is a function or symbol, which JSON cannot hold".into()));
    }
    if depth >= MAX_DEPTH {
        return Err(bad(format!(
            "nests deeper than {MAX_DEPTH} levels (or contains a cycle); flatten it"
        )));
    }
    if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        let mut items = Vec::with_capacity(array.length() as usize);
        for (i, item) in array.iter().enumerate() {
            let converted = convert(&item, depth + 1).map_err(|e| e.within(&format!("[{i}]")))?;
            items.push(converted);
        }
        return Ok(Value::Array(items));
    }
    let object: &Object = value.unchecked_ref();
    check_plain(object)?;
    let mut map = Map::new();
    for key in Object::keys(object).iter() {
        let key_js: JsString = key.unchecked_into();
        let name = string(&key_js).map_err(|e| e.within("(member name)"))?;
        let member = Reflect::get(object, &key_js)
            .map_err(|_| bad(format!("member {name:?} cannot be read")))?;
        if member.is_undefined() {
            continue;
        }
        let converted = convert(&member, depth + 1).map_err(|e| e.within(&name))?;
        map.insert(name, converted);
    }
    Ok(Value::Object(map))
}

fn number(f: f64) -> Result<Value> {
    if !f.is_finite() {
        // Named as JavaScript names them (Rust would print `inf`).
        let shown = match (f.is_nan(), f > 0.0) {
            (true, _) => "NaN",
            (false, true) => "Infinity",
            (false, false) => "-Infinity",
        };
        return Err(bad(format!(
            "is {shown}, which is not a JSON number; use null or a string"
        )));
    }
    if f.fract() == 0.0 && f.abs() <= crate::payload::MAX_SAFE_INTEGER as f64 {
        return Ok(Value::Number(Number::from(f as i64)));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| bad("is not a JSON number".into()))
}

fn string(s: &JsString) -> Result<String> {
    let text = String::from(s);
    // The conversion turns a lone surrogate into U+FFFD, so only text that
    // has one needs the (per code unit) check; a real U+FFFD passes it.
    if text.contains('\u{FFFD}') && !well_formed(s) {
        return Err(bad(
            "contains a lone UTF-16 surrogate, which cannot be stored exactly; fix the text (String.prototype.toWellFormed)".into(),
        ));
    }
    Ok(text)
}

/// `String.prototype.isWellFormed()` where the browser has it (one call),
/// else a walk over the code units.
fn well_formed(s: &JsString) -> bool {
    Reflect::get(s, &JsValue::from_str("isWellFormed"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(s).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or_else(|| s.is_valid_utf16())
}

/// Only plain objects (and arrays) are JSON. A `Date`, `Map`, class
/// instance or typed array would be mangled by serialization.
fn check_plain(object: &Object) -> Result<()> {
    let proto = Object::get_prototype_of(object);
    if proto.is_null() || proto == Object::get_prototype_of(&Object::new()) {
        return Ok(());
    }
    let constructor = Reflect::get(object, &JsValue::from_str("constructor"))
        .ok()
        .and_then(|c| Reflect::get(&c, &JsValue::from_str("name")).ok())
        .and_then(|n| n.as_string())
        .unwrap_or_else(|| "an object".into());
    let hint = if constructor == "Date" {
        "; pass date.toISOString() instead"
    } else {
        "; pass a plain object"
    };
    Err(bad(format!(
        "is a {constructor}, not plain JSON data{hint}"
    )))
}
