//! The append transaction: read the head and the aggregates involved, seal
//! synchronously, write pages and derived records, and wait for the commit.
//!
//! Head read and event write share one readwrite transaction, so two tabs
//! or workers appending at once are serialized by IndexedDB and can neither
//! fork the chain nor reuse a `device_seq`.

use super::idb::layout::{self, AGGREGATES, ALL_STORES, IDEMPOTENCY, META, META_HEAD_KEY, PAGES};
use super::idb::txn::{fire, pending, Txn};
use super::platform::{BrowserClock, BrowserEntropy};
use super::store::IdbStore;
use crate::error::Result;
use crate::page;
use crate::record::Record;
use crate::seal::{self, Outcome, Sealed, TxnView, Unit};
use wasm_bindgen::JsValue;

/// Commits `units` in one transaction. The outer error means the
/// transaction failed as a whole and nothing was written; the inner results
/// are each unit's own outcome.
pub(crate) async fn commit_units(
    store: &IdbStore,
    units: &[Unit],
) -> Result<Vec<Result<Vec<Record>>>> {
    let txn = Txn::begin(store.db()?, &ALL_STORES, true, store.durability)?;
    let sealed = match read_seal_write(store, &txn, units).await {
        Ok(sealed) => sealed,
        Err(e) => {
            // Never let a half-issued set of writes auto-commit.
            txn.abort();
            return Err(e);
        }
    };
    txn.commit_now().await?;

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

async fn read_seal_write(store: &IdbStore, txn: &Txn, units: &[Unit]) -> Result<Sealed> {
    let meta = txn.store(META)?;
    let pages = txn.store(PAGES)?;
    let aggregates = txn.store(AGGREGATES)?;
    let idempotency = txn.store(IDEMPOTENCY)?;

    // Issue every read at once; IndexedDB answers them in order.
    let (aggregate_ids, keys) = seal::keys_to_read(units);
    let head = pending(meta.get(&JsValue::from_str(META_HEAD_KEY)))?;
    let aggregate_reads = aggregate_ids
        .into_iter()
        .map(|id| Ok((pending(aggregates.get(&JsValue::from_str(&id)))?, id)))
        .collect::<Result<Vec<_>>>()?;
    let key_reads = keys
        .into_iter()
        .map(|k| Ok((pending(idempotency.get(&JsValue::from_str(&k)))?, k)))
        .collect::<Result<Vec<_>>>()?;

    let mut view = TxnView {
        head: layout::head_from_js(&head.result().await?)?,
        ..TxnView::default()
    };
    for (read, id) in aggregate_reads {
        view.aggregates
            .insert(id, layout::aggregate_from_js(&read.result().await?)?);
    }
    for (read, key) in key_reads {
        view.idempotency
            .insert(key, layout::idempotency_from_js(&read.result().await?)?);
    }

    // Everything from here to the writes is synchronous: an await on
    // anything but these requests would let the transaction commit early.
    let sealed = seal::seal(&store.identity, view, units, &BrowserClock, &BrowserEntropy);
    if !sealed.records.is_empty() {
        for page in page::pack(&sealed.records) {
            fire(pages.add(&layout::page_to_js(&page)))?;
        }
        fire(meta.put_with_key(
            &layout::head_to_js(&sealed.head),
            &JsValue::from_str(META_HEAD_KEY),
        ))?;
        for (id, state) in &sealed.aggregates {
            fire(aggregates.put_with_key(&layout::aggregate_to_js(state), &JsValue::from_str(id)))?;
        }
        for (key, entry) in &sealed.idempotency {
            fire(
                idempotency
                    .add_with_key(&layout::idempotency_to_js(entry), &JsValue::from_str(key)),
            )?;
        }
    }
    Ok(sealed)
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
