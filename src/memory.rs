//! An in-memory store with the same semantics and the same at-rest page
//! layout as the IndexedDB store. It is a product, not only a test helper:
//! apps use it to test their own event logic natively, without a browser.

use crate::at_rest::AtRest;
use crate::audit;
use crate::chain::{ChainVerifier, VerifyReport};
use crate::clock::Clock;
use crate::crypto::blind::field;
use crate::draft::Draft;
use crate::entropy::Entropy;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::page::Page;
use crate::record::Record;
use crate::seal::{self, Outcome, TxnView, Unit};
use crate::state::{AggregateState, Head, IdempotencyEntry, Identity};
use crate::timestamp;
use std::collections::{BTreeMap, HashMap};

/// An event store held in memory.
pub struct MemoryStore {
    identity: Identity,
    clock: Box<dyn Clock>,
    entropy: Box<dyn Entropy>,
    pages: BTreeMap<u64, Page>,
    head: Head,
    head_mac: Option<String>,
    /// Where each aggregate stands, keyed as stored: the newest
    /// `aggregate_heads` entry of the pages, as the IndexedDB store finds it
    /// through its `by_aggregate_head` index. Derived from the pages, never
    /// stored beside them; rebuilt after [`MemoryStore::raw_mut`].
    aggregate_index: HashMap<String, AggregateState>,
    /// Whether the pages may have changed under the index (tamper drills).
    index_stale: bool,
    idempotency: HashMap<String, IdempotencyEntry>,
    at_rest: AtRest,
}

/// The stored parts of a [`MemoryStore`], for tamper drills. Keys and
/// values are as stored: blind values and sealed records when encrypted.
#[derive(Debug)]
pub struct RawParts<'a> {
    /// Pages by first `device_seq`.
    pub pages: &'a mut BTreeMap<u64, Page>,
    /// The head record.
    pub head: &'a mut Head,
    /// The MAC beside the head (encrypted stores).
    pub head_mac: &'a mut Option<String>,
    /// How records are kept.
    pub at_rest: &'a AtRest,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("identity", &self.identity)
            .field("head", &self.head)
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store for `identity`, with injected time and randomness.
    pub fn new(identity: Identity, clock: Box<dyn Clock>, entropy: Box<dyn Entropy>) -> Self {
        Self::with_at_rest(identity, clock, entropy, AtRest::Plain)
    }

    /// An empty store that keeps records as `at_rest` says: sealed stores
    /// encrypt records, blind index values and MAC the head exactly as the
    /// IndexedDB store does.
    pub fn with_at_rest(
        identity: Identity,
        clock: Box<dyn Clock>,
        entropy: Box<dyn Entropy>,
        at_rest: AtRest,
    ) -> Self {
        let head = Head::genesis();
        MemoryStore {
            identity,
            clock,
            entropy,
            pages: BTreeMap::new(),
            head_mac: at_rest.head_mac(&head),
            head,
            aggregate_index: HashMap::new(),
            index_stale: false,
            idempotency: HashMap::new(),
            at_rest,
        }
    }

    /// A store for the core's own tests.
    #[cfg(test)]
    pub(crate) fn for_tests(at_rest: AtRest) -> Self {
        let clock = crate::clock::ManualClock::new(1_700_000_000_000);
        let entropy = crate::entropy::SeededEntropy::new(1);
        let identity = Identity::generate("study-1", "nurse-1", &clock, &entropy);
        Self::with_at_rest(identity, Box::new(clock), Box::new(entropy), at_rest)
    }

    /// How this store keeps records.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    /// Starts a new data key for the records appended from now on (encrypted
    /// stores). Returns its id.
    pub fn rotate_data_key(&mut self) -> Option<u32> {
        let next = self.head.device_seq + 1;
        match &mut self.at_rest {
            AtRest::Sealed(s) => Some(s.ring.rotate(next)),
            AtRest::Plain => None,
        }
    }

    /// The store's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The device head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Appends one event.
    pub fn append(&mut self, draft: Draft) -> Result<Record> {
        let mut records = self
            .append_units(&[vec![draft]])
            .pop()
            .unwrap_or_else(|| Err(Error::internal("no result")))?;
        records
            .pop()
            .ok_or_else(|| Error::internal("empty unit result"))
    }

    /// Appends several events atomically: all or none.
    pub fn append_batch(&mut self, drafts: Vec<Draft>) -> Result<Vec<Record>> {
        if drafts.is_empty() {
            return Err(Error::validation(
                "events",
                "appendBatch needs at least one event",
            ));
        }
        self.append_units(&[drafts])
            .pop()
            .unwrap_or_else(|| Err(Error::internal("no result")))
    }

    /// Appends units as one commit, each unit succeeding or failing alone.
    pub fn append_units(&mut self, units: &[Unit]) -> Vec<Result<Vec<Record>>> {
        if self.index_stale {
            self.aggregate_index = self
                .pages
                .values()
                .flat_map(|p| p.meta.aggregate_heads.iter().flatten().cloned())
                .collect();
            self.index_stale = false;
        }
        let (aggregate_ids, keys) = seal::keys_to_read(units);
        let at = &self.at_rest;
        let view: TxnView = at.view_of(
            units,
            Some(self.head.clone()),
            aggregate_ids
                .into_iter()
                .map(|id| {
                    let state = self
                        .aggregate_index
                        .get(&at.index_value(field::AGGREGATE_ID, &id))
                        .cloned();
                    (id, state)
                })
                .collect(),
            keys.into_iter()
                .map(|k| {
                    let entry = self
                        .idempotency
                        .get(&at.index_value(field::IDEMPOTENCY_KEY, &k))
                        .cloned();
                    (k, entry)
                })
                .collect(),
        );
        let sealed = seal::seal(
            &self.identity,
            view,
            units,
            self.clock.as_ref(),
            self.entropy.as_ref(),
        );
        if let AtRest::Sealed(s) = &mut self.at_rest {
            s.ring
                .rotate_if_due(self.head.device_seq, sealed.records.len() as u64);
        }
        let at = &self.at_rest;
        for page in at.pack(&sealed.records, self.entropy.as_ref()) {
            let heads = page.meta.aggregate_heads.iter().flatten().cloned();
            self.aggregate_index.extend(heads);
            self.pages.insert(page.meta.first_device_seq, page);
        }
        self.head_mac = at.head_mac(&sealed.head);
        self.head = sealed.head;
        for (key, entry) in &sealed.idempotency {
            self.idempotency.insert(
                at.index_value(field::IDEMPOTENCY_KEY, key),
                at.stored_idempotency(entry),
            );
        }
        sealed
            .results
            .into_iter()
            .map(|unit| {
                unit?
                    .into_iter()
                    .map(|outcome| match outcome {
                        Outcome::New(i) => Ok(sealed.records[i].clone()),
                        Outcome::Existing(seq) => self.get(seq),
                    })
                    .collect()
            })
            .collect()
    }

    /// The event at `device_seq`.
    pub fn get(&self, device_seq: u64) -> Result<Record> {
        let (&first, page) = self
            .pages
            .range(..=device_seq)
            .next_back()
            .ok_or_else(|| Error::storage(format!("event {device_seq} is not in the store")))?;
        self.at_rest
            .read_checked(first, &page.records)?
            .into_iter()
            .find(|r| r.envelope.device_seq == device_seq)
            .ok_or_else(|| Error::storage(format!("event {device_seq} is not in the store")))
    }

    /// Events matching `filter`, in `device_seq` order (or reversed).
    pub fn events(&self, filter: &Filter) -> Result<Vec<Record>> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let pages: Box<dyn Iterator<Item = (&u64, &Page)>> = if filter.reverse {
            Box::new(self.pages.iter().rev())
        } else {
            Box::new(self.pages.iter())
        };
        for (&first, page) in pages {
            if out.len() >= limit {
                break;
            }
            let mut records = self.at_rest.read_checked(first, &page.records)?;
            if filter.reverse {
                records.reverse();
            }
            out.extend(
                records
                    .into_iter()
                    .filter(|r| filter.matches(&r.envelope))
                    .take(limit - out.len()),
            );
        }
        Ok(out)
    }

    /// An aggregate's current version and all its events.
    pub fn aggregate(&self, aggregate_id: &str) -> Result<(u64, Vec<Record>)> {
        let filter = Filter {
            aggregate_id: Some(aggregate_id.to_string()),
            ..Filter::default()
        };
        let events = self.events(&filter)?;
        Ok((crate::record::version_of(&events), events))
    }

    /// Recomputes every hash and link, and checks the head and indexes.
    pub fn verify(&self) -> VerifyReport {
        let mut verifier =
            ChainVerifier::new(self.identity.expected()).with_at_rest(self.at_rest.clone());
        for page in self.pages.values() {
            if verifier.is_broken() {
                break;
            }
            verifier.feed_page(&page.meta, &page.records);
        }
        // Memory stores start at layout 3: no `aggregates` records.
        verifier.finish(
            Some(&self.head),
            self.head_mac.as_deref(),
            Some(&HashMap::new()),
        )
    }

    /// The audit document of this store.
    pub fn export_audit(&self) -> String {
        let exported_at = timestamp::format_ms(self.clock.now_ms());
        let mut out = audit::begin(&self.identity, &exported_at);
        let mut first = true;
        for page in self.pages.values() {
            let opened = self.at_rest.open(&page.records);
            out.push_str(&audit::page_entries(&mut first, &opened));
        }
        out.push_str(&audit::end(&self.head));
        out
    }

    /// Raw access to the stored pages and head, for tamper drills:
    /// demonstrating to an auditor that edits are detected.
    pub fn raw_mut(&mut self) -> RawParts<'_> {
        self.index_stale = true;
        RawParts {
            pages: &mut self.pages,
            head: &mut self.head,
            head_mac: &mut self.head_mac,
            at_rest: &self.at_rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::entropy::SeededEntropy;
    use crate::envelope::GENESIS_HASH;
    use crate::error::ErrorCode;
    use serde_json::{json, Value};

    fn store() -> MemoryStore {
        let clock = ManualClock::new(1_700_000_000_000);
        let entropy = SeededEntropy::new(42);
        let identity = Identity::generate("default", "u-1", &clock, &entropy);
        MemoryStore::new(identity, Box::new(clock), Box::new(entropy))
    }

    fn draft(aggregate: &str, extra: Value) -> Draft {
        let mut v = json!({"aggregateType": "diary", "aggregateId": aggregate, "eventType": "noted", "payload": {"n": 1}});
        if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
            base.extend(more);
        }
        Draft::from_value(&v).unwrap()
    }

    #[test]
    fn appends_chain_from_genesis_and_count_aggregate_versions() {
        let mut s = store();
        let a = s.append(draft("a", json!({}))).unwrap();
        let b = s.append(draft("b", json!({}))).unwrap();
        let c = s
            .append(draft("a", json!({"causationId": a.envelope.event_id})))
            .unwrap();
        assert_eq!(a.envelope.prev_hash, GENESIS_HASH);
        assert_eq!(b.envelope.prev_hash, a.envelope.hash);
        assert_eq!(c.envelope.prev_hash, b.envelope.hash);
        assert_eq!(
            [
                a.envelope.device_seq,
                b.envelope.device_seq,
                c.envelope.device_seq
            ],
            [1, 2, 3]
        );
        assert_eq!(
            [
                a.envelope.aggregate_version,
                b.envelope.aggregate_version,
                c.envelope.aggregate_version
            ],
            [1, 1, 2]
        );
        assert_eq!(s.head().hash, c.envelope.hash);
        let (version, events) = s.aggregate("a").unwrap();
        assert_eq!((version, events.len()), (2, 2));
        assert!(s.verify().ok);
        assert_eq!(s.verify().checked, 3);
    }

    #[test]
    fn a_batch_with_one_bad_event_writes_nothing() {
        let mut s = store();
        s.append(draft("a", json!({}))).unwrap();
        let head = s.head().clone();
        let err = s
            .append_batch(vec![
                draft("b", json!({})),
                draft("a", json!({"expectedVersion": 7})),
                draft("c", json!({})),
            ])
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::VersionConflict);
        assert_eq!(s.head(), &head);
        assert_eq!(s.events(&Filter::default()).unwrap().len(), 1);
        assert_eq!(s.aggregate("b").unwrap().0, 0);
        assert!(s.verify().ok);
    }

    #[test]
    fn units_of_one_commit_fail_alone() {
        let mut s = store();
        let results = s.append_units(&[
            vec![draft("a", json!({}))],
            vec![draft("a", json!({"expectedVersion": 0}))],
            vec![draft("a", json!({"expectedVersion": 1}))],
        ]);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().code,
            ErrorCode::VersionConflict
        );
        let third = results[2].as_ref().unwrap();
        assert_eq!(
            (
                third[0].envelope.device_seq,
                third[0].envelope.aggregate_version
            ),
            (2, 2)
        );
        assert!(s.verify().ok);
    }

    #[test]
    fn idempotency_keys_return_the_first_event() {
        let mut s = store();
        let first = s
            .append(draft("a", json!({"idempotencyKey": "form-1"})))
            .unwrap();
        let again = s
            .append(draft("a", json!({"idempotencyKey": "form-1"})))
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(s.head().device_seq, 1);
        let err = s
            .append(draft(
                "a",
                json!({"idempotencyKey": "form-1", "payload": {"n": 2}}),
            ))
            .unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            (ErrorCode::Validation, Some("idempotencyKey"))
        );
        // Within one batch, the second use of a key is the first event too.
        let batch = s
            .append_batch(vec![
                draft("b", json!({"idempotencyKey": "k2"})),
                draft("b", json!({"idempotencyKey": "k2"})),
            ])
            .unwrap();
        assert_eq!(batch[0], batch[1]);
        assert_eq!(s.head().device_seq, 2);
    }

    #[test]
    fn an_aggregate_keeps_its_type() {
        let mut s = store();
        s.append(draft("a", json!({}))).unwrap();
        let err = s
            .append(draft("a", json!({"aggregateType": "patient"})))
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("aggregateType"));
    }

    #[test]
    fn filters_limit_and_reverse() {
        let mut s = store();
        for i in 0..20 {
            let kind = if i % 2 == 0 { "even" } else { "odd" };
            s.append(draft(&format!("agg-{}", i % 4), json!({"eventType": kind})))
                .unwrap();
        }
        let odd = s
            .events(&Filter {
                event_type: Some("odd".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(odd.len(), 10);
        let last3 = s
            .events(&Filter {
                reverse: true,
                limit: Some(3),
                ..Filter::default()
            })
            .unwrap();
        let seqs: Vec<u64> = last3.iter().map(|r| r.envelope.device_seq).collect();
        assert_eq!(seqs, [20, 19, 18]);
        let range = s
            .events(&Filter {
                from_seq: Some(5),
                to_seq: Some(8),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(range.len(), 4);
        let agg = s
            .events(&Filter {
                aggregate_id: Some("agg-1".into()),
                ..Filter::default()
            })
            .unwrap();
        assert!(agg.iter().all(|r| r.envelope.aggregate_id == "agg-1"));
        assert_eq!(agg.len(), 5);
    }

    #[test]
    fn filters_by_created_at_with_since_inclusive_and_until_exclusive() {
        let clock = std::rc::Rc::new(ManualClock::new(1_000_000));
        struct Shared(std::rc::Rc<ManualClock>);
        impl Clock for Shared {
            fn now_ms(&self) -> i64 {
                self.0.now_ms()
            }
        }
        let entropy = SeededEntropy::new(3);
        let identity = Identity::generate("default", "u", clock.as_ref(), &entropy);
        let mut s = MemoryStore::new(identity, Box::new(Shared(clock.clone())), Box::new(entropy));
        for _ in 0..5 {
            s.append(draft("a", json!({}))).unwrap();
            clock.advance(1000);
        }
        let f = Filter {
            since_ms: Some(1_001_000),
            until_ms: Some(1_003_000),
            ..Filter::default()
        };
        let seqs: Vec<u64> = s
            .events(&f)
            .unwrap()
            .iter()
            .map(|r| r.envelope.device_seq)
            .collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn the_export_verifies_offline() {
        let mut s = store();
        for i in 0..7 {
            s.append(draft(
                &format!("a{i}"),
                json!({"payload": {"text": "héllo", "n": [1.5, -0.0, {"deep": null}]}}),
            ))
            .unwrap();
        }
        let doc = s.export_audit();
        let outcome = crate::audit::check(&doc, &Default::default()).unwrap();
        assert!(outcome.report.ok, "{:?}", outcome.report.first_break);
        assert_eq!(outcome.report.checked, 7);
        assert_eq!(outcome.head, *s.head());
    }

    #[test]
    fn a_damaged_page_is_exported_as_damage_not_as_missing_events() {
        let mut s = store();
        let drafts = (0..4).map(|i| draft(&format!("a{i}"), json!({}))).collect();
        s.append_batch(drafts).unwrap();
        let page = s.raw_mut().pages.values_mut().next().unwrap();
        let cut = page.records.len() - 10;
        page.records.truncate(cut);
        let in_store = s.verify().first_break.unwrap();
        assert_eq!(
            (in_store.device_seq, in_store.reason.as_str()),
            (4, "MALFORMED")
        );
        let outcome = crate::audit::check(&s.export_audit(), &Default::default()).unwrap();
        let offline = outcome.report.first_break.unwrap();
        assert_eq!(
            (offline.device_seq, offline.reason.as_str()),
            (4, "MALFORMED")
        );
        assert_eq!(outcome.report.checked, 3);
    }
}
