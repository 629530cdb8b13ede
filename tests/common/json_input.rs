//! Events reach wasm as text written by a walk in JavaScript, which writes
//! a payload's canonical form itself. Every payload it vouches for must be
//! exactly what Rust makes of the same value as plain JSON text, and what
//! it does not take must be refused the same way by both roads.

use annal::web::draft_both_ways;
use js_sys::{Array, Function};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

/// The array a JavaScript expression evaluates to (values JSON text cannot
/// spell: -0, class instances, getters, sparse arrays).
fn values(expression: &str) -> Vec<JsValue> {
    let array: Array = Function::new_no_args(&format!("return {expression};"))
        .call0(&JsValue::NULL)
        .expect("test expression")
        .into();
    array.iter().collect()
}

/// Each payload wrapped in an event.
fn events(payloads: &str) -> Vec<JsValue> {
    values(&format!(
        "({payloads}).map((payload) => ({{ aggregateType: 't', aggregateId: 'a-1', eventType: 'e', payload }}))"
    ))
}

#[wasm_bindgen_test]
fn the_quick_walk_writes_what_the_rust_walk_writes() {
    let good = events(
        r#"[
        { b: 1, a: 2, A: 3, "10": 4, "9": 5, "é": 6, "\u{10000}": 7, "\uffff": 8, "": 9, "a\u0000": 10 },
        { n: [-0, 0, 0.1, 1e-6, 1e-7, 5e-324, 1.2345e-300, 4.35e15 + 0.25, 2 ** 53 - 1, -(2 ** 53 - 1), 123456789.125, 1 / 3, -1.5e-10, 2 ** 52 + 0.5, 4503599627370497.5] },
        { s: "\u0000\u001f\"\\/\b\f\n\r\t\u2028\u2029\u007f é 頭痛 😀 \ufffd", t: "" },
        { deep: [[[{ x: [{}, [], null, true, false] }]]] },
        { skipped: undefined, kept: null },
        Object.assign(Object.create(null), { z: 1, y: { x: 2 } }),
        ((d) => { for (let i = 0; i < 61; i++) d = { d }; return d; })({}),
        { note: "x".repeat(100000) },
        {},
    ]"#,
    );
    let mut extra = values(
        "[{ aggregateType: 't', aggregateId: 'a-1', eventType: 'e', payload: { v: 1 }, expectedVersion: -0, schemaVersion: 2, causationId: 'c', correlationId: 'r', idempotencyKey: 'k', ignored: undefined }]",
    );
    for (i, event) in good.into_iter().chain(extra.drain(..)).enumerate() {
        let (quick, walked) = draft_both_ways(&event);
        let walked = walked.unwrap_or_else(|e| panic!("case {i}: {}", e.message));
        let quick = quick
            .unwrap_or_else(|| panic!("case {i}: the quick walk left a plain value to Rust"))
            .unwrap_or_else(|e| panic!("case {i}: {}", e.message));
        assert_eq!(quick, walked, "case {i}");
    }
}

#[wasm_bindgen_test]
fn what_is_refused_is_refused_alike() {
    let payloads = events(
        r#"[
        { x: NaN }, { x: Infinity }, { x: -Infinity }, { x: 2 ** 60 }, { x: -(2 ** 53) },
        { x: "\ud800" }, { ["\udc00"]: 1 }, { x: ["ok", "\ud83d"] },
        { x: new Date(0) }, { x: new Map() }, { x: new (class Reading {})() }, { x: new String("s") },
        { x: 5n }, { x() {} }, { x: Symbol("s") }, { x: [1, , 3] }, { x: [undefined] },
        ((d) => { for (let i = 0; i < 70; i++) d = { d }; return d; })({}),
        (() => { const c = {}; c.self = c; return c; })(),
        { get x() { throw new Error("unreadable"); } },
        [1, 2], "text", null,
    ]"#,
    );
    let mut others = values(
        "[new (class Entry { constructor() { this.aggregateType = 't'; this.aggregateId = 'a'; this.eventType = 'e'; this.payload = {}; } })(), \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e' }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: {}, expectedVersion: NaN }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: {}, expectedVersion: 2 ** 60 }, \
          { aggregateType: new Date(0), aggregateId: 'a', eventType: 'e', payload: {} }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', get payload() { throw new Error('no'); } }, \
          'event', undefined, null, [] ]",
    );
    for (i, event) in payloads.into_iter().chain(others.drain(..)).enumerate() {
        let (quick, walked) = draft_both_ways(&event);
        let walked = walked.expect_err(&format!("case {i}: refused as JSON text"));
        match quick {
            None => {}
            Some(Ok(_)) => panic!("case {i}: the walk vouched for {event:?}"),
            Some(Err(quick)) => assert_eq!(
                (quick.code, &quick.field, &quick.message),
                (walked.code, &walked.field, &walked.message),
                "case {i}"
            ),
        }
    }
}

/// What the quick walk takes but the fields then fail is the same error
/// either way, with the same field.
#[wasm_bindgen_test]
fn field_errors_are_the_same_either_way() {
    let cases = values(
        "[{ aggregateType: 't', aggregateId: '', eventType: 'e', payload: {} }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: {}, aggregateID: 'x' }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: {}, schemaVersion: 1.5 }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: {}, causationId: null }, \
          { aggregateType: 't', aggregateId: 'a', eventType: 'e', payload: { blob: 'z'.repeat(1024 * 1024) } }]",
    );
    for (i, event) in cases.into_iter().enumerate() {
        let (quick, walked) = draft_both_ways(&event);
        let walked = walked.expect_err("refused");
        let quick = quick
            .expect("the quick walk takes plain values")
            .expect_err("refused");
        assert_eq!(
            (quick.code, &quick.field, &quick.message),
            (walked.code, &walked.field, &walked.message),
            "case {i}"
        );
    }
}
