//! A stored event: the hashed envelope, the payload's salt and the payload.

use crate::envelope::Envelope;
use crate::payload::{self, Payload, SALT_LEN};

/// One event as stored and exported: envelope, salt and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The hashed envelope.
    pub envelope: Envelope,
    /// The 16-byte salt of `payload_digest`.
    pub salt: [u8; SALT_LEN],
    /// The payload, canonical.
    pub payload: Payload,
}

/// Why a record failed its own integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityFault {
    /// `hash` is not the hash of the other envelope fields.
    Hash,
    /// `payload_digest` is not the digest of the salt and payload.
    PayloadDigest,
}

/// Checks a record's own hash and payload digest (not its chain link).
pub fn check_integrity(
    envelope: &Envelope,
    salt: &[u8; SALT_LEN],
    payload_bytes: &[u8],
) -> Result<(), IntegrityFault> {
    if envelope.compute_hash() != envelope.hash {
        return Err(IntegrityFault::Hash);
    }
    if payload::digest_bytes(salt, payload_bytes) != envelope.payload_digest {
        return Err(IntegrityFault::PayloadDigest);
    }
    Ok(())
}

impl Record {
    /// This record's own integrity check.
    pub fn check_integrity(&self) -> Result<(), IntegrityFault> {
        check_integrity(&self.envelope, &self.salt, self.payload.as_str().as_bytes())
    }
}

/// The version an aggregate is at after `events`, all of its events in
/// order: the `aggregate_version` of the last one, 0 for none.
pub fn version_of(events: &[Record]) -> u64 {
    events.last().map_or(0, |r| r.envelope.aggregate_version)
}
