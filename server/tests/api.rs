//! The API suite, run against every backend: SQLite and PostgreSQL.

#[path = "support/client.rs"]
mod client;
#[macro_use]
#[path = "support/fixture.rs"]
mod fixture;
#[path = "support/postgres.rs"]
mod pg;

use annal_server::auth::Scope;
use axum::http::StatusCode;
use client::*;
use fixture::Fixture;
use serde_json::{json, Value};

const T: &str = "study-1";

on_every_backend!(
    push_and_pull,
    replays_change_nothing,
    a_gap_is_resent_from_where_it_starts,
    concurrent_versions_are_flagged,
    what_a_batch_looks_up_is_found_across_pushes,
    quarantine_keeps_the_chain_going,
    tenants_are_isolated,
    scopes_decide_what_is_read,
    atomic_batches_leave_no_gap,
    fifty_clients_push_at_once,
    a_restart_loses_nothing,
    bad_requests_are_typed_and_write_nothing,
);

async fn push_and_pull(f: Fixture) {
    let app = router(f.db.clone());
    let mut d = Device::new(T, "p-1", 1);
    let events = d.entries("diary-1", 3);
    let tok = token(T, "p-1", Scope::Own);
    let res = push(&app, &tok, &events).await;
    assert_eq!(statuses(&res), vec!["accepted"; 3]);
    assert_eq!(res["committed"], true);
    for (i, r) in res["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["receipt"]["server_seq"], i as u64 + 1);
        assert_eq!(r["receipt"]["user_seq"], i as u64 + 1);
        assert_eq!(r["event_id"], events[i]["envelope"]["event_id"]);
    }
    let (ledger, items) = pull_all(&app, &tok).await;
    assert_eq!(ledger, "user:p-1");
    assert_eq!(items.len(), 3);
    verify_ledger(T, &ledger, &items);
    for (item, sent) in items.iter().zip(&events) {
        assert_eq!(
            item["event"], *sent,
            "the server returns exactly what was pushed"
        );
        assert_eq!(item["entry"]["outcome"], "accepted");
    }
    // Paging and filters.
    let (_, page) = call(&app, "GET", "/v1/events?after=1&limit=1", Some(&tok), None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["entry"]["seq"], 2);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_after"], 2);
    let (_, page) = call(
        &app,
        "GET",
        "/v1/events?aggregateId=diary-1&eventType=noted",
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let (_, page) = call(
        &app,
        "GET",
        "/v1/events?aggregateId=other",
        Some(&tok),
        None,
    )
    .await;
    assert!(page["items"].as_array().unwrap().is_empty());
    // Protocol 2: with omit_device, the puller's own events come back as
    // references; the entries, receipts and other devices' events do not
    // change.
    let mut tablet = Device::new(T, "p-1", 11);
    push(&app, &tok, &tablet.entries("diary-2", 2)).await;
    let me = events[0]["envelope"]["device_id"].as_str().unwrap();
    let (_, full) = call(&app, "GET", "/v1/events", Some(&tok), None).await;
    let path = format!("/v1/events?omit_device={me}");
    let (status, lean) = call(&app, "GET", &path, Some(&tok), None).await;
    assert_eq!(status, StatusCode::OK, "{lean}");
    let (full, lean) = (
        full["items"].as_array().unwrap(),
        lean["items"].as_array().unwrap(),
    );
    assert_eq!(lean.len(), 5);
    for (l, f) in lean.iter().zip(full) {
        assert_eq!((&l["entry"], &l["receipt"]), (&f["entry"], &f["receipt"]));
        let envelope = &f["event"]["envelope"];
        if envelope["device_id"] == me {
            assert!(l.get("event").is_none(), "{l}");
            assert_eq!(l["own"], json!({"device_seq": envelope["device_seq"]}));
        } else {
            assert_eq!(l["event"], f["event"]);
            assert!(l.get("own").is_none(), "{l}");
        }
    }
}

async fn replays_change_nothing(f: Fixture) {
    let app = router(f.db.clone());
    let mut d = Device::new(T, "p-1", 2);
    let events = d.entries("a", 5);
    let tok = token(T, "p-1", Scope::Own);
    let first = push(&app, &tok, &events).await;
    let (_, before) = pull_all(&app, &tok).await;
    for _ in 0..3 {
        let again = push(&app, &tok, &events).await;
        assert_eq!(statuses(&again), vec!["duplicate"; 5]);
        for (a, b) in again["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(first["results"].as_array().unwrap())
        {
            assert_eq!(a["receipt"], b["receipt"], "the original receipt");
        }
    }
    let (_, after) = pull_all(&app, &tok).await;
    assert_eq!(before, after);
}

async fn a_gap_is_resent_from_where_it_starts(f: Fixture) {
    let app = router(f.db.clone());
    let mut d = Device::new(T, "p-1", 3);
    let e = d.entries("a", 4);
    let tok = token(T, "p-1", Scope::Own);
    let res = push(&app, &tok, &[e[0].clone(), e[2].clone(), e[3].clone()]).await;
    assert_eq!(statuses(&res), vec!["accepted", "missing", "missing"]);
    assert_eq!(res["results"][1]["missing_device_seq"], 2);
    assert_eq!(res["results"][1]["code"], "MISSING_DEVICE_SEQ");
    let (_, items) = pull_all(&app, &tok).await;
    assert_eq!(items.len(), 1, "nothing after the gap is written");
    let res = push(&app, &tok, &e[1..]).await;
    assert_eq!(statuses(&res), vec!["accepted"; 3]);
    let (ledger, items) = pull_all(&app, &tok).await;
    verify_ledger(T, &ledger, &items);
    assert_eq!(items.len(), 4);
}

async fn concurrent_versions_are_flagged(f: Fixture) {
    let app = router(f.db.clone());
    let mut phone = Device::new(T, "p-1", 4);
    let mut tablet = Device::new(T, "p-1", 5);
    let a = phone.entries("shared", 1);
    let b = tablet.entries("shared", 1);
    let tok = token(T, "p-1", Scope::Own);
    assert_eq!(statuses(&push(&app, &tok, &a).await), vec!["accepted"]);
    let res = push(&app, &tok, &b).await;
    assert_eq!(statuses(&res), vec!["conflict"]);
    assert_eq!(
        res["results"][0]["conflicts_with"],
        json!([a[0]["envelope"]["event_id"]])
    );
    assert!(res["results"][0]["receipt"]["server_seq"].is_u64());
    let (ledger, items) = pull_all(&app, &tok).await;
    verify_ledger(T, &ledger, &items);
    assert_eq!(items[1]["entry"]["outcome"], "conflict");
    assert_eq!(
        items[1]["conflicts_with"],
        json!([a[0]["envelope"]["event_id"]])
    );
}

/// The state a push reads (known event ids, device heads, aggregate
/// versions and the events at a version) comes from earlier pushes, for
/// many keys at once, in one batch that mixes every case.
async fn what_a_batch_looks_up_is_found_across_pushes(f: Fixture) {
    let app = router(f.db.clone());
    let tok = token(T, "p-1", Scope::Own);
    let mut phone = Device::new(T, "p-1", 40);
    let mut tablet = Device::new(T, "p-1", 41);
    let mut laptop = Device::new(T, "p-1", 42);
    let ids = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .map(|e| e["envelope"]["event_id"].clone())
            .collect()
    };
    let receipt = |res: &Value, i: usize| res["results"][i]["receipt"].clone();

    // Phone: versions 1 and 2 of "shared", and 10 other aggregates.
    let p = phone.entries("shared", 2);
    let mut first = p.clone();
    for i in 0..10 {
        first.extend(phone.entries(&format!("own-{i}"), 1));
    }
    let pushed = push(&app, &tok, &first).await;
    assert_eq!(statuses(&pushed), vec!["accepted"; 12]);
    // The tablet's version 1 conflicts with the phone's.
    let t = tablet.entries("shared", 1);
    let res = push(&app, &tok, &t).await;
    assert_eq!(res["results"][0]["conflicts_with"], json!(ids(&p[..1])));
    // A quarantined event (damaged hash), then another with its id.
    let mut q = laptop.entries("elsewhere", 1);
    q[0]["envelope"]["hash"] = json!("a".repeat(64));
    let quarantined = push(&app, &tok, &q).await;
    assert_eq!(quarantined["results"][0]["code"], "HASH_MISMATCH");
    let mut q2 = q.clone();
    q2[0]["envelope"]["hash"] = json!("b".repeat(64));
    let res = push(&app, &tok, &q2).await;
    assert_eq!(res["results"][0]["code"], "DUPLICATE_EVENT_ID");
    // Another user's copy of a phone event changes nothing of p-1's.
    let res = push(&app, &token(T, "p-2", Scope::Own), &first[2..3]).await;
    assert_eq!(res["results"][0]["code"], "WRONG_USER");

    let l = laptop.entries("shared", 2);
    let mut changed = first[1].clone();
    changed["envelope"]["hash"] = json!("c".repeat(64));
    let mut batch = vec![
        first[0].clone(), // stored: a duplicate with its first receipt
        changed.clone(),  // a stored id with another hash
        q[0].clone(),     // quarantined: a duplicate with its first receipt
        q2[0].clone(),    // quarantined twice: compared with the first
        first[2].clone(), // a duplicate despite p-2's copy
    ];
    batch.extend(l.clone()); // versions 1 and 2 again: conflicts
    batch.extend(phone.entries("shared", 1)); // phone's next: version 3
    for i in 0..10 {
        batch.extend(phone.entries(&format!("own-{i}"), 1));
    }
    let res = push(&app, &tok, &batch).await;
    let mut expected = vec![
        "duplicate",
        "quarantined",
        "duplicate",
        "quarantined",
        "duplicate",
    ];
    expected.extend(["conflict", "conflict"]);
    expected.extend(["accepted"; 11]);
    assert_eq!(statuses(&res), expected);
    assert_eq!(receipt(&res, 0), receipt(&pushed, 0));
    assert_eq!(res["results"][1]["code"], "DUPLICATE_EVENT_ID");
    assert_eq!(receipt(&res, 2), receipt(&quarantined, 0));
    assert_eq!(res["results"][3]["code"], "DUPLICATE_EVENT_ID");
    assert_eq!(receipt(&res, 4), receipt(&pushed, 2));
    // Version 1's conflicts name the phone's and the tablet's, in ledger order.
    let mut at_1 = ids(&p[..1]);
    at_1.extend(ids(&t));
    assert_eq!(res["results"][5]["conflicts_with"], json!(at_1));
    assert_eq!(res["results"][6]["conflicts_with"], json!(ids(&p[1..2])));
    // Every aggregate moved on: the phone's next event is accepted, and the
    // changed copy is still compared with the stored event, not with the
    // quarantined copies of it.
    let next = phone.entries("own-3", 1);
    assert_eq!(statuses(&push(&app, &tok, &next).await), vec!["accepted"]);
    let res = push(&app, &tok, &[changed]).await;
    assert_eq!(res["results"][0]["code"], "DUPLICATE_EVENT_ID");
    let (ledger, items) = pull_all(&app, &tok).await;
    verify_ledger(T, &ledger, &items);
    assert_eq!(items.len(), 12 + 1 + 2 + (2 + 2 + 11) + 1 + 1);
}

async fn quarantine_keeps_the_chain_going(f: Fixture) {
    let app = router(f.db.clone());
    let mut d = Device::new(T, "p-1", 6);
    let mut e = d.entries("a", 3);
    e[1]["envelope"]["hash"] = json!("f".repeat(64));
    let tok = token(T, "p-1", Scope::Own);
    let res = push(&app, &tok, &e).await;
    assert_eq!(statuses(&res), vec!["accepted", "quarantined", "accepted"]);
    assert_eq!(res["results"][1]["code"], "HASH_MISMATCH");
    assert!(res["results"][1]["receipt"]["server_seq"].is_u64());
    // The schema limit of the test policy.
    let v3 = {
        let mut r = d.record("a", "vitals-recorded", json!({"bp": 120}));
        r.envelope.schema_version = 3;
        r.envelope.seal();
        entry(&r)
    };
    let res = push(&app, &tok, &[v3]).await;
    assert_eq!(res["results"][0]["code"], "SCHEMA_NOT_ALLOWED");
    let (ledger, items) = pull_all(&app, &tok).await;
    verify_ledger(T, &ledger, &items);
    assert_eq!(items.len(), 4);
    assert_eq!(items[1]["entry"]["outcome"], "quarantined");
    assert_eq!(items[1]["quarantine"]["code"], "HASH_MISMATCH");
    assert_eq!(items[1]["quarantine"]["claimed_hash"], "f".repeat(64));
    assert_eq!(items[1]["quarantine"]["submitted"], e[1]);
    // A replay of the quarantined event is a duplicate, not a new entry.
    let res = push(&app, &tok, &e[1..2]).await;
    assert_eq!(statuses(&res), vec!["duplicate"]);
}

async fn tenants_are_isolated(f: Fixture) {
    let app = router(f.db.clone());
    let mut a = Device::new("tenant-a", "u-1", 7);
    let ea = a.entries("x", 2);
    let tok_a = token("tenant-a", "u-1", Scope::Tenant);
    let tok_b = token("tenant-b", "u-1", Scope::Tenant);
    push(&app, &tok_a, &ea).await;
    let (status, body) = call(
        &app,
        "GET",
        "/v1/events?tenant=tenant-a",
        Some(&tok_b),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.get("items").is_none());
    let (_, items) = pull_all(&app, &tok_b).await;
    assert!(items.is_empty());
    // Tenant A's events pushed with B's token are quarantined in B, never in A.
    let res = push(&app, &tok_b, &ea).await;
    assert_eq!(res["results"][0]["code"], "WRONG_TENANT");
    let (_, items_a) = pull_all(&app, &tok_a).await;
    assert_eq!(items_a.len(), 2);
}

async fn scopes_decide_what_is_read(f: Fixture) {
    let app = router(f.db.clone());
    let mut p1 = Device::new(T, "patient-1", 8);
    let mut p2 = Device::new(T, "patient-2", 9);
    push(
        &app,
        &token(T, "patient-1", Scope::Own),
        &p1.entries("d1", 3),
    )
    .await;
    push(
        &app,
        &token(T, "patient-2", Scope::Own),
        &p2.entries("d2", 2),
    )
    .await;
    let (ledger, mine) = pull_all(&app, &token(T, "patient-1", Scope::Own)).await;
    assert_eq!(mine.len(), 3);
    assert!(mine
        .iter()
        .all(|i| i["event"]["envelope"]["user_id"] == "patient-1"));
    verify_ledger(T, &ledger, &mine);
    let (ledger, all) = pull_all(&app, &token(T, "coordinator", Scope::Tenant)).await;
    assert_eq!(ledger, "tenant");
    assert_eq!(all.len(), 5);
    verify_ledger(T, &ledger, &all);
    // Pushes are always the token's own user's, and a device's chain is
    // its first pusher's.
    let tok2 = token(T, "patient-2", Scope::Tenant);
    let stolen = p1.entries("d1", 1);
    let res = push(&app, &tok2, &stolen).await;
    assert_eq!(res["results"][0]["code"], "WRONG_USER");
    let res = push(
        &app,
        &tok2,
        &Device::new(T, "patient-1", 99).entries("d9", 1),
    )
    .await;
    assert_eq!(res["results"][0]["code"], "WRONG_USER");
    // Patient 1's device carries on undisturbed, from the same position.
    let mut own = stolen;
    own.extend(p1.entries("d1", 1));
    let res = push(&app, &token(T, "patient-1", Scope::Own), &own).await;
    assert_eq!(statuses(&res), vec!["accepted", "accepted"]);
}

async fn atomic_batches_leave_no_gap(f: Fixture) {
    let app = router(f.db.clone());
    let tok = token(T, "p-1", Scope::Own);
    let mut good = Device::new(T, "p-1", 10);
    let mut bad = Device::new(T, "p-1", 11);
    let ok_events = good.entries("g", 10);
    let mut bad_events = bad.entries("b", 10);
    bad_events[5]["envelope"]["hash"] = json!("0".repeat(64));
    let (a, b) = tokio::join!(
        push_batch(&app, &tok, &ok_events, true),
        push_batch(&app, &tok, &bad_events, true)
    );
    assert_eq!(a["committed"], true);
    assert_eq!(b["committed"], false);
    assert_eq!(statuses(&b), vec!["not_written"; 10]);
    assert_eq!(b["results"][5]["code"], "HASH_MISMATCH");
    let (ledger, items) = pull_all(&app, &tok).await;
    assert_eq!(items.len(), 10);
    verify_ledger(T, &ledger, &items);
    let (ledger, items) = pull_all(&app, &token(T, "c", Scope::Tenant)).await;
    verify_ledger(T, &ledger, &items);
}

async fn fifty_clients_push_at_once(f: Fixture) {
    let app = router(f.db.clone());
    let mut tasks = Vec::new();
    for c in 0..50u64 {
        let app = app.clone();
        let user = format!("p-{}", c % 10);
        let tok = token(T, &user, Scope::Own);
        let events = Device::new(T, &user, 100 + c).entries(&format!("agg-{c}"), 200);
        tasks.push(tokio::spawn(async move {
            let mut receipts = 0;
            for chunk in events.chunks(50) {
                let res = push(&app, &tok, chunk).await;
                receipts += res["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["status"] == "accepted")
                    .count();
            }
            receipts
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 10_000);
    let (ledger, items) = pull_all(&app, &token(T, "auditor", Scope::Tenant)).await;
    assert_eq!(items.len(), 10_000);
    verify_ledger(T, &ledger, &items);
    let (ledger, items) = pull_all(&app, &token(T, "p-3", Scope::Own)).await;
    assert_eq!(items.len(), 1000);
    verify_ledger(T, &ledger, &items);
}

async fn a_restart_loses_nothing(f: Fixture) {
    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 12);
    let first = d.entries("a", 5);
    let second = d.entries("a", 5);
    push(&router(f.db.clone()), &tok, &first).await;
    drop(f.db.clone());
    let app = router(f.reopen().await);
    let res = push(&app, &tok, &second).await;
    assert_eq!(statuses(&res), vec!["accepted"; 5]);
    assert_eq!(res["results"][0]["receipt"]["server_seq"], 6);
    let (ledger, items) = pull_all(&app, &tok).await;
    assert_eq!(items.len(), 10);
    verify_ledger(T, &ledger, &items);
}

async fn bad_requests_are_typed_and_write_nothing(f: Fixture) {
    let app = router(f.db.clone());
    let tok = token(T, "p-1", Scope::Own);
    let post = |body: String| {
        let app = app.clone();
        let tok = tok.clone();
        async move { call(&app, "POST", "/v1/events", Some(&tok), Some(body)).await }
    };
    for (body, code) in [
        ("{".to_string(), "MALFORMED_JSON"),
        (r#"{"events":[],"events":[]}"#.to_string(), "MALFORMED_JSON"),
        (r#"{"events":"no"}"#.to_string(), "MALFORMED_REQUEST"),
        (
            r#"{"events":[],"extra":1}"#.to_string(),
            "MALFORMED_REQUEST",
        ),
        (r#"{"events":[]}"#.to_string(), "BATCH_SIZE"),
    ] {
        let (status, v) = post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}");
        assert!(v["message"].as_str().unwrap().len() > 10);
    }
    // A duplicate key inside an event.
    let mut d = Device::new(T, "p-1", 13);
    let e = d.entries("a", 1);
    let text =
        json!({"events": e})
            .to_string()
            .replacen("\"salt\":", "\"salt\":\"00\",\"salt\":", 1);
    let (status, v) = post(text).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MALFORMED_JSON"))
    );
    // Over the body limit.
    let big = format!(
        r#"{{"events":[{{"pad":"{}"}}]}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let (status, _) = post(big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Missing fields: quarantined, with a code.
    let res = push(&app, &tok, &[json!({"envelope": {"event_id": "nope"}})]).await;
    assert_eq!(res["results"][0]["code"], "MALFORMED");
    // Tokens.
    for (t, what) in [
        (None, "none"),
        (Some("garbage".to_string()), "garbage"),
        (
            Some(
                annal_server::auth::Auth::hs256(b"another secret another secret 123", AUDIENCE)
                    .mint(T, "p-1", Scope::Own, 60)
                    .unwrap(),
            ),
            "wrong key",
        ),
        (
            Some(
                annal_server::auth::Auth::hs256(SECRET, "other")
                    .mint(T, "p-1", Scope::Own, 60)
                    .unwrap(),
            ),
            "wrong audience",
        ),
    ] {
        let (status, v) = call(&app, "GET", "/v1/events", t.as_deref(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
        assert_eq!(v["code"], "UNAUTHORIZED");
    }
    let expired = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = json!({"sub": "p-1", "tenant": T, "aud": AUDIENCE, "exp": 1_000_000_000u64});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let (status, v) = call(&app, "GET", "/v1/events", Some(&expired), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("expired"));
    // Filters and limits.
    for q in [
        "limit=-1",
        "limit=0",
        "limit=abc",
        "after=-5",
        "aggregateId=a%00b",
        "omit_device=",
        "omit_device=a%0Ab",
        "nope=1",
    ] {
        let (status, v) = call(&app, "GET", &format!("/v1/events?{q}"), Some(&tok), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["code"], "BAD_QUERY");
    }
    for q in [
        "limit=1000000000000",
        "aggregateId=x'%20OR%201=1%20--",
        "eventType=%3BDROP%20TABLE%20events",
    ] {
        let (status, v) = call(&app, "GET", &format!("/v1/events?{q}"), Some(&tok), None).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
    }
    // Nothing was written by any of it but the one quarantined entry.
    let (_, items) = pull_all(&app, &tok).await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn health_schema_metrics_and_openapi() {
    let f = fixture::sqlite().await;
    let app = router(f.db.clone());
    let (status, v) = call(&app, "GET", "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["database"], "sqlite");
    let (_, v) = call(&app, "GET", "/v1/schema", None, None).await;
    assert_eq!(v["protocol"], json!({"min": 1, "max": 2}));
    assert_eq!(v["max_schema_version"]["vitals-recorded"], 2);
    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 14);
    push(&app, &tok, &d.entries("a", 2)).await;
    let (status, text) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("annal_events_total{outcome=\"accepted\"} 2"),
        "{text}"
    );
    assert!(text.contains("annal_push_seconds_count 1"), "{text}");
    assert!(text.contains("annal_open_streams 0"), "{text}");
    let (status, spec) = call(&app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    for (method, path) in annal_server::ROUTES {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} is not in server/openapi.json"
        );
    }
    let _: Value = spec;
}
