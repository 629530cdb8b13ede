//! The browser's clock and random source, in any context (window, worker,
//! service worker).

use crate::clock::Clock;
use crate::entropy::Entropy;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// `Date.now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

/// `crypto.getRandomValues`, a cryptographically secure generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrowserEntropy;

impl Entropy for BrowserEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // getRandomValues fills at most 65536 bytes per call.
        for chunk in buf.chunks_mut(65536) {
            get_random_values(chunk);
        }
    }
}
