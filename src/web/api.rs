//! The exported JavaScript API: thin shims that convert arguments and
//! errors, then call plain Rust. The TypeScript wrapper in `js/` refines
//! these into the public `EventStore`.

use super::idb::layout::DB_PREFIX;
use super::js_json::{self, to_json};
use super::keys::credential::{self, Credential};
use super::options::OpenOptions;
use super::read::EventCursor;
use super::store::{destroy, IdbStore};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::record::Record;
use crate::{event_view, ids, timestamp};
use js_sys::{Array, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// An open event store (the raw wasm class; use `EventStore` from `annal`).
#[wasm_bindgen]
pub struct Store {
    inner: Rc<IdbStore>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").finish_non_exhaustive()
    }
}

fn parse_json(text: &str) -> std::result::Result<JsValue, JsValue> {
    js_sys::JSON::parse(text).map_err(|_| Error::internal("annal produced invalid JSON").into())
}

fn events_js(records: &[Record]) -> std::result::Result<JsValue, JsValue> {
    parse_json(&event_view::write_events(
        records.iter().map(|r| (&r.envelope, r.payload.as_str())),
    ))
}

fn event_js(record: &Record) -> std::result::Result<JsValue, JsValue> {
    let mut out = String::new();
    event_view::write_event(&mut out, &record.envelope, record.payload.as_str());
    parse_json(&out)
}

fn filter_from(value: &JsValue) -> Result<Filter> {
    if value.is_undefined() || value.is_null() {
        return Ok(Filter::default());
    }
    Filter::from_value(&to_json(value, "filter")?)
}

fn set(obj: &js_sys::Object, key: &str, value: JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

#[wasm_bindgen]
impl Store {
    /// Opens or creates a store: `{ name, userId, tenantId?, durability?,
    /// passphrase? | keyEncryptionKey? | recoverySecret?, blindIndexes?,
    /// maxRecordsPerKey? }`.
    pub async fn open(options: JsValue) -> std::result::Result<Store, JsValue> {
        let credential = Credential::from_options(&options)?;
        let plain = credential::without_credentials(&options);
        let options = OpenOptions::from_value(&to_json(&plain, "options")?)?;
        Ok(Store {
            inner: IdbStore::open(options, credential).await?,
        })
    }

    /// Whether records are encrypted at rest.
    #[wasm_bindgen(getter)]
    pub fn encrypted(&self) -> bool {
        self.inner.keys.encrypted()
    }

    /// Whether the keys are locked away (encrypted stores).
    #[wasm_bindgen(getter)]
    pub fn locked(&self) -> bool {
        self.inner.keys.encrypted() && self.inner.keys.locked()
    }

    /// Zeroizes the keys here and in every other context of this store.
    pub fn lock(&self) -> std::result::Result<(), JsValue> {
        Ok(self.inner.lock()?)
    }

    /// Unlocks this context: a passphrase string, or `{ passphrase }`,
    /// `{ keyEncryptionKey }` or `{ recoverySecret }`.
    pub async fn unlock(&self, credential: JsValue) -> std::result::Result<(), JsValue> {
        let credential = Credential::from_value(&credential, "unlock()")?;
        Ok(self.inner.unlock(&credential).await?)
    }

    /// Rewraps the master key under a new passphrase, after checking `old`
    /// (a passphrase, or a credential object). No event is re-encrypted.
    #[wasm_bindgen(js_name = changePassphrase)]
    pub async fn change_passphrase(
        &self,
        old: JsValue,
        new_passphrase: JsValue,
    ) -> std::result::Result<(), JsValue> {
        let old = Credential::from_value(&old, "changePassphrase()")?;
        Ok(self.inner.change_passphrase(&old, &new_passphrase).await?)
    }

    /// A new recovery secret, shown once; the previous one stops working.
    #[wasm_bindgen(js_name = exportRecoveryKey)]
    pub async fn export_recovery_key(&self) -> std::result::Result<String, JsValue> {
        let text = self.inner.export_recovery_key().await?;
        Ok(text.as_str().to_string())
    }

    /// Starts a new data key for new records: `{ keyId }`.
    #[wasm_bindgen(js_name = rotateDataKey)]
    pub async fn rotate_data_key(&self) -> std::result::Result<JsValue, JsValue> {
        let id = self.inner.rotate_data_key().await?;
        let out = js_sys::Object::new();
        set(&out, "keyId", JsValue::from(id));
        Ok(out.into())
    }

    /// Moves every record to the current data key and retires older keys:
    /// `{ keyId, reencrypted, retired }`. Resumable.
    #[wasm_bindgen(js_name = reencryptAll)]
    pub async fn reencrypt_all(
        &self,
        on_progress: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let callback = on_progress.dyn_into::<js_sys::Function>().ok();
        let progress = |done: u64, total: u64| {
            if let Some(f) = &callback {
                let _ = f.call2(
                    &JsValue::NULL,
                    &JsValue::from(done as f64),
                    &JsValue::from(total as f64),
                );
            }
        };
        let done = self.inner.reencrypt_all(&progress).await?;
        let out = js_sys::Object::new();
        set(&out, "keyId", JsValue::from(done.key_id));
        set(&out, "reencrypted", JsValue::from(done.records as f64));
        let retired: Array = done.retired.iter().map(|id| JsValue::from(*id)).collect();
        set(&out, "retired", retired.into());
        Ok(out.into())
    }

    /// The key ring: `{ current, maxRecordsPerKey, keys, reencryption }`.
    #[wasm_bindgen(js_name = keyInfo)]
    pub async fn key_info(&self) -> std::result::Result<JsValue, JsValue> {
        let (ring, head) = self.inner.key_info().await?;
        let out = js_sys::Object::new();
        set(&out, "current", JsValue::from(ring.current));
        set(
            &out,
            "maxRecordsPerKey",
            JsValue::from(ring.max_records_per_key as f64),
        );
        let keys: Array = ring
            .keys
            .iter()
            .map(|k| {
                let o = js_sys::Object::new();
                set(&o, "id", JsValue::from(k.id));
                set(
                    &o,
                    "firstDeviceSeq",
                    JsValue::from(k.first_device_seq as f64),
                );
                set(&o, "records", JsValue::from(ring.usage(k.id, head) as f64));
                set(&o, "retired", JsValue::from(k.retired));
                JsValue::from(o)
            })
            .collect();
        set(&out, "keys", keys.into());
        let job = match &ring.reencryption {
            None => JsValue::NULL,
            Some(r) => {
                let o = js_sys::Object::new();
                set(&o, "target", JsValue::from(r.target));
                set(&o, "nextDeviceSeq", JsValue::from(r.next_device_seq as f64));
                o.into()
            }
        };
        set(&out, "reencryption", job);
        Ok(out.into())
    }

    /// Sets where and how this store syncs: `{ serverUrl, getToken, scope?,
    /// clock?, timeoutMs?, fetch? }`. `getToken(refresh)` returns (a promise of) a
    /// bearer token; `refresh` is true when the last one was refused.
    /// `clock.now()` schedules retries (a fake clock in tests).
    #[wasm_bindgen(js_name = configureSync)]
    pub fn configure_sync(&self, options: JsValue) -> std::result::Result<(), JsValue> {
        let get =
            |k: &str| Reflect::get(&options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
        let url = get("serverUrl")
            .as_string()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| {
                Error::validation(
                    "serverUrl",
                    "serverUrl must be the annal-server's http:// or https:// URL",
                )
            })?;
        let get_token: js_sys::Function = get("getToken").dyn_into().map_err(|_| {
            Error::validation(
                "getToken",
                "getToken must be a function (refresh: boolean) => Promise<string>",
            )
        })?;
        let scope = match get("scope").as_string().as_deref() {
            None | Some("own") => crate::sync::engine::Scope::Own,
            Some("tenant") => crate::sync::engine::Scope::Tenant,
            Some(other) => {
                return Err(Error::validation(
                    "scope",
                    format!("scope must be 'own' or 'tenant', got {other:?}"),
                )
                .into())
            }
        };
        let clock = match get("clock") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(
                Reflect::get(&v, &JsValue::from_str("now"))
                    .ok()
                    .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
                    .map(|f| f.bind0(&v))
                    .ok_or_else(|| {
                        Error::validation("clock", "clock must be an object with now(): number")
                    })?,
            ),
        };
        let fetch = match get("fetch") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(v.dyn_into::<js_sys::Function>().map_err(|_| {
                Error::validation(
                    "fetch",
                    "fetch must be a function (request: Request) => Promise<Response>, like FaultyFetch's from annal/testing",
                )
            })?),
        };
        let timeout_ms = match get("timeoutMs") {
            v if v.is_undefined() => super::sync::fetch::DEFAULT_TIMEOUT_MS,
            v => v
                .as_f64()
                .filter(|t| t.fract() == 0.0 && (100.0..=600_000.0).contains(t))
                .ok_or_else(|| {
                    Error::validation(
                        "timeoutMs",
                        "timeoutMs must be a whole number of milliseconds from 100 to 600000",
                    )
                })? as u32,
        };
        self.inner.db()?;
        self.inner.sync.configure(super::sync::run::SyncConfig {
            server_url: url,
            tokens: super::sync::tokens::JsTokens { get_token },
            scope,
            clock: super::sync::run::JsClock { now: clock },
            timeout_ms,
            fetch,
        });
        Ok(())
    }

    /// Pushes the outbox and pulls and verifies the server ledger:
    /// `{ pushed, pulled, verified, rejected, conflicts, acked }`.
    /// `onProgress(verified, seq, more)` hears about each pull page, and
    /// `onPulled(json)` gets each stored page of other devices' events, as
    /// the JSON text of their array (parsed only where a subscriber wants
    /// them, and cheap to post to other contexts).
    pub async fn sync(
        &self,
        on_progress: JsValue,
        on_pulled: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let mut hooks = super::sync::run::PassHooks::default();
        if let Ok(f) = on_progress.dyn_into::<js_sys::Function>() {
            hooks.progress = Some(Box::new(move |verified: u64, seq: u64, more: bool| {
                let _ = f.call3(
                    &JsValue::NULL,
                    &JsValue::from(verified as f64),
                    &JsValue::from(seq as f64),
                    &JsValue::from_bool(more),
                );
            }));
        }
        if let Ok(f) = on_pulled.dyn_into::<js_sys::Function>() {
            hooks.pulled = Some(Rc::new(move |pulled: &[crate::sync::pull::Pulled]| {
                let json = event_view::write_events(
                    pulled
                        .iter()
                        .map(|p| (&p.record.envelope, p.record.payload.as_str())),
                );
                let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&json));
            }));
        }
        let r = self.inner.sync(hooks).await?;
        let out = js_sys::Object::new();
        for (k, v) in [
            ("pushed", r.pushed),
            ("pulled", r.pulled),
            ("verified", r.verified),
            ("rejected", r.rejected),
            ("conflicts", r.conflicts),
            ("acked", r.acked),
        ] {
            set(&out, k, JsValue::from(v as f64));
        }
        Ok(out.into())
    }

    /// Stops the pass running in this context, and passes waiting for it:
    /// they reject with ANNAL_CANCELLED. Nothing is lost.
    #[wasm_bindgen(js_name = cancelSync)]
    pub fn cancel_sync(&self) {
        self.inner.sync.cancel();
    }

    /// Whether a sync pass runs in this context now.
    #[wasm_bindgen(getter)]
    pub fn syncing(&self) -> bool {
        self.inner.sync.running()
    }

    /// The session key of a passphrase unlock (a non-extractable
    /// `CryptoKey`), or null: what a page hands its service worker.
    #[wasm_bindgen(js_name = sessionKey)]
    pub fn session_key(&self) -> JsValue {
        self.inner.keys.session().unwrap_or(JsValue::NULL)
    }

    /// `{ state, pending, acked, lastSyncAt, lastError, nextAttemptAt, checkpoint }`.
    #[wasm_bindgen(js_name = syncStatus)]
    pub async fn sync_status(&self) -> std::result::Result<JsValue, JsValue> {
        let (state, head) = self.inner.sync_state().await?;
        let out = js_sys::Object::new();
        let retrying = super::sync::run::retrying(&state.retry);
        let label = match (&state.retry.last_error, retrying) {
            _ if self.inner.keys.locked() => "locked",
            _ if self.inner.sync.running() => "syncing",
            (None, _) => "idle",
            (Some(_), true) => "offline",
            (Some(_), false) => "error",
        };
        set(&out, "state", JsValue::from_str(label));
        set(
            &out,
            "pending",
            JsValue::from(head.saturating_sub(state.acked) as f64),
        );
        set(&out, "acked", JsValue::from(state.acked as f64));
        set(
            &out,
            "lastSyncAt",
            state
                .retry
                .last_success_ms
                .map_or(JsValue::NULL, |t| JsValue::from(t as f64)),
        );
        set(
            &out,
            "lastError",
            state
                .retry
                .last_error
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
        set(
            &out,
            "nextAttemptAt",
            if retrying {
                JsValue::from(state.retry.next_attempt_ms as f64)
            } else {
                JsValue::NULL
            },
        );
        set(
            &out,
            "checkpoint",
            match &state.checkpoint {
                None => JsValue::NULL,
                Some(c) => parse_json(&serde_json::to_string(c).unwrap_or_default())?,
            },
        );
        Ok(out.into())
    }

    /// Events the server quarantined: `[{ deviceSeq, eventId, code, message, receipt }]`.
    pub async fn rejected(&self) -> std::result::Result<JsValue, JsValue> {
        self.receipt_rows("quarantined").await
    }

    /// Events the server flagged: `[{ deviceSeq, eventId, conflictsWith, receipt }]`.
    pub async fn conflicts(&self) -> std::result::Result<JsValue, JsValue> {
        self.receipt_rows("conflict").await
    }

    /// Verified events of other devices pulled from the server.
    #[wasm_bindgen(js_name = remoteEvents)]
    pub async fn remote_events(&self) -> std::result::Result<JsValue, JsValue> {
        let store = super::sync::idb_store::IdbSyncStore::of(&self.inner);
        events_js(&store.remote_events().await?)
    }

    /// Calls `callback(locked)` when this context locks or unlocks.
    #[wasm_bindgen(js_name = onLockChange)]
    pub fn on_lock_change(&self, callback: JsValue) {
        self.inner
            .keys
            .on_change(callback.dyn_into::<js_sys::Function>().ok());
    }

    /// Deletes a store's database. Other open connections are closed.
    pub async fn destroy(name: JsValue) -> std::result::Result<(), JsValue> {
        let name = name
            .as_string()
            .ok_or_else(|| Error::validation("name", "destroy() takes the store name, a string"))?;
        ids::check_id("name", &name)?;
        Ok(destroy(&name).await?)
    }

    /// Appends one event and resolves with it once it is durable.
    pub async fn append(&self, event: JsValue) -> std::result::Result<JsValue, JsValue> {
        let drafts = js_json::drafts(&Array::of1(&event), &|_, err| err)?;
        let records = self.inner.append_unit(drafts).await?;
        event_js(
            records
                .first()
                .ok_or_else(|| Error::internal("append returned no event"))?,
        )
    }

    /// Appends events atomically: all are written, or none.
    #[wasm_bindgen(js_name = appendBatch)]
    pub async fn append_batch(&self, events: JsValue) -> std::result::Result<JsValue, JsValue> {
        if !Array::is_array(&events) {
            return Err(
                Error::validation("events", "appendBatch() takes an array of events").into(),
            );
        }
        let events: Array = events.unchecked_into();
        if events.length() == 0 {
            return Err(
                Error::validation("events", "appendBatch() needs at least one event").into(),
            );
        }
        let drafts = js_json::drafts(&events, &|i, err| {
            let at = format!("[{i}]");
            Error {
                message: format!("events{at}: {}", err.message),
                ..err.within(&at)
            }
        })?;
        events_js(&self.inner.append_unit(drafts).await?)
    }

    /// All events matching a filter, as an array.
    pub async fn events(&self, filter: JsValue) -> std::result::Result<JsValue, JsValue> {
        let filter = filter_from(&filter)?;
        let records = EventCursor::new(self.inner.clone(), filter)
            .collect()
            .await?;
        events_js(&records)
    }

    /// A cursor over the events matching a filter, read in pages.
    pub fn iterate(&self, filter: JsValue) -> std::result::Result<Cursor, JsValue> {
        let filter = filter_from(&filter)?;
        self.inner.db()?;
        Ok(Cursor {
            inner: Rc::new(RefCell::new(Some(EventCursor::new(
                self.inner.clone(),
                filter,
            )))),
        })
    }

    /// `{ aggregateId, version, events }` of one aggregate.
    pub async fn aggregate(&self, aggregate_id: JsValue) -> std::result::Result<JsValue, JsValue> {
        let id = aggregate_id.as_string().ok_or_else(|| {
            Error::validation("aggregateId", "aggregate() takes an aggregate id, a string")
        })?;
        ids::check_id("aggregateId", &id)?;
        let (version, records) = self.inner.aggregate(&id).await?;
        let out = js_sys::Object::new();
        set(&out, "aggregateId", JsValue::from_str(&id));
        set(&out, "version", JsValue::from(version as f64));
        set(&out, "events", events_js(&records)?);
        Ok(out.into())
    }

    /// `{ deviceSeq, hash }` of the last event (0 and 64 zeros when empty).
    pub async fn head(&self) -> std::result::Result<JsValue, JsValue> {
        let head = self.inner.head().await?;
        let out = js_sys::Object::new();
        set(&out, "deviceSeq", JsValue::from(head.device_seq as f64));
        set(&out, "hash", JsValue::from_str(&head.hash));
        Ok(out.into())
    }

    /// Recomputes every hash and link: `{ ok, checked, firstBadSeq?, reason?, message? }`.
    /// `onProgress(checked, total)` is called as the scan advances.
    pub async fn verify(&self, on_progress: JsValue) -> std::result::Result<JsValue, JsValue> {
        let callback = on_progress.dyn_into::<js_sys::Function>().ok();
        let progress = |checked: u64, total: u64| {
            if let Some(f) = &callback {
                // A throwing progress callback must not stop verification.
                let _ = f.call2(
                    &JsValue::NULL,
                    &JsValue::from(checked as f64),
                    &JsValue::from(total as f64),
                );
            }
        };
        let report = self.inner.verify(&progress).await?;
        let out = js_sys::Object::new();
        set(&out, "ok", JsValue::from(report.ok));
        set(&out, "checked", JsValue::from(report.checked as f64));
        if let Some(b) = report.first_break {
            set(&out, "firstBadSeq", JsValue::from(b.device_seq as f64));
            set(&out, "reason", JsValue::from_str(b.reason.as_str()));
            set(&out, "message", JsValue::from_str(&b.message));
        }
        Ok(out.into())
    }

    /// The audit document, as a `Blob` of type `application/json`.
    #[wasm_bindgen(js_name = exportAudit)]
    pub async fn export_audit(&self) -> std::result::Result<web_sys::Blob, JsValue> {
        let exported_at = timestamp::format_ms(super::platform::BrowserClock.now_ms());
        let chunks = self.inner.export_audit(&exported_at).await?;
        let parts: Array = chunks.iter().map(|c| JsValue::from_str(c)).collect();
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("application/json");
        web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
            .map_err(|e| super::idb::errors::from_dom(e).into())
    }

    /// Closes the store. Later calls fail with `ANNAL_CLOSED`.
    pub fn close(&self) {
        self.inner.close();
    }

    /// `{ name, databaseName, storeId, tenantId, userId, deviceId }`.
    #[wasm_bindgen(getter)]
    pub fn identity(&self) -> JsValue {
        let id = &self.inner.identity;
        let out = js_sys::Object::new();
        set(&out, "name", JsValue::from_str(&self.inner.name));
        set(
            &out,
            "databaseName",
            JsValue::from_str(&format!("{DB_PREFIX}{}", self.inner.name)),
        );
        set(&out, "storeId", JsValue::from_str(&id.store_id));
        set(&out, "tenantId", JsValue::from_str(&id.tenant_id));
        set(&out, "userId", JsValue::from_str(&id.user_id));
        set(&out, "deviceId", JsValue::from_str(&id.device_id));
        out.into()
    }
}

impl Store {
    async fn receipt_rows(&self, outcome: &str) -> std::result::Result<JsValue, JsValue> {
        let at_rest = self.inner.at_rest()?;
        let store = super::sync::idb_store::IdbSyncStore::of(&self.inner);
        let out = Array::new();
        for row in store.receipts_with(outcome).await? {
            let row = super::sync::idb_store::open_row(&at_rest, &row)?;
            let get =
                |k: &str| Reflect::get(&row, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
            let o = js_sys::Object::new();
            set(&o, "deviceSeq", get("device_seq"));
            set(&o, "eventId", get("event_id"));
            if outcome == "quarantined" {
                set(&o, "code", get("code"));
                set(&o, "message", get("message"));
            } else {
                set(&o, "conflictsWith", get("conflicts_with"));
            }
            let receipt = get("receipt").as_string().unwrap_or_default();
            set(&o, "receipt", parse_json(&receipt)?);
            out.push(&o);
        }
        Ok(out.into())
    }
}

/// A page-by-page reader returned by `Store.iterate`.
#[wasm_bindgen]
pub struct Cursor {
    inner: Rc<RefCell<Option<EventCursor>>>,
}

#[wasm_bindgen]
impl Cursor {
    /// The next array of events, or `null` at the end.
    pub async fn next(&self) -> std::result::Result<JsValue, JsValue> {
        let Some(mut cursor) = self.inner.borrow_mut().take() else {
            return Err(Error::validation(
                "iterate",
                "this iterator is already reading; await each next() before calling it again",
            )
            .into());
        };
        let result = cursor.next_batch().await;
        *self.inner.borrow_mut() = Some(cursor);
        match result? {
            Some(records) => events_js(&records),
            None => Ok(JsValue::NULL),
        }
    }
}
