//! Encrypted appends sealed before their transaction, with WebCrypto.
//!
//! AES-GCM in wasm runs in software at a few tens of MB/s; WebCrypto runs
//! at native speed but only asynchronously, which an append transaction
//! cannot wait for. When this context's write cache already holds
//! everything an append would read (the head, every aggregate it touches,
//! every idempotency key it uses) the records are hashed, laid out and
//! encrypted first, and the transaction only writes them. Whatever the
//! cache guessed wrong is caught in that transaction, which then aborts
//! with nothing written and the append goes again the ordinary way:
//! - a head moved by another context: the page key `first_device_seq`
//!   exists already and the `add` fails (see `WriteCache`);
//! - a key ring changed by another context (rotation, re-encryption): the
//!   ring is read in the transaction and compared.

use super::append::{write_commit, written_state};
use super::idb::layout::{ALL_STORES, META, META_KEYRING_KEY};
use super::idb::txn::{pending, Txn};
use super::keys::webcrypto;
use super::platform::{BrowserClock, BrowserEntropy};
use super::store::{ring_from_js, IdbStore};
use super::write_cache::WriteCache;
use crate::at_rest::AtRest;
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

/// Seals `units` before the transaction and commits them, if the cache
/// allows. An error means a transaction ran and wrote nothing.
pub(crate) async fn commit(
    store: &IdbStore,
    at_rest: &AtRest,
    units: &[Unit],
    cache: Option<WriteCache>,
) -> Result<Ahead> {
    let (AtRest::Sealed(s), Some(known)) = (at_rest, cache.as_ref()) else {
        return Ok(Ahead::Declined(cache));
    };
    if !webcrypto::available() {
        return Ok(Ahead::Declined(cache));
    }
    let (aggregate_ids, keys) = seal::keys_to_read(units);
    let mut aggregates = HashMap::new();
    for id in aggregate_ids {
        match known.aggregate(&id) {
            Some(state) => aggregates.insert(id, state.clone()),
            None => return Ok(Ahead::Declined(cache)),
        };
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
    let before = sealed.head.device_seq - sealed.records.len() as u64;
    if sealed.records.is_empty()
        || s.ring
            .clone()
            .rotate_if_due(before, sealed.records.len() as u64)
    {
        // Nothing to encrypt, or a new data key is due, which the ordinary
        // path starts inside its transaction.
        return Ok(Ahead::Declined(cache));
    }

    let plan = SealPlan::new(s, &sealed.records, &BrowserEntropy);
    let key = store.keys.web_data_key(s, plan.key_id).await?;
    let ciphertexts = webcrypto::seal_all(&key, &plan).await?;
    let pages = plan.into_pages(at_rest, &sealed.records, &ciphertexts)?;

    let txn = Txn::begin(store.db()?, &ALL_STORES, true, store.durability)?;
    let written = (|| -> Result<_> {
        let ring = pending(txn.store(META)?.get(&JsValue::from_str(META_KEYRING_KEY)))?;
        write_commit(&txn, at_rest, &pages, &sealed)?;
        Ok(ring)
    })();
    let ring = match written {
        Ok(ring) => ring,
        Err(e) => {
            txn.abort();
            return Err(e);
        }
    };
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
    txn.commit_now().await?;
    let learned = WriteCache::after_commit(
        cache,
        Some(sealed.head.clone()),
        (HashMap::new(), HashMap::new()),
        written_state(at_rest, &sealed),
    );
    *store.write_cache.borrow_mut() = Some(learned);
    Ok(Ahead::Committed(sealed))
}
