//! [`SyncStore`] over IndexedDB. The outbox is the log itself above the
//! watermark; receipts are stored in the same transaction that advances
//! the watermark, and pulled events with the checkpoint they lead to.

use crate::at_rest::AtRest;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::record::Record;
use crate::state::Identity;
use crate::sync::backoff::RetryState;
use crate::sync::engine::{SyncState, SyncStore};
use crate::sync::pull::{Checkpoint, Pulled, RemoteHead};
use crate::sync::push::PushOutcome;
use crate::sync::receipts::ReceiptRow;
use crate::web::idb::layout::set;
use crate::web::idb::layout::{RECEIPTS, REMOTE, SYNC};
use crate::web::idb::txn::{fire, pending, request, Durability, Txn};
use crate::web::platform::BrowserEntropy;
use crate::web::read::EventCursor;
use crate::web::store::IdbStore;
use crate::web::sync::remote_rows;
use js_sys::{Object, Reflect, Uint8Array};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbKeyRange;

const STATE_KEY: &str = "state";

/// Called with each page of pulled events once it is stored.
pub(crate) type OnPulled = Rc<dyn Fn(&[Pulled])>;

/// The sync side of an open store.
#[derive(Clone)]
pub(crate) struct IdbSyncStore {
    pub(crate) store: Rc<IdbStore>,
    pub(crate) on_pulled: Option<OnPulled>,
}

impl IdbSyncStore {
    /// The sync side of `store`, telling no one about pulls.
    pub(crate) fn of(store: &Rc<IdbStore>) -> IdbSyncStore {
        IdbSyncStore {
            store: store.clone(),
            on_pulled: None,
        }
    }
}

fn state_from_js(v: &JsValue) -> Result<SyncState> {
    if v.is_undefined() || v.is_null() {
        return Ok(SyncState::default());
    }
    let text = Reflect::get(v, &JsValue::from_str("state"))
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| Error::storage("the stored sync state is unreadable"))?;
    serde_json::from_str(&text).map_err(|_| Error::storage("the stored sync state is unreadable"))
}

fn state_to_js(state: &SyncState) -> JsValue {
    let o = Object::new();
    set(
        &o,
        "state",
        &JsValue::from_str(&serde_json::to_string(state).unwrap_or_default()),
    );
    o.into()
}

impl IdbSyncStore {
    async fn update_state(
        &self,
        stores: &[&str],
        change: impl FnOnce(&mut SyncState),
        txn: Option<Txn>,
    ) -> Result<Txn> {
        let txn = match txn {
            Some(t) => t,
            None => Txn::begin(self.store.db()?, stores, true, Durability::Strict)?,
        };
        let changed = async {
            let sync = txn.store(SYNC)?;
            let mut state =
                state_from_js(&request(sync.get(&JsValue::from_str(STATE_KEY))).await?)?;
            change(&mut state);
            fire(sync.put_with_key(&state_to_js(&state), &JsValue::from_str(STATE_KEY)))
        };
        match changed.await {
            Ok(()) => Ok(txn),
            Err(e) => {
                // Nothing the transaction wrote before may commit without the state.
                txn.abort();
                Err(e)
            }
        }
    }

    /// The saved sync state, read on its own.
    pub(crate) async fn load(&self) -> Result<SyncState> {
        let txn = Txn::begin(self.store.db()?, &[SYNC], false, self.store.durability)?;
        state_from_js(&request(txn.store(SYNC)?.get(&JsValue::from_str(STATE_KEY))).await?)
    }

    /// Receipt rows with this outcome, as JSON objects.
    pub(crate) async fn receipts_with(&self, outcome: &str) -> Result<Vec<JsValue>> {
        let txn = Txn::begin(self.store.db()?, &[RECEIPTS], false, self.store.durability)?;
        let index = txn
            .store(RECEIPTS)?
            .index(crate::web::idb::layout::BY_OUTCOME)
            .map_err(crate::web::idb::errors::from_dom)?;
        let rows = request(index.get_all_with_key(&JsValue::from_str(outcome))).await?;
        Ok(rows.unchecked_into::<js_sys::Array>().iter().collect())
    }

    /// Other devices' events pulled so far, in ledger order.
    pub(crate) async fn remote_events(&self) -> Result<Vec<Record>> {
        let at_rest = self.store.at_rest_for(None).await?;
        let txn = Txn::begin(self.store.db()?, &[REMOTE], false, self.store.durability)?;
        let rows: js_sys::Array = request(txn.store(REMOTE)?.get_all())
            .await?
            .unchecked_into();
        let mut out = Vec::with_capacity(rows.length() as usize);
        for row in rows.iter() {
            for (seq, bytes) in remote_rows::records_of(&row)? {
                out.extend(at_rest.read_checked(seq, &bytes)?);
            }
        }
        Ok(out)
    }
}

/// Kind of sealed metadata that holds a receipt row's details.
const RECEIPT_KIND: &str = "receipt";

/// In encrypted stores a receipt row keeps only its `device_seq` and
/// `outcome` (for the index) in the clear; the server's reason, which can
/// quote the app's data, and the rest are sealed.
fn seal_row(keys: &crate::crypto::keys::KeySet, seq: u64, row: &Object) -> Object {
    let text = js_sys::JSON::stringify(row)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default();
    let sealed =
        crate::crypto::metadata::seal(keys, RECEIPT_KIND, seq, text.as_bytes(), &BrowserEntropy);
    let o = Object::new();
    set(&o, "device_seq", &JsValue::from(seq as f64));
    if let Ok(outcome) = Reflect::get(row, &JsValue::from_str("outcome")) {
        set(&o, "outcome", &outcome);
    }
    set(&o, "sealed", &Uint8Array::from(sealed.as_slice()));
    o
}

/// `v` as JSON text.
fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> JsValue {
    JsValue::from_str(&serde_json::to_string(v).unwrap_or_default())
}

/// A receipt row as stored in the clear (docs/FORMAT.md §8.1).
fn receipt_row(row: &ReceiptRow<'_>) -> Object {
    let o = Object::new();
    set(&o, "device_seq", &JsValue::from(row.key() as f64));
    match row {
        ReceiptRow::Run { last, receipts, .. } => {
            set(&o, "last_device_seq", &JsValue::from(*last as f64));
            set(&o, "outcome", &JsValue::from_str("accepted"));
            set(&o, "receipts", &json_text(receipts));
        }
        ReceiptRow::Quarantined(q) => {
            set(&o, "outcome", &JsValue::from_str("quarantined"));
            set(&o, "receipt", &json_text(&q.receipt));
            set(&o, "event_id", &JsValue::from_str(&q.event_id));
            set(&o, "code", &JsValue::from_str(&q.code));
            set(&o, "message", &JsValue::from_str(&q.message));
        }
        ReceiptRow::Conflict(c) => {
            set(&o, "outcome", &JsValue::from_str("conflict"));
            set(&o, "receipt", &json_text(&c.receipt));
            set(&o, "event_id", &JsValue::from_str(&c.event_id));
            let ids: js_sys::Array = c
                .conflicts_with
                .iter()
                .map(|i| JsValue::from_str(i))
                .collect();
            set(&o, "conflicts_with", &ids);
        }
    }
    o
}

/// A receipt row as written, opening it if sealed.
pub(crate) fn open_row(at_rest: &AtRest, row: &JsValue) -> Result<JsValue> {
    let sealed = Reflect::get(row, &JsValue::from_str("sealed")).unwrap_or(JsValue::UNDEFINED);
    let Some(bytes) = sealed.dyn_ref::<Uint8Array>() else {
        return Ok(row.clone());
    };
    let AtRest::Sealed(s) = at_rest else {
        return Err(Error::storage("a sealed receipt in a plain store"));
    };
    let seq = Reflect::get(row, &JsValue::from_str("device_seq"))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as u64;
    let plain = crate::crypto::metadata::open(&s.keys, RECEIPT_KIND, seq, &bytes.to_vec())
        .map_err(|_| {
            Error::tampered(
                seq,
                format!("the stored receipt of event {seq} failed its integrity check"),
            )
        })?;
    let text = String::from_utf8(plain)
        .map_err(|_| Error::tampered(seq, "a stored receipt is not text"))?;
    js_sys::JSON::parse(&text).map_err(|_| Error::tampered(seq, "a stored receipt is not JSON"))
}

/// One record's bytes as stored: plain, or sealed under the current key.
impl SyncStore for IdbSyncStore {
    fn identity(&self) -> Identity {
        self.store.identity.clone()
    }

    async fn sync_state(&self) -> Result<SyncState> {
        self.load().await
    }

    async fn pending(&self, after: u64, limit: usize) -> Result<Vec<Record>> {
        let filter = Filter {
            from_seq: Some(after + 1),
            limit: Some(limit),
            ..Filter::default()
        };
        EventCursor::new(self.store.clone(), filter).collect().await
    }

    async fn local_hashes(&self, device_seqs: &[u64]) -> Result<HashMap<u64, String>> {
        let (Some(&first), Some(&last)) = (device_seqs.first(), device_seqs.last()) else {
            return Ok(HashMap::new());
        };
        // One scan over the pages that hold the range, not a read per event.
        let filter = Filter {
            from_seq: Some(first.max(1)),
            to_seq: Some(last),
            ..Filter::default()
        };
        let wanted: std::collections::HashSet<u64> = device_seqs.iter().copied().collect();
        let mut out = HashMap::new();
        let mut cursor = EventCursor::new(self.store.clone(), filter);
        while let Some(batch) = cursor.next_batch().await? {
            for r in batch {
                if wanted.contains(&r.envelope.device_seq) {
                    out.insert(r.envelope.device_seq, r.envelope.hash);
                }
            }
        }
        Ok(out)
    }

    async fn save_push(&self, outcome: &PushOutcome) -> Result<()> {
        let at_rest = self.store.at_rest()?;
        let txn = Txn::begin(
            self.store.db()?,
            &[SYNC, RECEIPTS],
            true,
            Durability::Strict,
        )?;
        let written = (|| -> Result<()> {
            let receipts = txn.store(RECEIPTS)?;
            if let Some((first, last)) = crate::sync::receipts::replaced(outcome) {
                let range =
                    IdbKeyRange::bound(&JsValue::from(first as f64), &JsValue::from(last as f64))
                        .map_err(crate::web::idb::errors::from_dom)?;
                fire(receipts.delete(&range))?;
            }
            for row in crate::sync::receipts::rows(outcome) {
                let seq = row.key();
                let o = receipt_row(&row);
                let row = match &*at_rest {
                    AtRest::Plain => o,
                    AtRest::Sealed(s) => seal_row(&s.keys, seq, &o),
                };
                fire(receipts.put_with_key(&row, &JsValue::from(seq as f64)))?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // The old rows are deleted only together with the new ones.
            txn.abort();
            return Err(e);
        }
        let acked = outcome.acked;
        let checkpoint = outcome.checkpoint.clone();
        let txn = self
            .update_state(
                &[],
                |s| {
                    s.acked = acked;
                    if let Some(checkpoint) = checkpoint {
                        s.checkpoint = Some(checkpoint);
                    }
                },
                Some(txn),
            )
            .await?;
        txn.commit().await
    }

    async fn save_pull(
        &self,
        pulled: &[Pulled],
        checkpoint: &Checkpoint,
        remote: &HashMap<String, RemoteHead>,
    ) -> Result<()> {
        let at_rest = self.store.at_rest_for(None).await?;
        let txn = Txn::begin(self.store.db()?, &[SYNC, REMOTE], true, Durability::Strict)?;
        let written = async {
            // Read the state first, so the writes below follow a read.
            let sync = txn.store(SYNC)?;
            let state_read = pending(sync.get(&JsValue::from_str(STATE_KEY)))?;
            remote_rows::put(&txn.store(REMOTE)?, &at_rest, pulled)?;
            let mut state = state_from_js(&state_read.result().await?)?;
            state.checkpoint = Some(checkpoint.clone());
            state.remote = remote.clone();
            fire(sync.put_with_key(&state_to_js(&state), &JsValue::from_str(STATE_KEY)))
        };
        if let Err(e) = written.await {
            // The events are kept only with the checkpoint they lead to.
            txn.abort();
            return Err(e);
        }
        txn.commit().await?;
        if let (Some(tell), false) = (&self.on_pulled, pulled.is_empty()) {
            tell(pulled);
        }
        Ok(())
    }

    async fn save_retry(&self, retry: &RetryState) -> Result<()> {
        let retry = retry.clone();
        let txn = self
            .update_state(&[SYNC], |s| s.retry = retry, None)
            .await?;
        txn.commit().await
    }
}
