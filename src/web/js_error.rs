//! annal errors as JavaScript `Error` objects with a stable `code`.

use crate::error::{Error, ErrorCode};
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// The `name` of the JavaScript error for each code. The TypeScript wrapper
/// exports a subclass of the same name for each.
pub(crate) fn class_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Validation => "AnnalValidationError",
        ErrorCode::VersionConflict => "AnnalVersionConflictError",
        ErrorCode::Storage => "AnnalStorageError",
        ErrorCode::QuotaExceeded => "AnnalQuotaExceededError",
        ErrorCode::Tampered => "AnnalTamperedError",
        ErrorCode::Closed => "AnnalClosedError",
        ErrorCode::Schema => "AnnalSchemaError",
        ErrorCode::Internal => "AnnalInternalError",
        ErrorCode::BadKey => "AnnalBadKeyError",
        ErrorCode::Locked => "AnnalLockedError",
        ErrorCode::Offline => "AnnalOfflineError",
        ErrorCode::Unauthorized => "AnnalUnauthorizedError",
        ErrorCode::LedgerFork => "AnnalLedgerForkError",
        ErrorCode::SchemaIncompatible => "AnnalSchemaIncompatibleError",
        ErrorCode::Cancelled => "AnnalCancelledError",
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let err = js_sys::Error::new(&e.message);
        err.set_name(class_name(e.code));
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&err, &JsValue::from_str(k), &v);
        };
        set("code", JsValue::from_str(e.code.as_str()));
        if let Some(field) = &e.field {
            set("field", JsValue::from_str(field));
        }
        if let Some(seq) = e.device_seq {
            set("deviceSeq", JsValue::from(seq as f64));
        }
        if let Some(id) = &e.event_id {
            set("eventId", JsValue::from_str(id));
        }
        err.into()
    }
}
