//! Storage: embedded SQLite (the default) or PostgreSQL. Both keep the same
//! append-only tables and run the same ingest rules ([`crate::ingest`]);
//! they differ in how a tenant's ledger is locked and rows are written.

pub mod migrations;
pub mod postgres;
mod rows;
pub mod sqlite;

use crate::ingest::{Existing, Plan, Policy, Submitted};
use crate::protocol::{OwnEvent, PullItem, PullResponse, Quarantine, Receipt, StoredEvent};
use annal::ledger::{LedgerEntry, LedgerOutcome};
use std::collections::hash_map::{Entry, HashMap};
use std::fmt;

/// A storage failure. Its text is for logs, never for clients.
#[derive(Debug)]
pub enum DbError {
    /// The database cannot be reached or refused the operation.
    Unavailable(String),
    /// The database was migrated by a newer annal-server.
    Newer {
        /// The database's schema version.
        database: i64,
        /// The newest this binary knows.
        binary: i64,
    },
    /// Stored data does not make sense.
    Corrupt(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            DbError::Newer { database, binary } => write!(
                f,
                "the database has schema version {database}, newer than this annal-server's {binary}; upgrade annal-server"
            ),
            DbError::Corrupt(e) => write!(f, "stored data is inconsistent: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        DbError::Unavailable(e.to_string())
    }
}

/// A page request on one ledger.
#[derive(Debug, Clone)]
pub struct PullQuery {
    /// The tenant.
    pub tenant: String,
    /// `"tenant"` or `"user:<id>"`.
    pub ledger: String,
    /// Items with `seq > after`.
    pub after: u64,
    /// At most this many items (already clamped).
    pub limit: u32,
    /// Only events of this aggregate.
    pub aggregate_id: Option<String>,
    /// Events of this device go without their bodies (`own` instead of
    /// `event`): the device that asks holds them already.
    pub omit_device: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
}

impl PullQuery {
    /// Whether a filter is set: then quarantined entries are left out.
    pub fn filtered(&self) -> bool {
        self.aggregate_id.is_some() || self.event_type.is_some()
    }
}

/// An open database.
#[derive(Debug, Clone)]
pub enum Db {
    /// Embedded SQLite.
    Sqlite(sqlite::SqliteDb),
    /// PostgreSQL.
    Postgres(postgres::PgDb),
}

impl Db {
    /// Opens `url` (`sqlite:PATH`, a plain path, or `postgres://…`) and
    /// applies migrations; `admin_url` (PostgreSQL) is the owner role that
    /// migrates, when the app role may not.
    pub async fn open(url: &str, admin_url: Option<&str>) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Db::Postgres(postgres::PgDb::open(url, admin_url).await?))
        } else {
            Ok(Db::Sqlite(sqlite::SqliteDb::open(url).await?))
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Takes a push by `user` of `tenant` under the tenant's ledger lock.
    pub async fn push(
        &self,
        tenant: &str,
        user: &str,
        batch: &[Submitted],
        atomic: bool,
        policy: &Policy,
    ) -> Result<Plan, DbError> {
        match self {
            Db::Sqlite(db) => db.push(tenant, user, batch, atomic, policy).await,
            Db::Postgres(db) => db.push(tenant, user, batch, atomic, policy).await,
        }
    }

    /// One page of a ledger with what its entries record.
    pub async fn pull(&self, q: &PullQuery) -> Result<PullResponse, DbError> {
        let rows = match self {
            Db::Sqlite(db) => db.pull(q).await?,
            Db::Postgres(db) => db.pull(q).await?,
        };
        Ok(page(q, rows))
    }

    /// The database's server version, proving it answers.
    pub async fn ping(&self) -> Result<String, DbError> {
        match self {
            Db::Sqlite(db) => db.ping().await,
            Db::Postgres(db) => db.ping().await,
        }
    }
}

/// One ledger entry as read, with its receipt and what it records. Rows
/// come back `limit + 1` at most, so the caller can tell whether more follow.
#[derive(Debug, Clone)]
pub struct Row {
    /// Ledger entry fields.
    pub entry: LedgerEntry,
    /// Receipt fields.
    pub receipt: Receipt,
    /// The event (accepted or conflict).
    pub event: Option<(String, String, String, String)>,
    /// The quarantine record: code, message, claimed hash, submitted JSON.
    pub quarantine: Option<(String, String, Option<String>, String)>,
}

fn page(q: &PullQuery, mut rows: Vec<Row>) -> PullResponse {
    let has_more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    let next_after = rows.last().map_or(q.after, |r| r.entry.seq);
    let items = rows
        .into_iter()
        .map(|r| {
            let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
            let (event, conflicts_with) = match r.event {
                Some((envelope, salt, payload, conflicts)) => (
                    Some(StoredEvent {
                        envelope: parse(&envelope),
                        salt,
                        payload: parse(&payload),
                    }),
                    serde_json::from_str(&conflicts).unwrap_or_default(),
                ),
                None => (None, Vec::new()),
            };
            let own = event.as_ref().and_then(|e| {
                let device = e.envelope.get("device_id")?.as_str()?;
                if Some(device) != q.omit_device.as_deref() {
                    return None;
                }
                let device_seq = e.envelope.get("device_seq")?.as_u64()?;
                Some(OwnEvent { device_seq })
            });
            let event = if own.is_some() { None } else { event };
            PullItem {
                entry: r.entry,
                receipt: r.receipt,
                event,
                quarantine: r
                    .quarantine
                    .map(|(code, message, claimed_hash, submitted)| Quarantine {
                        code,
                        message,
                        claimed_hash,
                        submitted: parse(&submitted),
                    }),
                conflicts_with,
                own,
            }
        })
        .collect();
    PullResponse {
        ledger: q.ledger.clone(),
        items,
        next_after,
        has_more,
    }
}

/// Of the entries the pushing user already has under each wanted event id,
/// `(id, stored as an event, entry)` in any order, the one a new push of
/// that id is compared with: its stored event, else its first quarantined
/// entry.
pub(crate) fn first_received(
    found: impl IntoIterator<Item = (String, bool, Existing)>,
) -> HashMap<String, Existing> {
    let mut first: HashMap<String, (bool, Existing)> = HashMap::new();
    for (id, stored_event, existing) in found {
        match first.entry(id) {
            Entry::Vacant(v) => {
                v.insert((stored_event, existing));
            }
            Entry::Occupied(mut o) => {
                let (was_event, was) = o.get();
                let earlier = existing.receipt.server_seq < was.receipt.server_seq;
                if !was_event && (stored_event || earlier) {
                    o.insert((stored_event, existing));
                }
            }
        }
    }
    first.into_iter().map(|(id, (_, e))| (id, e)).collect()
}

/// The stored event ids at each `(aggregate_id, aggregate_version)`, in
/// ledger order, from `(key, server_seq, event_id)` rows in any order.
pub(crate) fn in_ledger_order(
    rows: Vec<((String, u64), i64, String)>,
) -> HashMap<(String, u64), Vec<String>> {
    let mut at: HashMap<(String, u64), Vec<(i64, String)>> = HashMap::new();
    for (key, server_seq, id) in rows {
        at.entry(key).or_default().push((server_seq, id));
    }
    at.into_iter()
        .map(|(key, mut ids)| {
            ids.sort_unstable();
            (key, ids.into_iter().map(|(_, id)| id).collect())
        })
        .collect()
}

/// Parses a stored outcome.
pub(crate) fn outcome(s: &str) -> Result<LedgerOutcome, DbError> {
    LedgerOutcome::parse(s).ok_or_else(|| DbError::Corrupt(format!("unknown outcome {s:?}")))
}

/// `u64` from a stored `i64`.
pub(crate) fn count(n: i64) -> Result<u64, DbError> {
    u64::try_from(n).map_err(|_| DbError::Corrupt(format!("negative count {n}")))
}

/// `i64` for storing a `u64` (all counts are below 2^53).
pub(crate) fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Server time now, in Unix microseconds.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
