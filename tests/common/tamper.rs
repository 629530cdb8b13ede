//! Edits made behind annal's back, through another IndexedDB client, are
//! caught by reads and by verify().

use super::*;
use js_sys::{Reflect, Uint8Array};
use rexie::{Rexie, TransactionMode};
use wasm_bindgen_test::wasm_bindgen_test;

/// Flips one byte, `from_end` bytes before the end, of the first page.
async fn flip_byte_of_first_page(db_name: &str, from_end: u32) {
    let rexie = Rexie::builder(db_name).version(3).build().await.unwrap();
    let tx = rexie
        .transaction(&["pages"], TransactionMode::ReadWrite)
        .unwrap();
    let pages = tx.store("pages").unwrap();
    let page = pages.get(JsValue::from(1)).await.unwrap().unwrap();
    let records: Uint8Array = Reflect::get(&page, &"records".into()).unwrap().into();
    let at = records.length() - from_end;
    records.set_index(at, records.get_index(at) ^ 0x01);
    pages.put(&page, None).await.unwrap();
    tx.done().await.unwrap();
    rexie.close();
}

#[wasm_bindgen_test]
async fn a_modified_payload_is_caught_by_reads_and_verify() {
    let store = fresh("tamper-payload").await;
    let batch: js_sys::Array = (0..5)
        .map(|i| event("d", &format!(r#"{{"dose":{}}}"#, i * 10 + 5)))
        .collect();
    store.append_batch(batch.into()).await.unwrap();
    store.close();
    // The last bytes of the page are the last event's payload: {"dose":45}.
    flip_byte_of_first_page("annal:tamper-payload", 3).await;

    let store = open("tamper-payload").await;
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::FALSE);
    assert_eq!(num(&report, "firstBadSeq"), 5.0);
    assert_eq!(
        get(&report, "reason").as_string().as_deref(),
        Some("PAYLOAD_DIGEST_MISMATCH")
    );
    assert_eq!(num(&report, "checked"), 4.0);
    let err = expect_code(store.events(JsValue::UNDEFINED).await, "ANNAL_TAMPERED");
    assert_eq!(num(&err, "deviceSeq"), 5.0);
    expect_code(store.aggregate("d".into()).await, "ANNAL_TAMPERED");
}
