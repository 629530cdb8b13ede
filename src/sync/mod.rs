//! Offline-first sync with annal-server, as plain Rust: the outbox and its
//! batches, retry timing, reading push results, and verifying pulls. The
//! browser store and the in-memory store drive these through a transport.

pub mod backoff;
pub mod engine;
pub mod memory;
pub mod outbox;
pub mod own_entries;
pub mod pull;
pub mod push;
pub mod receipts;
pub mod transport;
