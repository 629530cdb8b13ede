//! The head MAC: an HMAC over the device head, kept beside it and updated
//! in every append transaction. Someone who edits the stored log without
//! the key cannot make a shortened or rewritten chain look complete.

use crate::state::Head;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Prefix of the MAC input.
pub const HEAD_MAC_PREFIX: &str = "annal/1 head";

/// Prefix of the key ring's MAC input.
pub const KEYRING_MAC_PREFIX: &str = "annal/1 keyring";

/// The head-MAC key. Zeroized on drop.
#[derive(Clone)]
pub struct HeadMacKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for HeadMacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeadMacKey(..)")
    }
}

impl HeadMacKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> HeadMacKey {
        HeadMacKey(key)
    }

    fn hmac(&self, store_id: &str, head: &Head) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(HEAD_MAC_PREFIX.as_bytes());
        mac.update(&[0]);
        mac.update(store_id.as_bytes());
        mac.update(&[0]);
        mac.update(head.device_seq.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(head.hash.as_bytes());
        mac
    }

    fn hmac_text(&self, label: &str, store_id: &str, text: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(store_id.as_bytes());
        mac.update(&[0]);
        mac.update(text.as_bytes());
        mac
    }

    /// `hex(HMAC-SHA256(key, "annal/1 keyring" 0 store_id 0 ring))` over the
    /// stored JSON text of the key ring.
    pub fn mac_keyring(&self, store_id: &str, ring: &str) -> String {
        crate::hex::encode(
            &self
                .hmac_text(KEYRING_MAC_PREFIX, store_id, ring)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a key ring's MAC in constant time.
    pub fn check_keyring(&self, store_id: &str, ring: &str, mac: &str) -> bool {
        match crate::hex::decode::<32>(mac) {
            Some(bytes) => self
                .hmac_text(KEYRING_MAC_PREFIX, store_id, ring)
                .verify_slice(&bytes)
                .is_ok(),
            None => false,
        }
    }

    /// `hex(HMAC-SHA256(key, "annal/1 head" 0 store_id 0 device_seq 0 hash))`.
    pub fn mac(&self, store_id: &str, head: &Head) -> String {
        crate::hex::encode(&self.hmac(store_id, head).finalize().into_bytes())
    }

    /// Checks a stored MAC in constant time.
    pub fn check(&self, store_id: &str, head: &Head, mac: &str) -> bool {
        match crate::hex::decode::<32>(mac) {
            Some(bytes) => self.hmac(store_id, head).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_mac_matches_an_independent_hmac() {
        // Computed with Node's crypto.createHmac over the documented input.
        let key = HeadMacKey::new(Zeroizing::new([5; 32]));
        let head = Head {
            device_seq: 7,
            hash: "ab".repeat(32),
        };
        let mac = key.mac("store-1", &head);
        assert_eq!(
            mac,
            "cdae1599f53b38f8df88dd37ebb8c2113e7b0fffd3204a8ce60fcaacf510b4ab"
        );
        assert!(key.check("store-1", &head, &mac));
        let older = Head {
            device_seq: 6,
            ..head.clone()
        };
        assert!(!key.check("store-1", &older, &mac));
        assert!(!key.check("store-2", &head, &mac));
        assert!(!key.check("store-1", &head, "zz"));
    }
}
