//! The append transaction: read the head and the aggregates involved, seal
//! synchronously, write the pages and the head, and wait for the commit.
//!
//! Head read and event write share one readwrite transaction, so two tabs
//! or workers appending at once are serialized by IndexedDB and can neither
//! fork the chain nor reuse a `device_seq`.

use super::idb::layout::{
    self, ALL_STORES, IDEMPOTENCY, META, META_HEAD_KEY, META_KEYRING_KEY, PAGES,
};
use super::idb::txn::{fire, pending, Txn};
use super::platform::{BrowserClock, BrowserEntropy};
use super::seal_ahead::{self, Ahead};
use super::state_reads::{State, StateReads};
use super::store::{put_ring, ring_from_js, IdbStore};
use super::write_cache::WriteCache;
use crate::at_rest::AtRest;
use crate::crypto::blind::field;
use crate::error::Result;
use crate::page::Page;
use crate::record::Record;
use crate::seal::{self, Outcome, Sealed, Unit};
use crate::state::{AggregateState, IdempotencyEntry};
use wasm_bindgen::JsValue;

/// Commits `units` in one transaction. The outer error means the
/// transaction failed as a whole and nothing was written; the inner results
/// are each unit's own outcome.
pub(crate) async fn commit_units(
    store: &IdbStore,
    units: &[Unit],
) -> Result<Vec<Result<Vec<Record>>>> {
    let cached = store.write_cache.borrow().is_some();
    match commit_once(store, units).await {
        // Most likely another context appended: the cache is gone; go again
        // with everything read from the database.
        Err(_) if cached => commit_once(store, units).await,
        result => result,
    }
}

/// One attempt: on any failure the write cache is dropped.
async fn commit_once(store: &IdbStore, units: &[Unit]) -> Result<Vec<Result<Vec<Record>>>> {
    // Keys are taken before the transaction starts; a lock() meanwhile
    // zeroizes them only after this commit lets go of them.
    let at_rest = store.at_rest()?;
    let cache = store.write_cache.borrow_mut().take();
    let ahead = match seal_ahead::commit(store, &at_rest, units, cache).await? {
        Ahead::Declined(cache) => seal_ahead::after_filling(store, &at_rest, units, cache).await,
        committed => committed,
    };
    let sealed = match ahead {
        Ahead::Committed(sealed) => sealed,
        Ahead::Declined(cache) => {
            let txn = Txn::begin(store.db()?, &ALL_STORES, true, store.durability)?;
            let (sealed, learned) = match read_seal_write(store, &at_rest, &txn, units, cache).await
            {
                Ok(done) => done,
                Err(e) => {
                    // Never let a half-issued set of writes auto-commit.
                    txn.abort();
                    return Err(e);
                }
            };
            txn.commit_now().await?;
            *store.write_cache.borrow_mut() = Some(learned);
            sealed
        }
    };

    // Committed: from here on, failures belong to single units only.
    let mut results = Vec::with_capacity(sealed.results.len());
    for unit in &sealed.results {
        results.push(match unit {
            Err(e) => Err(e.clone()),
            Ok(outcomes) => resolve(store, &sealed.records, outcomes).await,
        });
    }
    Ok(results)
}

async fn read_seal_write(
    store: &IdbStore,
    at_rest: &AtRest,
    txn: &Txn,
    units: &[Unit],
    owned_cache: Option<WriteCache>,
) -> Result<(Sealed, WriteCache)> {
    // Owned, so the commit extends it rather than copying it.
    let cache = owned_cache.as_ref();
    let meta = txn.store(META)?;
    // Issue every read at once; IndexedDB answers them in order. What the
    // cache knows is not read (see `WriteCache` for why that is safe).
    let ring = match at_rest {
        AtRest::Sealed(_) => Some(pending(meta.get(&JsValue::from_str(META_KEYRING_KEY)))?),
        AtRest::Plain => None,
    };
    let reads = StateReads::issue(store, at_rest, txn, units, cache)?;
    // The ring in the database decides the key, whatever this context
    // cached: another context may have rotated.
    let mut at_rest = match ring {
        Some(read) => at_rest.with_ring(ring_from_js(at_rest, &read.result().await?)?),
        None => AtRest::Plain,
    };
    let State {
        head,
        aggregates: stored_aggregates,
        keys: stored_keys,
    } = reads.results(store).await?;
    let read = (stored_aggregates.clone(), stored_keys.clone());

    // Everything from here to the writes is synchronous: an await on
    // anything but these requests would let the transaction commit early.
    // Encryption is synchronous Rust for the same reason.
    let view = at_rest.view_of(units, head.clone(), stored_aggregates, stored_keys);
    let sealed = seal::seal(&store.identity, view, units, &BrowserClock, &BrowserEntropy);
    if !sealed.records.is_empty() {
        if let AtRest::Sealed(s) = &mut at_rest {
            let before = sealed.head.device_seq - sealed.records.len() as u64;
            if s.ring.rotate_if_due(before, sealed.records.len() as u64) {
                put_ring(&meta, &s.keys, &s.ring)?;
            }
        }
        let pages = at_rest.pack(&sealed.records, &BrowserEntropy);
        write_commit(txn, &at_rest, &pages, &sealed)?;
    }
    let after = if sealed.records.is_empty() {
        head.clone()
    } else {
        Some(sealed.head.clone())
    };
    let learned = WriteCache::after_commit(
        owned_cache,
        head.as_ref(),
        after,
        read,
        written_state(&at_rest, &sealed),
    );
    if at_rest.is_sealed() {
        store.keys.update_ring(at_rest);
    }
    Ok((sealed, learned))
}

/// Issues the writes of a commit in `txn`: its pages, which carry the
/// aggregates' new versions (`aggregate_heads`), the head and the
/// idempotency keys it used.
pub(crate) fn write_commit(
    txn: &Txn,
    at_rest: &AtRest,
    pages: &[Page],
    sealed: &Sealed,
) -> Result<()> {
    let page_store = txn.store(PAGES)?;
    for page in pages {
        fire(page_store.add(&layout::page_to_js(page)))?;
    }
    fire(txn.store(META)?.put_with_key(
        &layout::head_to_js(&sealed.head, at_rest.head_mac(&sealed.head).as_deref()),
        &JsValue::from_str(META_HEAD_KEY),
    ))?;
    let idempotency = txn.store(IDEMPOTENCY)?;
    for (k, entry) in &sealed.idempotency {
        fire(idempotency.add_with_key(
            &layout::idempotency_to_js(&at_rest.stored_idempotency(entry)),
            &JsValue::from_str(&at_rest.index_value(field::IDEMPOTENCY_KEY, k)),
        ))?;
    }
    Ok(())
}

/// Aggregate states and idempotency entries by stored key.
pub(crate) type Written = (
    Vec<(String, AggregateState)>,
    Vec<(String, IdempotencyEntry)>,
);

/// The aggregate states and idempotency entries a commit of `sealed`
/// leaves, as stored: what the write cache learns from it.
pub(crate) fn written_state(at_rest: &AtRest, sealed: &Sealed) -> Written {
    let mut blind = at_rest.blinder();
    let aggregates = sealed
        .aggregates
        .iter()
        .map(|(id, state)| {
            let aggregate_type = blind(field::AGGREGATE_TYPE, &state.aggregate_type);
            let stored = AggregateState {
                aggregate_type,
                ..state.clone()
            };
            (id.clone(), stored)
        })
        .collect();
    let keys = sealed
        .idempotency
        .iter()
        .map(|(k, entry)| (k.clone(), at_rest.stored_idempotency(entry)))
        .collect();
    (aggregates, keys)
}

/// A unit's records: new ones from this commit, earlier ones (idempotent
/// repeats) read back from the log.
async fn resolve(store: &IdbStore, new: &[Record], outcomes: &[Outcome]) -> Result<Vec<Record>> {
    let mut records = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        records.push(match outcome {
            Outcome::New(i) => new[*i].clone(),
            Outcome::Existing(seq) => store.get(*seq).await?,
        });
    }
    Ok(records)
}
