//! Reading what an append needs to know and this context's write cache
//! does not: the head, the aggregates it touches and the idempotency keys
//! it uses. The ordinary append reads them inside its own transaction; the
//! seal-ahead path may read them in a read-only one first (`seal_ahead`).

use super::aggregate_head::AggregateReads;
use super::idb::layout::{self, IDEMPOTENCY, META, META_HEAD_KEY};
use super::idb::txn::{pending, Pending, Txn};
use super::store::IdbStore;
use super::write_cache::WriteCache;
use crate::at_rest::AtRest;
use crate::crypto::blind::field;
use crate::error::Result;
use crate::seal::{self, Unit};
use crate::state::{AggregateState, Head, IdempotencyEntry};
use std::collections::HashMap;
use wasm_bindgen::JsValue;

/// Fewest unseen aggregates for which a store with blind indexes reads
/// their heads as one range (any two do elsewhere). Blinded ids sort at
/// random, so their range spans most of the index, and it pays off only
/// for many ids in a small store: 1,000 cursors took about 60 ms in an
/// encrypted store's first batch, where a range over the fresh store's
/// empty index is one request. A range that gives up (after a few keys per
/// id) turns ranges off for the connection, as anywhere.
const MANY_UNSEEN: usize = 64;

/// The reads one append issued, all at once (IndexedDB answers them in
/// order), with what the cache already knew.
pub(crate) struct StateReads {
    head: Option<Pending>,
    cached_head: Option<Head>,
    aggregates: AggregateReads,
    known_aggregates: HashMap<String, Option<AggregateState>>,
    keys: Vec<(Pending, String)>,
    known_keys: HashMap<String, Option<IdempotencyEntry>>,
}

/// What an append found: the head (`None`: an empty store), and each
/// aggregate's and key's stored state (`None`: none yet), cached or read.
pub(crate) struct State {
    pub(crate) head: Option<Head>,
    pub(crate) aggregates: HashMap<String, Option<AggregateState>>,
    pub(crate) keys: HashMap<String, Option<IdempotencyEntry>>,
}

impl StateReads {
    /// Whether `cache` lacks anything an append of `units` reads.
    pub(crate) fn needed(units: &[Unit], cache: Option<&WriteCache>) -> bool {
        let Some(cache) = cache else {
            return true;
        };
        let (aggregate_ids, keys) = seal::keys_to_read(units);
        aggregate_ids.iter().any(|id| cache.aggregate(id).is_none())
            || keys.iter().any(|k| cache.key(k).is_none())
    }

    /// Issues, in `txn` (which covers every store an append writes), a
    /// read of whatever an append of `units` needs and `cache` does not
    /// know.
    pub(crate) fn issue(
        store: &IdbStore,
        at_rest: &AtRest,
        txn: &Txn,
        units: &[Unit],
        cache: Option<&WriteCache>,
    ) -> Result<StateReads> {
        let meta = txn.store(META)?;
        let idempotency = txn.store(IDEMPOTENCY)?;
        let (aggregate_ids, keys) = seal::keys_to_read(units);
        let head = match cache {
            Some(_) => None,
            None => Some(pending(meta.get(&JsValue::from_str(META_HEAD_KEY)))?),
        };
        let mut known_aggregates = HashMap::new();
        let mut unseen = Vec::new();
        for id in aggregate_ids {
            match cache.and_then(|c| c.aggregate(&id)) {
                Some(known) => {
                    known_aggregates.insert(id, known.clone());
                }
                None => unseen.push((at_rest.index_value(field::AGGREGATE_ID, &id), id)),
            }
        }
        let legacy = store.has_legacy_aggregates;
        let fewest = match store.blind_indexes {
            Some(true) => MANY_UNSEEN,
            _ => 2,
        };
        let ranges = store.head_ranges.get() && unseen.len() >= fewest;
        let aggregates = AggregateReads::issue(txn, unseen, legacy, ranges)?;
        let mut known_keys = HashMap::new();
        let mut key_reads = Vec::new();
        for k in keys {
            match cache.and_then(|c| c.key(&k)) {
                Some(known) => {
                    known_keys.insert(k, known.clone());
                }
                None => {
                    let stored =
                        JsValue::from_str(&at_rest.index_value(field::IDEMPOTENCY_KEY, &k));
                    key_reads.push((pending(idempotency.get(&stored))?, k));
                }
            }
        }
        Ok(StateReads {
            head,
            cached_head: cache.and_then(|c| c.head.clone()),
            aggregates,
            known_aggregates,
            keys: key_reads,
            known_keys,
        })
    }

    /// Waits for the reads. When every aggregate read was new, the store
    /// presumes unseen aggregates new again (see `seal_ahead`).
    pub(crate) async fn results(self, store: &IdbStore) -> Result<State> {
        let head = match self.head {
            Some(read) => layout::head_from_js(&read.result().await?)?,
            None => self.cached_head,
        };
        let found = self.aggregates.results(&store.head_ranges).await?;
        if !found.is_empty() && found.iter().all(|(_, state)| state.is_none()) {
            store.presume_new.set(true);
        }
        let mut aggregates = self.known_aggregates;
        aggregates.extend(found);
        let mut keys = self.known_keys;
        for (read, key) in self.keys {
            keys.insert(key, layout::idempotency_from_js(&read.result().await?)?);
        }
        Ok(State {
            head,
            aggregates,
            keys,
        })
    }
}
