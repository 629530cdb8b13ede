//! Transactions with an explicit durability, and requests as futures.

use super::errors::from_dom;
use crate::error::Result;
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction};

#[wasm_bindgen(module = "/src/web/idb/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = openTransaction, catch)]
    fn open_transaction(
        db: &IdbDatabase,
        names: &Array,
        mode: &str,
        durability: &str,
    ) -> std::result::Result<IdbTransaction, JsValue>;
    #[wasm_bindgen(js_name = requestDone)]
    fn request_done(request: &IdbRequest) -> Promise;
    #[wasm_bindgen(js_name = commitNow, catch)]
    fn commit_now(tx: &IdbTransaction) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(js_name = transactionDone)]
    fn transaction_done(tx: &IdbTransaction) -> Promise;
    #[wasm_bindgen(js_name = valuesByKey)]
    fn values_by_key(
        store: &IdbObjectStore,
        keys_from: &JsValue,
        query: &JsValue,
        count: Option<u32>,
    ) -> Promise;
}

/// How hard a commit is pushed to disk before it is reported done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Flushed to stable storage: survives power loss (the default).
    Strict,
    /// Handed to the OS: survives a crashed tab, maybe not a power cut.
    Relaxed,
}

impl Durability {
    fn as_str(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Relaxed => "relaxed",
        }
    }
}

/// A transaction and the future of its completion. The completion promise
/// is created up front so that a commit or abort is never missed.
pub(crate) struct Txn {
    tx: IdbTransaction,
    done: Promise,
}

impl Txn {
    /// Starts a transaction over `stores`.
    pub(crate) fn begin(
        db: &IdbDatabase,
        stores: &[&str],
        readwrite: bool,
        durability: Durability,
    ) -> Result<Txn> {
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let mode = if readwrite { "readwrite" } else { "readonly" };
        let tx = open_transaction(db, &names, mode, durability.as_str()).map_err(from_dom)?;
        let done = transaction_done(&tx);
        Ok(Txn { tx, done })
    }

    /// One object store of the transaction.
    pub(crate) fn store(&self, name: &str) -> Result<IdbObjectStore> {
        self.tx.object_store(name).map_err(from_dom)
    }

    /// Commits once the requests already issued are done, without waiting
    /// for their results to travel back to script first; then waits for the
    /// commit.
    pub(crate) async fn commit_now(self) -> Result<()> {
        // Throws only if the transaction already finished; `commit` reports how.
        let _ = commit_now(&self.tx);
        self.commit().await
    }

    /// Waits until the transaction has committed (and, for strict
    /// durability, reached the disk).
    pub(crate) async fn commit(self) -> Result<()> {
        JsFuture::from(self.done)
            .await
            .map(|_| ())
            .map_err(from_dom)
    }

    /// Aborts the transaction; nothing it wrote stays.
    pub(crate) fn abort(&self) {
        // Aborting an already finished transaction throws; nothing to undo then.
        let _ = self.tx.abort();
    }
}

/// A request's result, to await later. The listeners are attached now,
/// when the request is issued, so no completion can be missed however many
/// requests are in flight.
pub(crate) struct Pending(JsFuture);

impl Pending {
    /// Waits for the result.
    pub(crate) async fn result(self) -> Result<JsValue> {
        self.0.await.map_err(from_dom)
    }
}

impl Pending {
    /// A promise from glue.js that settles inside a request's event, as
    /// `requestDone`'s does.
    pub(crate) fn settled_in_request(promise: Promise) -> Pending {
        Pending(JsFuture::from(promise))
    }
}

/// Issues a request whose result will be awaited.
pub(crate) fn pending(req: std::result::Result<IdbRequest, JsValue>) -> Result<Pending> {
    let req = req.map_err(from_dom)?;
    Ok(Pending(JsFuture::from(request_done(&req))))
}

/// The values of `store` that `keys_from.getAll(query, count)` would give
/// (`keys_from` is `store` or one of its indexes), read key by key: for
/// values as large as pages, twice as fast in Chromium (see glue.js).
pub(crate) fn values_by_key_of(
    store: &IdbObjectStore,
    keys_from: &JsValue,
    query: &JsValue,
    count: Option<u32>,
) -> Pending {
    Pending::settled_in_request(values_by_key(store, keys_from, query, count))
}

/// Issues one request and awaits its result.
pub(crate) async fn request(req: std::result::Result<IdbRequest, JsValue>) -> Result<JsValue> {
    pending(req)?.result().await
}

/// Issues a request without waiting for it: its failure aborts the
/// transaction, which [`Txn::commit`] reports.
pub(crate) fn fire(req: std::result::Result<IdbRequest, JsValue>) -> Result<()> {
    req.map(|_| ()).map_err(from_dom)
}
