//! Tamper drills: named edits an attacker could make to a stored log, and
//! what an unkeyed verification can say about each. Used by annal's own
//! tamper suite and by apps that must show an auditor that edits are caught.
//!
//! The drills work on the at-rest pages of a [`MemoryStore`], which share
//! their layout with IndexedDB. Page metadata is recomputed after each edit,
//! as a careful attacker would, so only the chain itself can catch it.

use crate::at_rest::AtRest;
use crate::chain::BreakReason;
use crate::envelope::Envelope;
use crate::memory::MemoryStore;
use crate::page::{self, Page, PageMeta};
use crate::payload::{self, SALT_LEN};
use crate::state::Head;

/// One named edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Flip one bit of the payload of event `n`.
    FlipPayloadByte(u64),
    /// Change `event_type` of event `n` without fixing its hash.
    ChangeField(u64),
    /// Re-encode the envelope of event `n` with the same field values:
    /// `\u` escapes for the letters of its `event_type`, the same JSON to
    /// any parser, and the same hash, which is taken over the canonical
    /// text.
    ReencodeEnvelope(u64),
    /// Remove event `n`.
    DeleteEvent(u64),
    /// Swap the stored positions of events `a` and `b`.
    SwapEvents(u64, u64),
    /// Insert, before event `n`, a forged event numbered `n` whose own hash
    /// is correct but whose `prev_hash` is not event `n − 1`'s hash.
    InsertForged(u64),
    /// Remove the last `k` events.
    TruncateTail(u64),
    /// Remove the last `k` events and rewrite the head record and aggregate
    /// index to match.
    TruncateTailFixHead(u64),
    /// Change the payload of event `n` and re-hash it and every later event
    /// consistently, fixing the head record and aggregate index.
    RehashSuffix(u64),
}

/// What an unkeyed `verify()` reports after a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Caught at this `device_seq` for this reason.
    Detected(u64, BreakReason),
    /// Not detectable without an anchor (head MAC, server receipt, or an
    /// exported head compared with a receipt).
    Undetected,
}

impl Mutation {
    /// The outcome an unkeyed local check must give for this mutation on a
    /// log of `len` events. See docs/FORMAT.md, "Threat model".
    pub fn expectation(self, len: u64) -> Expectation {
        use BreakReason::*;
        match self {
            Mutation::FlipPayloadByte(n) => Expectation::Detected(n, PayloadDigestMismatch),
            Mutation::ChangeField(n) | Mutation::ReencodeEnvelope(n) => {
                Expectation::Detected(n, HashMismatch)
            }
            Mutation::DeleteEvent(n) => Expectation::Detected(n, MissingEvent),
            Mutation::SwapEvents(a, b) => Expectation::Detected(a.min(b), OutOfOrder),
            Mutation::InsertForged(n) => Expectation::Detected(n, BrokenLink),
            Mutation::TruncateTail(k) => Expectation::Detected(len - k + 1, Truncated),
            Mutation::TruncateTailFixHead(_) | Mutation::RehashSuffix(_) => Expectation::Undetected,
        }
    }

    /// The outcome for an encrypted store, edited by someone who holds a
    /// data key (so records can be rewritten) but not the master key: the
    /// head MAC then catches the two edits a plain chain cannot see.
    pub fn expectation_sealed(self, len: u64) -> Expectation {
        match self {
            Mutation::TruncateTailFixHead(k) => {
                Expectation::Detected(len - k, BreakReason::HeadMacMismatch)
            }
            Mutation::RehashSuffix(_) => Expectation::Detected(len, BreakReason::HeadMacMismatch),
            other => other.expectation(len),
        }
    }
}

/// A record pulled out of its page for editing.
#[derive(Debug, Clone)]
struct Loose {
    envelope: Vec<u8>,
    salt: [u8; SALT_LEN],
    payload: Vec<u8>,
}

/// Applies `mutation` to the stored log of `store`. In an encrypted store
/// records are decrypted, edited and re-encrypted under the data key, and
/// index values re-blinded, but the head MAC is left alone: its key is what
/// the attacker lacks.
pub fn apply(store: &mut MemoryStore, mutation: Mutation) {
    let raw = store.raw_mut();
    let (pages, head, at_rest) = (raw.pages, raw.head, raw.at_rest);
    let mut records: Vec<Loose> = Vec::new();
    for p in pages.values() {
        let opened = at_rest.open(&p.records);
        records.extend(
            page::decode(&opened.plain)
                .unwrap_or_default()
                .iter()
                .map(|r| Loose {
                    envelope: r.envelope.to_vec(),
                    salt: r.salt,
                    payload: r.payload.to_vec(),
                }),
        );
    }
    let at = |n: u64| (n - 1) as usize;
    match mutation {
        Mutation::FlipPayloadByte(n) => {
            let p = &mut records[at(n)].payload;
            let mid = p.len() / 2;
            p[mid] ^= 0x01;
        }
        Mutation::ChangeField(n) => {
            let mut e = parse(&records[at(n)]);
            e.event_type.push_str("-edited");
            records[at(n)].envelope = e.canonical().into_bytes();
        }
        Mutation::ReencodeEnvelope(n) => {
            let e = parse(&records[at(n)]);
            let plain = format!("\"event_type\":\"{}\"", e.event_type);
            let escaped: String = e
                .event_type
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect();
            let text = e
                .canonical()
                .replacen(&plain, &format!("\"event_type\":\"{escaped}\""), 1);
            assert_ne!(text, e.canonical());
            records[at(n)].envelope = text.into_bytes();
        }
        Mutation::DeleteEvent(n) => {
            records.remove(at(n));
        }
        Mutation::SwapEvents(a, b) => records.swap(at(a), at(b)),
        Mutation::InsertForged(n) => {
            let mut forged = records[at(n)].clone();
            let mut e = parse(&forged);
            e.prev_hash = "f".repeat(64);
            e.seal();
            forged.envelope = e.canonical().into_bytes();
            records.insert(at(n), forged);
        }
        Mutation::TruncateTail(k) => records.truncate(records.len() - k as usize),
        Mutation::TruncateTailFixHead(k) => {
            records.truncate(records.len() - k as usize);
            rewrite_head(&records, head);
        }
        Mutation::RehashSuffix(n) => {
            let mut prev = if n == 1 {
                crate::envelope::GENESIS_HASH.to_string()
            } else {
                parse(&records[at(n - 1)]).hash
            };
            for (i, r) in records.iter_mut().enumerate().skip(at(n)) {
                let mut e = parse(r);
                if i == at(n) {
                    r.payload = br#"{"rewritten":true}"#.to_vec();
                    e.payload_digest = payload::digest_bytes(&r.salt, &r.payload);
                }
                e.prev_hash = prev;
                e.seal();
                prev = e.hash.clone();
                r.envelope = e.canonical().into_bytes();
            }
            rewrite_head(&records, head);
        }
    }
    *pages = repack(&records, at_rest);
}

fn parse(r: &Loose) -> Envelope {
    Envelope::parse(std::str::from_utf8(&r.envelope).unwrap_or_default())
        .unwrap_or_else(|e| panic!("tamper drills need an intact log to start from: {e}"))
}

/// Points the head at the last of `records`, as a careful attacker would.
/// Aggregate versions need no rewriting: they live in page metadata, which
/// [`repack`] derives afresh.
fn rewrite_head(records: &[Loose], head: &mut Head) {
    *head = records.last().map_or_else(Head::genesis, |r| {
        let e = parse(r);
        Head {
            device_seq: e.device_seq,
            hash: e.hash,
        }
    });
}

/// Packs loose records into pages of at most 4 records each, keyed by
/// position, so that edits also cross page boundaries.
fn repack(records: &[Loose], at_rest: &AtRest) -> std::collections::BTreeMap<u64, Page> {
    let mut pages = std::collections::BTreeMap::new();
    let mut next_key = 1u64;
    let entropy = crate::entropy::SeededEntropy::new(0x7a3e);
    for chunk in records.chunks(4) {
        let mut bytes = Vec::new();
        let mut envelopes = Vec::new();
        for r in chunk {
            let envelope = parse(r);
            match at_rest {
                AtRest::Plain => page::encode_raw(&mut bytes, &r.envelope, &r.salt, &r.payload),
                AtRest::Sealed(s) => {
                    let mut plain = Vec::new();
                    page::encode_raw(&mut plain, &r.envelope, &r.salt, &r.payload);
                    let key = s.keys.data_key(s.ring.current);
                    s.seal_record(&mut bytes, &key, &envelope, &plain, &entropy);
                }
            }
            envelopes.push(envelope);
        }
        let meta: PageMeta = at_rest.meta_of(&envelopes);
        pages.insert(
            next_key,
            Page {
                meta,
                records: bytes,
            },
        );
        next_key += chunk.len() as u64;
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::draft::Draft;
    use crate::entropy::SeededEntropy;
    use crate::state::Identity;
    use serde_json::json;

    const LEN: u64 = 10;

    fn valid_log() -> MemoryStore {
        log_at_rest(AtRest::Plain)
    }

    fn sealed() -> AtRest {
        use crate::crypto::{
            keyring::KeyRing,
            keys::{KeySet, MasterKey},
        };
        AtRest::Sealed(Box::new(crate::at_rest::SealedAtRest {
            keys: KeySet::new("store-x", MasterKey::from_bytes(&[3; 32]).unwrap()),
            blind_indexes: true,
            ring: KeyRing::new(1000),
        }))
    }

    fn log_at_rest(at_rest: AtRest) -> MemoryStore {
        let clock = ManualClock::new(1_700_000_000_000);
        let entropy = SeededEntropy::new(1);
        let identity = Identity::generate("study-1", "nurse-1", &clock, &entropy);
        let mut store =
            MemoryStore::with_at_rest(identity, Box::new(clock), Box::new(entropy), at_rest);
        for i in 1..=LEN {
            let draft = Draft::from_value(&json!({
                "aggregateType": "diary",
                "aggregateId": format!("d-{}", i % 3),
                "eventType": "noted",
                "payload": {"entry": i, "text": "pain 3/10"}
            }))
            .unwrap();
            store.append(draft).unwrap();
        }
        assert!(store.verify().ok);
        store
    }

    #[test]
    fn every_mutation_is_reported_as_the_threat_model_says() {
        check_table(false);
    }

    #[test]
    fn the_head_mac_catches_what_a_plain_chain_cannot() {
        check_table(true);
    }

    fn check_table(encrypted: bool) {
        let table = [
            ("flip one byte of a payload", Mutation::FlipPayloadByte(4)),
            ("change a field", Mutation::ChangeField(6)),
            ("re-encode an envelope", Mutation::ReencodeEnvelope(5)),
            ("delete an event", Mutation::DeleteEvent(3)),
            ("swap two events", Mutation::SwapEvents(5, 8)),
            ("insert a forged event", Mutation::InsertForged(7)),
            ("truncate the tail", Mutation::TruncateTail(2)),
            (
                "truncate the tail and fix the head",
                Mutation::TruncateTailFixHead(2),
            ),
            ("re-hash a whole suffix", Mutation::RehashSuffix(5)),
        ];
        for (name, mutation) in table {
            let mut store = if encrypted {
                log_at_rest(sealed())
            } else {
                valid_log()
            };
            apply(&mut store, mutation);
            let report = store.verify();
            let expected = if encrypted {
                mutation.expectation_sealed(LEN)
            } else {
                mutation.expectation(LEN)
            };
            match expected {
                Expectation::Detected(seq, reason) => {
                    let b = report
                        .first_break
                        .unwrap_or_else(|| panic!("{name}: not detected"));
                    assert_eq!(
                        (b.device_seq, b.reason),
                        (seq, reason),
                        "{name}: {}",
                        b.message
                    );
                    assert!(!report.ok, "{name}");
                }
                Expectation::Undetected => {
                    assert!(
                        report.ok,
                        "{name}: an unkeyed check cannot see this, yet it reported {:?}",
                        report.first_break
                    );
                }
            }
        }
    }

    #[test]
    fn reads_refuse_a_modified_record() {
        let mut store = valid_log();
        apply(&mut store, Mutation::ChangeField(2));
        let err = store.events(&crate::filter::Filter::default()).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::Tampered);
        assert_eq!(err.device_seq, Some(2));
    }

    #[test]
    fn a_stale_aggregate_head_is_caught() {
        let mut store = valid_log();
        let pages = store.raw_mut().pages;
        let (&first, page) = pages.iter_mut().last().unwrap();
        let heads = page.meta.aggregate_heads.as_mut().unwrap();
        heads[0].1.version = 99;
        let b = store.verify().first_break.unwrap();
        assert_eq!(b.reason, BreakReason::IndexMismatch);
        assert_eq!(b.device_seq, first);
    }

    #[test]
    fn a_page_stripped_of_its_aggregate_heads_is_caught() {
        let mut store = valid_log();
        let pages = store.raw_mut().pages;
        let (&first, page) = pages.iter_mut().last().unwrap();
        page.meta.aggregate_heads = None;
        let b = store.verify().first_break.unwrap();
        assert_eq!(b.reason, BreakReason::IndexMismatch);
        assert_eq!(b.device_seq, first);
        assert!(b.message.contains("aggregate_heads"), "{}", b.message);
    }

    #[test]
    fn damaged_page_bytes_are_malformed_not_a_panic() {
        let mut store = valid_log();
        let page = store.raw_mut().pages.values_mut().next().unwrap();
        page.records.truncate(page.records.len() - 3);
        let b = store.verify().first_break.unwrap();
        assert_eq!(b.reason, BreakReason::Malformed);
        let page = store.raw_mut().pages.values_mut().next().unwrap();
        page.records[0] = 9;
        assert_eq!(
            store.verify().first_break.unwrap().reason,
            BreakReason::Malformed
        );
    }
}
