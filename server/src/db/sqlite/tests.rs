//! What SQLite does with the statements of a push and a pull: each table is
//! reached by an index search on its whole key, never a scan of the tenant,
//! on an empty database and on one with statistics (`ANALYZE`), under which
//! SQLite may choose other plans. A lookup that scans grows with the tenant
//! and costs nothing in a small test: an early version scanned a whole index
//! per lookup and ran at 96 events/s.

use super::*;
use annal::clock::ManualClock;
use annal::draft::Draft;
use annal::entropy::SeededEntropy;
use annal::memory::MemoryStore;
use annal::state::Identity;
use serde_json::{json, Value};
use std::path::PathBuf;

const T: &str = "study-1";

/// A database file, removed with its WAL on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("annal-unit-{}-{name}.db", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn device(user: &str, seed: u64) -> MemoryStore {
    let clock = ManualClock::new(1_700_000_000_000);
    let entropy = SeededEntropy::new(seed);
    let identity = Identity::generate(T, user, &clock, &entropy);
    MemoryStore::new(identity, Box::new(clock), Box::new(entropy))
}

/// `n` events of `store` spread over `aggregates` aggregates, as pushed.
fn batch(store: &mut MemoryStore, aggregates: usize, n: usize) -> Vec<Submitted> {
    (0..n)
        .map(|i| {
            let r = store
                .append(
                    Draft::from_value(&json!({
                        "aggregateType": "diary", "aggregateId": format!("agg-{}", i % aggregates),
                        "eventType": "noted", "payload": {"i": i}
                    }))
                    .unwrap(),
                )
                .unwrap();
            Submitted::read(json!({
                "envelope": r.envelope.to_value(false),
                "salt": annal::hex::encode(&r.salt),
                "payload": serde_json::from_str::<Value>(r.payload.as_str()).unwrap(),
            }))
        })
        .collect()
}

/// What a push of `batch` by `user` would bind to each lookup.
fn binds(user: &str, batch: &[Submitted]) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let w = ingest::wanted(batch);
    let list =
        |keys: &std::collections::BTreeSet<String>| json_list(&keys.iter().collect::<Vec<_>>());
    let versions: Vec<(&str, u64)> = w.versions.iter().map(|(a, v)| (a.as_str(), *v)).collect();
    let t = T.to_string();
    LOOKUPS
        .iter()
        .map(|&(name, sql)| {
            let params = match name {
                "heads" => vec![t.clone(), TENANT_LEDGER.into(), user_ledger(user)],
                "devices" => vec![t.clone(), list(&w.devices)],
                "aggregates" => vec![t.clone(), list(&w.aggregates)],
                "existing" => vec![t.clone(), list(&w.events), user.into()],
                "at_version" => vec![t.clone(), json_list(&versions)],
                other => panic!("no parameters for lookup {other}"),
            };
            (name, sql, params)
        })
        .collect()
}

/// The table accesses each lookup must make: `(alias, index constraint)`.
fn expected(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "heads" => &[("ledger_heads", "tenant_id=? AND ledger=?")],
        "devices" => &[("d", "tenant_id=? AND device_id=?")],
        "aggregates" => &[("a", "tenant_id=? AND aggregate_id=?")],
        "existing" => &[
            ("e", "tenant_id=? AND event_id=?"),
            ("r", "tenant_id=? AND server_seq=?"),
            ("x", "tenant_id=? AND event_id=?"),
            ("r", "tenant_id=? AND server_seq=?"),
        ],
        "at_version" => &[(
            "e",
            "tenant_id=? AND aggregate_id=? AND aggregate_version=?",
        )],
        "pull" => &[
            ("l", "tenant_id=? AND ledger=? AND seq>?"),
            ("r", "tenant_id=? AND server_seq=?"),
            ("e", "tenant_id=? AND server_seq=?"),
            ("x", "tenant_id=? AND server_seq=?"),
        ],
        other => panic!("no expectations for {other}"),
    }
}

async fn query_plan(db: &SqliteDb, sql: &str, params: &[String]) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut q = sqlx::query(&explain);
    for p in params {
        q = q.bind(p);
    }
    q.fetch_all(&db.writer)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(3))
        .collect()
}

/// Fails unless every table access of `sql` is an index search on the key
/// [`expected`] names, in that order, and nothing is scanned or sorted but
/// the `json_each` list of keys.
async fn assert_searches(db: &SqliteDb, name: &str, sql: &str, params: &[String], when: &str) {
    let plan = query_plan(db, sql, params).await;
    let shown = plan.join("\n");
    let mut searches = Vec::new();
    for step in &plan {
        if step.starts_with("SCAN w VIRTUAL TABLE") {
            continue;
        }
        assert!(
            !step.starts_with("SCAN") && !step.contains("TEMP B-TREE"),
            "{when}: lookup {name} scans or sorts ({step:?}):\n{shown}"
        );
        if step.starts_with("SEARCH") {
            searches.push(step.as_str());
        }
    }
    let want = expected(name);
    assert_eq!(
        searches.len(),
        want.len(),
        "{when}: lookup {name}:\n{shown}"
    );
    for (step, (alias, key)) in searches.iter().zip(want) {
        assert!(
            step.starts_with(&format!("SEARCH {alias} USING "))
                && step.contains(&format!("({key})")),
            "{when}: lookup {name} reaches {alias} by {step:?}, not by ({key}):\n{shown}"
        );
    }
}

async fn assert_all_search(db: &SqliteDb, probe: &[Submitted], when: &str) {
    for (name, sql, params) in binds("u-1", probe) {
        assert_searches(db, name, sql, &params, when).await;
    }
    let pull = PullQuery {
        tenant: T.into(),
        ledger: TENANT_LEDGER.into(),
        after: 0,
        limit: 500,
        aggregate_id: None,
        event_type: None,
        omit_device: None,
    };
    let params = [
        T.to_string(),
        TENANT_LEDGER.into(),
        "0".into(),
        "501".into(),
    ];
    assert_searches(db, "pull", &pull_sql(&pull), &params, when).await;
}

#[tokio::test]
async fn lookups_search_indexes() {
    let file = TempFile::new("plans");
    let db = SqliteDb::open(&file.0.display().to_string()).await.unwrap();
    let mut d = device("u-1", 1);
    let probe = batch(&mut d, 10, 100);
    assert_all_search(&db, &probe, "empty database").await;

    // A tenant with several users, devices, conflicts and quarantined
    // entries, and other tenants' rows; then statistics.
    for (u, user) in ["u-1", "u-2", "u-3"].into_iter().enumerate() {
        let mut d = device(user, 10 + u as u64);
        for _ in 0..4 {
            let b = batch(&mut d, 20, 100);
            db.push(T, user, &b, false, &Policy::default())
                .await
                .unwrap();
        }
        let mut other = device(user, 20 + u as u64);
        let b = batch(&mut other, 5, 50);
        db.push(T, user, &b, false, &Policy::default())
            .await
            .unwrap();
        db.push(T, "someone-else", &b, false, &Policy::default())
            .await
            .unwrap();
        db.push("other-tenant", user, &b, false, &Policy::default())
            .await
            .unwrap();
    }
    let p = db
        .push(T, "u-1", &probe[..50], false, &Policy::default())
        .await
        .unwrap();
    assert!(p.results.iter().all(|r| r.receipt.is_some()));
    assert_all_search(&db, &probe, "a populated database").await;
    sqlx::query("ANALYZE").execute(&db.writer).await.unwrap();
    assert_all_search(&db, &probe, "after ANALYZE").await;
}

#[tokio::test]
async fn multi_row_inserts_take_any_number_of_rows() {
    let file = TempFile::new("chunks");
    let db = SqliteDb::open(&file.0.display().to_string()).await.unwrap();
    let mut d = device("u-1", 2);
    // Sizes around the chunk sizes of every table, up to a full request.
    let mut all = Vec::new();
    for n in [1, 2, 3, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 1000] {
        let b = batch(&mut d, 7, n);
        let plan = db
            .push(T, "u-1", &b, false, &Policy::default())
            .await
            .unwrap();
        assert_eq!(plan.events.len(), n);
        all.extend(b);
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&db.readers)
            .await
            .unwrap();
        assert_eq!(stored, all.len() as i64);
    }
    let total = all.len() as i64;
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&db.readers)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("receipts").await, total);
    assert_eq!(count("ledger").await, 2 * total);
    assert_eq!(count("aggregates").await, 7);
    // Replayed in one go, all of it is a duplicate and nothing is written.
    let plan = db
        .push(T, "u-1", &all, false, &Policy::default())
        .await
        .unwrap();
    assert!(plan.ledger.is_empty());
    assert!(plan
        .results
        .iter()
        .all(|r| r.status == crate::protocol::Status::Duplicate));
    assert_eq!(count("ledger").await, 2 * total);
}

/// Keys reach the lookups as JSON text read back by `json_each`, so every
/// string must come back byte for byte. Raw device and event ids of
/// malformed entries are any JSON strings, U+0000 included (SQLite before
/// 3.45 cut `json_each` values at it; the bundled one does not).
#[tokio::test]
async fn key_lists_come_back_exactly() {
    let file = TempFile::new("keys");
    let db = SqliteDb::open(&file.0.display().to_string()).await.unwrap();
    let keys = [
        "plain",
        "a\0b",
        "\0",
        "quote \" and backslash \\ and slash /",
        "tab\tnewline\n\u{1}\u{1f}\u{7f}",
        "é ü ß 漢字 😀 \u{10ffff}",
        "",
    ];
    let back: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT CAST(value AS BLOB) FROM json_each(?1) ORDER BY key")
            .bind(json_list(&keys))
            .fetch_all(&db.writer)
            .await
            .unwrap();
    let want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(back, want);
    for k in keys {
        let same: bool = sqlx::query_scalar("SELECT value = ?2 FROM json_each(?1)")
            .bind(json_list(&[k]))
            .bind(k)
            .fetch_one(&db.writer)
            .await
            .unwrap();
        assert!(same, "{k:?}");
    }
    let pair: (String, i64) = sqlx::query_as("SELECT value ->> 0, value ->> 1 FROM json_each(?1)")
        .bind(json_list(&[("a\0b", 9_007_199_254_740_991u64)]))
        .fetch_one(&db.writer)
        .await
        .unwrap();
    assert_eq!(pair, ("a\0b".to_string(), 9_007_199_254_740_991));
}
