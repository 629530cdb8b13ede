//! Appending, reading, verifying and exporting.

use super::*;
use futures::future::join_all;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn appends_read_back_in_device_order_and_verify() {
    let store = fresh("log-basic").await;
    let a = store
        .append(event("d-1", r#"{"pain":3,"note":"héllo"}"#))
        .await
        .unwrap();
    let b = store.append(event("d-2", r#"{"pain":4}"#)).await.unwrap();
    let c = store.append(event("d-1", r#"{"pain":2}"#)).await.unwrap();
    assert_eq!(
        [
            num(&a, "deviceSeq"),
            num(&b, "deviceSeq"),
            num(&c, "deviceSeq")
        ],
        [1.0, 2.0, 3.0]
    );
    assert_eq!(get(&b, "prevHash"), get(&a, "hash"));
    assert_eq!(num(&c, "aggregateVersion"), 2.0);
    assert_eq!(
        get(&get(&a, "payload"), "note").as_string().unwrap(),
        "héllo"
    );

    let all = items(&store.events(JsValue::UNDEFINED).await.unwrap());
    assert_eq!(all.len(), 3);
    assert_eq!(get(&all[2], "hash"), get(&c, "hash"));

    let agg = store.aggregate("d-1".into()).await.unwrap();
    assert_eq!(num(&agg, "version"), 2.0);
    assert_eq!(items(&get(&agg, "events")).len(), 2);
    let none = store.aggregate("no-such-aggregate".into()).await.unwrap();
    assert_eq!(num(&none, "version"), 0.0);
    assert!(items(&get(&none, "events")).is_empty());

    let head = store.head().await.unwrap();
    assert_eq!(num(&head, "deviceSeq"), 3.0);
    assert_eq!(get(&head, "hash"), get(&c, "hash"));

    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE);
    assert_eq!(num(&report, "checked"), 3.0);
}

#[wasm_bindgen_test]
async fn a_batch_with_one_bad_event_writes_nothing() {
    let store = fresh("log-batch").await;
    store.append(event("d-1", "{}")).await.unwrap();
    let conflicting = event("d-1", "{}");
    put(&conflicting, "expectedVersion", 5.into());
    let batch: js_sys::Array = [event("d-2", "{}"), conflicting, event("d-3", "{}")]
        .iter()
        .collect();
    let err = expect_code(
        store.append_batch(batch.into()).await,
        "ANNAL_VERSION_CONFLICT",
    );
    assert_eq!(
        get(&err, "field").as_string().as_deref(),
        Some("expectedVersion")
    );

    let invalid: js_sys::Array = [event("d-2", "{}"), event("d-3", "[]")].iter().collect();
    let err = expect_code(store.append_batch(invalid.into()).await, "ANNAL_VALIDATION");
    assert_eq!(
        get(&err, "field").as_string().as_deref(),
        Some("[1].payload")
    );

    assert_eq!(
        items(&store.events(JsValue::UNDEFINED).await.unwrap()).len(),
        1
    );
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 1.0);
    let ok: js_sys::Array = [event("d-2", "{}"), event("d-3", "{}")].iter().collect();
    assert_eq!(
        items(&store.append_batch(ok.into()).await.unwrap()).len(),
        2
    );
    assert_eq!(
        get(&store.verify(JsValue::UNDEFINED).await.unwrap(), "ok"),
        JsValue::TRUE
    );
}

#[wasm_bindgen_test]
async fn group_commit_fails_only_the_bad_append() {
    let store = fresh("log-group").await;
    store.append(event("shared", "{}")).await.unwrap();
    let mut drafts: Vec<JsValue> = (0..64)
        .map(|i| event(&format!("agg-{i}"), &format!(r#"{{"i":{i}}}"#)))
        .collect();
    // One append fails inside the shared transaction (a version conflict)...
    put(&drafts[20], "aggregateId", "shared".into());
    put(&drafts[20], "expectedVersion", 9.into());
    // ...and one before it (invalid input).
    put(&drafts[41], "payload", js("[1]"));
    let results = join_all(drafts.drain(..).map(|d| store.append(d))).await;
    let failed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [20, 41]);
    assert_eq!(
        get(results[20].as_ref().unwrap_err(), "code")
            .as_string()
            .unwrap(),
        "ANNAL_VERSION_CONFLICT"
    );
    assert_eq!(
        get(results[41].as_ref().unwrap_err(), "code")
            .as_string()
            .unwrap(),
        "ANNAL_VALIDATION"
    );
    let mut seqs: Vec<f64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| num(e, "deviceSeq"))
        .collect();
    seqs.sort_by(f64::total_cmp);
    assert_eq!(seqs, (2..=63).map(f64::from).collect::<Vec<_>>());
    assert_eq!(
        get(&store.verify(JsValue::UNDEFINED).await.unwrap(), "ok"),
        JsValue::TRUE
    );
}

#[wasm_bindgen_test]
async fn filters_select_limit_and_reverse() {
    let store = fresh("log-filter").await;
    let batch: js_sys::Array = (0..30)
        .map(|i| {
            let kind = if i < 10 { "early" } else { "late" };
            let e = event(&format!("{kind}-{}", i % 3), &format!(r#"{{"i":{i}}}"#));
            put(
                &e,
                "eventType",
                if i % 2 == 0 { "even" } else { "odd" }.into(),
            );
            put(&e, "aggregateType", kind.into());
            e
        })
        .collect();
    store.append_batch(batch.into()).await.unwrap();
    store.append(event("a9", "{}")).await.unwrap();
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 31.0);
    let count = |filter: &str| {
        let f = js(filter);
        let store = &store;
        async move { items(&store.events(f).await.unwrap()) }
    };
    assert_eq!(count(r#"{"eventType":"odd"}"#).await.len(), 15);
    assert_eq!(count(r#"{"aggregateId":"late-1"}"#).await.len(), 7);
    assert_eq!(count(r#"{"aggregateType":"early"}"#).await.len(), 10);
    assert_eq!(
        count(r#"{"aggregateType":"late","eventType":"even"}"#)
            .await
            .len(),
        10
    );
    let range = count(r#"{"fromSeq":5,"toSeq":9}"#).await;
    assert_eq!(
        range
            .iter()
            .map(|e| num(e, "deviceSeq"))
            .collect::<Vec<_>>(),
        [5.0, 6.0, 7.0, 8.0, 9.0]
    );
    let last = count(r#"{"reverse":true,"limit":3}"#).await;
    assert_eq!(
        last.iter().map(|e| num(e, "deviceSeq")).collect::<Vec<_>>(),
        [31.0, 30.0, 29.0]
    );
    let odd_last = count(r#"{"eventType":"odd","reverse":true,"limit":2}"#).await;
    assert_eq!(
        odd_last
            .iter()
            .map(|e| num(e, "deviceSeq"))
            .collect::<Vec<_>>(),
        [30.0, 28.0]
    );
    let now = js_sys::Date::now();
    assert_eq!(
        count(&format!(r#"{{"since":{}}}"#, now - 60_000.0))
            .await
            .len(),
        31
    );
    assert_eq!(
        count(&format!(r#"{{"until":{}}}"#, now - 60_000.0))
            .await
            .len(),
        0
    );
    assert_eq!(
        count(&format!(
            r#"{{"since":{},"aggregateId":"a9"}}"#,
            now + 60_000.0
        ))
        .await
        .len(),
        0
    );
    assert_eq!(
        count(r#"{"since":"2000-01-01T00:00:00.000Z","until":"2999-01-01T00:00:00.000Z"}"#)
            .await
            .len(),
        31
    );
}

/// Appends events `seqs` one at a time (one page each): aggregate
/// `a{seq % 3}`, type `odd` or `even` by `seq`.
async fn append_one_per_page(store: &Store, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        let e = event(&format!("a{}", seq % 3), &format!(r#"{{"seq":{seq}}}"#));
        let kind = if seq % 2 == 1 { "odd" } else { "even" };
        put(&e, "eventType", kind.into());
        store.append(e).await.unwrap();
    }
}

/// Limited and index queries read a few pages first and more each time;
/// a read that ends exactly at the range's end stops there. `verify()`
/// requests the next batch of pages early, also when the log ends exactly
/// at a full batch (64 pages).
#[wasm_bindgen_test]
async fn limited_reads_grow_and_stop_at_the_range_end() {
    let store = fresh("log-limited").await;
    append_one_per_page(&store, 1..=64).await;
    let seqs = |filter: &str| {
        let f = js(filter);
        let store = &store;
        async move {
            items(&store.events(f).await.unwrap())
                .iter()
                .map(|e| num(e, "deviceSeq") as u64)
                .collect::<Vec<u64>>()
        }
    };
    assert_eq!(seqs(r#"{"toSeq":4,"limit":10}"#).await, [1, 2, 3, 4]);
    assert_eq!(
        seqs(r#"{"fromSeq":3,"toSeq":8,"limit":100}"#).await,
        [3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(r#"{"limit":11}"#).await,
        (1..=11).collect::<Vec<u64>>()
    );
    assert_eq!(
        seqs(r#"{"toSeq":12,"limit":12}"#).await,
        (1..=12).collect::<Vec<u64>>()
    );
    assert_eq!(
        seqs(r#"{"eventType":"odd","limit":5}"#).await,
        [1, 3, 5, 7, 9]
    );
    assert_eq!(
        seqs(r#"{"eventType":"even","fromSeq":10,"toSeq":40,"limit":20}"#).await,
        (10..=40).step_by(2).collect::<Vec<u64>>()
    );
    assert_eq!(seqs(r#"{"eventType":"even"}"#).await.len(), 32);
    assert_eq!(
        seqs(r#"{"aggregateId":"a1","reverse":true,"limit":3}"#).await,
        [64, 61, 58]
    );
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(
        (get(&report, "ok"), num(&report, "checked")),
        (JsValue::TRUE, 64.0)
    );
    append_one_per_page(&store, 65..=65).await;
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(
        (get(&report, "ok"), num(&report, "checked")),
        (JsValue::TRUE, 65.0)
    );
    // Past 64 pages of one type: a limited forward query fetches that
    // type's index entries 64 first, then twice as many each time.
    append_one_per_page(&store, 66..=150).await;
    let odd = |from: u64, to: u64| (from..=to).filter(|s| s % 2 == 1).collect::<Vec<u64>>();
    assert_eq!(seqs(r#"{"eventType":"odd","limit":70}"#).await, odd(1, 139));
    assert_eq!(
        seqs(r#"{"eventType":"odd","limit":1000}"#).await,
        odd(1, 149)
    );
    assert_eq!(
        seqs(r#"{"eventType":"even","fromSeq":140,"limit":5}"#).await,
        [140, 142, 144, 146, 148]
    );
    assert_eq!(
        seqs(r#"{"eventType":"odd","fromSeq":10,"toSeq":20,"limit":100}"#).await,
        odd(10, 20)
    );
    assert_eq!(
        seqs(r#"{"eventType":"odd","fromSeq":120,"toSeq":135,"limit":100}"#).await,
        odd(120, 135)
    );
    assert_eq!(
        seqs(r#"{"eventType":"even","fromSeq":151,"limit":3}"#).await,
        Vec::<u64>::new()
    );
}

#[wasm_bindgen_test]
async fn iterate_reads_a_large_log_in_pages() {
    let store = fresh("log-iterate").await;
    let filler = "x".repeat(900);
    for chunk in 0..5 {
        let batch: js_sys::Array = (0..1000)
            .map(|i| {
                event(
                    &format!("p{}", i % 10),
                    &format!(r#"{{"i":{},"pad":"{filler}"}}"#, chunk * 1000 + i),
                )
            })
            .collect();
        store.append_batch(batch.into()).await.unwrap();
    }
    // Each read requests the next pages before handing out its own; an
    // append after the first read is past the end the first read fixed.
    let cursor = store.iterate(JsValue::UNDEFINED).unwrap();
    let mut seen = Vec::new();
    let mut batches = 0;
    loop {
        let page = cursor.next().await.unwrap();
        if page.is_null() {
            break;
        }
        batches += 1;
        seen.extend(items(&page).iter().map(|e| num(e, "deviceSeq") as u64));
        if batches == 1 {
            let more: js_sys::Array = (0..200).map(|_| event("late", "{}")).collect();
            store.append_batch(more.into()).await.unwrap();
        }
    }
    assert_eq!(seen, (1..=5000).collect::<Vec<u64>>());
    assert!(
        batches > 2,
        "a 5,000-event log came back in {batches} pieces"
    );
    // A range from inside one page to inside another, read ahead alike.
    let cursor = store
        .iterate(js(r#"{"fromSeq":1234,"toSeq":4321}"#))
        .unwrap();
    let mut ranged = Vec::new();
    loop {
        let page = cursor.next().await.unwrap();
        if page.is_null() {
            break;
        }
        ranged.extend(items(&page).iter().map(|e| num(e, "deviceSeq") as u64));
    }
    assert_eq!(ranged, (1234..=4321).collect::<Vec<u64>>());
    // A cursor left after one read, with the next one in flight, holds
    // nothing up.
    let left = store.iterate(JsValue::UNDEFINED).unwrap();
    assert!(!left.next().await.unwrap().is_null());
    drop(left);
    store.append(event("after", "{}")).await.unwrap();
    let report = store.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(
        (get(&report, "ok"), num(&report, "checked")),
        (JsValue::TRUE, 5201.0)
    );
}

#[wasm_bindgen_test]
async fn idempotency_keys_return_the_stored_event() {
    let store = fresh("log-idem").await;
    let e = event("form", r#"{"a":1}"#);
    put(&e, "idempotencyKey", "submit-1".into());
    let first = store.append(e.clone()).await.unwrap();
    let again = store.append(e.clone()).await.unwrap();
    assert_eq!(get(&first, "hash"), get(&again, "hash"));
    assert_eq!(num(&store.head().await.unwrap(), "deviceSeq"), 1.0);
    put(&e, "payload", js(r#"{"a":2}"#));
    let err = expect_code(store.append(e).await, "ANNAL_VALIDATION");
    assert_eq!(
        get(&err, "field").as_string().as_deref(),
        Some("idempotencyKey")
    );
}

#[wasm_bindgen_test]
async fn the_audit_export_verifies_offline() {
    let store = fresh("log-export").await;
    for i in 0..5 {
        store
            .append(event(&format!("x{i}"), r#"{"n":[1.5,-0,"ü"]}"#))
            .await
            .unwrap();
    }
    let blob = store.export_audit().await.unwrap();
    assert_eq!(blob.type_(), "application/json");
    let text = JsFuture::from(blob.text())
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let outcome = annal::audit::check(&text, &Default::default()).unwrap();
    assert!(outcome.report.ok);
    assert_eq!(outcome.report.checked, 5);
    let head = store.head().await.unwrap();
    assert_eq!(get(&head, "hash").as_string().unwrap(), outcome.head.hash);
}

#[wasm_bindgen_test]
async fn verify_reports_progress() {
    let store = fresh("log-progress").await;
    for _ in 0..3 {
        let batch: js_sys::Array = (0..1000)
            .map(|i| event("p", &format!(r#"{{"i":{i}}}"#)))
            .collect();
        store.append_batch(batch.into()).await.unwrap();
    }
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = calls.clone();
    let callback = wasm_bindgen::closure::Closure::<dyn FnMut(f64, f64)>::new(
        move |checked: f64, total: f64| {
            sink.borrow_mut().push((checked, total));
        },
    );
    let report = store.verify(callback.as_ref().clone()).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE);
    let calls = calls.borrow();
    assert!(calls.len() > 1, "{calls:?}");
    assert_eq!(calls.last().copied(), Some((3000.0, 3000.0)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[wasm_bindgen_test]
async fn persists_across_close_and_reopen() {
    let store = fresh("log-reopen").await;
    let id = get(&store.identity(), "deviceId");
    store.append(event("d", "{}")).await.unwrap();
    store.close();
    let again = open("log-reopen").await;
    assert_eq!(
        get(&again.identity(), "deviceId"),
        id,
        "the device id is persisted"
    );
    assert_eq!(
        items(&again.events(JsValue::UNDEFINED).await.unwrap()).len(),
        1
    );
    let next = again.append(event("d", "{}")).await.unwrap();
    assert_eq!(num(&next, "deviceSeq"), 2.0);
    assert_eq!(num(&next, "aggregateVersion"), 2.0);
}

/// Two connections of one store stand for two tabs: each remembers the head
/// of its own last commit, so every append of one makes the other's stale.
#[wasm_bindgen_test]
async fn appends_through_two_connections_never_fork_or_miscount() {
    let a = fresh("log-two-tabs").await;
    let b = open("log-two-tabs").await;
    let mut seqs = Vec::new();
    for round in 0..5 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        seqs.push(num(
            &first.append(event("shared", "{}")).await.unwrap(),
            "deviceSeq",
        ));
        let e = second.append(event("shared", "{}")).await.unwrap();
        seqs.push(num(&e, "deviceSeq"));
        // The aggregate version counts both connections' events.
        assert_eq!(num(&e, "aggregateVersion"), f64::from(2 * round + 2));
    }
    assert_eq!(seqs, (1..=10).map(f64::from).collect::<Vec<_>>());
    // A version check made from a stale view is decided on the stored one.
    let stale = event("shared", "{}");
    put(&stale, "expectedVersion", 9.into());
    expect_code(a.append(stale).await, "ANNAL_VERSION_CONFLICT");
    let fresh_check = event("shared", "{}");
    put(&fresh_check, "expectedVersion", 10.into());
    assert_eq!(
        num(&b.append(fresh_check).await.unwrap(), "deviceSeq"),
        11.0
    );
    // An idempotency key used through one connection is known to the other.
    let keyed = event("other", "{}");
    put(&keyed, "idempotencyKey", "form-1".into());
    let first = a.append(keyed.clone()).await.unwrap();
    let again = b.append(keyed).await.unwrap();
    assert_eq!(get(&again, "eventId"), get(&first, "eventId"));
    for store in [&a, &b] {
        let report = store.verify(JsValue::UNDEFINED).await.unwrap();
        assert_eq!(get(&report, "ok"), JsValue::TRUE);
        assert_eq!(num(&report, "checked"), 12.0);
    }
}

/// A batch whose aggregates this connection has not seen finds them all at
/// once, as one range of head keys, or a cursor each when the range holds
/// too many other aggregates; either way each continues at its version.
#[wasm_bindgen_test]
async fn unseen_aggregates_are_found_by_range_or_by_cursor_alike() {
    let writer = fresh("log-head-ranges").await;
    // m-1 three times, m-2 once, m-3 in another commit; m-1x and m-2x sort
    // between them; z-0 .. z-39 sort after everything.
    let first: Vec<&str> = vec!["m-1", "m-1x", "m-1", "m-2", "m-2x", "m-1"];
    let batch = js_sys::Array::new();
    for id in &first {
        batch.push(&event(id, "{}"));
    }
    writer.append_batch(batch.into()).await.unwrap();
    writer.append(event("m-3", "{}")).await.unwrap();
    let others = js_sys::Array::new();
    for i in 0..40 {
        others.push(&event(&format!("z-{i:02}"), "{}"));
    }
    writer.append_batch(others.into()).await.unwrap();

    // A range that holds all of them, and a new one.
    let reader = open("log-head-ranges").await;
    let stored = reader
        .append_batch(batch_with(&[
            ("m-1", Some(3)),
            ("m-2", Some(1)),
            ("m-3", Some(1)),
            ("m-new", Some(0)),
            ("m-1x", None),
        ]))
        .await
        .unwrap();
    assert_eq!(versions(&stored), vec![4.0, 2.0, 2.0, 1.0, 2.0]);

    // A stale expectation is still decided on the stored version.
    let other = open("log-head-ranges").await;
    expect_code(
        other
            .append_batch(batch_with(&[("m-2", Some(1)), ("m-3", Some(2))]))
            .await,
        "ANNAL_VERSION_CONFLICT",
    );

    // From m-1 to z-39 lie more than a few heads per aggregate: the
    // cursors are used, with the same answers, and so is every later batch.
    let stored = other
        .append_batch(batch_with(&[
            ("z-39", Some(1)),
            ("m-1", Some(4)),
            ("m-2", None),
        ]))
        .await
        .unwrap();
    assert_eq!(versions(&stored), vec![2.0, 5.0, 3.0]);
    let stored = other
        .append_batch(batch_with(&[("m-3", Some(2)), ("z-00", Some(1))]))
        .await
        .unwrap();
    assert_eq!(versions(&stored), vec![3.0, 2.0]);

    let report = writer.verify(JsValue::UNDEFINED).await.unwrap();
    assert_eq!(get(&report, "ok"), JsValue::TRUE);
    assert_eq!(num(&report, "checked"), 57.0);
}
