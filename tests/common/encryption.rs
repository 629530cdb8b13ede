//! Encrypted stores in every context: credentials, lock state, bad key
//! input, automatic rotation, and edits to the key records behind annal's
//! back.

use super::*;
use annal::web::Store;
use js_sys::{Array, Reflect, Uint8Array};
use rexie::{Rexie, TransactionMode};
use wasm_bindgen_test::wasm_bindgen_test;

const PASS: &str = "correct horse battery staple";

fn opts(name: &str, extra: &str) -> JsValue {
    js(&format!(r#"{{"name":"{name}","userId":"u-1"{extra}}}"#))
}

async fn fresh_encrypted(name: &str, extra: &str) -> Store {
    Store::destroy(name.into()).await.unwrap();
    Store::open(opts(name, &format!(r#","passphrase":"{PASS}"{extra}"#)))
        .await
        .unwrap()
}

async fn raw_get(db: &str, store: &str, key: JsValue) -> JsValue {
    let rexie = Rexie::builder(db).version(3).build().await.unwrap();
    let tx = rexie
        .transaction(&[store], TransactionMode::ReadOnly)
        .unwrap();
    let value = tx.store(store).unwrap().get(key).await.unwrap().unwrap();
    tx.done().await.unwrap();
    rexie.close();
    value
}

async fn raw_put(db: &str, store: &str, key: JsValue, value: &JsValue) {
    let rexie = Rexie::builder(db).version(3).build().await.unwrap();
    let tx = rexie
        .transaction(&[store], TransactionMode::ReadWrite)
        .unwrap();
    tx.store(store)
        .unwrap()
        .put(value, Some(&key))
        .await
        .unwrap();
    tx.done().await.unwrap();
    rexie.close();
}

#[wasm_bindgen_test]
async fn an_encrypted_store_reads_writes_and_hides_its_contents() {
    let store = fresh_encrypted("enc-basic", "").await;
    assert!(store.encrypted() && !store.locked());
    let batch: Array = (0..4)
        .map(|i| event("SECRET-AGG", &format!(r#"{{"note":"SECRET-TEXT {i}"}}"#)))
        .collect();
    store.append_batch(batch.into()).await.unwrap();
    store.append(event("other", "{}")).await.unwrap();
    assert_eq!(
        items(&store.events(JsValue::UNDEFINED).await.unwrap()).len(),
        5
    );
    let by_id = store
        .events(js(r#"{"aggregateId":"SECRET-AGG"}"#))
        .await
        .unwrap();
    assert_eq!(items(&by_id).len(), 4);
    let agg = store.aggregate("SECRET-AGG".into()).await.unwrap();
    assert_eq!(num(&agg, "version"), 4.0);
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE, "{report:?}");
    store.close();

    // At rest: layout 2, blind index values, sealed records.
    let identity = raw_get("annal:enc-basic", "meta", "store".into()).await;
    assert_eq!(num(&identity, "layout"), 2.0);
    let page = raw_get("annal:enc-basic", "pages", JsValue::from(1)).await;
    let ids: Array = get(&page, "aggregate_ids").into();
    let blind = ids.get(0).as_string().unwrap();
    assert_eq!(blind.len(), 32, "{blind}");
    assert!(!blind.contains("SECRET"));
    let records: Uint8Array = get(&page, "records").into();
    let bytes = records.to_vec();
    assert_eq!(bytes[0], 2, "a sealed record");
    for marker in [&b"SECRET-TEXT"[..], b"SECRET-AGG", b"noted", b"diary"] {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{} found in the page",
            String::from_utf8_lossy(marker)
        );
    }
    let head = raw_get("annal:enc-basic", "meta", "head".into()).await;
    assert_eq!(get(&head, "mac").as_string().unwrap().len(), 64);
}

#[wasm_bindgen_test]
async fn credentials_lock_and_unlock() {
    let store = fresh_encrypted("enc-lock", "").await;
    store.append(event("d", "{}")).await.unwrap();
    store.close();
    let err = expect_code(Store::open(opts("enc-lock", "")).await, "ANNAL_LOCKED");
    let message = get(&err, "message").as_string().unwrap();
    assert!(message.contains("passphrase"), "{message}");
    expect_code(
        Store::open(opts("enc-lock", r#","passphrase":"not the passphrase""#)).await,
        "ANNAL_BAD_KEY",
    );
    let store = Store::open(opts("enc-lock", &format!(r#","passphrase":"{PASS}""#)))
        .await
        .unwrap();
    store.lock().unwrap();
    assert!(store.locked());
    expect_code(store.append(event("d", "{}")).await, "ANNAL_LOCKED");
    expect_code(store.events(JsValue::UNDEFINED).await, "ANNAL_LOCKED");
    expect_code(store.aggregate("d".into()).await, "ANNAL_LOCKED");
    expect_code(store.head().await, "ANNAL_LOCKED");
    expect_code(store.verify(JsValue::UNDEFINED).await, "ANNAL_LOCKED");
    expect_code(store.export_audit().await, "ANNAL_LOCKED");
    expect_code(store.rotate_data_key().await, "ANNAL_LOCKED");
    expect_code(
        store.reencrypt_all(JsValue::UNDEFINED).await,
        "ANNAL_LOCKED",
    );
    expect_code(store.export_recovery_key().await, "ANNAL_LOCKED");
    expect_code(store.key_info().await, "ANNAL_LOCKED");
    expect_code(
        store.unlock("wrong passphrase".into()).await,
        "ANNAL_BAD_KEY",
    );
    assert!(store.locked());
    store.unlock(PASS.into()).await.unwrap();
    assert!(!store.locked());
    store.append(event("d", "{}")).await.unwrap();
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 2.0);
    // Closing locks for good: CLOSED wins.
    store.close();
    expect_code(store.append(event("d", "{}")).await, "ANNAL_CLOSED");
}

#[wasm_bindgen_test]
async fn bad_key_input_is_a_typed_error_and_writes_nothing() {
    let name = "enc-bad";
    Store::destroy(name.into()).await.unwrap();
    let cases = [
        r#","passphrase":"short""#,
        r#","passphrase":42"#,
        r#","passphrase":"""#,
        r#","passphrase":"long enough pass","recoverySecret":"x""#,
        r#","keyEncryptionKey":"not a key""#,
        r#","keyEncryptionKey":{}"#,
        r#","recoverySecret":"hello""#,
        r#","passphrase":"long enough pass","maxRecordsPerKey":5"#,
        r#","passphrase":"long enough pass","maxRecordsPerKey":1.5"#,
        r#","passphrase":"long enough pass","blindIndexes":"yes""#,
        r#","blindIndexes":true"#,
    ];
    for extra in cases {
        let err = expect_code(Store::open(opts(name, extra)).await, "ANNAL_VALIDATION");
        let message = get(&err, "message").as_string().unwrap();
        assert!(
            !message.contains("long enough"),
            "a secret leaked: {message}"
        );
    }
    // None of them created the store: a plain open creates a plain store.
    let store = Store::open(opts(name, "")).await.unwrap();
    assert!(!store.encrypted());
    expect_code(store.rotate_data_key().await, "ANNAL_VALIDATION");
    expect_code(store.lock(), "ANNAL_VALIDATION");
    store.close();
    // A plain store cannot be opened as an encrypted one.
    expect_code(
        Store::open(opts(name, &format!(r#","passphrase":"{PASS}""#))).await,
        "ANNAL_VALIDATION",
    );

    let store = fresh_encrypted("enc-bad-2", "").await;
    expect_code(store.unlock(JsValue::from(42)).await, "ANNAL_VALIDATION");
    expect_code(
        store.unlock(js(r#"{"pin":"1234"}"#)).await,
        "ANNAL_VALIDATION",
    );
    expect_code(
        store.change_passphrase(PASS.into(), "short".into()).await,
        "ANNAL_VALIDATION",
    );
    expect_code(
        store
            .change_passphrase("wrong passphrase".into(), "a new passphrase".into())
            .await,
        "ANNAL_BAD_KEY",
    );
    // The old passphrase still works after the refused changes.
    store.close();
    Store::open(opts("enc-bad-2", &format!(r#","passphrase":"{PASS}""#)))
        .await
        .unwrap()
        .close();
}

#[wasm_bindgen_test]
async fn keys_rotate_before_their_limit_and_reencryption_retires_them() {
    let store = fresh_encrypted("enc-rotate", r#","maxRecordsPerKey":100"#).await;
    for b in 0..5 {
        let batch: Array = (0..50)
            .map(|i| {
                event(
                    &format!("a{}", i % 7),
                    &format!(r#"{{"n":{}}}"#, b * 50 + i),
                )
            })
            .collect();
        store.append_batch(batch.into()).await.unwrap();
    }
    let info = store.key_info().await.unwrap();
    let keys = items(&get(&info, "keys"));
    // 250 records at most 100 per key: keys 1..=3, none past its limit.
    assert_eq!(keys.len(), 3, "{info:?}");
    for k in &keys {
        assert!(num(k, "records") <= 100.0, "{info:?}");
    }
    assert_eq!(num(&info, "current"), 3.0);
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE, "{report:?}");

    // Re-encryption respects the limit too: 250 records need three fresh
    // keys of at most 100 (pages hold 50), and every older key retires.
    let done = store.reencrypt_all(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(num(&done, "reencrypted"), 250.0, "{done:?}");
    let retired: Vec<f64> = items(&get(&done, "retired"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(retired, vec![1.0, 2.0, 3.0]);
    let info = store.key_info().await.unwrap();
    for k in items(&get(&info, "keys")) {
        assert!(num(&k, "records") <= 100.0, "{info:?}");
    }
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE, "{report:?}");
    assert_eq!(
        items(&store.events(JsValue::UNDEFINED).await.unwrap()).len(),
        250
    );
}

#[wasm_bindgen_test]
async fn edits_to_the_key_ring_and_head_mac_are_caught() {
    let store = fresh_encrypted("enc-mac", "").await;
    store.append(event("d", "{}")).await.unwrap();
    store.append(event("d", "{}")).await.unwrap();
    store.close();
    let db = "annal:enc-mac";

    // A head record set back one event, with the current MAC kept.
    let head = raw_get(db, "meta", "head".into()).await;
    let original = head.clone();
    Reflect::set(&head, &"device_seq".into(), &JsValue::from(1)).unwrap();
    raw_put(db, "meta", "head".into(), &head).await;
    let store = Store::open(opts("enc-mac", &format!(r#","passphrase":"{PASS}""#)))
        .await
        .unwrap();
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::FALSE);
    assert_eq!(
        get(&report, "reason").as_string().as_deref(),
        Some("HEAD_MISMATCH"),
        "{report:?}"
    );
    store.close();
    // The true head with a forged MAC (`original` is the same object).
    Reflect::set(&original, &"device_seq".into(), &JsValue::from(2)).unwrap();
    Reflect::set(
        &original,
        &"mac".into(),
        &JsValue::from_str(&"0".repeat(64)),
    )
    .unwrap();
    raw_put(db, "meta", "head".into(), &original).await;
    let store = Store::open(opts("enc-mac", &format!(r#","passphrase":"{PASS}""#)))
        .await
        .unwrap();
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(
        get(&report, "reason").as_string().as_deref(),
        Some("HEAD_MAC_MISMATCH"),
        "{report:?}"
    );
    assert_eq!(num(&report, "firstBadSeq"), 2.0);
    store.close();

    // A key ring edited to make another key current.
    let ring = raw_get(db, "meta", "keyring".into()).await;
    let text = get(&ring, "ring").as_string().unwrap();
    Reflect::set(
        &ring,
        &"ring".into(),
        &text.replace("\"retired\":false", "\"retired\":true").into(),
    )
    .unwrap();
    raw_put(db, "meta", "keyring".into(), &ring).await;
    let err = expect_code(
        Store::open(opts("enc-mac", &format!(r#","passphrase":"{PASS}""#))).await,
        "ANNAL_TAMPERED",
    );
    let message = get(&err, "message").as_string().unwrap();
    assert!(message.contains("key ring"), "{message}");
}

/// Blinded ids sort at random, so an encrypted store reads an unseen
/// aggregate's head with a cursor each; a batch with many unseen ones
/// tries one range first, and a cursor each once such a range held too
/// many other heads. Whichever way, each aggregate continues at its
/// version.
#[wasm_bindgen_test]
async fn many_unseen_aggregates_in_an_encrypted_store_are_found_by_range_or_by_cursor_alike() {
    let name = "enc-many-unseen";
    let writer = fresh_encrypted(name, "").await;
    let open = || async {
        Store::open(opts(name, &format!(r#","passphrase":"{PASS}""#)))
            .await
            .unwrap()
    };
    let batch = |ids: &[String], expected: Option<u32>| {
        batch_with(
            &ids.iter()
                .map(|id| (id.as_str(), expected))
                .collect::<Vec<_>>(),
        )
    };
    let ids = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    let a = ids("a", 70);

    // A fresh store: the range over an empty index finds nothing.
    let stored = writer.append_batch(batch(&a, Some(0))).await.unwrap();
    assert_eq!(versions(&stored), vec![1.0; 70]);
    // A connection that has seen nothing: the range holds just these.
    let second = open().await;
    let stored = second.append_batch(batch(&a, Some(1))).await.unwrap();
    assert_eq!(versions(&stored), vec![2.0; 70]);
    // 400 more aggregates lie among them: the range gives up, a cursor
    // each finds them, and later batches go by cursor at once.
    writer
        .append_batch(batch(&ids("b", 400), None))
        .await
        .unwrap();
    let third = open().await;
    let stored = third.append_batch(batch(&a, Some(2))).await.unwrap();
    assert_eq!(versions(&stored), vec![3.0; 70]);
    let mut mixed = ids("c", 66);
    mixed.extend(ids("b", 4));
    let stored = third.append_batch(batch(&mixed, None)).await.unwrap();
    let mut want = vec![1.0; 66];
    want.extend([2.0; 4]);
    assert_eq!(versions(&stored), want);
    // A stale expectation among many unseen aggregates is still decided on
    // the stored version, and writes nothing.
    let fourth = open().await;
    let unseen = ids("d", 69);
    let mut stale: Vec<(&str, Option<u32>)> = unseen.iter().map(|id| (id.as_str(), None)).collect();
    stale.push(("a-0", Some(2)));
    expect_code(
        fourth.append_batch(batch_with(&stale)).await,
        "ANNAL_VERSION_CONFLICT",
    );

    let report = fourth.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE);
    assert_eq!(num(&report, "checked"), 70.0 * 3.0 + 400.0 + 70.0);
}

/// Wraps `crypto.subtle.decrypt` to count its calls and, when
/// `globalThis.annalRefuseDecrypt` is set, to refuse them all as
/// WebCrypto refuses a record that does not authenticate.
fn watch_decrypt() -> js_sys::Function {
    js_sys::Function::new_no_args(
        "const s = globalThis.crypto.subtle; \
         if (!s.annalOriginalDecrypt) { \
           s.annalOriginalDecrypt = s.decrypt; \
           s.decrypt = function (...args) { \
             globalThis.annalDecrypts = (globalThis.annalDecrypts || 0) + 1; \
             if (globalThis.annalRefuseDecrypt) return Promise.reject(new DOMException('refused', 'OperationError')); \
             return s.annalOriginalDecrypt.apply(this, args); \
           }; \
         } \
         globalThis.annalDecrypts = 0; \
         return () => globalThis.annalDecrypts;",
    )
}

fn set_global(key: &str, value: JsValue) {
    Reflect::set(&js_sys::global(), &key.into(), &value).unwrap();
}

fn json_text(v: &JsValue) -> String {
    js_sys::JSON::stringify(v).unwrap().as_string().unwrap()
}

/// Reads and `verify()` of an encrypted store decrypt what one read brings
/// with WebCrypto, every record at once; when WebCrypto refuses, AES-GCM in
/// wasm gives the same events and the same verdict.
#[wasm_bindgen_test]
async fn reads_decrypt_with_webcrypto_and_give_the_same_when_it_refuses() {
    let store = fresh_encrypted("enc-open-ahead", "").await;
    let batch: Array = (0..120)
        .map(|i| event(&format!("a-{}", i % 3), &format!(r#"{{"i":{i}}}"#)))
        .collect();
    store.append_batch(batch.into()).await.unwrap();
    let count: js_sys::Function = watch_decrypt().call0(&JsValue::NULL).unwrap().into();
    let decrypts = || count.call0(&JsValue::NULL).unwrap().as_f64().unwrap();
    let read = || async {
        let all = store.events(JsValue::UNDEFINED).await.unwrap();
        let one = store.aggregate("a-1".into()).await.unwrap();
        let report = store.verify(JsValue::UNDEFINED).await.unwrap();
        (json_text(&all), json_text(&one), json_text(&report))
    };

    let (all, one, report) = read().await;
    assert_eq!(items(&js(&all)).len(), 120);
    assert_eq!(num(&js(&one), "version"), 40.0);
    assert_eq!(report, r#"{"ok":true,"checked":120}"#);
    // Each read decrypted every record of its pages with WebCrypto.
    assert!(decrypts() >= 3.0 * 120.0, "{} decrypt calls", decrypts());

    set_global("annalRefuseDecrypt", JsValue::TRUE);
    let refused = read().await;
    set_global("annalRefuseDecrypt", JsValue::FALSE);
    assert!(decrypts() >= 6.0 * 120.0, "{} decrypt calls", decrypts());
    assert_eq!(refused, (all, one, report));
}
