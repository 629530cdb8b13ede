//! Key management in the browser: credentials, key slots, WebCrypto for
//! key-encryption keys, and the lock state shared across contexts.

pub(crate) mod broadcast;
pub(crate) mod credential;
pub(crate) mod slots;
pub(crate) mod state;
pub(crate) mod webcrypto;
