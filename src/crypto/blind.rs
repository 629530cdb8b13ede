//! Blind index values: HMAC-SHA256 of a field's value under the blind-index
//! key, so exact-match queries work while the value stays hidden.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Bytes of HMAC output kept in a blind value (128 bits, 32 hex digits).
pub const BLIND_LEN: usize = 16;

/// Field names that prefix the HMAC input, so that equal strings in
/// different fields blind to different values.
pub mod field {
    /// `aggregate_id`, in page metadata and as the `aggregates` key.
    pub const AGGREGATE_ID: &str = "aggregate_id";
    /// `aggregate_type`, in page metadata and `aggregates` values.
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    /// `event_type`, in page metadata.
    pub const EVENT_TYPE: &str = "event_type";
    /// The app's idempotency key, as the `idempotency` key.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// The fingerprint of an idempotent request.
    pub const FINGERPRINT: &str = "fingerprint";
}

/// The blind-index key. Zeroized on drop.
#[derive(Clone)]
pub struct BlindKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for BlindKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindKey(..)")
    }
}

impl BlindKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> BlindKey {
        BlindKey(key)
    }

    /// `hex(HMAC-SHA256(key, field || 0x00 || value)[..16])`.
    pub fn blind(&self, field: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        crate::hex::encode(&mac.finalize().into_bytes()[..BLIND_LEN])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blinding_is_keyed_and_separates_fields() {
        let k = BlindKey::new(Zeroizing::new([9; 32]));
        let v = k.blind(field::AGGREGATE_ID, "patient-1");
        assert_eq!(v.len(), 32);
        assert_eq!(v, k.blind(field::AGGREGATE_ID, "patient-1"));
        assert_ne!(v, k.blind(field::EVENT_TYPE, "patient-1"));
        assert_ne!(
            v,
            BlindKey::new(Zeroizing::new([8; 32])).blind(field::AGGREGATE_ID, "patient-1")
        );
    }

    #[test]
    fn blind_values_are_hmac_sha256_of_field_nul_value() {
        // HMAC-SHA256(key = 32 × 0x09, "event_type\0noted"), computed
        // independently with Node's crypto.createHmac.
        let k = BlindKey::new(Zeroizing::new([9; 32]));
        assert_eq!(k.blind("event_type", "noted"), GOLDEN_BLIND);
    }

    const GOLDEN_BLIND: &str = "1980d935a1348f3c0851e644b9163ea4";
}
