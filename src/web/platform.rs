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
///
/// Small requests (salts, nonces, ids: several per event) are served from
/// a pool filled 4 KiB at a time, since each call into JavaScript costs
/// more than the bytes. Bytes leave the pool once: they are zeroed as they
/// are handed out, so no copy of a key stays behind.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrowserEntropy;

const POOL: usize = 4096;
const FROM_POOL: usize = 256;

thread_local! {
    static POOLED: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
        std::cell::RefCell::new((Box::new([0; POOL]), POOL));
}

impl Entropy for BrowserEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if buf.len() > FROM_POOL {
            // getRandomValues fills at most 65536 bytes per call.
            for chunk in buf.chunks_mut(65536) {
                get_random_values(chunk);
            }
            return;
        }
        POOLED.with(|p| {
            let (pool, used) = &mut *p.borrow_mut();
            if POOL - *used < buf.len() {
                get_random_values(&mut pool[..]);
                *used = 0;
            }
            let taken = &mut pool[*used..*used + buf.len()];
            buf.copy_from_slice(taken);
            taken.fill(0);
            *used += buf.len();
        });
    }
}
