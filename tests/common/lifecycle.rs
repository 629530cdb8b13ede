//! Opening, closing, upgrades from newer code, and ownership.

use super::*;
use annal::web::Store;
use rexie::Rexie;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn calls_after_close_fail_with_closed() {
    let store = fresh("life-close").await;
    store.append(event("d", "{}")).await.unwrap();
    store.close();
    expect_code(store.append(event("d", "{}")).await, "ANNAL_CLOSED");
    expect_code(store.events(JsValue::UNDEFINED).await, "ANNAL_CLOSED");
    expect_code(store.verify(JsValue::UNDEFINED).await, "ANNAL_CLOSED");
    expect_code(store.iterate(JsValue::UNDEFINED), "ANNAL_CLOSED");
    // Closing twice is harmless.
    store.close();
}

#[wasm_bindgen_test]
async fn a_newer_version_of_the_app_closes_the_store_gracefully() {
    let store = fresh("life-upgrade").await;
    store.append(event("d", "{}")).await.unwrap();
    // A newer app version opens the database at a higher version. Our
    // connection must step aside instead of blocking it.
    let newer = Rexie::builder("annal:life-upgrade")
        .version(4)
        .build()
        .await
        .unwrap();
    let err = expect_code(store.append(event("d", "{}")).await, "ANNAL_CLOSED");
    let message = get(&err, "message").as_string().unwrap();
    assert!(message.contains("reload"), "{message}");
    newer.close();
}

#[wasm_bindgen_test]
async fn a_database_from_a_newer_annal_is_not_downgraded() {
    Store::destroy("life-newer".into()).await.unwrap();
    let newer = Rexie::builder("annal:life-newer")
        .version(7)
        .build()
        .await
        .unwrap();
    newer.close();
    let err = expect_code(
        Store::open(js(r#"{"name":"life-newer","userId":"u-1"}"#)).await,
        "ANNAL_SCHEMA",
    );
    let message = get(&err, "message").as_string().unwrap();
    assert!(message.contains("version 7"), "{message}");
    Store::destroy("life-newer".into()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_foreign_database_is_refused() {
    Store::destroy("life-foreign".into()).await.unwrap();
    let other = Rexie::builder("annal:life-foreign")
        .version(2)
        .add_object_store(rexie::ObjectStore::new("todos"))
        .build()
        .await
        .unwrap();
    other.close();
    expect_code(
        Store::open(js(r#"{"name":"life-foreign","userId":"u-1"}"#)).await,
        "ANNAL_SCHEMA",
    );
    Store::destroy("life-foreign".into()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_store_belongs_to_one_user_and_one_tenant() {
    let store = fresh("life-owner").await;
    let id = store.identity();
    assert_eq!(get(&id, "tenantId").as_string().as_deref(), Some("default"));
    assert!(annal::uuid7::is_uuid7(
        &get(&id, "deviceId").as_string().unwrap()
    ));
    store.close();
    let err = expect_code(
        Store::open(js(r#"{"name":"life-owner","userId":"u-2"}"#)).await,
        "ANNAL_VALIDATION",
    );
    assert_eq!(get(&err, "field").as_string().as_deref(), Some("userId"));
    let err = expect_code(
        Store::open(js(
            r#"{"name":"life-owner","userId":"u-1","tenantId":"study-9"}"#,
        ))
        .await,
        "ANNAL_VALIDATION",
    );
    assert_eq!(get(&err, "field").as_string().as_deref(), Some("tenantId"));
    // Omitting the tenant reopens the store's own.
    open("life-owner").await.close();
}

#[wasm_bindgen_test]
async fn bad_open_options_are_validation_errors() {
    for options in [
        r#"{"userId":"u"}"#,
        r#"{"name":"x"}"#,
        r#"{"name":"","userId":"u"}"#,
        r#"{"name":"x","userId":"u","durability":"eventual"}"#,
        r#"{"name":"x","userId":"u","deviceId":"mine"}"#,
        r#""just a name""#,
    ] {
        expect_code(Store::open(js(options)).await, "ANNAL_VALIDATION");
    }
}

#[wasm_bindgen_test]
async fn relaxed_durability_stores_events_too() {
    Store::destroy("life-relaxed".into()).await.unwrap();
    let store = Store::open(js(
        r#"{"name":"life-relaxed","userId":"u-1","durability":"relaxed"}"#,
    ))
    .await
    .unwrap();
    store.append(event("d", "{}")).await.unwrap();
    store.close();
    let again = open("life-relaxed").await;
    assert_eq!(
        items(&again.events(JsValue::UNDEFINED).await.unwrap()).len(),
        1
    );
}
