//! Rows of the `remote` object store: other devices' events, verified on
//! pull (docs/FORMAT.md §8.1).
//!
//! Since layout 3 one row packs the events of one pull page in ledger
//! order, cut like pages below Chromium's blob threshold: an initial pull of
//! 100,000 events makes a few thousand puts instead of 100,000. Rows from
//! layout 2 hold one event each and are read as they are.

use crate::at_rest::AtRest;
use crate::error::{Error, Result};
use crate::page::{self, TARGET_PAGE_BYTES};
use crate::sync::pull::Pulled;
use crate::web::idb::layout::{get, set};
use crate::web::platform::BrowserEntropy;
use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbObjectStore;

/// Bytes a pack row spends on each event besides its record: its ledger
/// seq, device id, device seq and length; generous.
const PER_EVENT: usize = 96;
/// The row's member names and framing.
const PER_ROW: usize = 256;

fn unreadable() -> Error {
    Error::storage("a pulled event is unreadable; pull again from the server")
}

/// Stores `pulled` (in ledger order) as pack rows, each keyed by the
/// ledger seq of its first event. Records are kept as in pages: sealed
/// under the ring's current key in encrypted stores.
pub(crate) fn put(rows: &IdbObjectStore, at_rest: &AtRest, pulled: &[Pulled]) -> Result<()> {
    let key = match at_rest {
        AtRest::Sealed(s) => Some(s.keys.data_key(s.ring.current)),
        AtRest::Plain => None,
    };
    let mut bytes = Vec::new();
    let mut lens = Vec::with_capacity(pulled.len());
    let mut plain = zeroize::Zeroizing::new(Vec::new());
    for p in pulled {
        let before = bytes.len();
        match (at_rest, &key) {
            (AtRest::Sealed(s), Some(key)) => {
                plain.clear();
                page::encode_record(&mut plain, &p.record);
                s.seal_record(&mut bytes, key, &p.record.envelope, &plain, &BrowserEntropy);
            }
            _ => page::encode_record(&mut bytes, &p.record),
        }
        lens.push(bytes.len() - before);
    }
    // Cut before an event would take the row past the target; an event
    // too large for any row gets one of its own.
    let (mut start, mut from, mut size) = (0, 0, PER_ROW);
    let mut at = 0;
    for (i, &len) in lens.iter().enumerate() {
        if i > start && size + len + PER_EVENT > TARGET_PAGE_BYTES {
            fire_row(rows, &pulled[start..i], &lens[start..i], &bytes[from..at])?;
            (start, from, size) = (i, at, PER_ROW);
        }
        size += len + PER_EVENT;
        at += len;
    }
    if start < pulled.len() {
        fire_row(rows, &pulled[start..], &lens[start..], &bytes[from..])?;
    }
    Ok(())
}

fn fire_row(rows: &IdbObjectStore, pulled: &[Pulled], lens: &[usize], bytes: &[u8]) -> Result<()> {
    let o = Object::new();
    let numbers = |f: &dyn Fn(&Pulled) -> u64| -> Array {
        pulled.iter().map(|p| JsValue::from(f(p) as f64)).collect()
    };
    set(&o, "seqs", &numbers(&|p| p.entry.seq));
    let ids: Array = pulled
        .iter()
        .map(|p| JsValue::from_str(&p.record.envelope.device_id))
        .collect();
    set(&o, "device_ids", &ids);
    set(
        &o,
        "device_seqs",
        &numbers(&|p| p.record.envelope.device_seq),
    );
    let lens: Array = lens.iter().map(|&n| JsValue::from(n as f64)).collect();
    set(&o, "lens", &lens);
    set(&o, "records", &Uint8Array::from(bytes));
    let key = JsValue::from(pulled[0].entry.seq as f64);
    rows.put_with_key(&o, &key)
        .map(|_| ())
        .map_err(crate::web::idb::errors::from_dom)
}

fn count(v: &JsValue) -> Result<usize> {
    v.as_f64()
        .and_then(crate::payload::safe_count_f64)
        .map(|n| n as usize)
        .ok_or_else(unreadable)
}

/// Each event of a stored row: its `device_seq` and its stored record
/// bytes (sealed in encrypted stores), for [`AtRest::read_checked`].
pub(crate) fn records_of(row: &JsValue) -> Result<Vec<(u64, Vec<u8>)>> {
    let bytes = |v: Option<JsValue>| -> Result<Vec<u8>> {
        Ok(v.and_then(|b| b.dyn_into::<Uint8Array>().ok())
            .ok_or_else(unreadable)?
            .to_vec())
    };
    if let Some(record) = get(row, "record") {
        // A layout-2 row: one event.
        let seq = count(&get(row, "device_seq").ok_or_else(unreadable)?)? as u64;
        return Ok(vec![(seq, bytes(Some(record))?)]);
    }
    let all = bytes(get(row, "records"))?;
    let list = |key: &str| -> Result<Array> {
        get(row, key)
            .and_then(|v| v.dyn_into::<Array>().ok())
            .ok_or_else(unreadable)
    };
    let (lens, seqs) = (list("lens")?, list("device_seqs")?);
    if lens.length() != seqs.length() {
        return Err(unreadable());
    }
    let mut out = Vec::with_capacity(lens.length() as usize);
    let mut at: usize = 0;
    for (len, seq) in lens.iter().zip(seqs.iter()) {
        let len = count(&len)?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= all.len())
            .ok_or_else(unreadable)?;
        out.push((count(&seq)? as u64, all[at..end].to_vec()));
        at = end;
    }
    if at != all.len() {
        return Err(unreadable());
    }
    Ok(out)
}

/// `row` with its records replaced by `records` (the same events, in the
/// same order, re-encrypted).
pub(crate) fn with_records(row: &JsValue, records: &[Vec<u8>]) -> Result<()> {
    if get(row, "record").is_some() {
        let [one] = records else {
            return Err(Error::internal("a layout-2 remote row holds one event"));
        };
        set(
            row.unchecked_ref(),
            "record",
            &Uint8Array::from(one.as_slice()),
        );
        return Ok(());
    }
    let lens: Array = records
        .iter()
        .map(|r| JsValue::from(r.len() as f64))
        .collect();
    set(row.unchecked_ref(), "lens", &lens);
    set(
        row.unchecked_ref(),
        "records",
        &Uint8Array::from(records.concat().as_slice()),
    );
    Ok(())
}
