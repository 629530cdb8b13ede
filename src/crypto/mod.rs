//! Encryption at rest (docs/FORMAT.md, "Encryption at rest").
//!
//! A stable random master key, wrapped by key-encryption keys that live
//! outside this crate (WebCrypto), derives with HKDF-SHA256:
//! - the data keys of the key ring, which encrypt records with AES-256-GCM;
//! - the blind-index key, which turns indexed fields into HMAC values;
//! - the head-MAC key, which authenticates the device head.
//!
//! Everything here is synchronous, so it can run inside an IndexedDB
//! transaction without letting it auto-commit.

pub mod aead;
pub mod blind;
pub mod deferred;
pub mod head_mac;
pub mod keyring;
pub mod keys;
pub mod metadata;
pub mod recovery;
pub mod sealed;
