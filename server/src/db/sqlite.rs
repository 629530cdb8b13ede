//! Embedded SQLite: one file, WAL, a single writer connection (so pushes
//! serialize without lock errors) and a pool of readers.

use super::migrations::{latest, SQLITE};
use super::rows::{pulled, receipt_at, PULL_SELECT};
use super::{count, now_micros, stored, DbError, PullQuery, Row};
use crate::ingest::{self, DeviceHead, Existing, Plan, Policy, State, Submitted};
use crate::protocol::Receipt;
use annal::ledger::{format_received_at, user_ledger, TENANT_LEDGER};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
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
        let mut sql =
            format!("{PULL_SELECT} WHERE l.tenant_id = ?1 AND l.ledger = ?2 AND l.seq > ?3");
        if q.aggregate_id.is_some() {
            sql.push_str(" AND e.aggregate_id = ?5");
        }
        if q.event_type.is_some() {
            sql.push_str(" AND e.event_type = ?6");
        }
        sql.push_str(" ORDER BY l.seq LIMIT ?4");
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

async fn head(
    conn: &mut SqliteConnection,
    tenant: &str,
    ledger: &str,
) -> Result<Option<(u64, String)>, DbError> {
    let row =
        sqlx::query("SELECT seq, hash FROM ledger_heads WHERE tenant_id = ?1 AND ledger = ?2")
            .bind(tenant)
            .bind(ledger)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| Ok((count(r.try_get(0)?)?, r.try_get(1)?)))
        .transpose()
}

async fn load_state(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: &str,
    batch: &[Submitted],
) -> Result<State, DbError> {
    let wanted = ingest::wanted(batch);
    let mut state = State {
        tenant_head: head(conn, tenant, TENANT_LEDGER).await?,
        user_head: head(conn, tenant, &user_ledger(user)).await?,
        ..State::default()
    };
    for device in &wanted.devices {
        let row = sqlx::query(
            "SELECT device_seq, hash, computed_hash, user_id FROM device_heads WHERE tenant_id = ?1 AND device_id = ?2",
        )
        .bind(tenant)
        .bind(device)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(r) = row {
            state.devices.insert(
                device.clone(),
                DeviceHead {
                    device_seq: count(r.try_get(0)?)?,
                    hash: r.try_get(1)?,
                    computed_hash: r.try_get(2)?,
                    user_id: r.try_get(3)?,
                },
            );
        }
    }
    for aggregate in &wanted.aggregates {
        let row = sqlx::query("SELECT aggregate_type, version FROM aggregates WHERE tenant_id = ?1 AND aggregate_id = ?2")
            .bind(tenant)
            .bind(aggregate)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(r) = row {
            state
                .aggregates
                .insert(aggregate.clone(), (r.try_get(0)?, count(r.try_get(1)?)?));
        }
    }
    // Two indexed lookups per id. A compound SELECT, or a plain ORDER BY
    // server_seq, makes SQLite walk a whole index of the tenant instead
    // (`+` keeps a column out of index selection).
    for id in &wanted.events {
        let mut row = sqlx::query(
            "SELECT e.hash, e.hash, r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at
             FROM events e JOIN receipts r ON r.tenant_id = e.tenant_id AND r.server_seq = e.server_seq
             WHERE e.tenant_id = ?1 AND e.event_id = ?2 AND r.user_id = ?3",
        )
        .bind(tenant)
        .bind(id)
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
        if row.is_none() {
            row = sqlx::query(
                "SELECT x.claimed_hash, x.event_hash, r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at
                 FROM quarantine x JOIN receipts r ON r.tenant_id = x.tenant_id AND r.server_seq = x.server_seq
                 WHERE x.tenant_id = ?1 AND x.event_id = ?2 AND r.user_id = ?3
                 ORDER BY +x.server_seq LIMIT 1",
            )
            .bind(tenant)
            .bind(id)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
        }
        if let Some(r) = row {
            state.existing.insert(
                id.clone(),
                Existing {
                    claimed_hash: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                    event_hash: r.try_get(1)?,
                    receipt: receipt_at(&r, 2)?,
                },
            );
        }
    }
    for (aggregate, version) in &wanted.versions {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM events WHERE tenant_id = ?1 AND aggregate_id = ?2 AND aggregate_version = ?3 ORDER BY +server_seq",
        )
        .bind(tenant)
        .bind(aggregate)
        .bind(stored(*version))
        .fetch_all(&mut *conn)
        .await?;
        if !ids.is_empty() {
            state.at_version.insert((aggregate.clone(), *version), ids);
        }
    }
    Ok(state)
}

async fn write(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: &str,
    plan: &Plan,
) -> Result<(), DbError> {
    for e in &plan.events {
        let v = &e.envelope;
        let r = &e.receipt;
        sqlx::query(
            "INSERT INTO events (tenant_id, event_id, user_id, device_id, device_seq, aggregate_type,
                aggregate_id, event_type, schema_version, aggregate_version, hash, envelope, salt, payload,
                outcome, conflicts_with, server_seq, user_seq, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )
        .bind(tenant)
        .bind(&v.event_id)
        .bind(&v.user_id)
        .bind(&v.device_id)
        .bind(stored(v.device_seq))
        .bind(&v.aggregate_type)
        .bind(&v.aggregate_id)
        .bind(&v.event_type)
        .bind(stored(v.schema_version))
        .bind(stored(v.aggregate_version))
        .bind(&v.hash)
        .bind(&e.envelope_json)
        .bind(&e.salt)
        .bind(&e.payload_json)
        .bind(e.outcome.as_str())
        .bind(serde_json::to_string(&e.conflicts_with).unwrap_or_else(|_| "[]".into()))
        .bind(stored(r.server_seq))
        .bind(stored(r.user_seq))
        .bind(&r.received_at)
        .execute(&mut *conn)
        .await?;
        insert_receipt(conn, tenant, user, Some(&v.event_id), e.outcome.as_str(), r).await?;
    }
    for q in &plan.quarantined {
        let r = &q.receipt;
        sqlx::query(
            "INSERT INTO quarantine (tenant_id, server_seq, user_id, user_seq, event_id, device_id, device_seq,
                submitted, event_hash, claimed_hash, code, message, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(tenant)
        .bind(stored(r.server_seq))
        .bind(user)
        .bind(stored(r.user_seq))
        .bind(q.event_id.as_deref())
        .bind(q.device.as_ref().map(|(d, _)| d.as_str()))
        .bind(q.device.as_ref().map(|(_, s)| stored(*s)))
        .bind(&q.submitted_json)
        .bind(&q.event_hash)
        .bind(q.claimed_hash.as_deref())
        .bind(&q.code)
        .bind(&q.message)
        .bind(&r.received_at)
        .execute(&mut *conn)
        .await?;
        insert_receipt(conn, tenant, user, q.event_id.as_deref(), "quarantined", r).await?;
    }
    // Entries come in pairs: the tenant entry, then the user entry.
    for pair in plan.ledger.chunks(2) {
        let server_seq = pair[0].seq;
        for e in pair {
            sqlx::query(
                "INSERT INTO ledger (tenant_id, ledger, seq, event_hash, outcome, received_at, prev, hash, server_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(tenant)
            .bind(&e.ledger)
            .bind(stored(e.seq))
            .bind(&e.event_hash)
            .bind(e.outcome.as_str())
            .bind(&e.received_at)
            .bind(&e.prev)
            .bind(&e.hash)
            .bind(stored(server_seq))
            .execute(&mut *conn)
            .await?;
        }
    }
    for (ledger, (seq, hash)) in [
        (TENANT_LEDGER.to_string(), &plan.tenant_head),
        (user_ledger(user), &plan.user_head),
    ] {
        sqlx::query(
            "INSERT INTO ledger_heads (tenant_id, ledger, seq, hash) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, ledger) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(tenant)
        .bind(ledger)
        .bind(stored(*seq))
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    }
    for (device, head) in &plan.devices {
        sqlx::query(
            "INSERT INTO device_heads (tenant_id, device_id, device_seq, hash, computed_hash, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tenant_id, device_id) DO UPDATE
             SET device_seq = excluded.device_seq, hash = excluded.hash, computed_hash = excluded.computed_hash",
        )
        .bind(tenant)
        .bind(device)
        .bind(stored(head.device_seq))
        .bind(&head.hash)
        .bind(&head.computed_hash)
        .bind(&head.user_id)
        .execute(&mut *conn)
        .await?;
    }
    for (aggregate, (ty, version)) in &plan.aggregates {
        sqlx::query(
            "INSERT INTO aggregates (tenant_id, aggregate_id, aggregate_type, version) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, aggregate_id) DO UPDATE SET version = excluded.version",
        )
        .bind(tenant)
        .bind(aggregate)
        .bind(ty)
        .bind(stored(*version))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_receipt(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: &str,
    event_id: Option<&str>,
    outcome: &str,
    r: &Receipt,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO receipts (tenant_id, server_seq, user_id, user_seq, event_id, outcome, ledger_hash,
            user_ledger_hash, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(tenant)
    .bind(stored(r.server_seq))
    .bind(user)
    .bind(stored(r.user_seq))
    .bind(event_id)
    .bind(outcome)
    .bind(&r.ledger_hash)
    .bind(&r.user_ledger_hash)
    .bind(&r.received_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
