//! The default transport: `fetch` through gloo-net, with a timeout per
//! request and a handle that aborts the request in flight (`cancelSync()`).

use crate::clock::Clock;
use crate::sync::backoff::parse_retry_after;
use crate::sync::transport::{Request, Response, Transport, TransportError};
use crate::web::platform::BrowserClock;
use gloo_net::http::{Method, RequestBuilder};
use js_sys::{Function, Reflect};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortController;

/// How long one request may take before it counts as a network failure.
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// The request in flight, so it can be aborted from outside.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    controller: RefCell<Option<AbortController>>,
    aborted: Cell<bool>,
}

impl InFlight {
    /// Aborts the request in flight, if any, and every later one.
    pub(crate) fn abort(&self) {
        self.aborted.set(true);
        if let Some(c) = self.controller.borrow_mut().take() {
            c.abort();
        }
    }
}

/// Sends requests to one annal-server.
#[derive(Debug, Clone)]
pub(crate) struct FetchTransport {
    pub(crate) base_url: String,
    pub(crate) timeout_ms: u32,
    pub(crate) in_flight: Rc<InFlight>,
    /// The app's `fetch(request)` (e.g. `FaultyFetch` from `annal/testing`),
    /// in place of the global one.
    pub(crate) fetch: Option<Function>,
}

/// What a rejected promise or a thrown value says.
fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "the request failed".into())
}

/// `setTimeout` in any context (window, worker, service worker).
fn set_timeout(callback: &Closure<dyn FnMut()>, ms: u32) -> Option<JsValue> {
    let global = js_sys::global();
    let f: Function = Reflect::get(&global, &JsValue::from_str("setTimeout"))
        .ok()?
        .dyn_into()
        .ok()?;
    f.call2(&global, callback.as_ref(), &JsValue::from(ms)).ok()
}

fn clear_timeout(handle: &JsValue) {
    let global = js_sys::global();
    if let Ok(f) = Reflect::get(&global, &JsValue::from_str("clearTimeout"))
        .and_then(|f| f.dyn_into::<Function>())
    {
        let _ = f.call1(&global, handle);
    }
}

/// A request body as a `Blob`. Chromium hands a blob to its network
/// service by reference, where it copies and streams an `ArrayBuffer` or a
/// string through a pipe: a push of 500 events (about 700 KB) went out and
/// was answered in 7 to 10 ms as a blob, against 18 to 33 ms as bytes and
/// 21 to 33 ms as a string, against the same local server (a string is
/// also turned into UTF-16 and back). Bytes, not a string, go into the
/// blob for that reason too. The request's `Content-Type` gives the type.
fn blob_of(body: &str) -> Result<web_sys::Blob, String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(body.as_bytes()));
    web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|e| describe(&e))
}

impl FetchTransport {
    async fn fetch(&self, req: Request, controller: &AbortController) -> Result<Response, String> {
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), req.path);
        let method = if req.method == "POST" {
            Method::POST
        } else {
            Method::GET
        };
        let mut builder = RequestBuilder::new(&url)
            .method(method)
            .abort_signal(Some(&controller.signal()));
        if let Some(token) = &req.token {
            builder = builder.header("Authorization", &format!("Bearer {token}"));
        }
        let request = match req.body {
            Some(body) => builder
                .header("Content-Type", "application/json")
                .body(blob_of(&body)?),
            None => builder.build(),
        }
        .map_err(|e| e.to_string())?;
        let response = match &self.fetch {
            None => request.send().await.map_err(|e| e.to_string())?,
            Some(f) => {
                let raw: web_sys::Request = request.into();
                let answer = f.call1(&JsValue::NULL, &raw).map_err(|e| describe(&e))?;
                let answer = JsFuture::from(js_sys::Promise::resolve(&answer))
                    .await
                    .map_err(|e| describe(&e))?;
                let raw: web_sys::Response = answer.dyn_into().map_err(|_| {
                    "the fetch option resolved to something other than a Response".to_string()
                })?;
                gloo_net::http::Response::from(raw)
            }
        };
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| parse_retry_after(&v, BrowserClock.now_ms()));
        // As bytes: `text()` would decode the UTF-8 into a JavaScript
        // string, only for it to be encoded into UTF-8 again on its way into
        // wasm (about 8 ms of a 1.5 MB pull page).
        let bytes = response.binary().await.map_err(|e| e.to_string())?;
        let body = String::from_utf8(bytes)
            .map_err(|_| "the server answered with a body that is not UTF-8".to_string())?;
        Ok(Response {
            status,
            retry_after_ms,
            body,
        })
    }
}

impl Transport for FetchTransport {
    async fn send(&self, req: Request) -> Result<Response, TransportError> {
        if self.in_flight.aborted.get() {
            return Err(TransportError::Network("sync was cancelled".into()));
        }
        let controller = AbortController::new()
            .map_err(|_| TransportError::Network("AbortController is unavailable".into()))?;
        let timed_out = Rc::new(Cell::new(false));
        let on_timeout = {
            let controller = controller.clone();
            let timed_out = timed_out.clone();
            Closure::<dyn FnMut()>::new(move || {
                timed_out.set(true);
                controller.abort();
            })
        };
        let timer = set_timeout(&on_timeout, self.timeout_ms);
        *self.in_flight.controller.borrow_mut() = Some(controller.clone());
        let result = self.fetch(req, &controller).await;
        self.in_flight.controller.borrow_mut().take();
        if let Some(t) = &timer {
            clear_timeout(t);
        }
        drop(on_timeout);
        match result {
            Ok(r) => Ok(r),
            Err(_) if timed_out.get() => Err(TransportError::Timeout),
            Err(e) => Err(TransportError::Network(e)),
        }
    }
}
