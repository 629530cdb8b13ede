//! How records and index keys are kept at rest: in the clear (`annal/1`
//! plaintext records, readable index values) or sealed (AES-256-GCM records,
//! blind index values, a MAC over the head). Every backend writes and reads
//! through this one type, so the IndexedDB store, the in-memory store and
//! `verify()` share one definition of the bytes. See docs/FORMAT.md.

use crate::crypto::blind::field;
use crate::crypto::keyring::KeyRing;
use crate::crypto::keys::KeySet;
use crate::crypto::sealed::{self, OpenFault};
use crate::entropy::Entropy;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::page::{self, Page, PageMeta};
use crate::record::Record;
use crate::seal::{TxnView, Unit};
use crate::state::{AggregateState, Head, IdempotencyEntry};
use std::borrow::Cow;
use std::collections::HashMap;

/// The keys and policy of an encrypted store.
#[derive(Debug, Clone)]
pub struct SealedAtRest {
    /// The unlocked keys.
    pub keys: KeySet,
    /// Whether index values are blinded (the default for encrypted stores).
    pub blind_indexes: bool,
    /// The data-key ring.
    pub ring: KeyRing,
}

/// Plain or sealed.
#[derive(Debug, Clone, Default)]
pub enum AtRest {
    /// `annal/1` plaintext records and clear index values.
    #[default]
    Plain,
    /// Encrypted records; see [`SealedAtRest`].
    Sealed(Box<SealedAtRest>),
}

/// Where a page stopped opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage<'a> {
    /// Index of the record in its page.
    pub index: usize,
    /// Whether the bytes were malformed, or well formed but did not decrypt.
    pub undecryptable: bool,
    /// What was wrong.
    pub reason: String,
    /// The stored bytes from the damaged record on.
    pub rest: &'a [u8],
}

/// A page's records as plaintext `annal/1` record bytes.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The plaintext records before any damage.
    pub plain: Cow<'a, [u8]>,
    /// The damage that stopped opening, if any.
    pub damage: Option<Damage<'a>>,
}

impl Opened<'_> {
    /// A page opened elsewhere (see [`crate::crypto::deferred::OpenPlan`]),
    /// in full.
    pub fn whole(plain: Vec<u8>) -> Opened<'static> {
        Opened {
            plain: Cow::Owned(plain),
            damage: None,
        }
    }

    /// The records of the opened page for `aggregate_id` that `keep`
    /// accepts, each checked as [`AtRest::read_checked`] says. Damage is
    /// `ANNAL_TAMPERED` at the damaged record's `device_seq`.
    pub fn read_checked_where(
        &self,
        first_device_seq: u64,
        aggregate_id: Option<&str>,
        keep: impl Fn(&crate::envelope::Envelope) -> bool,
    ) -> Result<Vec<Record>> {
        if let Some(d) = &self.damage {
            return Err(tampered(first_device_seq + d.index as u64, &d.reason));
        }
        page::read_checked_where(first_device_seq, &self.plain, aggregate_id, keep)
    }
}

fn tampered(seq: u64, why: &str) -> Error {
    Error::tampered(
        seq,
        format!("stored event {seq} failed its integrity check ({why}); run verify() and restore from the server or a backup"),
    )
}

impl SealedAtRest {
    /// Appends `plain` (one kind-1 record of `envelope`) sealed under the
    /// current key, with a fresh random nonce.
    pub fn seal_record(
        &self,
        out: &mut Vec<u8>,
        key: &crate::crypto::aead::AeadKey,
        envelope: &Envelope,
        plain: &[u8],
        entropy: &dyn Entropy,
    ) {
        let mut nonce = [0u8; crate::crypto::aead::NONCE_LEN];
        entropy.fill(&mut nonce);
        sealed::seal(
            out,
            key,
            self.ring.current,
            self.keys.store_id(),
            envelope.device_seq,
            &envelope.event_id,
            &nonce,
            plain,
        );
    }
}

impl AtRest {
    /// Whether records are encrypted.
    pub fn is_sealed(&self) -> bool {
        matches!(self, AtRest::Sealed(_))
    }

    fn blind(&self) -> Option<&SealedAtRest> {
        match self {
            AtRest::Sealed(s) if s.blind_indexes => Some(s),
            _ => None,
        }
    }

    /// How a value of `field` is stored in an index or as a key.
    pub fn index_value(&self, field: &str, value: &str) -> String {
        match self.blind() {
            Some(s) => s.keys.blind().blind(field, value),
            None => value.to_string(),
        }
    }

    /// Page metadata as stored: blind values when indexes are blinded.
    pub fn meta_of<'a>(&self, envelopes: impl IntoIterator<Item = &'a Envelope>) -> PageMeta {
        let mut meta = page::meta_of(envelopes);
        if self.blind().is_some() {
            let mut blind = self.blinder();
            let mut blind_all = |list: &mut Vec<String>, f: &'static str| {
                let mut out: Vec<String> = list.iter().map(|v| blind(f, v)).collect();
                out.sort();
                out.dedup();
                *list = out;
            };
            blind_all(&mut meta.aggregate_ids, field::AGGREGATE_ID);
            blind_all(&mut meta.aggregate_types, field::AGGREGATE_TYPE);
            blind_all(&mut meta.event_types, field::EVENT_TYPE);
            if let Some(heads) = meta.aggregate_heads.take() {
                // Sorted by blind id, through the map (and its `insert`)
                // that sealing uses: less code than a sort of its own.
                let mut blinded = std::collections::BTreeMap::new();
                for (id, mut state) in heads {
                    state.aggregate_type = blind(field::AGGREGATE_TYPE, &state.aggregate_type);
                    blinded.insert(blind(field::AGGREGATE_ID, &id), state);
                }
                meta.aggregate_heads = Some(blinded.into_iter().collect());
            }
        }
        meta
    }

    /// [`AtRest::index_value`] that computes each distinct value once: a
    /// commit blinds the same ids and types many times over.
    pub fn blinder(&self) -> impl FnMut(&'static str, &str) -> String + '_ {
        // Sorted by field and value and searched by halves: a commit of
        // 1,000 events may hold 1,000 distinct ids, which a list searched
        // from the start made quadratic. (A map would add its own code.)
        let mut memo: Vec<(&'static str, String, String)> = Vec::new();
        let blinds = self.blind().is_some();
        move |f, v| {
            if !blinds {
                return v.to_string();
            }
            match memo.binary_search_by(|(mf, mv, _)| (*mf, mv.as_str()).cmp(&(f, v))) {
                Ok(i) => memo[i].2.clone(),
                Err(i) => {
                    let b = self.index_value(f, v);
                    memo.insert(i, (f, v.to_string(), b.clone()));
                    b
                }
            }
        }
    }

    /// Packs records (in `device_seq` order) into pages. Sealed stores
    /// encrypt each record under the ring's current key with a fresh nonce.
    pub fn pack(&self, records: &[Record], entropy: &dyn Entropy) -> Vec<Page> {
        let AtRest::Sealed(s) = self else {
            return page::pack(records);
        };
        let key = s.keys.data_key(s.ring.current);
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(records.len());
        let mut plain = Vec::new();
        for record in records {
            plain.clear();
            page::encode_record(&mut plain, record);
            s.seal_record(&mut bytes, &key, &record.envelope, &plain, entropy);
            ends.push(bytes.len());
        }
        zeroize::Zeroize::zeroize(&mut plain);
        self.assemble(records, &ends, &bytes)
    }

    /// Pages from stored records encoded one after another into `bytes`,
    /// record `i` ending at `ends[i]` (see [`page::assemble`]).
    pub fn assemble(&self, records: &[Record], ends: &[usize], bytes: &[u8]) -> Vec<Page> {
        page::assemble(
            records,
            ends,
            bytes,
            |f, v| match self.blind() {
                Some(_) => 2 * crate::crypto::blind::BLIND_LEN,
                None => page::clear_len(f, v),
            },
            |page| self.meta_of(page.iter().map(|r| &r.envelope)),
        )
    }

    /// Opens stored page bytes into plaintext records, as far as they open.
    /// Plain pages are returned as they are.
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Opened<'a> {
        let AtRest::Sealed(s) = self else {
            return Opened {
                plain: Cow::Borrowed(bytes),
                damage: None,
            };
        };
        let (records, split_damage) = sealed::split(bytes);
        let mut plain = Vec::with_capacity(bytes.len());
        for (index, record) in records.iter().enumerate() {
            match record.open(&s.keys, &s.ring) {
                Ok(p) => {
                    plain.extend_from_slice(&p);
                }
                Err(fault) => {
                    let rest = &bytes[record.offset..];
                    return Opened {
                        plain: Cow::Owned(plain),
                        damage: Some(Damage {
                            index,
                            undecryptable: !matches!(fault, OpenFault::Malformed(_)),
                            reason: fault.to_string(),
                            rest,
                        }),
                    };
                }
            }
        }
        Opened {
            plain: Cow::Owned(plain),
            damage: split_damage.map(|(e, rest)| Damage {
                index: e.index,
                undecryptable: false,
                reason: e.reason,
                rest,
            }),
        }
    }

    /// Reads every record of a stored page, decrypting it if sealed, and
    /// checks each one's own hash and payload digest. Any failure is
    /// `ANNAL_TAMPERED` at that record's `device_seq`.
    pub fn read_checked(&self, first_device_seq: u64, bytes: &[u8]) -> Result<Vec<Record>> {
        self.read_checked_where(first_device_seq, bytes, None, |_| true)
    }

    /// [`AtRest::read_checked`] for the records of `aggregate_id` that
    /// `keep` accepts (see
    /// [`page::read_checked_where`]). Sealed records are all decrypted, which
    /// authenticates each one.
    pub fn read_checked_where(
        &self,
        first_device_seq: u64,
        bytes: &[u8],
        aggregate_id: Option<&str>,
        keep: impl Fn(&crate::envelope::Envelope) -> bool,
    ) -> Result<Vec<Record>> {
        self.open(bytes)
            .read_checked_where(first_device_seq, aggregate_id, keep)
    }

    /// An aggregate state as stored.
    pub fn stored_aggregate(&self, state: &AggregateState) -> AggregateState {
        AggregateState {
            aggregate_type: self.index_value(field::AGGREGATE_TYPE, &state.aggregate_type),
            ..state.clone()
        }
    }

    /// An idempotency entry as stored.
    pub fn stored_idempotency(&self, entry: &IdempotencyEntry) -> IdempotencyEntry {
        IdempotencyEntry {
            fingerprint: self.index_value(field::FINGERPRINT, &entry.fingerprint),
            ..entry.clone()
        }
    }

    /// The view sealing needs, from stored states keyed by the units' own
    /// aggregate ids and idempotency keys. Blind values are matched against
    /// what the units carry, so sealing compares clear values as usual.
    pub fn view_of(
        &self,
        units: &[Unit],
        head: Option<Head>,
        aggregates: HashMap<String, Option<AggregateState>>,
        idempotency: HashMap<String, Option<IdempotencyEntry>>,
    ) -> TxnView {
        if self.blind().is_none() {
            return TxnView {
                head,
                aggregates,
                idempotency,
            };
        }
        // One pass over the drafts: the first whose clear value blinds to
        // the stored one names it. What no draft names stays unreadable.
        let mut blind = self.blinder();
        let mut named_aggregates = HashMap::with_capacity(aggregates.len());
        let mut named_keys = HashMap::with_capacity(idempotency.len());
        for d in units.iter().flatten() {
            if !named_aggregates.contains_key(&d.aggregate_id) {
                if let Some(Some(s)) = aggregates.get(&d.aggregate_id) {
                    if blind(field::AGGREGATE_TYPE, &d.aggregate_type) == s.aggregate_type {
                        let clear = AggregateState {
                            aggregate_type: d.aggregate_type.clone(),
                            ..s.clone()
                        };
                        named_aggregates.insert(d.aggregate_id.clone(), Some(clear));
                    }
                }
            }
            let Some(key) = &d.idempotency_key else {
                continue;
            };
            if let (false, Some(Some(e))) = (named_keys.contains_key(key), idempotency.get(key)) {
                let fingerprint = d.fingerprint();
                if self.index_value(field::FINGERPRINT, &fingerprint) == e.fingerprint {
                    let clear = IdempotencyEntry {
                        fingerprint,
                        ..e.clone()
                    };
                    named_keys.insert(key.clone(), Some(clear));
                }
            }
        }
        let aggregates = aggregates
            .into_iter()
            .map(|(id, state)| {
                let state = match named_aggregates.remove(&id) {
                    Some(named) => named,
                    None => state.map(|s| AggregateState {
                        aggregate_type: "(another type)".to_string(),
                        ..s
                    }),
                };
                (id, state)
            })
            .collect();
        let idempotency = idempotency
            .into_iter()
            .map(|(key, entry)| {
                let entry = match named_keys.remove(&key) {
                    Some(named) => named,
                    None => entry.map(|e| IdempotencyEntry {
                        fingerprint: "(another request)".to_string(),
                        ..e
                    }),
                };
                (key, entry)
            })
            .collect();
        TxnView {
            head,
            aggregates,
            idempotency,
        }
    }

    /// The MAC stored beside `head`, for sealed stores.
    pub fn head_mac(&self, head: &Head) -> Option<String> {
        match self {
            AtRest::Sealed(s) => Some(s.keys.head_mac().mac(s.keys.store_id(), head)),
            AtRest::Plain => None,
        }
    }

    /// Whether `bytes` hold a sealed record under a key newer than the ring
    /// knows: another context rotated, and the ring must be read again.
    pub fn names_newer_key(&self, bytes: &[u8]) -> bool {
        match self {
            AtRest::Sealed(s) => {
                let max = s.ring.max_id();
                sealed::split(bytes).0.iter().any(|r| r.key_id > max)
            }
            AtRest::Plain => false,
        }
    }

    /// The same keys with another ring.
    pub fn with_ring(&self, ring: KeyRing) -> AtRest {
        match self {
            AtRest::Sealed(s) => AtRest::Sealed(Box::new(SealedAtRest {
                ring,
                ..(**s).clone()
            })),
            AtRest::Plain => AtRest::Plain,
        }
    }

    /// The ring, for sealed stores.
    pub fn ring(&self) -> Option<&KeyRing> {
        match self {
            AtRest::Sealed(s) => Some(&s.ring),
            AtRest::Plain => None,
        }
    }

    /// Whether `mac` authenticates `head`. Plain stores have no MAC.
    pub fn head_mac_ok(&self, head: &Head, mac: Option<&str>) -> bool {
        match self {
            AtRest::Sealed(s) => {
                mac.is_some_and(|m| s.keys.head_mac().check(s.keys.store_id(), head, m))
            }
            AtRest::Plain => true,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::keys::MasterKey;
    use crate::draft::Draft;
    use crate::entropy::SeededEntropy;

    pub(crate) fn sealed(blind: bool) -> AtRest {
        AtRest::Sealed(Box::new(SealedAtRest {
            keys: KeySet::new("s-1", MasterKey::from_bytes(&[6; 32]).unwrap()),
            blind_indexes: blind,
            ring: KeyRing::new(1000),
        }))
    }

    fn draft(id: &str, ty: &str, key: Option<&str>) -> Draft {
        let mut v = serde_json::json!({
            "aggregateType": ty, "aggregateId": id, "eventType": "noted", "payload": {"a": 1}
        });
        if let Some(k) = key {
            v["idempotencyKey"] = k.into();
        }
        Draft::from_value(&v).unwrap()
    }

    #[test]
    fn blind_index_values_and_views_round_trip() {
        let at = sealed(true);
        let stored = at.stored_aggregate(&AggregateState {
            aggregate_type: "diary".into(),
            version: 3,
            last_device_seq: 9,
        });
        assert_ne!(stored.aggregate_type, "diary");
        let d = draft("p-1", "diary", Some("k"));
        let fp = d.fingerprint();
        let idem = at.stored_idempotency(&IdempotencyEntry {
            device_seq: 9,
            fingerprint: fp.clone(),
        });
        assert_ne!(idem.fingerprint, fp);
        let units = vec![vec![d]];
        let view = at.view_of(
            &units,
            None,
            [("p-1".to_string(), Some(stored.clone()))].into(),
            [("k".to_string(), Some(idem.clone()))].into(),
        );
        assert_eq!(
            view.aggregates["p-1"].as_ref().unwrap().aggregate_type,
            "diary"
        );
        assert_eq!(view.idempotency["k"].as_ref().unwrap().fingerprint, fp);
        let other = vec![vec![draft("p-1", "note", Some("k"))]];
        let view = at.view_of(
            &other,
            None,
            [("p-1".to_string(), Some(stored))].into(),
            [("k".to_string(), Some(idem))].into(),
        );
        assert_eq!(
            view.aggregates["p-1"].as_ref().unwrap().aggregate_type,
            "(another type)"
        );
        assert_ne!(view.idempotency["k"].as_ref().unwrap().fingerprint, fp);
        // Unblinded stores keep clear values.
        assert_eq!(sealed(false).index_value(field::AGGREGATE_ID, "p-1"), "p-1");
        assert_eq!(AtRest::Plain.index_value(field::AGGREGATE_ID, "p-1"), "p-1");
    }

    #[test]
    fn pages_round_trip_and_damage_is_located() {
        let mut store = crate::memory::MemoryStore::for_tests(sealed(true));
        let drafts = (0..5)
            .map(|i| draft(&format!("p-{i}"), "diary", None))
            .collect();
        store.append_batch(drafts).unwrap();
        assert!(store.verify().ok);
        assert_eq!(store.aggregate("p-3").unwrap().1.len(), 1);
        let at = store.at_rest().clone();
        let page = store.raw_mut().pages.values().next().unwrap().clone();
        let opened = at.open(&page.records);
        assert!(opened.damage.is_none());
        assert_eq!(page::decode(&opened.plain).unwrap().len(), 5);
        assert!(!page.meta.aggregate_ids.contains(&"p-1".to_string()));
        let mut bad = page.records.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let damage = at.open(&bad).damage.unwrap();
        assert_eq!((damage.index, damage.undecryptable), (4, true));
        let err = at.read_checked(1, &bad).unwrap_err();
        assert_eq!(err.device_seq, Some(5));
        let damage = at.open(&page.records[..n - 3]).damage.unwrap();
        assert_eq!((damage.index, damage.undecryptable), (4, false));
        // Plain bytes are not sealed records.
        assert!(at.open(&[1, 2, 3]).damage.is_some());
        let _ = SeededEntropy::new(1);
    }

    #[test]
    fn no_stored_bytes_make_opening_panic() {
        use crate::entropy::Entropy;
        let at = sealed(true);
        let mut store = crate::memory::MemoryStore::for_tests(at.clone());
        let drafts = (0..3)
            .map(|i| draft(&format!("p-{i}"), "diary", None))
            .collect();
        store.append_batch(drafts).unwrap();
        let page = store
            .raw_mut()
            .pages
            .values()
            .next()
            .unwrap()
            .records
            .clone();
        let entropy = SeededEntropy::new(42);
        let mut byte = [0u8; 4];
        for round in 0..3000 {
            let mut bytes = page.clone();
            entropy.fill(&mut byte);
            let at_byte = u32::from_le_bytes(byte) as usize % bytes.len();
            match round % 3 {
                0 => bytes[at_byte] = byte[0],
                1 => bytes.truncate(at_byte),
                _ => bytes = bytes[at_byte..].to_vec(),
            }
            let opened = at.open(&bytes);
            let _ = page::decode_lossy(&opened.plain);
            let _ = at.read_checked(1, &bytes);
        }
    }
}
