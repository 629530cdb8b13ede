//! The master key and the keys it derives with HKDF-SHA256, salted with the
//! store id so that two stores never share a derived key.

use super::aead::{AeadKey, KEY_LEN};
use super::blind::BlindKey;
use super::head_mac::HeadMacKey;
use crate::entropy::Entropy;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// HKDF `info` of data key `id`: this prefix followed by `id` in decimal.
pub const DATA_KEY_INFO: &str = "annal/1 data key ";
/// HKDF `info` of the blind-index key.
pub const BLIND_KEY_INFO: &str = "annal/1 blind index key";
/// HKDF `info` of the head-MAC key.
pub const HEAD_MAC_KEY_INFO: &str = "annal/1 head mac key";

/// The stable random root of a store's keys. Never stored unwrapped;
/// zeroized on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate(entropy: &dyn Entropy) -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        entropy.fill(key.as_mut());
        MasterKey(key)
    }

    /// A master key from unwrapped bytes; `None` unless exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(MasterKey(key))
    }

    /// The raw bytes, for wrapping under a key-encryption key.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Constant-time equality, to check a credential against the open key.
    pub fn same_as(&self, other: &MasterKey) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn derive(&self, store_id: &str, info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hkdf = Hkdf::<Sha256>::new(Some(store_id.as_bytes()), self.0.as_ref());
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's limit of 8160.
        let _ = hkdf.expand(info, okm.as_mut());
        okm
    }
}

/// The keys of one unlocked store.
#[derive(Clone)]
pub struct KeySet {
    store_id: String,
    master: MasterKey,
    blind: BlindKey,
    head_mac: HeadMacKey,
    metadata: AeadKey,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Derives the key set of store `store_id` from its master key.
    pub fn new(store_id: &str, master: MasterKey) -> KeySet {
        let blind = BlindKey::new(master.derive(store_id, BLIND_KEY_INFO.as_bytes()));
        let head_mac = HeadMacKey::new(master.derive(store_id, HEAD_MAC_KEY_INFO.as_bytes()));
        let metadata =
            AeadKey::new(&master.derive(store_id, super::metadata::METADATA_KEY_INFO.as_bytes()));
        KeySet {
            metadata,
            store_id: store_id.to_string(),
            master,
            blind,
            head_mac,
        }
    }

    /// The store these keys belong to.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The master key.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Data key `id` of the ring (ids start at 1).
    pub fn data_key(&self, id: u32) -> AeadKey {
        AeadKey::new(&self.data_key_bytes(id))
    }

    /// The bytes of data key `id`, for recovery tools and the test suite.
    pub fn data_key_bytes(&self, id: u32) -> Zeroizing<[u8; KEY_LEN]> {
        self.master
            .derive(&self.store_id, format!("{DATA_KEY_INFO}{id}").as_bytes())
    }

    /// The blind-index key; stable across data-key rotation.
    pub fn blind(&self) -> &BlindKey {
        &self.blind
    }

    /// The key of sealed metadata (receipts' reasons); not rotated.
    pub fn metadata_key(&self) -> &AeadKey {
        &self.metadata
    }

    /// The head-MAC key.
    pub fn head_mac(&self) -> &HeadMacKey {
        &self.head_mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn derived_keys_differ_by_purpose_and_store() {
        let master = MasterKey::generate(&SeededEntropy::new(3));
        let a = KeySet::new("store-a", master.clone());
        let b = KeySet::new("store-b", master);
        assert_ne!(*a.data_key_bytes(1), *a.data_key_bytes(2));
        assert_ne!(*a.data_key_bytes(1), *b.data_key_bytes(1));
        assert_ne!(a.blind().blind("x", "1"), b.blind().blind("x", "1"));
    }

    #[test]
    fn hkdf_matches_rfc_5869_case_1() {
        // RFC 5869 A.1, with our 32-byte output (a prefix of its 42 bytes).
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            crate::hex::encode(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn master_keys_compare_by_value() {
        let a = MasterKey::from_bytes(&[1; 32]).unwrap();
        assert!(a.same_as(&MasterKey::from_bytes(&[1; 32]).unwrap()));
        assert!(!a.same_as(&MasterKey::from_bytes(&[2; 32]).unwrap()));
        assert!(MasterKey::from_bytes(&[1; 31]).is_none());
    }
}
