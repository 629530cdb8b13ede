//! Small sealed metadata (the server's reasons kept with receipts) under a
//! metadata key derived from the master key: such text can quote what the
//! app wrote (an event type, an aggregate id), so encrypted stores never
//! keep it in the clear.
//!
//! ```text
//! sealed = nonce [12] ‖ AES-256-GCM(metadata key, nonce,
//!          AAD = "annal/1 metadata" 0x00 store_id 0x00 kind 0x00 decimal(id), plaintext)
//! ```

use super::aead::{AeadError, NONCE_LEN};
use super::keys::KeySet;
use crate::entropy::Entropy;

/// HKDF `info` of the metadata key.
pub const METADATA_KEY_INFO: &str = "annal/1 metadata key";

fn aad(keys: &KeySet, kind: &str, id: u64) -> Vec<u8> {
    format!("annal/1 metadata\0{}\0{kind}\0{id}", keys.store_id()).into_bytes()
}

/// Seals `plaintext`, bound to its `kind` and `id`.
pub fn seal(
    keys: &KeySet,
    kind: &str,
    id: u64,
    plaintext: &[u8],
    entropy: &dyn Entropy,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        keys.metadata_key()
            .encrypt(&nonce, &aad(keys, kind, id), plaintext),
    );
    out
}

/// Opens what [`seal`] made for the same `kind` and `id`.
pub fn open(keys: &KeySet, kind: &str, id: u64, sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
    if sealed.len() < NONCE_LEN {
        return Err(AeadError::BadLength);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    keys.metadata_key().decrypt(nonce, &aad(keys, kind, id), ct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::MasterKey;
    use crate::entropy::SeededEntropy;

    #[test]
    fn sealed_metadata_is_bound_to_its_place() {
        let keys = KeySet::new("s", MasterKey::from_bytes(&[2; 32]).unwrap());
        let e = SeededEntropy::new(1);
        let sealed = seal(&keys, "receipt", 7, b"SCHEMA_NOT_ALLOWED noted", &e);
        assert!(!sealed.windows(5).any(|w| w == b"noted"));
        assert_eq!(
            open(&keys, "receipt", 7, &sealed).unwrap(),
            b"SCHEMA_NOT_ALLOWED noted"
        );
        assert!(open(&keys, "receipt", 8, &sealed).is_err());
        assert!(open(&keys, "other", 7, &sealed).is_err());
        assert_eq!(
            open(&keys, "receipt", 7, &sealed[..5]),
            Err(AeadError::BadLength)
        );
    }
}
