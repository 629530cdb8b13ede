//! The data-key ring: which derived data key encrypts new records, which
//! ranges of the log each key covers, and the progress of a re-encryption.
//!
//! Usage is tracked by the `device_seq` range a key covers plus the records
//! re-encrypted under it, never by a counter written on every append.

/// Rotate once a key would pass this many records. Random 96-bit nonces
/// stay safe to about 2^32 messages per key; this keeps a factor of four.
pub const DEFAULT_MAX_RECORDS_PER_KEY: u64 = 1 << 30;
/// The smallest limit an app may set.
pub const MIN_MAX_RECORDS_PER_KEY: u64 = 100;

use serde::{Deserialize, Serialize};

/// One data key of the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingKey {
    /// Key id; the HKDF info is `"annal/1 data key " + id`.
    pub id: u32,
    /// First `device_seq` appended under this key.
    pub first_device_seq: u64,
    /// Records re-encrypted under this key by `reencryptAll`.
    pub reencrypted: u64,
    /// No record uses this key any more; a record that names it is refused.
    pub retired: bool,
}

/// A re-encryption in progress: every page before `next_device_seq` has
/// moved to key `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reencryption {
    /// The first key this run moved records to; keys before it retire at
    /// the end.
    pub first_target: u32,
    /// The key records move to now (a later one once `first_target` is full).
    pub target: u32,
    /// Key of the next page to move.
    pub next_device_seq: u64,
}

/// The ring. Kept in the `meta` record `"keyring"` as JSON text with a MAC
/// under the head-MAC key, so it cannot be edited (to un-retire a key, say)
/// without the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRing {
    /// The key that encrypts new records.
    pub current: u32,
    /// Rotate before a key passes this many records.
    pub max_records_per_key: u64,
    /// Every key ever used, oldest first.
    pub keys: Vec<RingKey>,
    /// A re-encryption that has not finished.
    pub reencryption: Option<Reencryption>,
}

impl KeyRing {
    /// The ring of a new store: key 1 from `device_seq` 1.
    pub fn new(max_records_per_key: u64) -> KeyRing {
        KeyRing {
            current: 1,
            keys: vec![RingKey {
                id: 1,
                first_device_seq: 1,
                reencrypted: 0,
                retired: false,
            }],
            reencryption: None,
            max_records_per_key,
        }
    }

    /// The stored JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the stored JSON text and checks that it describes a ring.
    pub fn from_json(text: &str) -> Result<KeyRing, String> {
        let ring: KeyRing = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !ring.usable(ring.current) {
            return Err(format!(
                "the current key {} is not in the ring",
                ring.current
            ));
        }
        Ok(ring)
    }

    /// The highest key id in the ring.
    pub fn max_id(&self) -> u32 {
        self.keys.iter().map(|k| k.id).max().unwrap_or(0)
    }

    /// The ring entry of key `id`.
    pub fn key(&self, id: u32) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Whether records may name key `id`.
    pub fn usable(&self, id: u32) -> bool {
        self.key(id).is_some_and(|k| !k.retired)
    }

    /// Records encrypted under key `id` so far, given the head `device_seq`.
    pub fn usage(&self, id: u32, head_device_seq: u64) -> u64 {
        let Some(pos) = self.keys.iter().position(|k| k.id == id) else {
            return 0;
        };
        let key = &self.keys[pos];
        let end = self
            .keys
            .get(pos + 1)
            .map_or(head_device_seq + 1, |next| next.first_device_seq);
        end.saturating_sub(key.first_device_seq) + key.reencrypted
    }

    /// Adds a new current key for records from `next_device_seq` on, and
    /// returns its id.
    pub fn rotate(&mut self, next_device_seq: u64) -> u32 {
        let id = self.max_id() + 1;
        self.keys.push(RingKey {
            id,
            first_device_seq: next_device_seq,
            reencrypted: 0,
            retired: false,
        });
        self.current = id;
        id
    }

    /// Rotates if appending `incoming` records after `head_device_seq`
    /// would take the current key past its limit. Returns whether it did.
    pub fn rotate_if_due(&mut self, head_device_seq: u64, incoming: u64) -> bool {
        if self.usage(self.current, head_device_seq) + incoming > self.max_records_per_key {
            self.rotate(head_device_seq + 1);
            return true;
        }
        false
    }

    /// Whether key `id` can take `more` records within its limit.
    pub fn has_room(&self, id: u32, head_device_seq: u64, more: u64) -> bool {
        self.usage(id, head_device_seq) + more <= self.max_records_per_key
    }

    /// Retires every key but `keep` and those added after it.
    pub fn retire_before(&mut self, keep: u32) {
        for k in &mut self.keys {
            if k.id < keep {
                k.retired = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_the_range_and_reencryptions() {
        let mut ring = KeyRing::new(1000);
        assert_eq!(ring.usage(1, 0), 0);
        assert_eq!(ring.usage(1, 10), 10);
        assert_eq!(ring.rotate(11), 2);
        assert_eq!(ring.usage(1, 50), 10);
        assert_eq!(ring.usage(2, 50), 40);
        ring.keys[1].reencrypted = 10;
        assert_eq!(ring.usage(2, 50), 50);
        assert_eq!(ring.usage(9, 50), 0);
    }

    #[test]
    fn rotation_happens_before_the_limit() {
        let mut ring = KeyRing::new(100);
        assert!(!ring.rotate_if_due(90, 10));
        assert!(ring.rotate_if_due(90, 11));
        assert_eq!(ring.current, 2);
        assert_eq!(ring.key(2).unwrap().first_device_seq, 91);
        assert!(!ring.rotate_if_due(91, 99));
    }

    #[test]
    fn json_round_trips_and_is_checked() {
        let mut ring = KeyRing::new(500);
        ring.rotate(3);
        ring.reencryption = Some(Reencryption {
            first_target: 2,
            target: 2,
            next_device_seq: 1,
        });
        let text = ring.to_json();
        assert!(text.starts_with(r#"{"current":2,"max_records_per_key":500,"keys":[{"id":1,"#));
        assert_eq!(KeyRing::from_json(&text).unwrap(), ring);
        assert!(KeyRing::from_json(&text.replace("\"current\":2", "\"current\":7")).is_err());
        assert!(KeyRing::from_json("{}").is_err());
        assert!(KeyRing::from_json("[").is_err());
    }

    #[test]
    fn retired_keys_are_unusable() {
        let mut ring = KeyRing::new(100);
        ring.rotate(5);
        ring.rotate(9);
        ring.retire_before(3);
        assert!(!ring.usable(1) && !ring.usable(2) && ring.usable(3));
        assert!(!ring.usable(4));
    }
}
