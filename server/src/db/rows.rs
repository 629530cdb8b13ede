//! Pull rows: the columns both backends select for a page of a ledger, and
//! how one such row (of either database) becomes a [`Row`].

use super::{count, outcome, DbError, PullQuery, Row};
use crate::ingest::Existing;
use crate::protocol::Receipt;
use annal::ledger::LedgerEntry;
use sqlx::{ColumnIndex, Decode, Type};

/// The `SELECT … FROM … JOIN …` of a pull, without its `WHERE`: each
/// backend adds its own, in its own placeholders. [`pulled`] reads the
/// columns by position, in this order.
pub(crate) const PULL_SELECT: &str =
    "SELECT l.seq, l.event_hash, l.outcome, l.received_at, l.prev, l.hash,
            r.server_seq, r.user_seq, r.ledger_hash, r.user_ledger_hash, r.received_at,
            e.envelope, e.salt, e.payload, e.conflicts_with,
            x.code, x.message, x.claimed_hash, x.submitted
     FROM ledger l
     JOIN receipts r ON r.tenant_id = l.tenant_id AND r.server_seq = l.server_seq
     LEFT JOIN events e ON e.tenant_id = l.tenant_id AND e.server_seq = l.server_seq
     LEFT JOIN quarantine x ON x.tenant_id = l.tenant_id AND x.server_seq = l.server_seq";

/// One row of [`PULL_SELECT`] on the ledger `q` asks for.
pub(crate) fn pulled<'r, R>(q: &PullQuery, r: &'r R) -> Result<Row, DbError>
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Row {
        entry: LedgerEntry {
            tenant_id: q.tenant.clone(),
            ledger: q.ledger.clone(),
            seq: count(r.try_get(0)?)?,
            event_hash: r.try_get(1)?,
            outcome: outcome(r.try_get::<&str, _>(2)?)?,
            received_at: r.try_get(3)?,
            prev: r.try_get(4)?,
            hash: r.try_get(5)?,
        },
        receipt: receipt_at(r, 6)?,
        event: match r.try_get::<Option<String>, _>(11)? {
            Some(envelope) => Some((envelope, r.try_get(12)?, r.try_get(13)?, r.try_get(14)?)),
            None => None,
        },
        quarantine: match r.try_get::<Option<String>, _>(15)? {
            Some(code) => Some((code, r.try_get(16)?, r.try_get(17)?, r.try_get(18)?)),
            None => None,
        },
    })
}

/// A receipt from five columns starting at `at`: server_seq, user_seq,
/// ledger_hash, user_ledger_hash, received_at.
pub(crate) fn receipt_at<'r, R>(r: &'r R, at: usize) -> Result<Receipt, DbError>
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Receipt {
        server_seq: count(r.try_get(at)?)?,
        user_seq: count(r.try_get(at + 1)?)?,
        ledger_hash: r.try_get(at + 2)?,
        user_ledger_hash: r.try_get(at + 3)?,
        received_at: r.try_get(at + 4)?,
    })
}

/// An earlier entry of a pushed event id, from the lookup both backends
/// run (columns: stored as an event, event id, claimed hash, event hash,
/// then the receipt), as [`super::first_received`] takes it.
pub(crate) fn existing_at<'r, R>(r: &'r R) -> Result<(String, bool, Existing), DbError>
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let existing = Existing {
        claimed_hash: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
        event_hash: r.try_get(3)?,
        receipt: receipt_at(r, 4)?,
    };
    Ok((r.try_get(1)?, r.try_get(0)?, existing))
}
