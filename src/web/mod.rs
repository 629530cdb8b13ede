//! The browser layer: IndexedDB storage, group commit, JavaScript value
//! conversion and the exported API. Only this module knows `JsValue`.

mod aggregate_head;
mod api;
mod append;
mod encryption;
mod group_commit;
mod idb;
mod js_error;
mod js_json;
mod keys;
mod open_ahead;
mod options;
mod platform;
mod read;
mod scan;
mod seal_ahead;
mod state_reads;
mod store;
mod sync;
mod write_cache;

pub use api::{Cursor, Store};
#[doc(hidden)]
pub use js_json::draft_both_ways;
pub use platform::{BrowserClock, BrowserEntropy};
