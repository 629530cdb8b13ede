//! Browser tests shared by every context (window, dedicated worker, service
//! worker). Each test deletes its database first.

mod bad_input;
mod encryption;
mod json_input;
mod lifecycle;
mod log;
mod tamper;

use annal::web::Store;
use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

/// Parses a JSON literal into a JavaScript value.
pub(crate) fn js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON")
}

/// Sets `obj[key] = value`.
pub(crate) fn put(obj: &JsValue, key: &str, value: JsValue) {
    Reflect::set(obj, &key.into(), &value).unwrap();
}

/// Reads `obj[key]`.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap()
}

/// Reads `obj[key]` as a number.
pub(crate) fn num(obj: &JsValue, key: &str) -> f64 {
    get(obj, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number"))
}

/// Asserts the error is a real JS `Error` with this `code`, and returns it.
pub(crate) fn expect_code(result: Result<impl std::fmt::Debug, JsValue>, code: &str) -> JsValue {
    let err = result.expect_err(&format!("expected {code}"));
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "not an Error: {err:?}"
    );
    let actual = get(&err, "code").as_string();
    let message = get(&err, "message").as_string().unwrap_or_default();
    assert_eq!(actual.as_deref(), Some(code), "{message}");
    assert!(!message.is_empty());
    err
}

/// Deletes the store, then opens it fresh.
pub(crate) async fn fresh(name: &str) -> Store {
    Store::destroy(name.into()).await.unwrap();
    open(name).await
}

/// Opens a store as user `u-1`.
pub(crate) async fn open(name: &str) -> Store {
    Store::open(js(&format!(r#"{{"name":"{name}","userId":"u-1"}}"#)))
        .await
        .unwrap()
}

/// A valid event for `aggregate`, with `payload` JSON.
pub(crate) fn event(aggregate: &str, payload: &str) -> JsValue {
    js(&format!(
        r#"{{"aggregateType":"diary","aggregateId":"{aggregate}","eventType":"noted","payload":{payload}}}"#
    ))
}

/// A batch of `{}` events, one per `(aggregate id, expectedVersion)`.
pub(crate) fn batch_with(pairs: &[(&str, Option<u32>)]) -> JsValue {
    let batch = js_sys::Array::new();
    for (id, expected) in pairs {
        let e = event(id, "{}");
        if let Some(v) = expected {
            put(&e, "expectedVersion", (*v).into());
        }
        batch.push(&e);
    }
    batch.into()
}

/// The `aggregateVersion` of each stored event of a result.
pub(crate) fn versions(stored: &JsValue) -> Vec<f64> {
    items(stored)
        .iter()
        .map(|e| num(e, "aggregateVersion"))
        .collect()
}

/// The events array of a result as a Vec.
pub(crate) fn items(array: &JsValue) -> Vec<JsValue> {
    array
        .dyn_ref::<js_sys::Array>()
        .expect("array")
        .iter()
        .collect()
}
