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
    /// The stored envelope is not the canonical text of its fields: it
    /// was re-encoded (spacing, escapes, member order), which the hash,
    /// taken over the canonical text, cannot see by itself.
    Encoding,
}

/// Checks a record's own hash and payload digest (not its chain link).
pub fn check_integrity(
    envelope: &Envelope,
    salt: &[u8; SALT_LEN],
    payload_bytes: &[u8],
) -> Result<(), IntegrityFault> {
    check_stored(envelope, None, salt, payload_bytes)
}

/// [`check_integrity`] of a record read from storage, whose envelope was
/// parsed from `stored`: those bytes must also be exactly its canonical
/// text, so that any change to them is caught.
pub fn check_stored(
    envelope: &Envelope,
    stored: Option<&[u8]>,
    salt: &[u8; SALT_LEN],
    payload_bytes: &[u8],
) -> Result<(), IntegrityFault> {
    let without_hash = envelope.canonical_without_hash();
    if Envelope::hash_of(&without_hash) != envelope.hash {
        return Err(IntegrityFault::Hash);
    }
    if let Some(stored) = stored {
        if !is_canonical_with_hash(stored, &without_hash, &envelope.hash) {
            return Err(IntegrityFault::Encoding);
        }
    }
    if payload::digest_bytes(salt, payload_bytes) != envelope.payload_digest {
        return Err(IntegrityFault::PayloadDigest);
    }
    Ok(())
}

/// Whether `stored` is `without_hash` with the `hash` member in its place,
/// just before `payload_digest` (members are sorted): compared in pieces,
/// with no copy. `,"payload_digest":` cannot occur inside a string value,
/// whose quotes are escaped.
fn is_canonical_with_hash(stored: &[u8], without_hash: &str, hash: &str) -> bool {
    const NEXT: &str = ",\"payload_digest\":";
    let Some(at) = without_hash.find(NEXT) else {
        return false;
    };
    let (before, after) = without_hash.as_bytes().split_at(at);
    let member = [b",\"hash\":\"", hash.as_bytes(), b"\""];
    let mut rest = stored;
    for piece in std::iter::once(before)
        .chain(member)
        .chain(std::iter::once(after))
    {
        match rest.strip_prefix(piece) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
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
