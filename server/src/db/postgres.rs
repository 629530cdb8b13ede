//! PostgreSQL: any number of annal-server instances on one database.
//!
//! * Tenancy is enforced by the database: every table with a `tenant_id`
//!   has row-level security (enabled and forced), and every transaction on
//!   the app connection begins with `SELECT set_config('annal.tenant', $1,
//!   true)`, which lasts until the end of that transaction only, so a
//!   pooled connection never carries one tenant's setting into another's
//!   work. The app should connect as a role that is neither the owner nor a
//!   superuser and has no BYPASSRLS (see `migrations/postgres/0001_ledger.sql`);
//!   the owner role (the admin URL) migrates.
//! * Appends to a tenant's ledgers serialize across instances through a row
//!   lock on that tenant's ledger head (`SELECT … FOR UPDATE`); `seq` comes
//!   from the locked head, never a SEQUENCE, so a failed batch leaves no gap.
//! * A push writes its rows with one multi-row `INSERT … SELECT FROM UNNEST`
//!   per table, and announces itself with `pg_notify('annal_ledger', tenant)`
//!   in the same transaction, so streams on every instance learn of it once
//!   it is committed.

use super::migrations::{latest, POSTGRES};
use super::rows::{existing_at, pulled, PULL_SELECT};
use super::{count, first_received, in_ledger_order, now_micros, stored, DbError, PullQuery, Row};
use crate::ingest::{self, DeviceHead, Plan, Policy, State, Submitted};
use crate::protocol::Receipt;
use annal::envelope::GENESIS_HASH;
use annal::ledger::{format_received_at, user_ledger, TENANT_LEDGER};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row as _, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The channel a push notifies, with the tenant as payload.
pub const NOTIFY_CHANNEL: &str = "annal_ledger";

/// Key of the advisory lock held while migrating, so that instances
/// starting together migrate one at a time ("annal" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x616e_6e61_6c00_0001;

/// Connections in the app pool unless told otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// An open PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgDb {
    pool: PgPool,
}

impl PgDb {
    /// Connects to `url` (the app role) and migrates through `admin_url`
    /// (the owner role), or through `url` when there is no admin URL.
    pub async fn open(url: &str, admin_url: Option<&str>) -> Result<PgDb, DbError> {
        PgDb::open_with_pool_size(url, admin_url, DEFAULT_POOL_SIZE).await
    }

    /// [`PgDb::open`] with at most `max_connections` app connections.
    pub async fn open_with_pool_size(
        url: &str,
        admin_url: Option<&str>,
        max_connections: u32,
    ) -> Result<PgDb, DbError> {
        let options = PgConnectOptions::from_str(url)?.application_name("annal-server");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let app_role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&pool)
            .await?;
        let admin_options = PgConnectOptions::from_str(admin_url.unwrap_or(url))?
            .application_name("annal-server migrate");
        let mut admin = PgConnection::connect_with(&admin_options).await?;
        let migrated = migrate(&mut admin, &app_role).await;
        admin.close().await.ok();
        migrated?;
        Ok(PgDb { pool })
    }

    /// The app connection pool (for tests and diagnostics). Any transaction
    /// on it must set `annal.tenant` first, or it sees no rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// PostgreSQL's version.
    pub async fn ping(&self) -> Result<String, DbError> {
        let v: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&self.pool)
            .await?;
        Ok(format!("PostgreSQL {v}"))
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
        let mut tx = self.begin(tenant).await?;
        let user_ledger = user_ledger(user);
        // The tenant's head row is the lock that orders every append to the
        // tenant's ledgers, across instances; the user's head row is created
        // and locked under it, so the two locks are always taken in order.
        ensure_head(&mut tx, tenant, TENANT_LEDGER).await?;
        let tenant_head = lock_head(&mut tx, tenant, TENANT_LEDGER).await?;
        ensure_head(&mut tx, tenant, &user_ledger).await?;
        let user_head = lock_head(&mut tx, tenant, &user_ledger).await?;
        let state = load_state(&mut tx, tenant, user, batch, tenant_head, user_head).await?;
        // Taken after the lock, so received_at never goes backwards along
        // the ledger (as far as the clock does not).
        let received_at = format_received_at(now_micros());
        let plan = ingest::plan(tenant, user, batch, atomic, state, &received_at, policy);
        if plan.committed && !plan.ledger.is_empty() {
            write(&mut tx, tenant, user, &plan).await?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            // Nothing entered: not even the head rows are kept.
            tx.rollback().await?;
        }
        Ok(plan)
    }

    /// See [`super::Db::pull`].
    pub async fn pull(&self, q: &PullQuery) -> Result<Vec<Row>, DbError> {
        let mut sql =
            format!("{PULL_SELECT} WHERE l.tenant_id = $1 AND l.ledger = $2 AND l.seq > $3");
        let mut next = 5;
        if q.aggregate_id.is_some() {
            sql.push_str(&format!(" AND e.aggregate_id = ${next}"));
            next += 1;
        }
        if q.event_type.is_some() {
            sql.push_str(&format!(" AND e.event_type = ${next}"));
        }
        sql.push_str(" ORDER BY l.seq LIMIT $4");
        let mut query = sqlx::query(&sql)
            .bind(&q.tenant)
            .bind(&q.ledger)
            .bind(stored(q.after))
            .bind(i64::from(q.limit) + 1);
        if let Some(a) = &q.aggregate_id {
            query = query.bind(a);
        }
        if let Some(t) = &q.event_type {
            query = query.bind(t);
        }
        let mut tx = self.begin(&q.tenant).await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter().map(|r| pulled(q, r)).collect()
    }

    /// A transaction on the app pool, scoped to `tenant` by row-level
    /// security until it ends.
    async fn begin(&self, tenant: &str) -> Result<Transaction<'static, Postgres>, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('annal.tenant', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Applies the migrations this database lacks, in one transaction, under an
/// advisory lock; then grants the app role what it needs when it is not the
/// role that migrates.
async fn migrate(admin: &mut PgConnection, app_role: &str) -> Result<(), DbError> {
    let mut tx = admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS annal_schema (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM annal_schema")
            .fetch_one(&mut *tx)
            .await?;
    let newest = latest(POSTGRES);
    if current > newest {
        return Err(DbError::Newer {
            database: current,
            binary: newest,
        });
    }
    for (version, sql) in POSTGRES.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO annal_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    let admin_role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await?;
    if admin_role != app_role {
        sqlx::query("SELECT annal_grant_app($1)")
            .bind(app_role)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Creates a ledger's head row at genesis if it does not exist yet.
async fn ensure_head(conn: &mut PgConnection, tenant: &str, ledger: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO ledger_heads (tenant_id, ledger, seq, hash) VALUES ($1, $2, 0, $3)
         ON CONFLICT (tenant_id, ledger) DO NOTHING",
    )
    .bind(tenant)
    .bind(ledger)
    .bind(GENESIS_HASH)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks a ledger's head row until the end of the transaction and reads it.
async fn lock_head(
    conn: &mut PgConnection,
    tenant: &str,
    ledger: &str,
) -> Result<Option<(u64, String)>, DbError> {
    let row = sqlx::query(
        "SELECT seq, hash FROM ledger_heads WHERE tenant_id = $1 AND ledger = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(ledger)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((count(r.try_get(0)?)?, r.try_get(1)?)))
        .transpose()
}

// The state a push reads under the lock: one statement per kind of key.
// Each takes its keys as an array and looks every key up on its own, by
// the table's index on the whole key, in a `LATERAL` subquery that
// `OFFSET 0` keeps the planner from flattening into a join it may reorder.
// Without that, `key = ANY($2)` and joins were planned as scans of the
// whole tenant (a bitmap scan of the tenant's events, filtered; the user's
// every receipt, each probed in events) whenever the row estimates were a
// young table's, before autovacuum first analyzes it, and a push took
// 40 ms instead of 3. `the_lookups_search_indexes` (tests/postgres_only.rs)
// checks every plan.

/// Device heads: `$2` device ids.
#[doc(hidden)]
pub const DEVICES_SQL: &str = "SELECT w.id, d.device_seq, d.hash, d.computed_hash, d.user_id
     FROM UNNEST($2::text[]) AS w (id)
     CROSS JOIN LATERAL (
         SELECT device_seq, hash, computed_hash, user_id FROM device_heads
         WHERE tenant_id = $1 AND device_id = w.id
         OFFSET 0
     ) AS d";

/// Aggregate states: `$2` aggregate ids.
#[doc(hidden)]
pub const AGGREGATES_SQL: &str = "SELECT w.id, a.aggregate_type, a.version
     FROM UNNEST($2::text[]) AS w (id)
     CROSS JOIN LATERAL (
         SELECT aggregate_type, version FROM aggregates
         WHERE tenant_id = $1 AND aggregate_id = w.id
         OFFSET 0
     ) AS a";

/// Entries already received from user `$3` with the ids `$2`, stored as
/// events (`true`) or quarantined, with their receipts.
#[doc(hidden)]
pub const EXISTING_SQL: &str = "SELECT f.stored, w.id, f.claimed_hash, f.event_hash,
            r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at
     FROM UNNEST($2::text[]) AS w (id)
     CROSS JOIN LATERAL (
         SELECT true AS stored, hash AS claimed_hash, hash AS event_hash, server_seq FROM events
         WHERE tenant_id = $1 AND event_id = w.id
         UNION ALL
         SELECT false, claimed_hash, event_hash, server_seq FROM quarantine
         WHERE tenant_id = $1 AND event_id = w.id
         OFFSET 0
     ) AS f
     CROSS JOIN LATERAL (
         SELECT server_seq, user_seq, ledger_hash, user_ledger_hash, received_at, user_id
         FROM receipts
         WHERE tenant_id = $1 AND server_seq = f.server_seq
         OFFSET 0
     ) AS r
     WHERE r.user_id = $3";

/// Stored events at `($2[i], $3[i])`, `(aggregate_id, aggregate_version)`.
#[doc(hidden)]
pub const AT_VERSION_SQL: &str =
    "SELECT w.aggregate_id, w.aggregate_version, e.event_id, e.server_seq
     FROM UNNEST($2::text[], $3::bigint[]) AS w (aggregate_id, aggregate_version)
     CROSS JOIN LATERAL (
         SELECT event_id, server_seq FROM events
         WHERE tenant_id = $1 AND aggregate_id = w.aggregate_id
           AND aggregate_version = w.aggregate_version
         OFFSET 0
     ) AS e";

/// Reads what the planner needs for `batch`, one query per kind of key.
async fn load_state(
    conn: &mut PgConnection,
    tenant: &str,
    user: &str,
    batch: &[Submitted],
    tenant_head: Option<(u64, String)>,
    user_head: Option<(u64, String)>,
) -> Result<State, DbError> {
    let wanted = ingest::wanted(batch);
    let mut state = State {
        tenant_head,
        user_head,
        ..State::default()
    };
    if !wanted.devices.is_empty() {
        let ids: Vec<&str> = wanted.devices.iter().map(String::as_str).collect();
        let rows = sqlx::query(DEVICES_SQL)
            .bind(tenant)
            .bind(&ids)
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
        let ids: Vec<&str> = wanted.aggregates.iter().map(String::as_str).collect();
        let rows = sqlx::query(AGGREGATES_SQL)
            .bind(tenant)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            state
                .aggregates
                .insert(r.try_get(0)?, (r.try_get(1)?, count(r.try_get(2)?)?));
        }
    }
    if !wanted.events.is_empty() {
        // Another user's push of the same id never makes this user's event
        // a duplicate.
        let ids: Vec<&str> = wanted.events.iter().map(String::as_str).collect();
        let rows = sqlx::query(EXISTING_SQL)
            .bind(tenant)
            .bind(&ids)
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
        let found = rows
            .iter()
            .map(existing_at)
            .collect::<Result<Vec<_>, _>>()?;
        state.existing = first_received(found);
    }
    // Only versions that can have stored events: usually none.
    let versions = wanted.stored_versions(&state.aggregates);
    if !versions.is_empty() {
        let (ids, versions): (Vec<&str>, Vec<i64>) =
            versions.iter().map(|(a, v)| (*a, stored(*v))).unzip();
        let rows = sqlx::query(AT_VERSION_SQL)
            .bind(tenant)
            .bind(&ids)
            .bind(&versions)
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

/// Writes a committed plan: one multi-row insert per table.
async fn write(
    conn: &mut PgConnection,
    tenant: &str,
    user: &str,
    plan: &Plan,
) -> Result<(), DbError> {
    if !plan.events.is_empty() {
        let n = plan.events.len();
        let mut event_id = Vec::with_capacity(n);
        let mut user_id = Vec::with_capacity(n);
        let mut device_id = Vec::with_capacity(n);
        let mut device_seq = Vec::with_capacity(n);
        let mut aggregate_type = Vec::with_capacity(n);
        let mut aggregate_id = Vec::with_capacity(n);
        let mut event_type = Vec::with_capacity(n);
        let mut schema_version = Vec::with_capacity(n);
        let mut aggregate_version = Vec::with_capacity(n);
        let mut hash = Vec::with_capacity(n);
        let mut envelope = Vec::with_capacity(n);
        let mut salt = Vec::with_capacity(n);
        let mut payload = Vec::with_capacity(n);
        let mut outcome = Vec::with_capacity(n);
        let mut conflicts_with = Vec::with_capacity(n);
        let mut server_seq = Vec::with_capacity(n);
        let mut user_seq = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        for e in &plan.events {
            let v = &e.envelope;
            let r = &e.receipt;
            event_id.push(v.event_id.as_str());
            user_id.push(v.user_id.as_str());
            device_id.push(v.device_id.as_str());
            device_seq.push(stored(v.device_seq));
            aggregate_type.push(v.aggregate_type.as_str());
            aggregate_id.push(v.aggregate_id.as_str());
            event_type.push(v.event_type.as_str());
            schema_version.push(stored(v.schema_version));
            aggregate_version.push(stored(v.aggregate_version));
            hash.push(v.hash.as_str());
            envelope.push(e.envelope_json.as_str());
            salt.push(e.salt.as_str());
            payload.push(e.payload_json.as_str());
            outcome.push(e.outcome.as_str());
            conflicts_with
                .push(serde_json::to_string(&e.conflicts_with).unwrap_or_else(|_| "[]".into()));
            server_seq.push(stored(r.server_seq));
            user_seq.push(stored(r.user_seq));
            received_at.push(r.received_at.as_str());
        }
        sqlx::query(
            "INSERT INTO events (tenant_id, event_id, user_id, device_id, device_seq, aggregate_type,
                aggregate_id, event_type, schema_version, aggregate_version, hash, envelope, salt, payload,
                outcome, conflicts_with, server_seq, user_seq, received_at)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[],
                $14::text[], $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::text[])",
        )
        .bind(tenant)
        .bind(&event_id)
        .bind(&user_id)
        .bind(&device_id)
        .bind(&device_seq)
        .bind(&aggregate_type)
        .bind(&aggregate_id)
        .bind(&event_type)
        .bind(&schema_version)
        .bind(&aggregate_version)
        .bind(&hash)
        .bind(&envelope)
        .bind(&salt)
        .bind(&payload)
        .bind(&outcome)
        .bind(&conflicts_with)
        .bind(&server_seq)
        .bind(&user_seq)
        .bind(&received_at)
        .execute(&mut *conn)
        .await?;
    }
    if !plan.quarantined.is_empty() {
        let n = plan.quarantined.len();
        let mut server_seq = Vec::with_capacity(n);
        let mut user_seq = Vec::with_capacity(n);
        let mut event_id = Vec::with_capacity(n);
        let mut device_id = Vec::with_capacity(n);
        let mut device_seq = Vec::with_capacity(n);
        let mut submitted = Vec::with_capacity(n);
        let mut event_hash = Vec::with_capacity(n);
        let mut claimed_hash = Vec::with_capacity(n);
        let mut code = Vec::with_capacity(n);
        let mut message = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        for q in &plan.quarantined {
            let r = &q.receipt;
            server_seq.push(stored(r.server_seq));
            user_seq.push(stored(r.user_seq));
            event_id.push(q.event_id.as_deref());
            device_id.push(q.device.as_ref().map(|(d, _)| d.as_str()));
            device_seq.push(q.device.as_ref().map(|(_, s)| stored(*s)));
            submitted.push(q.submitted_json.as_str());
            event_hash.push(q.event_hash.as_str());
            claimed_hash.push(q.claimed_hash.as_deref());
            code.push(q.code.as_str());
            message.push(q.message.as_str());
            received_at.push(r.received_at.as_str());
        }
        sqlx::query(
            "INSERT INTO quarantine (tenant_id, user_id, server_seq, user_seq, event_id, device_id, device_seq,
                submitted, event_hash, claimed_hash, code, message, received_at)
             SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])",
        )
        .bind(tenant)
        .bind(user)
        .bind(&server_seq)
        .bind(&user_seq)
        .bind(&event_id)
        .bind(&device_id)
        .bind(&device_seq)
        .bind(&submitted)
        .bind(&event_hash)
        .bind(&claimed_hash)
        .bind(&code)
        .bind(&message)
        .bind(&received_at)
        .execute(&mut *conn)
        .await?;
    }
    // One receipt per entered event, stored or quarantined.
    {
        let receipts: Vec<(Option<&str>, &str, &Receipt)> = plan.receipts().collect();
        let n = receipts.len();
        let mut server_seq = Vec::with_capacity(n);
        let mut user_seq = Vec::with_capacity(n);
        let mut event_id = Vec::with_capacity(n);
        let mut outcome = Vec::with_capacity(n);
        let mut ledger_hash = Vec::with_capacity(n);
        let mut user_ledger_hash = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        for (id, o, r) in receipts {
            server_seq.push(stored(r.server_seq));
            user_seq.push(stored(r.user_seq));
            event_id.push(id);
            outcome.push(o);
            ledger_hash.push(r.ledger_hash.as_str());
            user_ledger_hash.push(r.user_ledger_hash.as_str());
            received_at.push(r.received_at.as_str());
        }
        sqlx::query(
            "INSERT INTO receipts (tenant_id, user_id, server_seq, user_seq, event_id, outcome, ledger_hash,
                user_ledger_hash, received_at)
             SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[])",
        )
        .bind(tenant)
        .bind(user)
        .bind(&server_seq)
        .bind(&user_seq)
        .bind(&event_id)
        .bind(&outcome)
        .bind(&ledger_hash)
        .bind(&user_ledger_hash)
        .bind(&received_at)
        .execute(&mut *conn)
        .await?;
    }
    // Entries come in pairs: the tenant entry, then the user entry; both
    // carry the tenant entry's seq as server_seq.
    {
        let n = plan.ledger.len();
        let mut ledger = Vec::with_capacity(n);
        let mut seq = Vec::with_capacity(n);
        let mut event_hash = Vec::with_capacity(n);
        let mut outcome = Vec::with_capacity(n);
        let mut received_at = Vec::with_capacity(n);
        let mut prev = Vec::with_capacity(n);
        let mut hash = Vec::with_capacity(n);
        let mut server_seq = Vec::with_capacity(n);
        for pair in plan.ledger.chunks(2) {
            for e in pair {
                ledger.push(e.ledger.as_str());
                seq.push(stored(e.seq));
                event_hash.push(e.event_hash.as_str());
                outcome.push(e.outcome.as_str());
                received_at.push(e.received_at.as_str());
                prev.push(e.prev.as_str());
                hash.push(e.hash.as_str());
                server_seq.push(stored(pair[0].seq));
            }
        }
        sqlx::query(
            "INSERT INTO ledger (tenant_id, ledger, seq, event_hash, outcome, received_at, prev, hash, server_seq)
             SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::bigint[])",
        )
        .bind(tenant)
        .bind(&ledger)
        .bind(&seq)
        .bind(&event_hash)
        .bind(&outcome)
        .bind(&received_at)
        .bind(&prev)
        .bind(&hash)
        .bind(&server_seq)
        .execute(&mut *conn)
        .await?;
    }
    let user_ledger = user_ledger(user);
    sqlx::query(
        "INSERT INTO ledger_heads (tenant_id, ledger, seq, hash)
         SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::text[])
         ON CONFLICT (tenant_id, ledger) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
    )
    .bind(tenant)
    .bind([TENANT_LEDGER, user_ledger.as_str()])
    .bind([stored(plan.tenant_head.0), stored(plan.user_head.0)])
    .bind([plan.tenant_head.1.as_str(), plan.user_head.1.as_str()])
    .execute(&mut *conn)
    .await?;
    if !plan.devices.is_empty() {
        let mut device_id = Vec::with_capacity(plan.devices.len());
        let mut device_seq = Vec::with_capacity(plan.devices.len());
        let mut hash = Vec::with_capacity(plan.devices.len());
        let mut computed_hash = Vec::with_capacity(plan.devices.len());
        let mut owner = Vec::with_capacity(plan.devices.len());
        for (d, head) in &plan.devices {
            owner.push(head.user_id.as_str());
            device_id.push(d.as_str());
            device_seq.push(stored(head.device_seq));
            hash.push(head.hash.as_str());
            computed_hash.push(head.computed_hash.as_str());
        }
        sqlx::query(
            "INSERT INTO device_heads (tenant_id, device_id, device_seq, hash, computed_hash, user_id)
             SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
             ON CONFLICT (tenant_id, device_id) DO UPDATE
             SET device_seq = EXCLUDED.device_seq, hash = EXCLUDED.hash, computed_hash = EXCLUDED.computed_hash",
        )
        .bind(tenant)
        .bind(&device_id)
        .bind(&device_seq)
        .bind(&hash)
        .bind(&computed_hash)
        .bind(&owner)
        .execute(&mut *conn)
        .await?;
    }
    if !plan.aggregates.is_empty() {
        let mut aggregate_id = Vec::with_capacity(plan.aggregates.len());
        let mut aggregate_type = Vec::with_capacity(plan.aggregates.len());
        let mut version = Vec::with_capacity(plan.aggregates.len());
        for (a, (t, v)) in &plan.aggregates {
            aggregate_id.push(a.as_str());
            aggregate_type.push(t.as_str());
            version.push(stored(*v));
        }
        sqlx::query(
            "INSERT INTO aggregates (tenant_id, aggregate_id, aggregate_type, version)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (tenant_id, aggregate_id) DO UPDATE SET version = EXCLUDED.version",
        )
        .bind(tenant)
        .bind(&aggregate_id)
        .bind(&aggregate_type)
        .bind(&version)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
