//! The sync protocol's JSON shapes (docs/FORMAT.md §11, server/openapi.json),
//! shared by annal-server and the sync client so both speak one format.

use crate::ledger::LedgerEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol versions this server speaks.
pub const PROTOCOL_MIN: u32 = 1;
/// The newest protocol version this server speaks. Version 2 adds
/// `omit_device` to pulls (docs/FORMAT.md §11.4); a version 2 client sends
/// it only to a server whose `/v1/schema` says it speaks 2.
pub const PROTOCOL_MAX: u32 = 2;
/// The first version whose pulls take `omit_device`.
pub const PROTOCOL_OMIT_DEVICE: u32 = 2;

/// Most events in one push.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Largest request body: the largest event (1 MiB of payload, plus its
/// envelope) fits with room to spare. Larger events go alone.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default and largest `limit` of a pull.
pub const DEFAULT_PULL_LIMIT: u32 = 100;
/// Largest `limit` of a pull; larger values are clamped.
pub const MAX_PULL_LIMIT: u32 = 1000;

/// What happened to one pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Entered in the ledgers.
    Accepted,
    /// Seen before with the same hash: the original receipt.
    Duplicate,
    /// Entered and flagged: another event has the same aggregate version.
    Conflict,
    /// Entered but set aside, with a reason.
    Quarantined,
    /// Not taken: an earlier `device_seq` of its device is missing.
    Missing,
    /// Not taken: it was in an `atomic` batch that could not be taken whole.
    NotWritten,
}

/// Proof of receipt: where the event sits in both ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Position in the tenant ledger.
    pub server_seq: u64,
    /// Position in the user ledger.
    pub user_seq: u64,
    /// Hash of the tenant-ledger entry.
    pub ledger_hash: String,
    /// Hash of the user-ledger entry.
    pub user_ledger_hash: String,
    /// Server time, microseconds, verbatim.
    pub received_at: String,
}

/// One pushed event's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    /// Index in the pushed batch.
    pub index: usize,
    /// The event's id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// What happened.
    pub status: Status,
    /// The receipt (all but `missing` and `not_written`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// For `conflict`: the events with the same aggregate version.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub conflicts_with: Vec<String>,
    /// For `quarantined`, `missing` and `not_written`: a stable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `missing`: resend this device's events from this `device_seq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_device_seq: Option<u64>,
}

/// `POST /v1/events` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// All or nothing.
    #[serde(default)]
    pub atomic: bool,
    /// `{ envelope, salt, payload }` entries, as in the audit export.
    pub events: Vec<Value>,
}

/// `POST /v1/events` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushResponse {
    /// False when an atomic batch was refused whole (nothing written).
    pub committed: bool,
    /// One result per pushed event, in order.
    pub results: Vec<EventResult>,
}

/// An event as stored and pulled: exactly what the device pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The envelope, `hash` included.
    pub envelope: Value,
    /// The payload salt, 32 hex digits.
    pub salt: String,
    /// The payload.
    pub payload: Value,
}

/// One item of a pull or stream: a ledger entry and what it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullItem {
    /// The entry of the ledger being followed.
    pub entry: LedgerEntry,
    /// The receipt of the event.
    pub receipt: Receipt,
    /// `accepted` or `conflict` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<StoredEvent>,
    /// For a quarantined event: the code and message, and what was pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
    /// For a conflict: the events it conflicts with.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub conflicts_with: Vec<String>,
    /// Instead of `event`, for an event of the device a pull named in
    /// `omit_device`: which of its events this is. The device checks
    /// `entry.event_hash` against its own copy (docs/FORMAT.md §11.4).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub own: Option<OwnEvent>,
}

/// An event a pull left out because the puller wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnEvent {
    /// Its `device_seq` in the puller's chain.
    pub device_seq: u64,
}

/// Why an event was quarantined, and what was pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Stable code.
    pub code: String,
    /// For people.
    pub message: String,
    /// The hash the device claimed, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_hash: Option<String>,
    /// The pushed entry, verbatim JSON.
    pub submitted: Value,
}

/// `GET /v1/events` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullResponse {
    /// `"tenant"` or `"user:<id>"`: the ledger the items follow.
    pub ledger: String,
    /// Items in ledger order.
    pub items: Vec<PullItem>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// Whether more items follow.
    pub has_more: bool,
}
