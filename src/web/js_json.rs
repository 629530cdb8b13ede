//! JavaScript values to JSON, checked on the way in.
//!
//! The walk is in js_json.js: one call takes a whole batch of events and
//! hands back, as UTF-8 in one buffer, each event's fields and its payload
//! already in canonical form, so wasm neither reads objects member by
//! member nor canonicalizes them again. It refuses what JSON cannot hold
//! exactly (NaN, undefined, functions, dates and other class instances,
//! lone surrogates, nesting past [`MAX_DEPTH`]) with the path of the value;
//! this module words the refusal. A payload that is not a plain object or
//! holds an integer beyond 2^53 − 1 comes back as plain JSON text instead,
//! and the Rust rules name what is wrong with it.

use crate::draft::Draft;
use crate::error::{Error, Result};
use crate::payload::MAX_DEPTH;
use crate::strict_json;
use js_sys::{Array, Uint32Array, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/src/web/js_json.js")]
extern "C" {
    #[wasm_bindgen(js_name = eventTexts)]
    fn event_texts(events: &Array, max_depth: u32) -> Array;
    #[wasm_bindgen(js_name = jsonText)]
    fn json_text(value: &JsValue, max_depth: u32) -> JsValue;
}

/// How an error is named after the event it is about, by index.
pub(crate) type Namer<'a> = &'a dyn Fn(usize, Error) -> Error;

/// `events` as drafts, each error passed through `name`.
pub(crate) fn drafts(events: &Array, name: Namer) -> Result<Vec<Draft>> {
    Ok(texts_of(events, name)?
        .into_iter()
        .map(|(draft, _)| draft)
        .collect())
}

/// Each draft, and whether its payload's canonical text came from the
/// JavaScript walk (rather than from parsing and the Rust rules).
fn texts_of(events: &Array, name: Namer) -> Result<Vec<(Draft, bool)>> {
    let texts = event_texts(events, MAX_DEPTH as u32);
    if texts.length() == 4 {
        let at = texts.get(3).as_f64().unwrap_or(0.0) as usize;
        return Err(name(at, refused(&texts, "event")));
    }
    let bytes = Uint8Array::new(&texts.get(0)).to_vec();
    let lengths = Uint32Array::new(&texts.get(1)).to_vec();
    let garbled = || Error::internal("the event walk wrote text that does not match the events");
    if lengths.len() != 2 * events.length() as usize {
        return Err(garbled());
    }
    let mut rest = bytes.as_slice();
    let mut next = |n: u32| {
        let (text, after) = rest.split_at_checked(n as usize).ok_or_else(garbled)?;
        rest = after;
        String::from_utf8(text.to_vec()).map_err(|_| garbled())
    };
    let mut drafts = Vec::with_capacity(lengths.len() / 2);
    for (i, pair) in lengths.chunks_exact(2).enumerate() {
        let fields = strict_json::parse(&next(pair[0])?).map_err(|_| garbled())?;
        let payload = next(pair[1])?;
        // No payload text: the fields are the whole event, for the Rust rules.
        let quick = !payload.is_empty();
        let draft = match quick {
            true => Draft::from_canonical_payload(&fields, payload),
            false => Draft::from_value(&fields),
        };
        drafts.push((draft.map_err(|err| name(i, err))?, quick));
    }
    Ok(drafts)
}

/// `event` as a draft by both roads: the JavaScript walk's canonical text
/// (`None` where it leaves the payload to Rust) and plain JSON text
/// canonicalized by Rust. Tests hold the two to the same answer.
#[doc(hidden)]
pub fn draft_both_ways(event: &JsValue) -> (Option<Result<Draft>>, Result<Draft>) {
    let quick = match texts_of(&Array::of1(event), &|_, e| e) {
        Ok(mut drafts) => match drafts.pop() {
            Some((draft, true)) => Some(Ok(draft)),
            _ => None,
        },
        Err(e) => Some(Err(e)),
    };
    let walked = to_json(event, "event").and_then(|v| Draft::from_value(&v));
    (quick, walked)
}

/// Converts `value`, naming errors from `root` (e.g. `"filter"`).
pub(crate) fn to_json(value: &JsValue, root: &str) -> Result<Value> {
    let text = json_text(value, MAX_DEPTH as u32);
    match text.as_string() {
        Some(text) => strict_json::parse(&text)
            .map_err(|_| Error::internal("the JSON walk wrote text that does not parse")),
        None => Err(refused(text.unchecked_ref(), root)),
    }
}

/// The error for a refusal `[path, code, detail, ...]` of js_json.js.
fn refused(refusal: &Array, root: &str) -> Error {
    let part = |i| refusal.get(i).as_string().unwrap_or_default();
    let (path, code, detail) = (part(0), part(1), part(2));
    let message = match code.as_str() {
        "undefined" => {
            "is undefined, which JSON cannot hold; use null or leave the member out".into()
        }
        "bigint" => "is a BigInt, which JSON cannot hold; store it as a string".into(),
        "function" => "is a function or symbol, which JSON cannot hold".into(),
        "depth" => {
            format!("nests deeper than {MAX_DEPTH} levels (or contains a cycle); flatten it")
        }
        "number" => format!("is {detail}, which is not a JSON number; use null or a string"),
        "surrogate" => "contains a lone UTF-16 surrogate, which cannot be stored exactly; fix the text (String.prototype.toWellFormed)".into(),
        "class" => format!(
            "is a {detail}, not plain JSON data; {}",
            match detail.as_str() {
                "Date" => "pass date.toISOString() instead",
                _ => "pass a plain object",
            }
        ),
        "unreadable" => format!("member {detail:?} cannot be read"),
        _ => format!("cannot be read as JSON data ({detail})"),
    };
    let field = match path.is_empty() {
        true => root.to_string(),
        false => path,
    };
    Error::validation(field.clone(), format!("{field} {message}"))
}
