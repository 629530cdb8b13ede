//! Embedded SQLite: one file, WAL, a single writer connection (so pushes
//! serialize without lock errors) and a pool of readers.

use super::migrations::{latest, SQLITE};
use super::rows::{existing_at, pulled, PULL_SELECT};
use super::{count, first_received, in_ledger_order, now_micros, stored, DbError, PullQuery, Row};
use crate::ingest::{self, DeviceHead, EventRow, Plan, Policy, State, Submitted};
use crate::protocol::Receipt;
use annal::ledger::{format_received_at, user_ledger, LedgerEntry, TENANT_LEDGER};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Arguments as _;
use sqlx::{Row as _, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// An open SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteDb {
    /// Opens (creating) the database file and migrates it.
    pub async fn open(url: &str) -> Result<SqliteDb, DbError> {
        let url = if url.starts_with("sqlite:") {
            url.to_string()
        } else {
            format!("sqlite:{url}")
        };
        // `synchronous=FULL`: in WAL mode every commit syncs the WAL, so an
        // acknowledged push survives a power loss (NORMAL syncs only at
        // checkpoints, and a lost commit would reissue receipts that
        // devices already hold). Page size, cache size, `temp_store` and
        // the checkpoint interval stay SQLite's defaults: other values
        // measured no faster (docs/DESIGN.md, "annal-server").
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteDb { writer, readers })
    }

    /// SQLite's version.
    pub async fn ping(&self) -> Result<String, DbError> {
        let v: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.readers)
            .await?;
        Ok(format!("SQLite {v}"))
    }

    /// See [`super::Db::push`].
    pub async fn push(
        &self,
        tenant: &str,
        user: &str,
        batch: &[Submitted],
        atomic: bool,
        policy: &Policy,
    ) -> Result<Plan, DbError> {
        let mut tx = self.writer.begin().await?;
        let state = load_state(&mut tx, tenant, user, batch).await?;
        let received_at = format_received_at(now_micros());
        let plan = ingest::plan(tenant, user, batch, atomic, state, &received_at, policy);
        if plan.committed && !plan.ledger.is_empty() {
            write(&mut tx, tenant, user, &plan).await?;
        }
        tx.commit().await?;
        Ok(plan)
    }

    /// See [`super::Db::pull`].
    pub async fn pull(&self, q: &PullQuery) -> Result<Vec<Row>, DbError> {
        let sql = pull_sql(q);
        let rows = sqlx::query(&sql)
            .bind(&q.tenant)
            .bind(&q.ledger)
            .bind(stored(q.after))
            .bind(i64::from(q.limit) + 1)
            .bind(q.aggregate_id.as_deref())
            .bind(q.event_type.as_deref())
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(|r| pulled(q, r)).collect()
    }
}

/// A pull's statement: `?1` tenant, `?2` ledger, `?3` after, `?4` limit,
/// `?5` aggregate id, `?6` event type.
fn pull_sql(q: &PullQuery) -> String {
    let mut sql = format!("{PULL_SELECT} WHERE l.tenant_id = ?1 AND l.ledger = ?2 AND l.seq > ?3");
    if q.aggregate_id.is_some() {
        sql.push_str(" AND e.aggregate_id = ?5");
    }
    if q.event_type.is_some() {
        sql.push_str(" AND e.event_type = ?6");
    }
    sql.push_str(" ORDER BY l.seq LIMIT ?4");
    sql
}

async fn migrate(pool: &SqlitePool) -> Result<(), DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS annal_schema (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM annal_schema")
        .fetch_one(&mut *tx)
        .await?;
    let newest = latest(SQLITE);
    if current > newest {
        return Err(DbError::Newer {
            database: current,
            binary: newest,
        });
    }
    for (version, sql) in SQLITE.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO annal_schema (version) VALUES (?1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

// The state a push reads under the writer lock: one statement per kind of
// key, whatever the batch size. The keys are bound as one JSON array and
// read with `json_each`, so each lookup is a single cached statement; the
// `CROSS JOIN` keeps SQLite from reordering the join, so the keys drive it
// and every table is reached by an index search per key, never a scan of
// the tenant (an early version's `ORDER BY server_seq` made SQLite walk a
// whole index per lookup). `lookups_search_indexes` checks every plan.

/// Both ledger heads: `?1` tenant, `?2` and `?3` the ledgers.
const HEADS_SQL: &str =
    "SELECT ledger, seq, hash FROM ledger_heads WHERE tenant_id = ?1 AND ledger IN (?2, ?3)";

/// Device heads: `?2` a JSON array of device ids.
const DEVICES_SQL: &str = "SELECT d.device_id, d.device_seq, d.hash, d.computed_hash, d.user_id
     FROM json_each(?2) AS w CROSS JOIN device_heads AS d
     WHERE d.tenant_id = ?1 AND d.device_id = w.value";

/// Aggregate states: `?2` a JSON array of aggregate ids.
const AGGREGATES_SQL: &str = "SELECT a.aggregate_id, a.aggregate_type, a.version
     FROM json_each(?2) AS w CROSS JOIN aggregates AS a
     WHERE a.tenant_id = ?1 AND a.aggregate_id = w.value";

/// Entries already received from user `?3`, stored as events (`1`) or
/// quarantined (`0`), with their receipts: `?2` a JSON array of event ids. Another
/// user's push of the same id never makes this user's event a duplicate.
const EXISTING_SQL: &str = "SELECT 1, e.event_id, e.hash, e.hash,
            r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at
     FROM json_each(?2) AS w CROSS JOIN events AS e CROSS JOIN receipts AS r
     WHERE e.tenant_id = ?1 AND e.event_id = w.value
       AND r.tenant_id = ?1 AND r.server_seq = e.server_seq AND r.user_id = ?3
     UNION ALL
     SELECT 0, x.event_id, x.claimed_hash, x.event_hash,
            r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at
     FROM json_each(?2) AS w CROSS JOIN quarantine AS x CROSS JOIN receipts AS r
     WHERE x.tenant_id = ?1 AND x.event_id = w.value
       AND r.tenant_id = ?1 AND r.server_seq = x.server_seq AND r.user_id = ?3";

/// Stored events at `(aggregate_id, aggregate_version)`: `?2` a JSON array
/// of `[id, version]` pairs.
const AT_VERSION_SQL: &str = "SELECT e.aggregate_id, e.aggregate_version, e.event_id, e.server_seq
     FROM json_each(?2) AS w CROSS JOIN events AS e
     WHERE e.tenant_id = ?1 AND e.aggregate_id = w.value ->> 0
       AND e.aggregate_version = w.value ->> 1";

/// Every lookup, by name, for the plan check.
#[cfg(test)]
const LOOKUPS: [(&str, &str); 5] = [
    ("heads", HEADS_SQL),
    ("devices", DEVICES_SQL),
    ("aggregates", AGGREGATES_SQL),
    ("existing", EXISTING_SQL),
    ("at_version", AT_VERSION_SQL),
];

/// A JSON array of `keys`, bound as one parameter.
fn json_list<T: serde::Serialize>(keys: &[T]) -> String {
    serde_json::to_string(keys).unwrap_or_else(|_| "[]".into())
}

async fn load_state(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: &str,
    batch: &[Submitted],
) -> Result<State, DbError> {
    let wanted = ingest::wanted(batch);
    let mut state = State::default();
    let user_ledger = user_ledger(user);
    let rows = sqlx::query(HEADS_SQL)
        .bind(tenant)
        .bind(TENANT_LEDGER)
        .bind(&user_ledger)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let head = Some((count(r.try_get(1)?)?, r.try_get(2)?));
        if r.try_get::<&str, _>(0)? == TENANT_LEDGER {
            state.tenant_head = head;
        } else {
            state.user_head = head;
        }
    }
    if !wanted.devices.is_empty() {
        let ids: Vec<&String> = wanted.devices.iter().collect();
        let rows = sqlx::query(DEVICES_SQL)
            .bind(tenant)
            .bind(json_list(&ids))
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            state.devices.insert(
                r.try_get(0)?,
                DeviceHead {
                    device_seq: count(r.try_get(1)?)?,
                    hash: r.try_get(2)?,
                    computed_hash: r.try_get(3)?,
                    user_id: r.try_get(4)?,
                },
            );
        }
    }
    if !wanted.aggregates.is_empty() {
        let ids: Vec<&String> = wanted.aggregates.iter().collect();
        let rows = sqlx::query(AGGREGATES_SQL)
            .bind(tenant)
            .bind(json_list(&ids))
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            state
                .aggregates
                .insert(r.try_get(0)?, (r.try_get(1)?, count(r.try_get(2)?)?));
        }
    }
    if !wanted.events.is_empty() {
        let ids: Vec<&String> = wanted.events.iter().collect();
        let rows = sqlx::query(EXISTING_SQL)
            .bind(tenant)
            .bind(json_list(&ids))
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
        let found = rows
            .iter()
            .map(existing_at)
            .collect::<Result<Vec<_>, _>>()?;
        state.existing = first_received(found);
    }
    let versions = wanted.stored_versions(&state.aggregates);
    if !versions.is_empty() {
        let rows = sqlx::query(AT_VERSION_SQL)
            .bind(tenant)
            .bind(json_list(&versions))
            .fetch_all(&mut *conn)
            .await?;
        state.at_version = in_ledger_order(
            rows.iter()
                .map(|r| {
                    Ok((
                        (r.try_get::<String, _>(0)?, count(r.try_get(1)?)?),
                        r.try_get(3)?,
                        r.try_get(2)?,
                    ))
                })
                .collect::<Result<Vec<_>, DbError>>()?,
        );
    }
    Ok(state)
}

/// At most this many parameters per statement: SQLite's limit before 3.32
/// (`SQLITE_MAX_VARIABLE_NUMBER`); the bundled build allows 32,766, but
/// larger statements measured no faster.
const MAX_PARAMS: usize = 999;

/// Inserts `rows` with multi-row `{head} VALUES (…), (…) {tail}` statements
/// of `columns` parameters a row, `bind` adding one row's. Chunks have a
/// power-of-two number of rows (as many as [`MAX_PARAMS`] allows, then
/// smaller for the rest), so any batch takes a few statements and each
/// table has only a few statement texts, each prepared once per connection
/// and kept in sqlx's statement cache.
async fn insert_rows<'r, T>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    columns: usize,
    rows: &'r [T],
    bind: impl Fn(&mut SqliteArguments<'r>, &'r T) -> Result<(), BoxDynError>,
) -> Result<(), DbError> {
    let largest = 1 << (MAX_PARAMS / columns).max(1).ilog2();
    let row_sql = format!("({})", vec!["?"; columns].join(", "));
    let mut rest = rows;
    while !rest.is_empty() {
        let n = largest.min(1 << rest.len().ilog2());
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let mut args = SqliteArguments::default();
        args.reserve(n * columns, 0);
        for row in chunk {
            bind(&mut args, row).map_err(sqlx::Error::Encode)?;
        }
        let sql = format!(
            "{head} VALUES {}{tail}",
            vec![row_sql.as_str(); n].join(", ")
        );
        sqlx::query_with(&sql, args).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes a committed plan: multi-row inserts per table.
async fn write(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: &str,
    plan: &Plan,
) -> Result<(), DbError> {
    let conflicts: Vec<String> = plan
        .events
        .iter()
        .map(|e| serde_json::to_string(&e.conflicts_with).unwrap_or_else(|_| "[]".into()))
        .collect();
    let events: Vec<(&EventRow, &String)> = plan.events.iter().zip(&conflicts).collect();
    insert_rows(
        conn,
        "INSERT INTO events (tenant_id, event_id, user_id, device_id, device_seq, aggregate_type,
            aggregate_id, event_type, schema_version, aggregate_version, hash, envelope, salt, payload,
            outcome, conflicts_with, server_seq, user_seq, received_at)",
        "",
        19,
        &events,
        |a, (e, conflicts)| {
            let v = &e.envelope;
            let r = &e.receipt;
            a.add(tenant)?;
            a.add(&v.event_id)?;
            a.add(&v.user_id)?;
            a.add(&v.device_id)?;
            a.add(stored(v.device_seq))?;
            a.add(&v.aggregate_type)?;
            a.add(&v.aggregate_id)?;
            a.add(&v.event_type)?;
            a.add(stored(v.schema_version))?;
            a.add(stored(v.aggregate_version))?;
            a.add(&v.hash)?;
            a.add(&e.envelope_json)?;
            a.add(&e.salt)?;
            a.add(&e.payload_json)?;
            a.add(e.outcome.as_str())?;
            a.add(conflicts.as_str())?;
            a.add(stored(r.server_seq))?;
            a.add(stored(r.user_seq))?;
            a.add(&r.received_at)?;
            Ok(())
        },
    )
    .await?;
    insert_rows(
        conn,
        "INSERT INTO quarantine (tenant_id, server_seq, user_id, user_seq, event_id, device_id, device_seq,
            submitted, event_hash, claimed_hash, code, message, received_at)",
        "",
        13,
        &plan.quarantined,
        |a, q| {
            let r = &q.receipt;
            a.add(tenant)?;
            a.add(stored(r.server_seq))?;
            a.add(user)?;
            a.add(stored(r.user_seq))?;
            a.add(q.event_id.as_deref())?;
            a.add(q.device.as_ref().map(|(d, _)| d.as_str()))?;
            a.add(q.device.as_ref().map(|(_, s)| stored(*s)))?;
            a.add(&q.submitted_json)?;
            a.add(&q.event_hash)?;
            a.add(q.claimed_hash.as_deref())?;
            a.add(&q.code)?;
            a.add(&q.message)?;
            a.add(&r.received_at)?;
            Ok(())
        },
    )
    .await?;
    // One receipt per entered event, stored or quarantined.
    let receipts: Vec<(Option<&str>, &str, &Receipt)> = plan.receipts().collect();
    insert_rows(
        conn,
        "INSERT INTO receipts (tenant_id, server_seq, user_id, user_seq, event_id, outcome, ledger_hash,
            user_ledger_hash, received_at)",
        "",
        9,
        &receipts,
        |a, (event_id, outcome, r)| {
            a.add(tenant)?;
            a.add(stored(r.server_seq))?;
            a.add(user)?;
            a.add(stored(r.user_seq))?;
            a.add(*event_id)?;
            a.add(*outcome)?;
            a.add(&r.ledger_hash)?;
            a.add(&r.user_ledger_hash)?;
            a.add(&r.received_at)?;
            Ok(())
        },
    )
    .await?;
    // Entries come in pairs: the tenant entry, then the user entry; both
    // carry the tenant entry's seq as server_seq.
    let entries: Vec<(&LedgerEntry, u64)> = plan
        .ledger
        .chunks(2)
        .flat_map(|pair| pair.iter().map(|e| (e, pair[0].seq)))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO ledger (tenant_id, ledger, seq, event_hash, outcome, received_at, prev, hash, server_seq)",
        "",
        9,
        &entries,
        |a, (e, server_seq)| {
            a.add(tenant)?;
            a.add(&e.ledger)?;
            a.add(stored(e.seq))?;
            a.add(&e.event_hash)?;
            a.add(e.outcome.as_str())?;
            a.add(&e.received_at)?;
            a.add(&e.prev)?;
            a.add(&e.hash)?;
            a.add(stored(*server_seq))?;
            Ok(())
        },
    )
    .await?;
    let heads = [
        (TENANT_LEDGER.to_string(), &plan.tenant_head),
        (user_ledger(user), &plan.user_head),
    ];
    insert_rows(
        conn,
        "INSERT INTO ledger_heads (tenant_id, ledger, seq, hash)",
        " ON CONFLICT (tenant_id, ledger) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        4,
        &heads,
        |a, (ledger, (seq, hash))| {
            a.add(tenant)?;
            a.add(ledger.as_str())?;
            a.add(stored(*seq))?;
            a.add(hash.as_str())?;
            Ok(())
        },
    )
    .await?;
    let devices: Vec<(&String, &DeviceHead)> = plan.devices.iter().collect();
    insert_rows(
        conn,
        "INSERT INTO device_heads (tenant_id, device_id, device_seq, hash, computed_hash, user_id)",
        " ON CONFLICT (tenant_id, device_id) DO UPDATE
             SET device_seq = excluded.device_seq, hash = excluded.hash, computed_hash = excluded.computed_hash",
        6,
        &devices,
        |a, (device, head)| {
            a.add(tenant)?;
            a.add(device.as_str())?;
            a.add(stored(head.device_seq))?;
            a.add(&head.hash)?;
            a.add(&head.computed_hash)?;
            a.add(&head.user_id)?;
            Ok(())
        },
    )
    .await?;
    let aggregates: Vec<(&String, &(String, u64))> = plan.aggregates.iter().collect();
    insert_rows(
        conn,
        "INSERT INTO aggregates (tenant_id, aggregate_id, aggregate_type, version)",
        " ON CONFLICT (tenant_id, aggregate_id) DO UPDATE SET version = excluded.version",
        4,
        &aggregates,
        |a, (aggregate, (ty, version))| {
            a.add(tenant)?;
            a.add(aggregate.as_str())?;
            a.add(ty.as_str())?;
            a.add(stored(*version))?;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
