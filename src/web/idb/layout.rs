//! The IndexedDB layout of a store (docs/FORMAT.md, "At-rest layout"), and
//! the conversion of its records to and from JavaScript values.

use crate::error::{Error, Result};
use crate::jcs;
use crate::page::{Page, PageMeta};
use crate::state::{AggregateState, Head, IdempotencyEntry, Identity};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/src/web/idb/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = pageValue)]
    fn page_value(meta: &str, records: &[u8]) -> JsValue;
}

/// Database names are `annal:` + the store name, so they never collide
/// with an app's own databases.
pub(crate) const DB_PREFIX: &str = "annal:";
/// The IndexedDB version of this layout. Raised by each migration.
pub(crate) const LAYOUT_VERSION: u32 = 3;

pub(crate) const META: &str = "meta";
pub(crate) const PAGES: &str = "pages";
pub(crate) const AGGREGATES: &str = "aggregates";
pub(crate) const IDEMPOTENCY: &str = "idempotency";
pub(crate) const ALL_STORES: [&str; 4] = [META, PAGES, AGGREGATES, IDEMPOTENCY];
/// Sync state (layout 2): key `"state"` → `{ state: <JSON text> }`.
pub(crate) const SYNC: &str = "sync";
/// Receipts (layout 2): key `device_seq` → the server's answer for it.
pub(crate) const RECEIPTS: &str = "receipts";
/// Other devices' events pulled from the ledger (layout 2): key ledger `seq`.
pub(crate) const REMOTE: &str = "remote";
pub(crate) const BY_OUTCOME: &str = "by_outcome";

pub(crate) const META_STORE_KEY: &str = "store";
pub(crate) const META_HEAD_KEY: &str = "head";
pub(crate) const META_KEYS_KEY: &str = "keys";
pub(crate) const META_KEYRING_KEY: &str = "keyring";

/// `layout` in the `"store"` record of a plain store.
pub(crate) const STORE_LAYOUT_PLAIN: u32 = 1;
/// `layout` in the `"store"` record of an encrypted store (§8.4): the same
/// object stores, sealed records and blind index values.
pub(crate) const STORE_LAYOUT_ENCRYPTED: u32 = 2;

pub(crate) const BY_AGGREGATE_ID: &str = "by_aggregate_id";
pub(crate) const BY_AGGREGATE_TYPE: &str = "by_aggregate_type";
pub(crate) const BY_EVENT_TYPE: &str = "by_event_type";
pub(crate) const BY_TIME_BUCKET: &str = "by_time_bucket";
/// Layout 3: multi-entry over `aggregate_heads`, keys
/// `[aggregate_id, version, aggregate_type, last_device_seq]`.
pub(crate) const BY_AGGREGATE_HEAD: &str = "by_aggregate_head";

/// Sets `obj[key]` on a plain object.
pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// `obj[key]`, unless it is missing, undefined or null.
pub(crate) fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn corrupt(what: &str, field: &str) -> Error {
    Error::new(
        crate::error::ErrorCode::Tampered,
        format!(
            "the stored {what} record has no valid {field}; run verify() and restore from a backup"
        ),
    )
}

fn get_str(obj: &JsValue, what: &str, key: &str) -> Result<String> {
    get(obj, key)
        .and_then(|v| v.as_string())
        .ok_or_else(|| corrupt(what, key))
}

fn get_u64(obj: &JsValue, what: &str, key: &str) -> Result<u64> {
    get(obj, key)
        .and_then(|v| v.as_f64())
        .and_then(crate::payload::safe_count_f64)
        .ok_or_else(|| corrupt(what, key))
}

fn get_strings(obj: &JsValue, what: &str, key: &str) -> Result<Vec<String>> {
    let value = get(obj, key).ok_or_else(|| corrupt(what, key))?;
    let array: &Array = value.dyn_ref().ok_or_else(|| corrupt(what, key))?;
    array
        .iter()
        .map(|v| v.as_string().ok_or_else(|| corrupt(what, key)))
        .collect()
}

/// How a store keeps its records, from its `"store"` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Plain,
    Encrypted { blind_indexes: bool },
}

/// The `meta` record `"store"`.
pub(crate) fn identity_to_js(identity: &Identity, created_at: &str, kind: StoreKind) -> JsValue {
    let o = Object::new();
    match kind {
        StoreKind::Plain => set(&o, "layout", &JsValue::from(STORE_LAYOUT_PLAIN)),
        StoreKind::Encrypted { blind_indexes } => {
            set(&o, "layout", &JsValue::from(STORE_LAYOUT_ENCRYPTED));
            let e = Object::new();
            set(&e, "cipher", &JsValue::from_str("AES-256-GCM"));
            set(&e, "blind_indexes", &JsValue::from(blind_indexes));
            set(&o, "encryption", &e);
        }
    }
    set(&o, "format", &JsValue::from_str(crate::envelope::FORMAT));
    set(&o, "store_id", &JsValue::from_str(&identity.store_id));
    set(&o, "tenant_id", &JsValue::from_str(&identity.tenant_id));
    set(&o, "user_id", &JsValue::from_str(&identity.user_id));
    set(&o, "device_id", &JsValue::from_str(&identity.device_id));
    set(&o, "created_at", &JsValue::from_str(created_at));
    o.into()
}

pub(crate) fn identity_from_js(v: &JsValue) -> Result<(Identity, StoreKind)> {
    let layout = get_u64(v, "store", "layout")?;
    let kind = match u32::try_from(layout) {
        Ok(STORE_LAYOUT_PLAIN) => StoreKind::Plain,
        Ok(STORE_LAYOUT_ENCRYPTED) => {
            let e = get(v, "encryption").ok_or_else(|| corrupt("store", "encryption"))?;
            let blind = get(&e, "blind_indexes")
                .and_then(|b| b.as_bool())
                .ok_or_else(|| corrupt("store", "encryption.blind_indexes"))?;
            if get(&e, "cipher").and_then(|c| c.as_string()).as_deref() != Some("AES-256-GCM") {
                return Err(corrupt("store", "encryption.cipher"));
            }
            StoreKind::Encrypted {
                blind_indexes: blind,
            }
        }
        _ => {
            return Err(Error::new(
                crate::error::ErrorCode::Schema,
                format!("this store uses annal layout {layout}, and this version of annal reads layouts {STORE_LAYOUT_PLAIN} and {STORE_LAYOUT_ENCRYPTED}; upgrade the app"),
            ))
        }
    };
    let identity = Identity {
        store_id: get_str(v, "store", "store_id")?,
        tenant_id: get_str(v, "store", "tenant_id")?,
        user_id: get_str(v, "store", "user_id")?,
        device_id: get_str(v, "store", "device_id")?,
    };
    Ok((identity, kind))
}

/// The `meta` record `"head"`, with its MAC in encrypted stores.
pub(crate) fn head_to_js(head: &Head, mac: Option<&str>) -> JsValue {
    let o = Object::new();
    set(&o, "device_seq", &JsValue::from(head.device_seq as f64));
    set(&o, "hash", &JsValue::from_str(&head.hash));
    if let Some(mac) = mac {
        set(&o, "mac", &JsValue::from_str(mac));
    }
    o.into()
}

/// The MAC of a `"head"` record, if it has one.
pub(crate) fn head_mac_from_js(v: &JsValue) -> Option<String> {
    get(v, "mac").and_then(|m| m.as_string())
}

/// The `meta` record `"keyring"`: the ring's JSON text and its MAC.
pub(crate) fn keyring_to_js(ring: &str, mac: &str) -> JsValue {
    let o = Object::new();
    set(&o, "ring", &JsValue::from_str(ring));
    set(&o, "mac", &JsValue::from_str(mac));
    o.into()
}

pub(crate) fn keyring_from_js(v: &JsValue) -> Result<(String, String)> {
    Ok((
        get_str(v, "keyring", "ring")?,
        get_str(v, "keyring", "mac")?,
    ))
}

pub(crate) fn head_from_js(v: &JsValue) -> Result<Option<Head>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    Ok(Some(Head {
        device_seq: get_u64(v, "head", "device_seq")?,
        hash: get_str(v, "head", "hash")?,
    }))
}

/// A `pages` record. Its metadata crosses into JavaScript as one JSON text
/// that glue.js parses, rather than a call per string and number.
pub(crate) fn page_to_js(page: &Page) -> JsValue {
    let m = &page.meta;
    let mut meta = String::with_capacity(64 + 96 * m.aggregate_ids.len());
    let strings = |out: &mut String, key: &str, list: &[String]| {
        out.push_str(&format!(",\"{key}\":["));
        for (i, s) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            jcs::write_string(out, s);
        }
        out.push(']');
    };
    meta.push_str(&format!(
        "{{\"first_device_seq\":{},\"last_device_seq\":{}",
        m.first_device_seq, m.last_device_seq
    ));
    strings(&mut meta, "aggregate_ids", &m.aggregate_ids);
    strings(&mut meta, "aggregate_types", &m.aggregate_types);
    strings(&mut meta, "event_types", &m.event_types);
    meta.push_str(",\"time_buckets\":[");
    for (i, b) in m.time_buckets.iter().enumerate() {
        meta.push_str(&format!("{}{b}", if i > 0 { "," } else { "" }));
    }
    meta.push(']');
    if let Some(heads) = &m.aggregate_heads {
        meta.push_str(",\"aggregate_heads\":[");
        for (i, (id, a)) in heads.iter().enumerate() {
            meta.push_str(if i > 0 { ",[" } else { "[" });
            jcs::write_string(&mut meta, id);
            meta.push_str(&format!(",{},", a.version));
            jcs::write_string(&mut meta, &a.aggregate_type);
            meta.push_str(&format!(",{}]", a.last_device_seq));
        }
        meta.push(']');
    }
    meta.push('}');
    page_value(&meta, &page.records)
}

/// The packed records of a `pages` record.
pub(crate) fn page_records_from_js(v: &JsValue) -> Result<Vec<u8>> {
    let records = get(v, "records").ok_or_else(|| corrupt("page", "records"))?;
    let bytes: &Uint8Array = records
        .dyn_ref()
        .ok_or_else(|| corrupt("page", "records"))?;
    Ok(bytes.to_vec())
}

/// A stored page's key, `first_device_seq`, without reading the rest.
pub(crate) fn page_first_device_seq(v: &JsValue) -> Result<u64> {
    get_u64(v, "page", "first_device_seq")
}

/// A whole `pages` record.
pub(crate) fn page_from_js(v: &JsValue) -> Result<Page> {
    let buckets = get(v, "time_buckets").ok_or_else(|| corrupt("page", "time_buckets"))?;
    let buckets: &Array = buckets
        .dyn_ref()
        .ok_or_else(|| corrupt("page", "time_buckets"))?;
    let time_buckets = buckets
        .iter()
        .map(|b| {
            b.as_f64()
                .map(|f| f as i64)
                .ok_or_else(|| corrupt("page", "time_buckets"))
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(Page {
        meta: PageMeta {
            first_device_seq: get_u64(v, "page", "first_device_seq")?,
            last_device_seq: get_u64(v, "page", "last_device_seq")?,
            aggregate_ids: get_strings(v, "page", "aggregate_ids")?,
            aggregate_types: get_strings(v, "page", "aggregate_types")?,
            event_types: get_strings(v, "page", "event_types")?,
            time_buckets,
            aggregate_heads: match get(v, "aggregate_heads") {
                None => None,
                Some(list) => Some(
                    list.dyn_ref::<Array>()
                        .ok_or_else(|| corrupt("page", "aggregate_heads"))?
                        .iter()
                        .map(|key| aggregate_head_from_key(&key))
                        .collect::<Result<_>>()?,
                ),
            },
        },
        records: page_records_from_js(v)?,
    })
}

/// An `aggregate_heads` entry, which is also its `by_aggregate_head` key,
/// read back: `[aggregate_id, version, aggregate_type, last_device_seq]`.
pub(crate) fn aggregate_head_from_key(key: &JsValue) -> Result<(String, AggregateState)> {
    let bad = || corrupt("page", "aggregate_heads");
    let key: &Array = key.dyn_ref().ok_or_else(bad)?;
    let count = |v: JsValue| v.as_f64().and_then(crate::payload::safe_count_f64);
    if key.length() != 4 {
        return Err(bad());
    }
    Ok((
        key.get(0).as_string().ok_or_else(bad)?,
        AggregateState {
            version: count(key.get(1)).ok_or_else(bad)?,
            aggregate_type: key.get(2).as_string().ok_or_else(bad)?,
            last_device_seq: count(key.get(3)).ok_or_else(bad)?,
        },
    ))
}

/// An `aggregates` record (written before layout 3).
pub(crate) fn aggregate_from_js(v: &JsValue) -> Result<Option<AggregateState>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    Ok(Some(AggregateState {
        aggregate_type: get_str(v, "aggregate", "aggregate_type")?,
        version: get_u64(v, "aggregate", "version")?,
        last_device_seq: get_u64(v, "aggregate", "last_device_seq")?,
    }))
}

/// An `idempotency` record.
pub(crate) fn idempotency_to_js(e: &IdempotencyEntry) -> JsValue {
    let o = Object::new();
    set(&o, "device_seq", &JsValue::from(e.device_seq as f64));
    set(&o, "fingerprint", &JsValue::from_str(&e.fingerprint));
    o.into()
}

pub(crate) fn idempotency_from_js(v: &JsValue) -> Result<Option<IdempotencyEntry>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    Ok(Some(IdempotencyEntry {
        device_seq: get_u64(v, "idempotency", "device_seq")?,
        fingerprint: get_str(v, "idempotency", "fingerprint")?,
    }))
}

/// The key and packed records of a `pages` record, without its metadata.
pub(crate) fn page_key_and_records(v: &JsValue) -> Result<(u64, Vec<u8>)> {
    Ok((
        get_u64(v, "page", "first_device_seq")?,
        page_records_from_js(v)?,
    ))
}
