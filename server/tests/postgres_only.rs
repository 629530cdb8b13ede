//! Tests that only make sense on PostgreSQL: the app role's privileges,
//! row-level security per transaction, triggers that even the owner cannot
//! get past with plain SQL, migrations racing, NOTIFY, and two server
//! instances appending to one tenant ledger at once.

#[path = "support/postgres.rs"]
mod pg;

use annal::clock::ManualClock;
use annal::draft::Draft;
use annal::entropy::SeededEntropy;
use annal::envelope::GENESIS_HASH;
use annal::ledger::{user_ledger, LedgerVerifier, TENANT_LEDGER};
use annal::memory::MemoryStore;
use annal::state::Identity;
use annal_server::db::postgres::{PgDb, NOTIFY_CHANNEL};
use annal_server::db::{DbError, PullQuery, Row};
use annal_server::ingest::{Policy, Submitted};
use annal_server::protocol::Status;
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

/// A device of `user` in `tenant`, whose events are real annal events.
struct Device {
    store: MemoryStore,
}

impl Device {
    fn new(tenant: &str, user: &str, seed: u64) -> Device {
        let clock = ManualClock::new(1_700_000_000_000 + seed as i64);
        let entropy = SeededEntropy::new(seed);
        let identity = Identity::generate(tenant, user, &clock, &entropy);
        Device {
            store: MemoryStore::new(identity, Box::new(clock), Box::new(entropy)),
        }
    }

    /// `n` new events on `aggregate`, as pushed entries.
    fn entries(&mut self, aggregate: &str, n: usize, payload: &Value) -> Vec<Value> {
        (0..n)
            .map(|_| {
                let draft = Draft::from_value(&json!({
                    "aggregateType": "diary", "aggregateId": aggregate,
                    "eventType": "noted", "payload": payload,
                }))
                .expect("a valid draft");
                let r = self.store.append(draft).expect("append");
                json!({
                    "envelope": r.envelope.to_value(false),
                    "salt": annal::hex::encode(&r.salt),
                    "payload": serde_json::from_str::<Value>(r.payload.as_str()).unwrap(),
                })
            })
            .collect()
    }

    fn batch(&mut self, aggregate: &str, n: usize) -> Vec<Submitted> {
        read(self.entries(aggregate, n, &json!({"pain": 3})))
    }
}

fn read(entries: Vec<Value>) -> Vec<Submitted> {
    entries.into_iter().map(Submitted::read).collect()
}

async fn open() -> (PgDb, String, String) {
    let (app, admin) = pg::database().await;
    let db = PgDb::open(&app, Some(&admin))
        .await
        .expect("open PostgreSQL");
    (db, app, admin)
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// The database name at the end of a URL.
fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

async fn push(db: &PgDb, tenant: &str, user: &str, batch: &[Submitted]) -> Vec<Status> {
    let plan = db
        .push(tenant, user, batch, false, &Policy::default())
        .await
        .expect("push");
    plan.results.iter().map(|r| r.status).collect()
}

/// Every row of a ledger, page by page.
async fn pull_all(db: &PgDb, tenant: &str, ledger: &str) -> Vec<Row> {
    let mut all: Vec<Row> = Vec::new();
    loop {
        let q = PullQuery {
            tenant: tenant.into(),
            ledger: ledger.into(),
            after: all.last().map_or(0, |r| r.entry.seq),
            limit: 100,
            aggregate_id: None,
            event_type: None,
            omit_device: None,
        };
        let mut rows = db.pull(&q).await.expect("pull");
        let more = rows.len() > 100;
        rows.truncate(100);
        all.extend(rows);
        if !more {
            return all;
        }
    }
}

/// Checks a whole ledger with the client's verifier; returns its length.
fn verify(rows: &[Row], tenant: &str, ledger: &str) -> u64 {
    let mut v = LedgerVerifier::new(tenant, ledger, 0, GENESIS_HASH);
    for r in rows {
        v.feed(&r.entry)
            .unwrap_or_else(|e| panic!("{ledger} of {tenant}: {}", e.message));
    }
    v.checkpoint().0
}

/// The tenant of every event in `rows`, from the stored envelopes.
fn tenants_of(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let (envelope, ..) = r.event.as_ref().expect("an event");
            let v: Value = serde_json::from_str(envelope).unwrap();
            v["tenant_id"].as_str().unwrap().to_string()
        })
        .collect()
}

const APPEND_ONLY: [&str; 4] = ["events", "quarantine", "ledger", "receipts"];
const TENANT_TABLES: [&str; 7] = [
    "ledger_heads",
    "device_heads",
    "aggregates",
    "events",
    "quarantine",
    "ledger",
    "receipts",
];

#[tokio::test]
async fn the_app_connects_as_a_non_owner_role_without_bypassrls() {
    let (db, app, admin) = open().await;
    let mut d = Device::new("t-1", "u-1", 1);
    push(&db, "t-1", "u-1", &d.batch("a", 3)).await;

    // The pool the server uses is the app role, which is nothing special.
    let (me, superuser, bypass, createrole): (String, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(me, pg::APP);
    assert!(
        !superuser && !bypass && !createrole,
        "the app role must be a plain role"
    );

    // It owns no table, is not a member of the owner, and every tenant
    // table has row-level security enabled and forced.
    let mut c = connect(&app).await;
    let tables: Vec<(String, String, bool, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity,
                EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (table, owner, rls, forced, tenanted) in &tables {
        assert_eq!(owner, pg::OWNER, "{table} is owned by {owner}");
        assert_ne!(owner, &me);
        if *tenanted {
            assert!(
                *rls && *forced,
                "{table}: row-level security must be enabled and forced"
            );
        }
    }
    for table in TENANT_TABLES {
        assert!(
            tables
                .iter()
                .any(|(t, _, _, _, tenanted)| t == table && *tenanted),
            "{table} is missing"
        );
    }
    let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
        .bind(pg::OWNER)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(!member);

    // Without the tenant setting the app sees nothing; with it, its tenant.
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SELECT set_config('annal.tenant', 't-1', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 3);
    // And it cannot write another tenant's rows.
    let e = sqlx::query(
        "INSERT INTO ledger_heads (tenant_id, ledger, seq, hash) VALUES ('t-2', 'tenant', 0, 'x')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(e.to_string().contains("row-level security"), "{e}");
    tx.rollback().await.unwrap();

    // The owner is subject to the policies too (FORCE).
    let mut owner = connect(&admin).await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(seen, 0);
}

/// Runs `sql` as its own statement and returns its error text.
async fn refused(c: &mut PgConnection, tenant: Option<&str>, sql: &str) -> String {
    let mut tx = c.begin().await.unwrap();
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('annal.tenant', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let result = sqlx::raw_sql(sql).execute(&mut *tx).await;
    tx.rollback().await.unwrap();
    match result {
        Ok(done) => panic!("{sql:?} was allowed ({} rows)", done.rows_affected()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn update_delete_and_truncate_are_refused_even_for_the_owner_and_the_superuser() {
    let (db, app, admin) = open().await;
    let mut d = Device::new("t-1", "u-1", 2);
    let mut entries = d.entries("a", 3, &json!({"pain": 3}));
    entries[1]["payload"] = json!({"pain": 9}); // quarantined, so that table has a row
    let statuses = push(&db, "t-1", "u-1", &read(entries)).await;
    assert_eq!(
        statuses,
        [Status::Accepted, Status::Quarantined, Status::Accepted]
    );
    let before = pull_all(&db, "t-1", TENANT_LEDGER).await;

    let superuser = pg::instance().superuser_url(db_name(&admin));
    for (who, url) in [("owner", admin.as_str()), ("superuser", superuser.as_str())] {
        let mut c = connect(url).await;
        for table in APPEND_ONLY {
            for (what, sql) in [
                (
                    "UPDATE",
                    format!("UPDATE {table} SET tenant_id = tenant_id"),
                ),
                ("DELETE", format!("DELETE FROM {table}")),
                ("TRUNCATE", format!("TRUNCATE {table}")),
            ] {
                // With the tenant set, so the rows are visible, and without.
                for tenant in [Some("t-1"), None] {
                    let e = refused(&mut c, tenant, &sql).await;
                    assert!(
                        e.contains("append-only") && e.contains(what),
                        "{who}, {sql}, tenant {tenant:?}: {e}"
                    );
                }
            }
        }
    }
    // The app role may not even try.
    let mut c = connect(&app).await;
    for table in APPEND_ONLY {
        for sql in [
            format!("UPDATE {table} SET tenant_id = tenant_id"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let e = refused(&mut c, Some("t-1"), &sql).await;
            assert!(
                e.contains("permission denied") || e.contains("append-only"),
                "{sql}: {e}"
            );
        }
    }
    let after = pull_all(&db, "t-1", TENANT_LEDGER).await;
    assert_eq!(before.len(), 3);
    assert_eq!(
        before.iter().map(|r| &r.entry).collect::<Vec<_>>(),
        after.iter().map(|r| &r.entry).collect::<Vec<_>>()
    );
    verify(&after, "t-1", TENANT_LEDGER);
}

#[tokio::test]
async fn the_app_role_cannot_drop_or_disable_the_triggers_or_the_policies() {
    let (db, app, _admin) = open().await;
    push(
        &db,
        "t-1",
        "u-1",
        &Device::new("t-1", "u-1", 3).batch("a", 1),
    )
    .await;
    let mut c = connect(&app).await;
    for sql in [
        "DROP TRIGGER events_no_change ON events",
        "DROP TRIGGER ledger_no_change_statement ON ledger",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "ALTER TABLE events DISABLE TRIGGER events_no_change",
        "ALTER TABLE receipts DISABLE TRIGGER USER",
        "DROP FUNCTION annal_append_only() CASCADE",
        "CREATE OR REPLACE FUNCTION annal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
        "ALTER TABLE events NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE events DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON events",
        "CREATE POLICY everything ON events USING (true)",
        "ALTER TABLE events RENAME TO old_events",
        "DROP TABLE events",
        "CREATE TABLE mine (i int)",
        "SET session_replication_role = replica",
        "SELECT annal_grant_app('annal_app')",
    ] {
        let e = refused(&mut c, Some("t-1"), sql).await;
        assert!(
            e.contains("must be owner") || e.contains("permission denied"),
            "{sql}: {e}"
        );
    }
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O'
         AND tgrelid IN ('events'::regclass, 'quarantine'::regclass, 'ledger'::regclass, 'receipts'::regclass)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(triggers, 8, "row and statement triggers on four tables");
    // Granting itself more is a no-op (PostgreSQL only warns).
    sqlx::raw_sql("GRANT UPDATE, DELETE, TRUNCATE ON events TO annal_app")
        .execute(&mut c)
        .await
        .unwrap();
    for privilege in ["UPDATE", "DELETE", "TRUNCATE"] {
        for table in APPEND_ONLY {
            let has: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2)")
                .bind(table)
                .bind(privilege)
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert!(!has, "the app role may {privilege} {table}");
        }
    }
}

#[tokio::test]
async fn one_pooled_connection_alternating_tenants_never_leaks_one_into_the_other() {
    let (app, admin) = pg::database().await;
    let db = PgDb::open_with_pool_size(&app, Some(&admin), 1)
        .await
        .unwrap();
    // The same user id in both tenants, so even the user ledgers share a name.
    let mut a = Device::new("tenant-a", "u", 10);
    let mut b = Device::new("tenant-b", "u", 11);
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .unwrap();
    for round in 1..=8usize {
        assert_eq!(
            push(&db, "tenant-a", "u", &a.batch("x", 3)).await,
            [Status::Accepted; 3]
        );
        // Between transactions the connection carries no tenant.
        let (setting, visible, same): (Option<String>, i64, i32) = sqlx::query_as(
            "SELECT current_setting('annal.tenant', true), (SELECT count(*) FROM events), pg_backend_pid()",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert!(setting.unwrap_or_default().is_empty());
        assert_eq!(visible, 0);
        assert_eq!(same, pid, "one connection throughout");

        let rows = pull_all(&db, "tenant-b", TENANT_LEDGER).await;
        assert_eq!(rows.len(), 3 * (round - 1));
        assert!(tenants_of(&rows).iter().all(|t| t == "tenant-b"));
        assert_eq!(
            push(&db, "tenant-b", "u", &b.batch("x", 3)).await,
            [Status::Accepted; 3]
        );
        let rows = pull_all(&db, "tenant-a", &user_ledger("u")).await;
        assert_eq!(rows.len(), 3 * round);
        assert!(tenants_of(&rows).iter().all(|t| t == "tenant-a"));
        assert_eq!(
            verify(&rows, "tenant-a", &user_ledger("u")),
            3 * round as u64
        );
    }
    for t in ["tenant-a", "tenant-b"] {
        let rows = pull_all(&db, t, TENANT_LEDGER).await;
        assert_eq!(verify(&rows, t, TENANT_LEDGER), 24);
        assert!(tenants_of(&rows).iter().all(|x| x == t));
    }
    // To tenant B, tenant A's events and devices do not exist: A's first
    // event, pushed to B, is no duplicate and starts a new device chain
    // there (and is quarantined for naming another tenant).
    let mut again = Device::new("tenant-a", "u", 10);
    let first = again.batch("x", 1);
    assert_eq!(
        push(&db, "tenant-a", "u", &first).await,
        [Status::Duplicate]
    );
    let plan = db
        .push("tenant-b", "u", &first, false, &Policy::default())
        .await
        .unwrap();
    assert_eq!(plan.results[0].code.as_deref(), Some("WRONG_TENANT"));
    assert_eq!(plan.results[0].receipt.as_ref().unwrap().server_seq, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_pushing_at_once_make_one_gap_free_ledger() {
    let (app, admin) = pg::database().await;
    // Both start at once, so they also race to migrate.
    let (one, two) = tokio::join!(
        PgDb::open(&app, Some(&admin)),
        PgDb::open(&app, Some(&admin))
    );
    let servers = [one.unwrap(), two.unwrap()];
    const USERS: usize = 8;
    const BATCHES: usize = 10;
    const SIZE: usize = 10;
    let mut tasks = Vec::new();
    for u in 0..USERS {
        let servers = servers.clone();
        let user = format!("u-{u}");
        let mut d = Device::new("t-1", &user, 100 + u as u64);
        // All users share one aggregate, so conflicts are flagged too.
        let batches: Vec<Vec<Submitted>> = (0..BATCHES)
            .map(|b| d.batch(if b % 2 == 0 { "shared" } else { "own" }, SIZE))
            .collect();
        tasks.push(tokio::spawn(async move {
            for (b, batch) in batches.iter().enumerate() {
                // Each user's batches alternate between the two servers.
                let db = &servers[(u + b) % 2];
                let statuses = push(db, "t-1", &user, batch).await;
                assert!(
                    statuses
                        .iter()
                        .all(|s| matches!(s, Status::Accepted | Status::Conflict)),
                    "{statuses:?}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = (USERS * BATCHES * SIZE) as u64;
    for db in &servers {
        let rows = pull_all(db, "t-1", TENANT_LEDGER).await;
        assert_eq!(verify(&rows, "t-1", TENANT_LEDGER), total);
        let seqs: Vec<u64> = rows.iter().map(|r| r.receipt.server_seq).collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    }
    for u in 0..USERS {
        let ledger = user_ledger(&format!("u-{u}"));
        let rows = pull_all(&servers[u % 2], "t-1", &ledger).await;
        assert_eq!(verify(&rows, "t-1", &ledger), (BATCHES * SIZE) as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_once_and_a_newer_database_is_refused() {
    let (app, admin) = pg::database().await;
    let opens = (0..4).map(|_| PgDb::open(&app, Some(&admin)));
    for db in futures_util::future::join_all(opens).await {
        db.expect("every instance starts");
    }
    let mut owner = connect(&admin).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM annal_schema")
        .fetch_all(&mut owner)
        .await
        .unwrap();
    assert_eq!(versions, [1]);
    // Reopening changes nothing.
    let db = PgDb::open(&app, Some(&admin)).await.unwrap();
    assert!(db.ping().await.unwrap().starts_with("PostgreSQL 15"));
    // A database from the future.
    sqlx::query("INSERT INTO annal_schema (version) VALUES (999)")
        .execute(&mut owner)
        .await
        .unwrap();
    match PgDb::open(&app, Some(&admin)).await {
        Err(DbError::Newer { database, binary }) => assert_eq!((database, binary), (999, 1)),
        other => panic!("expected Newer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_push_that_enters_something_notifies_listeners() {
    let (db, app, _admin) = open().await;
    let mut listener = PgListener::connect(&app).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let batch = Device::new("t-1", "u-1", 4).batch("a", 2);
    push(&db, "t-1", "u-1", &batch).await;
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(n.payload(), "t-1");
    // A replay enters nothing and notifies no one.
    assert_eq!(
        push(&db, "t-1", "u-1", &batch).await,
        [Status::Duplicate; 2]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err()
    );
}

/// The plans of a push's lookups: every key is looked up by the index on
/// its whole key, never by a scan of the tenant (which costs nothing in a
/// small test and grows with the tenant). Checked before the first
/// `ANALYZE`, when the planner's row estimates are a young table's (the case
/// that made `key = ANY($2)` and joins scan the tenant), after it, and with
/// the generic plans PostgreSQL switches prepared statements to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lookups_search_indexes() {
    use annal_server::db::postgres::{AGGREGATES_SQL, AT_VERSION_SQL, DEVICES_SQL, EXISTING_SQL};
    let (db, _, admin) = open().await;
    // A tenant large enough that a scan of any of its tables costs more
    // than a few index probes: 1,000 devices, 3,000 aggregates, quarantined
    // entries, another user and another tenant.
    let mut main = Device::new("t-1", "u-1", 7);
    let mut entries = Vec::new();
    for i in 0..2000 {
        let mut e = main
            .entries(&format!("agg-{i}"), 1, &json!({"pain": 3}))
            .remove(0);
        if i % 10 == 5 {
            e["envelope"]["hash"] = json!("0".repeat(64));
        }
        entries.push(e);
    }
    for d in 0..1000 {
        let mut other = Device::new("t-1", "u-1", 1000 + d);
        entries.extend(other.entries(&format!("agg-{}", 2000 + d), 1, &json!({"pain": 3})));
    }
    for chunk in entries.chunks(500) {
        push(&db, "t-1", "u-1", &read(chunk.to_vec())).await;
    }
    let mut u2 = Device::new("t-1", "u-2", 8);
    push(&db, "t-1", "u-2", &u2.batch("agg-1", 100)).await;
    let mut t2 = Device::new("t-2", "u-1", 9);
    push(&db, "t-2", "u-1", &t2.batch("agg-1", 100)).await;

    // What a push of known and new events would look up.
    let event_ids: Vec<String> = entries[..50]
        .iter()
        .map(|e| e["envelope"]["event_id"].as_str().unwrap().to_string())
        .chain(
            main.entries("agg-1", 50, &json!({}))
                .iter()
                .map(|e| e["envelope"]["event_id"].as_str().unwrap().to_string()),
        )
        .collect();
    let devices: Vec<String> = entries[1990..2010]
        .iter()
        .map(|e| e["envelope"]["device_id"].as_str().unwrap().to_string())
        .collect();
    let aggregates: Vec<String> = (0..100).map(|i| format!("agg-{}", i * 29)).collect();
    let versions: Vec<i64> = vec![1; aggregates.len()];

    let mut owner = connect(&admin).await;
    for when in ["before ANALYZE", "after ANALYZE"] {
        if when == "after ANALYZE" {
            sqlx::query("ANALYZE").execute(&mut owner).await.unwrap();
        }
        for mode in ["auto", "force_generic_plan"] {
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query("SELECT set_config('annal.tenant', $1, true)")
                .bind("t-1")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(&format!("SET LOCAL plan_cache_mode = {mode}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            for (name, sql) in [
                ("devices", DEVICES_SQL),
                ("aggregates", AGGREGATES_SQL),
                ("existing", EXISTING_SQL),
                ("at_version", AT_VERSION_SQL),
            ] {
                let explain = format!("EXPLAIN {sql}");
                let q = sqlx::query_scalar::<_, String>(&explain).bind("t-1");
                let q = match name {
                    "devices" => q.bind(&devices),
                    "aggregates" => q.bind(&aggregates),
                    "existing" => q.bind(&event_ids).bind("u-1"),
                    _ => q.bind(&aggregates).bind(&versions),
                };
                let plan = q.fetch_all(&mut *tx).await.unwrap();
                let shown = plan.join("\n");
                let context = format!("{when}, plan_cache_mode {mode}: lookup {name}:\n{shown}");
                for bad in ["Seq Scan", "Bitmap", "Hash", "Merge", "Sort"] {
                    assert!(!shown.contains(bad), "{context}");
                }
                let conds: Vec<&String> =
                    plan.iter().filter(|l| l.contains("Index Cond:")).collect();
                assert!(!conds.is_empty(), "{context}");
                // Each probe is keyed by the looked-up key (`w.…`) or by
                // the entry found for it (`….server_seq`), never by
                // constants alone (the tenant, or the tenant and the user).
                for c in conds {
                    let keyed = c.contains(" = w.") || c.contains(".server_seq)");
                    assert!(
                        c.contains("(tenant_id = ") && keyed,
                        "an index scan not driven by the keys: {c}\n{context}"
                    );
                }
            }
            tx.rollback().await.unwrap();
        }
    }
}

/// Push throughput: batches of 100 events of 1 KiB, on a cluster of its
/// own with PostgreSQL's durable defaults (fsync on). Run with
/// `cargo test --release -p annal-server --test postgres_only -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark"]
async fn push_throughput() {
    let cluster = pg::PgInstance::start_durable();
    let name = cluster.create_database().await;
    let db = PgDb::open(
        &cluster.app_url_of(&name),
        Some(&cluster.admin_url_of(&name)),
    )
    .await
    .unwrap();
    let text = "x".repeat(1000);
    for clients in [1usize, 4] {
        let batches = 40;
        let mut work = Vec::new();
        for c in 0..clients {
            let user = format!("bench-{clients}-{c}");
            let mut d = Device::new("bench", &user, 1000 + (clients * 10 + c) as u64);
            let prepared: Vec<Vec<Submitted>> = (0..batches)
                .map(|b| {
                    read(d.entries(
                        &format!("agg-{c}-{}", b % 10),
                        100,
                        &json!({ "text": text }),
                    ))
                })
                .collect();
            work.push((user, prepared));
        }
        let t0 = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|(user, prepared)| {
                let db = db.clone();
                tokio::spawn(async move {
                    for b in &prepared {
                        push(&db, "bench", &user, b).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n = clients * batches * 100;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{clients} client(s), one tenant: {n} events in {secs:.2}s = {:.0} events/s",
            n as f64 / secs
        );
    }
    let t0 = Instant::now();
    let rows = pull_all(&db, "bench", TENANT_LEDGER).await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "pull: {} events in {secs:.2}s = {:.0} events/s",
        rows.len(),
        rows.len() as f64 / secs
    );
}
