//! Every bad input gets a typed error, writes nothing and leaves the store
//! usable.

use super::*;
use wasm_bindgen_test::wasm_bindgen_test;

fn with_payload_member(key: &str, value: JsValue) -> JsValue {
    let e = event("d", "{}");
    put(&get(&e, "payload"), key, value);
    e
}

#[wasm_bindgen_test]
async fn each_bad_input_is_refused_and_nothing_is_written() {
    let store = fresh("bad-input").await;
    store.append(event("d", "{}")).await.unwrap();

    let date = js_sys::Date::new_0();
    let lone_surrogate = js_sys::JSON::parse(r#""\ud800x""#).unwrap();
    let big = format!(r#"{{"blob":"{}"}}"#, "z".repeat(1024 * 1024));
    let cases: Vec<(&str, JsValue, &str)> = vec![
        ("payload is an array", event("d", "[1,2]"), "payload"),
        ("payload is a string", event("d", r#""text""#), "payload"),
        ("payload is null", event("d", "null"), "payload"),
        (
            "missing eventType",
            js(r#"{"aggregateType":"t","aggregateId":"d","payload":{}}"#),
            "eventType",
        ),
        (
            "empty aggregateId",
            js(r#"{"aggregateType":"t","aggregateId":"","eventType":"e","payload":{}}"#),
            "aggregateId",
        ),
        (
            "id with a control character",
            js(r#"{"aggregateType":"t","aggregateId":"a\u0007b","eventType":"e","payload":{}}"#),
            "aggregateId",
        ),
        (
            "id over 256 bytes",
            js(&format!(
                r#"{{"aggregateType":"t","aggregateId":"{}","eventType":"e","payload":{{}}}}"#,
                "é".repeat(129)
            )),
            "aggregateId",
        ),
        ("payload over 1 MiB", event("d", &big), "payload"),
        (
            "NaN",
            with_payload_member("x", JsValue::from(f64::NAN)),
            "payload.x",
        ),
        (
            "Infinity",
            with_payload_member("y", JsValue::from(f64::INFINITY)),
            "payload.y",
        ),
        (
            "unsafe integer",
            with_payload_member("id", JsValue::from(2f64.powi(60))),
            "payload.id",
        ),
        (
            "lone surrogate",
            with_payload_member("s", lone_surrogate),
            "payload.s",
        ),
        (
            "a Date",
            with_payload_member("when", date.into()),
            "payload.when",
        ),
        (
            "a BigInt",
            with_payload_member("n", js_sys::BigInt::from(5u32).into()),
            "payload.n",
        ),
        ("not an object", JsValue::from_str("event"), "event"),
        ("undefined", JsValue::UNDEFINED, "event"),
    ];
    for (name, input, field) in cases {
        let err = expect_code(store.append(input).await, "ANNAL_VALIDATION");
        assert_eq!(
            get(&err, "field").as_string().as_deref(),
            Some(field),
            "{name}"
        );
    }
    // NaN nested in an array names its position.
    let nested = event("d", r#"{"list":[1,{"v":0}]}"#);
    put(
        &get(
            &js_sys::Reflect::get(&get(&nested, "payload"), &"list".into()).unwrap(),
            "1",
        ),
        "v",
        JsValue::from(f64::NAN),
    );
    let err = expect_code(store.append(nested).await, "ANNAL_VALIDATION");
    assert_eq!(
        get(&err, "field").as_string().as_deref(),
        Some("payload.list[1].v")
    );

    // Nothing was written and the store still works.
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 1.0);
    let ok = store
        .append(event("d", r#"{"negZero":-0,"undef":null}"#))
        .await
        .unwrap();
    assert_eq!(num(&ok, "deviceSeq"), 2.0);
    assert_eq!(num(&get(&ok, "payload"), "negZero"), 0.0);
    assert_eq!(
        get(&store.verify(JsValue::UNDEFINED).await.unwrap(), "ok"),
        JsValue::TRUE
    );
}

/// A real U+FFFD is text like any other; only a lone surrogate (which a
/// conversion would also turn into U+FFFD) is refused, wherever it is.
#[wasm_bindgen_test]
async fn a_replacement_character_is_kept_and_a_lone_surrogate_is_found_anywhere() {
    let store = fresh("bad-fffd").await;
    let text = js_sys::JSON::parse(r#""fine \ufffd text""#).unwrap();
    let stored = store
        .append(with_payload_member("s", text.clone()))
        .await
        .unwrap();
    assert_eq!(get(&get(&stored, "payload"), "s"), text);
    for bad in [
        r#""\ufffd then \udc00 later""#,
        r#""ends in a high half \ud83d""#,
    ] {
        let value = js_sys::JSON::parse(bad).unwrap();
        expect_code(
            store.append(with_payload_member("s", value)).await,
            "ANNAL_VALIDATION",
        );
    }
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 1.0);
}

#[wasm_bindgen_test]
async fn undefined_members_are_left_out_like_json_stringify() {
    let store = fresh("bad-undefined").await;
    let e = with_payload_member("maybe", JsValue::UNDEFINED);
    let stored = store.append(e).await.unwrap();
    let keys = js_sys::Object::keys(&get(&stored, "payload").into());
    assert_eq!(keys.length(), 0);
}

#[wasm_bindgen_test]
async fn bad_filters_and_batches_are_refused() {
    let store = fresh("bad-filter").await;
    expect_code(
        store.events(js(r#"{"limit":-1}"#)).await,
        "ANNAL_VALIDATION",
    );
    expect_code(
        store.events(js(r#"{"since":"yesterday"}"#)).await,
        "ANNAL_VALIDATION",
    );
    expect_code(
        store.events(js(r#"{"aggregate":"x"}"#)).await,
        "ANNAL_VALIDATION",
    );
    expect_code(store.append_batch(js("[]")).await, "ANNAL_VALIDATION");
    expect_code(store.append_batch(js("{}")).await, "ANNAL_VALIDATION");
    expect_code(store.aggregate(JsValue::from(5)).await, "ANNAL_VALIDATION");
}
