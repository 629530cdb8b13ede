//! Recovery secrets: 32 random bytes that unwrap the master key when the
//! passphrase is lost. Shown to people as Crockford base32 in groups of
//! five, with a two-byte checksum so that a typo is told apart from a
//! wrong secret.

use crate::entropy::Entropy;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// HKDF `info` of the key-encryption key derived from a recovery secret.
pub const RECOVERY_KEK_INFO: &str = "annal/1 recovery kek";
/// Bytes of secret.
pub const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 2;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a recovery secret was refused before trying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryError {
    /// A character outside Crockford base32, or the wrong length.
    Malformed,
    /// The checksum does not match: a typo.
    Checksum,
}

/// A recovery secret. Zeroized on drop.
#[derive(Clone)]
pub struct RecoverySecret(Zeroizing<[u8; SECRET_LEN]>);

impl std::fmt::Debug for RecoverySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoverySecret(..)")
    }
}

fn checksum(secret: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(secret);
    [digest[0], digest[1]]
}

impl RecoverySecret {
    /// A fresh random secret.
    pub fn generate(entropy: &dyn Entropy) -> RecoverySecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        entropy.fill(bytes.as_mut());
        RecoverySecret(bytes)
    }

    /// The text people write down: 55 base32 digits in groups of five.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_LEN + CHECKSUM_LEN));
        bytes.extend_from_slice(self.0.as_ref());
        bytes.extend_from_slice(&checksum(self.0.as_ref()));
        let mut digits = Zeroizing::new(String::new());
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in bytes.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                digits.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            digits.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        let mut text = Zeroizing::new(String::with_capacity(digits.len() + 12));
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                text.push('-');
            }
            text.push(c);
        }
        text
    }

    /// Parses what a person typed: case-insensitive, dashes and spaces
    /// ignored, `O` read as `0` and `I`/`L` as `1`.
    pub fn parse(text: &str) -> Result<RecoverySecret, RecoveryError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_LEN + CHECKSUM_LEN + 1));
        let (mut acc, mut bits) = (0u32, 0u32);
        let mut digits = 0;
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let v = ALPHABET
                .iter()
                .position(|&a| a as char == c)
                .ok_or(RecoveryError::Malformed)? as u32;
            digits += 1;
            acc = ((acc << 5) | v) & 0xffff;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((acc >> bits) as u8);
            }
        }
        if digits != 55 || bytes.len() != SECRET_LEN + CHECKSUM_LEN {
            return Err(RecoveryError::Malformed);
        }
        let (secret, sum) = bytes.split_at(SECRET_LEN);
        if checksum(secret) != sum {
            return Err(RecoveryError::Checksum);
        }
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        out.copy_from_slice(secret);
        Ok(RecoverySecret(out))
    }

    /// The key-encryption key this secret gives for store `store_id`:
    /// HKDF-SHA256(ikm = secret, salt = store_id, info = "annal/1 recovery kek").
    pub fn kek(&self, store_id: &str) -> Zeroizing<[u8; 32]> {
        let hkdf = Hkdf::<Sha256>::new(Some(store_id.as_bytes()), self.0.as_ref());
        let mut okm = Zeroizing::new([0u8; 32]);
        let _ = hkdf.expand(RECOVERY_KEK_INFO.as_bytes(), okm.as_mut());
        okm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn text_round_trips_and_forgives_case_and_lookalikes() {
        let secret = RecoverySecret::generate(&SeededEntropy::new(11));
        let text = secret.to_text();
        assert_eq!(text.len(), 55 + 10);
        let back = RecoverySecret::parse(&text.to_lowercase().replace('0', "o")).unwrap();
        assert_eq!(*back.kek("s"), *secret.kek("s"));
        let spaced = text.replace('-', " ");
        assert!(RecoverySecret::parse(&spaced).is_ok());
    }

    #[test]
    fn typos_and_garbage_are_told_apart() {
        let text = RecoverySecret::generate(&SeededEntropy::new(12)).to_text();
        let mut typo: Vec<char> = text.chars().collect();
        typo[3] = if typo[3] == 'A' { 'B' } else { 'A' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(
            RecoverySecret::parse(&typo).unwrap_err(),
            RecoveryError::Checksum
        );
        assert_eq!(
            RecoverySecret::parse("hello").unwrap_err(),
            RecoveryError::Malformed
        );
        assert_eq!(
            RecoverySecret::parse(&text[..20]).unwrap_err(),
            RecoveryError::Malformed
        );
        assert_eq!(
            RecoverySecret::parse("ü").unwrap_err(),
            RecoveryError::Malformed
        );
        assert_eq!(
            RecoverySecret::parse(&format!("{}0", *text)).unwrap_err(),
            RecoveryError::Malformed
        );
    }
}
