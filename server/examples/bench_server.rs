//! `make bench-server`: push and pull throughput of annal-server on SQLite
//! and on PostgreSQL (a throwaway PostgreSQL 15 started for the run), in
//! batches of 100 events with 1 KiB payloads, through the HTTP router
//! in-process (no sockets: this measures the server and its database).

#[path = "../tests/support/client.rs"]
mod client;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use annal_server::auth::Scope;
use annal_server::db::Db;
use client::*;
use serde_json::{json, Value};
use std::time::Instant;

const TENANT: &str = "bench";
const CLIENTS: usize = 4;
const EVENTS_PER_CLIENT: usize = 5_000;
const BATCH: usize = 100;

fn batches() -> Vec<(String, Vec<Vec<Value>>)> {
    let text = "x".repeat(1000);
    (0..CLIENTS)
        .map(|c| {
            let user = format!("site-{c}");
            let mut d = Device::new(TENANT, &user, c as u64 + 1);
            let events: Vec<Value> = (0..EVENTS_PER_CLIENT)
                .map(|i| {
                    entry(&d.record(
                        &format!("diary-{c}-{}", i % 50),
                        "noted",
                        json!({"i": i, "text": text}),
                    ))
                })
                .collect();
            (user, events.chunks(BATCH).map(<[Value]>::to_vec).collect())
        })
        .collect()
}

async fn run(name: &str, db: Db) -> Value {
    let app = router(db);
    let work = batches();
    let total = CLIENTS * EVENTS_PER_CLIENT;
    let started = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(user, batches)| {
            let app = app.clone();
            let tok = token(TENANT, &user, Scope::Own);
            tokio::spawn(async move {
                for b in &batches {
                    let res = push(&app, &tok, b).await;
                    assert!(res["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|r| r["status"] == "accepted"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let push_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (ledger, items) = pull_all(&app, &token(TENANT, "auditor", Scope::Tenant)).await;
    let pull_secs = started.elapsed().as_secs_f64();
    assert_eq!(items.len(), total);
    let started = Instant::now();
    verify_ledger(TENANT, &ledger, &items);
    let verify_secs = started.elapsed().as_secs_f64();
    let push_rate = total as f64 / push_secs;
    let pull_rate = total as f64 / pull_secs;
    let verify_rate = total as f64 / verify_secs;
    println!(
        "{name:<10} push {push_rate:>8.0} events/s   pull {pull_rate:>8.0} events/s   verify {verify_rate:>8.0} events/s"
    );
    json!({
        "backend": name,
        "events": total,
        "push_events_per_s": push_rate.round(),
        "pull_events_per_s": pull_rate.round(),
        "ledger_verify_events_per_s": verify_rate.round(),
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

#[tokio::main]
async fn main() {
    println!(
        "annal-server ingest: {CLIENTS} concurrent clients, {EVENTS_PER_CLIENT} events each, batches of {BATCH}, 1 KiB payloads"
    );
    println!("machine: {}", machine());
    let file = TempSqlite::new();
    let sqlite = run("sqlite", Db::open(&file.url(), None).await.unwrap()).await;
    let (app_url, admin_url) = postgres::database().await;
    let pg = run(
        "postgres",
        Db::open(&app_url, Some(&admin_url)).await.unwrap(),
    )
    .await;
    let report = json!({
        "machine": machine(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "clients": CLIENTS,
        "batch": BATCH,
        "payload_bytes": 1000,
        "results": [sqlite, pg],
    });
    std::fs::create_dir_all("bench").unwrap();
    std::fs::write(
        "bench/server-results.json",
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("written to bench/server-results.json");
}
