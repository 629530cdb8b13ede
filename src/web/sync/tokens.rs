//! Tokens from the app: `getToken(refresh)` returns (a promise of) a bearer
//! token; `refresh` is true when the last one was refused.

use crate::error::{Error, Result};
use crate::sync::engine::TokenSource;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The app's `getToken`.
#[derive(Debug, Clone)]
pub(crate) struct JsTokens {
    pub(crate) get_token: js_sys::Function,
}

impl TokenSource for JsTokens {
    async fn token(&self, refresh: bool) -> Result<String> {
        let bad = || {
            Error::validation(
                "getToken",
                "getToken(refresh) must return a token string (or a promise of one)",
            )
        };
        let value = self
            .get_token
            .call1(&JsValue::NULL, &JsValue::from(refresh))
            .map_err(|_| {
                Error::new(
                    crate::error::ErrorCode::Unauthorized,
                    "getToken() threw; sync needs a token",
                )
            })?;
        let value = match value.dyn_ref::<js_sys::Promise>() {
            Some(p) => JsFuture::from(p.clone()).await.map_err(|_| {
                Error::new(
                    crate::error::ErrorCode::Unauthorized,
                    "getToken() rejected; sync needs a token",
                )
            })?,
            None => value,
        };
        value.as_string().filter(|t| !t.is_empty()).ok_or_else(bad)
    }
}
