//! The sealed record (kind 2): an `annal/1` plaintext record encrypted with
//! AES-256-GCM under a data key, behind a short clear header that names the
//! key and the record's position. The header is bound into the AAD together
//! with the store id, so a ciphertext moved to another record, another
//! position or another store fails to decrypt.
//!
//! ```text
//! kind u8 = 2 | version u8 = 1 | key_id u32le | device_seq u64le
//! | id_len u8 | event_id | nonce [12] | ct_len u32le | ciphertext ‖ tag
//! AAD = "annal/1 record" 0x00 | u16le len(store_id) | store_id | header
//! ```

use super::aead::{AeadError, AeadKey, NONCE_LEN, TAG_LEN};
use super::keyring::KeyRing;
use super::keys::KeySet;
use crate::page::DecodeError;

/// Record kind byte of a sealed record.
pub const KIND_SEALED: u8 = 2;
/// Version byte of this layout.
pub const SEALED_VERSION: u8 = 1;
/// Prefix of the AAD.
pub const AAD_PREFIX: &str = "annal/1 record";

/// One sealed record borrowed from page bytes, lengths checked.
#[derive(Debug, Clone, Copy)]
pub struct SealedRecord<'a> {
    /// Offset of the record in its page.
    pub offset: usize,
    /// The clear header, from `kind` to the end of `event_id`.
    pub header: &'a [u8],
    /// Data key id.
    pub key_id: u32,
    /// The record's `device_seq`.
    pub device_seq: u64,
    /// The record's `event_id` bytes.
    pub event_id: &'a [u8],
    /// The nonce.
    pub nonce: &'a [u8],
    /// Ciphertext followed by the tag.
    pub ciphertext: &'a [u8],
}

/// Why a sealed record did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFault {
    /// The bytes do not have the sealed layout.
    Malformed(String),
    /// The record names a key the ring does not have, or has retired.
    UnknownKey(u32),
    /// The ciphertext does not authenticate under its key, header and store.
    Unauthentic,
}

impl std::fmt::Display for OpenFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFault::Malformed(why) => f.write_str(why),
            OpenFault::UnknownKey(id) => write!(
                f,
                "it names data key {id}, which the key ring does not allow"
            ),
            OpenFault::Unauthentic => f.write_str("its ciphertext does not authenticate"),
        }
    }
}

/// The AAD of a sealed record with `header` in store `store_id`.
pub fn aad(store_id: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 3 + store_id.len() + header.len());
    aad.extend_from_slice(AAD_PREFIX.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&(store_id.len() as u16).to_le_bytes());
    aad.extend_from_slice(store_id.as_bytes());
    aad.extend_from_slice(header);
    aad
}

/// Appends a sealed record holding `plain` (one kind-1 record).
#[allow(clippy::too_many_arguments)]
pub fn seal(
    out: &mut Vec<u8>,
    key: &AeadKey,
    key_id: u32,
    store_id: &str,
    device_seq: u64,
    event_id: &str,
    nonce: &[u8; NONCE_LEN],
    plain: &[u8],
) {
    let header = header(key_id, device_seq, event_id);
    let ciphertext = key.encrypt(nonce, &aad(store_id, &header), plain);
    frame(out, &header, nonce, &ciphertext);
}

/// The clear header of a sealed record, from `kind` to the end of `event_id`.
pub fn header(key_id: u32, device_seq: u64, event_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(15 + event_id.len());
    out.push(KIND_SEALED);
    out.push(SEALED_VERSION);
    out.extend_from_slice(&key_id.to_le_bytes());
    out.extend_from_slice(&device_seq.to_le_bytes());
    // Event ids are UUIDs (36 bytes), checked when sealing.
    out.push(event_id.len() as u8);
    out.extend_from_slice(event_id.as_bytes());
    out
}

/// Appends a sealed record from its header, nonce and ciphertext ‖ tag.
pub fn frame(out: &mut Vec<u8>, header: &[u8], nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) {
    out.extend_from_slice(header);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&(ciphertext.len() as u32).to_le_bytes());
    out.extend_from_slice(ciphertext);
}

/// How many bytes a sealed record of a `plain_len`-byte plaintext under
/// `header` takes.
pub fn framed_len(header: &[u8], plain_len: usize) -> usize {
    header.len() + NONCE_LEN + 4 + plain_len + TAG_LEN
}

fn take(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), String> {
    if bytes.len() < n {
        return Err("the record runs past the end of its page".into());
    }
    Ok(bytes.split_at(n))
}

fn split_one(bytes: &[u8]) -> Result<(SealedRecord<'_>, &[u8]), String> {
    let (fixed, rest) = take(bytes, 1 + 1 + 4 + 8 + 1)?;
    if fixed[0] != KIND_SEALED {
        return Err(format!(
            "record kind {} where a sealed record (2) belongs",
            fixed[0]
        ));
    }
    if fixed[1] != SEALED_VERSION {
        return Err(format!("unknown sealed record version {}", fixed[1]));
    }
    let key_id = u32::from_le_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&fixed[6..14]);
    let id_len = fixed[14] as usize;
    let (event_id, rest) = take(rest, id_len)?;
    let header = &bytes[..fixed.len() + id_len];
    let (nonce, rest) = take(rest, NONCE_LEN)?;
    let (len, rest) = take(rest, 4)?;
    let ct_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if ct_len < TAG_LEN {
        return Err("the ciphertext is shorter than its tag".into());
    }
    let (ciphertext, rest) = take(rest, ct_len)?;
    Ok((
        SealedRecord {
            offset: 0,
            header,
            key_id,
            device_seq: u64::from_le_bytes(seq),
            event_id,
            nonce,
            ciphertext,
        },
        rest,
    ))
}

/// Splits page bytes into sealed records as far as they make sense, like
/// [`crate::page::decode_lossy`].
pub fn split(bytes: &[u8]) -> (Vec<SealedRecord<'_>>, Option<(DecodeError, &[u8])>) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match split_one(rest) {
            Ok((mut record, after)) => {
                record.offset = bytes.len() - rest.len();
                records.push(record);
                rest = after;
            }
            Err(reason) => {
                let index = records.len();
                return (records, Some((DecodeError { index, reason }, rest)));
            }
        }
    }
    (records, None)
}

impl SealedRecord<'_> {
    /// Decrypts the record into its plaintext kind-1 record bytes.
    pub fn open(&self, keys: &KeySet, ring: &KeyRing) -> Result<Vec<u8>, OpenFault> {
        if !ring.usable(self.key_id) {
            return Err(OpenFault::UnknownKey(self.key_id));
        }
        keys.data_key(self.key_id)
            .decrypt(
                self.nonce,
                &aad(keys.store_id(), self.header),
                self.ciphertext,
            )
            .map_err(|e| match e {
                AeadError::BadLength => OpenFault::Malformed(e.to_string()),
                AeadError::Unauthentic => OpenFault::Unauthentic,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::MasterKey;

    fn keys() -> (KeySet, KeyRing) {
        (
            KeySet::new("store-1", MasterKey::from_bytes(&[4; 32]).unwrap()),
            KeyRing::new(1000),
        )
    }

    fn sealed(keys: &KeySet, seq: u64, id: &str, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(
            &mut out,
            &keys.data_key(1),
            1,
            keys.store_id(),
            seq,
            id,
            &[3; 12],
            plain,
        );
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let (keys, ring) = keys();
        let bytes = sealed(&keys, 7, "e-7", b"\x01hello");
        assert_eq!(bytes.len(), 15 + 3 + 12 + 4 + 6 + 16);
        let (records, err) = split(&bytes);
        assert!(err.is_none());
        assert_eq!(records[0].device_seq, 7);
        assert_eq!(records[0].event_id, b"e-7");
        assert_eq!(records[0].open(&keys, &ring).unwrap(), b"\x01hello");
    }

    #[test]
    fn moved_or_edited_ciphertexts_do_not_open() {
        let (keys, ring) = keys();
        let a = sealed(&keys, 1, "e-1", b"\x01a");
        let b = sealed(&keys, 2, "e-2", b"\x01b");
        // b's ciphertext behind a's header.
        let (ra, _) = split(&a);
        let (rb, _) = split(&b);
        let swapped = SealedRecord {
            ciphertext: rb[0].ciphertext,
            ..ra[0]
        };
        assert_eq!(swapped.open(&keys, &ring), Err(OpenFault::Unauthentic));
        // Another store's keys.
        let other = KeySet::new("store-2", MasterKey::from_bytes(&[4; 32]).unwrap());
        assert_eq!(ra[0].open(&other, &ring), Err(OpenFault::Unauthentic));
        // A flipped ciphertext bit.
        let mut flipped = a.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            split(&flipped).0[0].open(&keys, &ring),
            Err(OpenFault::Unauthentic)
        );
        // A retired or unknown key.
        let mut ring2 = ring.clone();
        ring2.rotate(5);
        ring2.retire_before(2);
        assert_eq!(ra[0].open(&keys, &ring2), Err(OpenFault::UnknownKey(1)));
    }

    #[test]
    fn every_truncation_is_malformed_not_a_panic() {
        let (keys, _) = keys();
        let bytes = sealed(&keys, 1, "e-1", b"\x01abc");
        for n in 1..bytes.len() {
            let (records, err) = split(&bytes[..n]);
            assert!(records.is_empty());
            assert_eq!(err.unwrap().0.index, 0, "cut at {n}");
        }
        let mut short_ct = bytes.clone();
        let at = 15 + 3 + 12;
        short_ct[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(split(&short_ct).1.is_some());
    }
}
