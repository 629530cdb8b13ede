//! Verifying a device chain: every hash, every link, every position, and the
//! derived records (page index metadata, head, aggregate versions) that
//! queries rely on.
//!
//! The verifier is fed records in storage order and reports the first
//! break. It is shared by the browser store, the in-memory store and
//! `annal-verify`, so all three agree on what "tampered" means.

use crate::at_rest::{AtRest, Opened};
use crate::envelope::Envelope;
use crate::page::{self, PageMeta, RawRecord};
use crate::payload::SALT_LEN;
use crate::record::{self, IntegrityFault};
use crate::state::{AggregateState, Head};
use crate::stored_envelope::StoredEnvelope;
use std::collections::HashMap;
use std::fmt;

/// Why verification failed. The string forms are stable API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakReason {
    /// A record cannot be read at all.
    Malformed,
    /// A record's `hash` is not the hash of its envelope.
    HashMismatch,
    /// A record's `payload_digest` does not match its salt and payload.
    PayloadDigestMismatch,
    /// A record names another tenant, user or device than the store.
    IdentityMismatch,
    /// A `device_seq` is absent: an event was deleted.
    MissingEvent,
    /// A `device_seq` is present but out of place: events were reordered or duplicated.
    OutOfOrder,
    /// `prev_hash` is not the previous event's `hash`.
    BrokenLink,
    /// The head record names events past the end of the log.
    Truncated,
    /// The head record does not describe the last event.
    HeadMismatch,
    /// Index metadata (page index fields, aggregate versions) disagrees with the events.
    IndexMismatch,
    /// A sealed record does not decrypt: its ciphertext, header or key was changed.
    DecryptFailed,
    /// The head record's MAC does not authenticate it (encrypted stores).
    HeadMacMismatch,
}

impl BreakReason {
    /// Stable string form, as in `verify()`'s `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakReason::Malformed => "MALFORMED",
            BreakReason::HashMismatch => "HASH_MISMATCH",
            BreakReason::PayloadDigestMismatch => "PAYLOAD_DIGEST_MISMATCH",
            BreakReason::IdentityMismatch => "IDENTITY_MISMATCH",
            BreakReason::MissingEvent => "MISSING_EVENT",
            BreakReason::OutOfOrder => "OUT_OF_ORDER",
            BreakReason::BrokenLink => "BROKEN_LINK",
            BreakReason::Truncated => "TRUNCATED",
            BreakReason::HeadMismatch => "HEAD_MISMATCH",
            BreakReason::IndexMismatch => "INDEX_MISMATCH",
            BreakReason::DecryptFailed => "DECRYPT_FAILED",
            BreakReason::HeadMacMismatch => "HEAD_MAC_MISMATCH",
        }
    }
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first place a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The `device_seq` where the chain breaks.
    pub device_seq: u64,
    /// Why.
    pub reason: BreakReason,
    /// A sentence for people.
    pub message: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether everything verified.
    pub ok: bool,
    /// How many events verified before the first break (all, if ok).
    pub checked: u64,
    /// The first break, if any.
    pub first_break: Option<Break>,
}

/// Who the records must belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedIdentity {
    /// Tenant of the store.
    pub tenant_id: String,
    /// User of the store.
    pub user_id: String,
    /// Device of the store.
    pub device_id: String,
}

/// Checks a chain fed in storage order.
#[derive(Debug)]
pub struct ChainVerifier {
    identity: ExpectedIdentity,
    expected_seq: u64,
    prev_hash: String,
    checked: u64,
    first_break: Option<Break>,
    /// A `device_seq` reported missing, kept to tell deletion from reordering.
    missing: Option<u64>,
    /// Aggregate states as of the pages written before layout 3 (those
    /// without `aggregate_heads`): what the `aggregates` object store must
    /// hold, keyed as stored.
    legacy_aggregates: HashMap<String, AggregateState>,
    /// Whether a page with `aggregate_heads` has been fed: every later page
    /// must have them too.
    heads_seen: bool,
    at_rest: AtRest,
}

impl ChainVerifier {
    /// A verifier for the chain of `identity`, starting at `device_seq` 1.
    pub fn new(identity: ExpectedIdentity) -> Self {
        ChainVerifier {
            identity,
            expected_seq: 1,
            prev_hash: crate::envelope::GENESIS_HASH.to_string(),
            checked: 0,
            first_break: None,
            missing: None,
            legacy_aggregates: HashMap::new(),
            heads_seen: false,
            at_rest: AtRest::Plain,
        }
    }

    /// Reads stored pages as `at_rest` says: decrypts sealed records and
    /// compares blinded index values and the head MAC.
    pub fn with_at_rest(mut self, at_rest: AtRest) -> Self {
        self.at_rest = at_rest;
        self
    }

    /// Whether a break was found. Feeding more records then only serves to
    /// classify a missing event.
    pub fn is_broken(&self) -> bool {
        self.first_break.is_some() && self.missing.is_none()
    }

    /// Events verified so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    fn fail(&mut self, device_seq: u64, reason: BreakReason, message: String) {
        if self.first_break.is_none() {
            self.first_break = Some(Break {
                device_seq,
                reason,
                message,
            });
        }
    }

    /// Feeds one stored page: its index metadata and its packed records.
    pub fn feed_page(&mut self, meta: &PageMeta, bytes: &[u8]) {
        let opened = self.at_rest.open(bytes);
        self.feed_opened_page(meta, opened);
    }

    /// Feeds one stored page already opened, by [`AtRest::open`] or in full
    /// elsewhere (see [`crate::crypto::deferred::OpenPlan`]).
    pub fn feed_opened_page(&mut self, meta: &PageMeta, opened: Opened<'_>) {
        let at = self.expected_seq;
        self.feed_opened(meta, &opened.plain, opened.damage.is_none());
        if let Some(d) = opened.damage {
            if !self.is_broken() {
                let seq = at + d.index as u64;
                let (reason, message) = if d.undecryptable {
                    (
                        BreakReason::DecryptFailed,
                        format!("record {seq} does not decrypt: {}", d.reason),
                    )
                } else {
                    (
                        BreakReason::Malformed,
                        format!("record {seq} cannot be read: {}", d.reason),
                    )
                };
                self.fail(seq, reason, message);
            }
        }
    }

    fn feed_opened(&mut self, meta: &PageMeta, bytes: &[u8], complete: bool) {
        let at = self.expected_seq;
        let raws = match page::decode(bytes) {
            Ok(raws) => raws,
            Err(e) => {
                let seq = at + e.index as u64;
                self.fail(
                    seq,
                    BreakReason::Malformed,
                    format!("record {seq} cannot be read: {}", e.reason),
                );
                return;
            }
        };
        let mut envelopes = Vec::with_capacity(raws.len());
        for raw in &raws {
            if self.is_broken() {
                return;
            }
            if let Some(envelope) = self.feed_raw(raw) {
                envelopes.push(envelope);
            }
        }
        if self.first_break.is_some() || !complete {
            return;
        }
        let mut derived = self.at_rest.meta_of(&envelopes);
        let legacy = meta.aggregate_heads.is_none();
        if legacy {
            // Written before layout 3: its aggregates went to the
            // `aggregates` object store, checked in `finish`.
            let heads = derived.aggregate_heads.take().unwrap_or_default();
            self.legacy_aggregates.extend(heads);
        }
        if legacy && self.heads_seen {
            self.fail(
                meta.first_device_seq,
                BreakReason::IndexMismatch,
                format!(
                    "the page starting at device_seq {} has no aggregate_heads, but earlier pages have them",
                    meta.first_device_seq
                ),
            );
        } else if derived != *meta {
            self.fail(
                meta.first_device_seq,
                BreakReason::IndexMismatch,
                format!(
                    "the index metadata of the page starting at device_seq {} does not match its events",
                    meta.first_device_seq
                ),
            );
        }
        self.heads_seen |= !legacy;
    }

    /// Feeds one record from page bytes. Returns its envelope if it parsed.
    pub fn feed_raw(&mut self, raw: &RawRecord<'_>) -> Option<Envelope> {
        match raw.parse_envelope() {
            Ok(stored) => {
                self.feed_stored(&stored.envelope, Some(&stored), &raw.salt, raw.payload);
                Some(stored.envelope)
            }
            Err(why) => {
                self.feed_malformed(&why);
                None
            }
        }
    }

    /// Records that the next record could not be parsed at all.
    pub fn feed_malformed(&mut self, why: &str) {
        if self.missing.is_some() {
            return;
        }
        let seq = self.expected_seq;
        self.fail(
            seq,
            BreakReason::Malformed,
            format!("event {seq} cannot be read: {why}"),
        );
    }

    /// Feeds one parsed record.
    pub fn feed(&mut self, e: &Envelope, salt: &[u8; SALT_LEN], payload: &[u8]) {
        self.feed_stored(e, None, salt, payload);
    }

    /// [`ChainVerifier::feed`] of a record whose envelope `e` was parsed
    /// from `stored`, whose bytes must be its canonical text.
    fn feed_stored(
        &mut self,
        e: &Envelope,
        stored: Option<&StoredEnvelope<'_>>,
        salt: &[u8; SALT_LEN],
        payload: &[u8],
    ) {
        if let Some(missing) = self.missing {
            if e.device_seq == missing {
                self.missing = None;
                self.first_break = Some(Break {
                    device_seq: missing,
                    reason: BreakReason::OutOfOrder,
                    message: format!("event {missing} is stored out of order"),
                });
            }
            return;
        }
        if self.first_break.is_some() {
            return;
        }
        let expected = self.expected_seq;
        let integrity = match stored {
            Some(stored) => record::check_stored(stored, salt, payload),
            None => record::check_integrity(e, salt, payload),
        };
        match integrity {
            Err(IntegrityFault::Encoding) => {
                return self.fail(
                    e.device_seq,
                    BreakReason::HashMismatch,
                    format!(
                        "event {} was modified: its stored envelope is not the canonical text its hash covers",
                        e.device_seq
                    ),
                )
            }
            Err(IntegrityFault::Hash) => {
                return self.fail(
                    e.device_seq,
                    BreakReason::HashMismatch,
                    format!(
                        "event {} was modified: its hash does not match its fields",
                        e.device_seq
                    ),
                )
            }
            Err(IntegrityFault::PayloadDigest) => {
                return self.fail(
                    e.device_seq,
                    BreakReason::PayloadDigestMismatch,
                    format!("the payload of event {} was modified", e.device_seq),
                )
            }
            Ok(()) => {}
        }
        let id = &self.identity;
        if e.tenant_id != id.tenant_id || e.user_id != id.user_id || e.device_id != id.device_id {
            return self.fail(
                e.device_seq,
                BreakReason::IdentityMismatch,
                format!(
                    "event {} belongs to another tenant, user or device",
                    e.device_seq
                ),
            );
        }
        if e.device_seq > expected {
            self.missing = Some(expected);
            return self.fail(
                expected,
                BreakReason::MissingEvent,
                format!(
                    "event {expected} is missing (found {} in its place)",
                    e.device_seq
                ),
            );
        }
        if e.device_seq < expected {
            return self.fail(
                e.device_seq,
                BreakReason::OutOfOrder,
                format!(
                    "event {} appears again after event {}",
                    e.device_seq,
                    expected - 1
                ),
            );
        }
        if e.prev_hash != self.prev_hash {
            return self.fail(
                e.device_seq,
                BreakReason::BrokenLink,
                format!(
                    "event {} does not link to event {}: its prev_hash is not that event's hash",
                    e.device_seq,
                    expected - 1
                ),
            );
        }
        self.prev_hash = e.hash.clone();
        self.expected_seq += 1;
        self.checked += 1;
    }

    /// Ends verification: compares the head record (and, when given, the
    /// `aggregates` object store) with what the chain says.
    ///
    /// `head_mac` is the MAC stored beside the head; encrypted stores must
    /// have one that authenticates the head. `aggregates` are the records
    /// written before layout 3, keyed as stored (blind ids in blinded
    /// stores); they must describe exactly the pages without
    /// `aggregate_heads`, so a store created at layout 3 has none.
    pub fn finish(
        mut self,
        head: Option<&Head>,
        head_mac: Option<&str>,
        aggregates: Option<&HashMap<String, AggregateState>>,
    ) -> VerifyReport {
        self.missing = None;
        let last = self.expected_seq - 1;
        if self.first_break.is_none() {
            let head = head.cloned().unwrap_or_else(Head::genesis);
            if head.device_seq > last {
                self.fail(
                    last + 1,
                    BreakReason::Truncated,
                    format!(
                        "the log ends at event {last} but its head record names event {}: events were removed from the end",
                        head.device_seq
                    ),
                );
            } else if head.device_seq < last || head.hash != self.prev_hash {
                self.fail(
                    head.device_seq.min(last).max(1),
                    BreakReason::HeadMismatch,
                    format!(
                        "the head record (event {}) does not describe the last event ({last})",
                        head.device_seq
                    ),
                );
            } else if !self.at_rest.head_mac_ok(&head, head_mac) {
                self.fail(
                    head.device_seq.max(1),
                    BreakReason::HeadMacMismatch,
                    format!(
                        "the head record (event {}) is not authenticated by its MAC: the log was \
                         shortened or rewritten by someone without the key",
                        head.device_seq
                    ),
                );
            }
        }
        if let (None, Some(stored)) = (&self.first_break, aggregates) {
            let own = &self.legacy_aggregates;
            let mut bad: Option<(u64, String)> = None;
            for (id, state) in stored.iter().chain(own.iter()) {
                if stored.get(id) != own.get(id) {
                    let seq = state.last_device_seq;
                    if bad.as_ref().is_none_or(|(s, _)| seq < *s) {
                        bad = Some((seq, id.clone()));
                    }
                }
            }
            if let Some((seq, id)) = bad {
                self.fail(
                    seq,
                    BreakReason::IndexMismatch,
                    format!(
                        "the stored version of aggregate {id:?} (aggregates object store) does not match its events"
                    ),
                );
            }
        }
        VerifyReport {
            ok: self.first_break.is_none(),
            checked: self.checked,
            first_break: self.first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::Draft;
    use crate::memory::MemoryStore;

    /// A store of 9 single appends over 3 aggregates whose first `legacy`
    /// pages are made to look written before layout 3: no `aggregate_heads`,
    /// their aggregates in what the `aggregates` object store would hold.
    fn migrated(legacy: usize) -> (MemoryStore, HashMap<String, AggregateState>) {
        let mut store = MemoryStore::for_tests(AtRest::Plain);
        for i in 1..=9 {
            let v = serde_json::json!({
                "aggregateType": "diary", "aggregateId": format!("d-{}", i % 3),
                "eventType": "noted", "payload": {"i": i}
            });
            store.append(Draft::from_value(&v).unwrap()).unwrap();
        }
        let mut records = HashMap::new();
        for page in store.raw_mut().pages.values_mut().take(legacy) {
            records.extend(page.meta.aggregate_heads.take().unwrap());
        }
        (store, records)
    }

    fn verify(store: &mut MemoryStore, records: &HashMap<String, AggregateState>) -> VerifyReport {
        let mut verifier = ChainVerifier::new(store.identity().expected());
        let raw = store.raw_mut();
        for page in raw.pages.values() {
            verifier.feed_page(&page.meta, &page.records);
        }
        verifier.finish(Some(raw.head), None, Some(records))
    }

    #[test]
    fn a_store_from_before_layout_3_verifies_against_its_aggregates_records() {
        let (mut store, records) = migrated(5);
        assert_eq!(records.len(), 3);
        assert_eq!(records["d-1"].version, 2, "d-1 was appended at 1 and 4");
        assert!(verify(&mut store, &records).ok);
        // A store entirely from before layout 3, and one created at 3.
        let (mut all, all_records) = migrated(9);
        assert!(verify(&mut all, &all_records).ok);
        assert!(verify(&mut MemoryStore::for_tests(AtRest::Plain), &HashMap::new()).ok);
    }

    #[test]
    fn a_wrong_missing_or_extra_aggregates_record_is_an_index_mismatch() {
        let (mut store, records) = migrated(5);
        let mut wrong = records.clone();
        wrong.get_mut("d-1").unwrap().version = 3;
        let mut missing = records.clone();
        missing.remove("d-2");
        let mut extra = records.clone();
        extra.insert("d-9".into(), records["d-1"].clone());
        // The versions after the legacy pages: written to page heads, not
        // to the aggregates object store.
        let mut advanced = records.clone();
        advanced.get_mut("d-1").unwrap().version = 3;
        advanced.get_mut("d-1").unwrap().last_device_seq = 7;
        for bad in [wrong, missing, extra, advanced] {
            let b = verify(&mut store, &bad).first_break.unwrap();
            assert_eq!(b.reason, BreakReason::IndexMismatch);
            assert!(
                b.message.contains("aggregates object store"),
                "{}",
                b.message
            );
        }
    }

    #[test]
    fn a_page_without_heads_after_pages_with_them_is_an_index_mismatch() {
        let (mut store, records) = migrated(2);
        let raw = store.raw_mut();
        let (&first, page) = raw.pages.iter_mut().nth(6).unwrap();
        page.meta.aggregate_heads = None;
        let b = verify(&mut store, &records).first_break.unwrap();
        assert_eq!(b.reason, BreakReason::IndexMismatch);
        assert_eq!(b.device_seq, first);
    }
}
