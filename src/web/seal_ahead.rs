//! Appends sealed before their transaction, which then only writes.
//!
//! When this context's write cache already holds what an append would
//! read (the head, every idempotency key it uses, and every aggregate it
//! touches, or few enough unseen ones that are presumed new; a complete
//! cache, see `WriteCache`, holds all of it), the records
//! are hashed and laid out first, and in an encrypted store encrypted with
//! WebCrypto: AES-GCM in wasm runs in software at a few tens of MB/s, and
//! WebCrypto at native speed but only asynchronously, which an append
//! transaction cannot wait for. The transaction issues its checks and its
//! writes at once, so it does not wait for a read before it writes.
//! Whatever was guessed wrong is caught in that transaction, which then
//! aborts with nothing written, and the append goes again the ordinary way:
//! - a head moved by another context: the page key `first_device_seq`
//!   exists already and the `add` fails (see `WriteCache`);
//! - a key ring changed by another context (rotation, re-encryption): the
//!   ring is read in the transaction and compared;
//! - an aggregate presumed new that has events: its newest head (and, in
//!   stores from before layout 3, its `aggregates` record) is read before
//!   the writes, each in one request that needs no cursor step, since a
//!   step would be queued after the writes and see them. The store then
//!   stops presuming until an ordinary read finds every unseen aggregate
//!   new again.

use super::aggregate_head::AggregateReads;
use super::append::{write_commit, written_state, Written};
use super::idb::layout::{ALL_STORES, META, META_KEYRING_KEY};
use super::idb::txn::{pending, Txn};
use super::keys::webcrypto;
use super::platform::{BrowserClock, BrowserEntropy};
use super::state_reads::StateReads;
use super::store::{ring_from_js, IdbStore};
use super::write_cache::WriteCache;
use crate::at_rest::AtRest;
use crate::crypto::blind::field;
use crate::crypto::deferred::SealPlan;
use crate::error::{Error, ErrorCode, Result};
use crate::seal::{self, Sealed, Unit};
use std::collections::HashMap;
use wasm_bindgen::JsValue;

/// What became of an append offered to this path.
pub(crate) enum Ahead {
    /// Sealed ahead and committed.
    Committed(Sealed),
    /// Not for this path: go the ordinary way, with the cache handed back.
    Declined(Option<WriteCache>),
}

/// Most unseen aggregates one append presumes new; each is checked with a
/// request of its own.
const PRESUMED_AT_MOST: usize = 4;

/// Fewest events for which an encrypted append whose cache lacks something
/// reads it in a read-only transaction first, so that WebCrypto can seal
/// it ahead: AES-GCM in wasm costs about 45 µs more a 1 KiB record than
/// WebCrypto (61 ms against 16 ms for 1,000), and the extra transaction
/// about a millisecond.
const FILL_FOR_AT_LEAST: usize = 16;

/// The seal-ahead path once more, after reading what `cache` lacks, when
/// that is worth it (`FILL_FOR_AT_LEAST`): the first large encrypted batch
/// after opening, or one that reaches many aggregates this context has not
/// seen. What the read-only transaction read may be stale by the time the
/// writes run; the checks of `commit` catch that as they catch a stale
/// cache. A failure there wrote nothing and hands back no cache, so the
/// ordinary path reads everything again.
pub(crate) async fn after_filling(
    store: &IdbStore,
    at_rest: &AtRest,
    units: &[Unit],
    cache: Option<WriteCache>,
) -> Ahead {
    let worth = matches!(at_rest, AtRest::Sealed(_))
        && webcrypto::available()
        && units.iter().map(Vec::len).sum::<usize>() >= FILL_FOR_AT_LEAST
        && StateReads::needed(units, cache.as_ref());
    if !worth {
        return Ahead::Declined(cache);
    }
    let filled = match fill(store, at_rest, units, cache).await {
        Ok(filled) => filled,
        Err(_) => return Ahead::Declined(None),
    };
    match commit(store, at_rest, units, Some(filled)).await {
        Ok(ahead) => ahead,
        Err(_) => Ahead::Declined(None),
    }
}

/// `cache` with what an append of `units` reads and it lacks, read in a
/// read-only transaction.
async fn fill(
    store: &IdbStore,
    at_rest: &AtRest,
    units: &[Unit],
    cache: Option<WriteCache>,
) -> Result<WriteCache> {
    let txn = Txn::begin(store.db()?, &ALL_STORES, false, store.durability)?;
    let reads = StateReads::issue(store, at_rest, &txn, units, cache.as_ref())?;
    let state = reads.results(store).await?;
    let nothing_written: Written = (Vec::new(), Vec::new());
    let before = state.head.clone();
    Ok(WriteCache::after_commit(
        cache,
        before.as_ref(),
        state.head,
        (state.aggregates, state.keys),
        nothing_written,
    ))
}

/// Seals `units` before the transaction and commits them, if the cache
/// allows. An error means a transaction ran and wrote nothing.
pub(crate) async fn commit(
    store: &IdbStore,
    at_rest: &AtRest,
    units: &[Unit],
    cache: Option<WriteCache>,
) -> Result<Ahead> {
    let Some(known) = cache.as_ref() else {
        return Ok(Ahead::Declined(cache));
    };
    let sealed_store = match at_rest {
        AtRest::Sealed(s) if webcrypto::available() => Some(s),
        AtRest::Sealed(_) => return Ok(Ahead::Declined(cache)),
        AtRest::Plain => None,
    };
    let (aggregate_ids, keys) = seal::keys_to_read(units);
    let mut aggregates = HashMap::new();
    let mut presumed = Vec::new();
    for id in aggregate_ids {
        match known.aggregate(&id) {
            Some(state) => {
                aggregates.insert(id, state.clone());
            }
            None if store.presume_new.get() && presumed.len() < PRESUMED_AT_MOST => {
                presumed.push((at_rest.index_value(field::AGGREGATE_ID, &id), id.clone()));
                aggregates.insert(id, None);
            }
            None => return Ok(Ahead::Declined(cache)),
        }
    }
    let mut used = HashMap::new();
    for key in keys {
        match known.key(&key) {
            Some(entry) => used.insert(key, entry.clone()),
            None => return Ok(Ahead::Declined(cache)),
        };
    }
    let head = known.head.clone();
    let view = at_rest.view_of(units, head.clone(), aggregates, used);
    let sealed = seal::seal(&store.identity, view, units, &BrowserClock, &BrowserEntropy);
    if sealed.records.is_empty() {
        return Ok(Ahead::Declined(cache));
    }
    let pages = match sealed_store {
        Some(s) => {
            let before = sealed.head.device_seq - sealed.records.len() as u64;
            if s.ring
                .clone()
                .rotate_if_due(before, sealed.records.len() as u64)
            {
                // A new data key is due, which the ordinary path starts
                // inside its transaction.
                return Ok(Ahead::Declined(cache));
            }
            let plan = SealPlan::new(s, &sealed.records, &BrowserEntropy);
            let key = store.keys.web_data_key(s, plan.key_id).await?;
            let ciphertexts = webcrypto::seal_all(&key, &plan).await?;
            plan.into_pages(at_rest, &sealed.records, &ciphertexts)?
        }
        None => at_rest.pack(&sealed.records, &BrowserEntropy),
    };

    let txn = Txn::begin(store.db()?, &ALL_STORES, true, store.durability)?;
    let issued = (|| -> Result<_> {
        // Reads first: IndexedDB answers requests in order.
        let ring = match sealed_store {
            Some(_) => Some(pending(
                txn.store(META)?.get(&JsValue::from_str(META_KEYRING_KEY)),
            )?),
            None => None,
        };
        let new = match presumed.is_empty() {
            true => None,
            false => Some(AggregateReads::issue(
                &txn,
                presumed,
                store.has_legacy_aggregates,
                false,
            )?),
        };
        write_commit(&txn, at_rest, &pages, &sealed)?;
        Ok((ring, new))
    })();
    let (ring, new) = match issued {
        Ok(issued) => issued,
        Err(e) => {
            txn.abort();
            return Err(e);
        }
    };
    if let (Some(ring), Some(s)) = (ring, sealed_store) {
        let unchanged = match ring.result().await {
            Ok(v) => ring_from_js(at_rest, &v).map(|r| r == s.ring),
            Err(e) => Err(e),
        };
        if !matches!(unchanged, Ok(true)) {
            txn.abort();
            store.keys.mark_ring_stale();
            return Err(unchanged.err().unwrap_or_else(|| {
                Error::new(
                    ErrorCode::Storage,
                    "another context changed the key ring during this append; nothing was written",
                )
            }));
        }
    }
    if let Some(new) = new {
        let found = new.results(&store.head_ranges).await;
        if !matches!(&found, Ok(states) if states.iter().all(|(_, s)| s.is_none())) {
            txn.abort();
            store.presume_new.set(false);
            return Err(found.err().unwrap_or_else(|| {
                Error::new(
                    ErrorCode::Storage,
                    "an aggregate this append presumed new has events; nothing was written",
                )
            }));
        }
    }
    txn.commit_now().await?;
    let learned = WriteCache::after_commit(
        cache,
        head.as_ref(),
        Some(sealed.head.clone()),
        (HashMap::new(), HashMap::new()),
        written_state(at_rest, &sealed),
    );
    *store.write_cache.borrow_mut() = Some(learned);
    Ok(Ahead::Committed(sealed))
}
