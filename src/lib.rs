#![doc = include_str!("../README.md")]

// The target-agnostic core: builds and tests natively.
pub mod at_rest;
pub mod audit;
pub mod chain;
pub mod clock;
pub mod crypto;
pub mod draft;
pub mod entropy;
pub mod envelope;
pub mod error;
pub mod event_view;
pub mod filter;
pub mod hex;
pub mod ids;
pub mod jcs;
pub mod ledger;
pub mod ledger_export;
pub mod memory;
pub mod page;
pub mod payload;
pub mod protocol;
pub mod record;
pub mod seal;
pub mod state;
pub mod stored_envelope;
pub mod strict_json;
pub mod sync;
pub mod tamper;
pub mod timestamp;
pub mod uuid7;

// The browser layer: IndexedDB, JavaScript values and the exported API.
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, ErrorCode, Result};
