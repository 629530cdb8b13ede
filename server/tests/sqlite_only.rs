//! SQLite specifics: the triggers refuse edits made straight through SQL,
//! and a database from a newer annal-server is refused.

#[path = "support/client.rs"]
mod client;

use annal_server::auth::Scope;
use annal_server::db::{Db, DbError};
use client::*;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;

#[tokio::test]
async fn updates_and_deletes_are_refused_by_the_database() {
    let file = TempSqlite::new();
    let db = Db::open(&file.url(), None).await.unwrap();
    let app = router(db);
    let mut d = Device::new("t", "p-1", 1);
    let mut e = d.entries("a", 3);
    e[1]["envelope"]["hash"] = serde_json::json!("0".repeat(64));
    push(&app, &token("t", "p-1", Scope::Own), &e).await;

    let mut conn = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for sql in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "DELETE FROM events WHERE server_seq = 3",
        "UPDATE ledger SET outcome = 'accepted'",
        "DELETE FROM ledger",
        "UPDATE receipts SET received_at = 'x'",
        "DELETE FROM receipts",
        "UPDATE quarantine SET code = 'OK'",
        "DELETE FROM quarantine",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 6);
    // A newer annal-server's schema is refused, not misread.
    sqlx::query("INSERT INTO annal_schema (version) VALUES (99)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    match Db::open(&file.url(), None).await {
        Err(DbError::Newer { database: 99, .. }) => {}
        other => panic!("expected Newer, got {other:?}"),
    }
}
