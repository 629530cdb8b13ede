//! `make bench-server`: push and pull throughput of annal-server on SQLite
//! and on PostgreSQL (a throwaway PostgreSQL 15 with its durable defaults,
//! started for the run), in batches of 500 events with 1 KiB payloads (the
//! batch annal's sync pushes, `annal::sync::outbox::BATCH_EVENTS`),
//! through the HTTP router in-process (no sockets: this measures the server
//! and its database).
//!
//! Each backend is measured with one client (a browser draining its sync
//! queue: 10,000 events) and with 4 concurrent clients of one tenant
//! (5,000 events each), `ANNAL_BENCH_RUNS` times each (3 unless told), on
//! a fresh database every run; the report gives the median, min and max.
//! `ANNAL_BENCH_BACKENDS=sqlite` (or `postgres`) measures one backend only.

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
const BATCH: usize = annal::sync::outbox::BATCH_EVENTS;
/// `(clients, events per client)`.
const SCENARIOS: [(usize, usize); 2] = [(1, 10_000), (4, 5_000)];

fn batches(clients: usize, per_client: usize) -> Vec<(String, Vec<Vec<Value>>)> {
    let text = "x".repeat(1000);
    (0..clients)
        .map(|c| {
            let user = format!("site-{c}");
            let mut d = Device::new(TENANT, &user, c as u64 + 1);
            let events: Vec<Value> = (0..per_client)
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

/// Rates of one run: push, pull, verify (events/s).
async fn run(db: Db, work: &[(String, Vec<Vec<Value>>)]) -> [f64; 3] {
    let app = router(db);
    let total: usize = work
        .iter()
        .map(|(_, b)| b.iter().map(Vec::len).sum::<usize>())
        .sum();
    let started = Instant::now();
    let tasks: Vec<_> = work
        .iter()
        .cloned()
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
    let total = total as f64;
    [total / push_secs, total / pull_secs, total / verify_secs]
}

/// `{ median, min, max }` of `xs`, rounded.
fn spread(xs: &[f64]) -> Value {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    json!({
        "median": s[s.len() / 2].round(),
        "min": s[0].round(),
        "max": s[s.len() - 1].round(),
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("ANNAL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r >= 1)
        .unwrap_or(3);
    println!(
        "annal-server ingest: batches of {BATCH}, 1 KiB payloads, {runs} runs per figure (median [min–max])"
    );
    let load_before = load_average();
    println!("machine: {}; load average {load_before}", machine());
    let backends: Vec<&str> = ["sqlite", "postgres"]
        .into_iter()
        .filter(|b| {
            std::env::var("ANNAL_BENCH_BACKENDS")
                .map_or(true, |only| only.split(',').any(|o| o.trim() == *b))
        })
        .collect();
    let pg = backends
        .contains(&"postgres")
        .then(postgres::PgInstance::start_durable);
    let mut results = Vec::new();
    for backend in backends {
        for (clients, per_client) in SCENARIOS {
            let work = batches(clients, per_client);
            let mut rates = Vec::new();
            for _ in 0..runs {
                let file = TempSqlite::new();
                let db = match backend {
                    "sqlite" => Db::open(&file.url(), None).await.unwrap(),
                    _ => {
                        let pg = pg.as_ref().unwrap();
                        let name = pg.create_database().await;
                        Db::open(&pg.app_url_of(&name), Some(&pg.admin_url_of(&name)))
                            .await
                            .unwrap()
                    }
                };
                rates.push(run(db, &work).await);
                drop(file);
            }
            let column = |i: usize| rates.iter().map(|r| r[i]).collect::<Vec<_>>();
            let (push, pull, verify) = (spread(&column(0)), spread(&column(1)), spread(&column(2)));
            let show = |s: &Value| format!("{:>6} [{}–{}]", s["median"], s["min"], s["max"]);
            println!(
                "{backend:<8} {clients} client(s) × {per_client:>5}: push {} events/s   pull {}   verify {}",
                show(&push),
                show(&pull),
                show(&verify)
            );
            results.push(json!({
                "backend": backend,
                "clients": clients,
                "events": clients * per_client,
                "runs": runs,
                "push_events_per_s": push["median"],
                "push_events_per_s_spread": push,
                "pull_events_per_s": pull["median"],
                "pull_events_per_s_spread": pull,
                "ledger_verify_events_per_s": verify["median"],
                "ledger_verify_events_per_s_spread": verify,
            }));
        }
    }
    println!("load average after: {}", load_average());
    if results.len() < 2 * SCENARIOS.len() {
        println!("one backend only: bench/server-results.json left as it is");
        return;
    }
    let report = json!({
        "machine": machine(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "batch": BATCH,
        "payload_bytes": 1000,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "sqlite": "WAL, synchronous=FULL",
        "postgres": "PostgreSQL 15, durable defaults (fsync on, synchronous_commit on)",
        "results": results,
    });
    std::fs::create_dir_all("bench").unwrap();
    std::fs::write(
        "bench/server-results.json",
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("written to bench/server-results.json");
}
