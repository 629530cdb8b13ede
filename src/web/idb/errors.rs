//! IndexedDB failures as annal errors.

use crate::error::{Error, ErrorCode};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DomException;

/// Maps a thrown value (usually a `DOMException`) to an annal error.
pub(crate) fn from_dom(value: JsValue) -> Error {
    let (name, message) = match value.dyn_ref::<DomException>() {
        Some(e) => (e.name(), e.message()),
        None => match value.dyn_ref::<js_sys::Error>() {
            Some(e) => (String::from(e.name()), String::from(e.message())),
            None => ("Error".to_string(), format!("{value:?}")),
        },
    };
    from_name(&name, &message)
}

/// Maps a `DOMException` name and message to an annal error.
pub(crate) fn from_name(name: &str, message: &str) -> Error {
    match name {
        "QuotaExceededError" => Error::new(
            ErrorCode::QuotaExceeded,
            "the browser refused to store more data for this site (quota exceeded); nothing was written. \
             Free space on the device, or ask for more with navigator.storage.persist(), then retry",
        ),
        "InvalidStateError" => Error::new(
            ErrorCode::Closed,
            format!("the database connection is closed ({message}); open the store again"),
        ),
        "SecurityError" => Error::storage(format!(
            "IndexedDB is not available in this context ({message}); sandboxed frames, opaque origins and some \
             privacy settings block it. Open the store from a same-origin page, worker or service worker"
        )),
        "VersionError" => Error::new(
            ErrorCode::Schema,
            format!("the database was written by a newer version of annal ({message}); upgrade the app"),
        ),
        _ => Error::storage(format!(
            "IndexedDB failed with {name}: {message}; nothing was written, retry the operation"
        )),
    }
}
