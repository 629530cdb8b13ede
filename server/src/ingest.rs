//! Deciding what happens to a pushed batch: a pure function of the batch
//! and the state read under the tenant's ledger lock, so both backends share
//! one set of rules and the rules are tested without a database.
//!
//! The server never drops an event. Every event that arrives in order is
//! entered in the tenant ledger and its user's ledger, as `accepted`,
//! `conflict` or `quarantined`; an event whose device has a gap before it is
//! `missing` and the device resends from the gap.

use crate::protocol::{EventResult, Receipt, Status};
use annal::envelope::{Envelope, GENESIS_HASH};
use annal::ledger::{user_ledger, LedgerEntry, LedgerOutcome, TENANT_LEDGER};
use annal::payload::{self, Payload, SALT_LEN};
use annal::{hex, jcs};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

/// The end of a ledger: `(seq, hash)`.
pub type Head = (u64, String);

/// The last event received from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHead {
    /// The user whose pushes the device's chain belongs to: the first one.
    pub user_id: String,
    /// Its `device_seq`.
    pub device_seq: u64,
    /// The `hash` the device claimed for it.
    pub hash: String,
    /// The hash the server computed. The device's next event may link to
    /// either: a quarantined event whose `hash` field was damaged still
    /// lets the honest chain continue.
    pub computed_hash: String,
}

impl DeviceHead {
    fn genesis(user: &str) -> DeviceHead {
        DeviceHead {
            user_id: user.to_string(),
            device_seq: 0,
            hash: GENESIS_HASH.to_string(),
            computed_hash: GENESIS_HASH.to_string(),
        }
    }
}

/// What a backend read, under the tenant's lock, for one batch.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Tenant ledger head.
    pub tenant_head: Option<Head>,
    /// The pushing user's ledger head.
    pub user_head: Option<Head>,
    /// The last received event of each device in the batch.
    pub devices: HashMap<String, DeviceHead>,
    /// `(aggregate_type, version)` of each aggregate in the batch.
    pub aggregates: HashMap<String, (String, u64)>,
    /// Events already received, by id.
    pub existing: HashMap<String, Existing>,
    /// Ids of stored events at `(aggregate_id, aggregate_version)`.
    pub at_version: HashMap<(String, u64), Vec<String>>,
}

/// An event already received.
#[derive(Debug, Clone)]
pub struct Existing {
    /// The hash it was received with (as claimed by the device).
    pub claimed_hash: String,
    /// The hash the server computed for it.
    pub event_hash: String,
    /// Its receipt.
    pub receipt: Receipt,
}

/// The keys a backend must read for a batch.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Device ids.
    pub devices: BTreeSet<String>,
    /// Aggregate ids.
    pub aggregates: BTreeSet<String>,
    /// Event ids.
    pub events: BTreeSet<String>,
    /// `(aggregate_id, aggregate_version)` pairs.
    pub versions: BTreeSet<(String, u64)>,
}

/// One pushed entry, read as far as it can be.
#[derive(Debug, Clone)]
pub struct Submitted {
    raw: Value,
    tenant_id: Option<String>,
    user_id: Option<String>,
    event_id: Option<String>,
    device: Option<(String, u64, String)>,
    claimed_hash: Option<String>,
    event_hash: String,
    checked: Result<Checked, (String, String)>,
}

/// A well-formed entry, with what can be checked of it without the stored
/// state: worked out when it is read, before the tenant's lock is taken,
/// and used in the same order of checks under it.
#[derive(Debug, Clone)]
struct Checked {
    envelope: Envelope,
    salt: String,
    payload: String,
    /// JCS of the envelope with `hash`, as stored.
    envelope_json: String,
    /// Whether `hash` is the SHA-256 of the envelope's JCS.
    hash_ok: bool,
    /// Whether `payload_digest` matches the salt and payload.
    digest_ok: bool,
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl Submitted {
    /// Reads one entry `{ envelope, salt, payload }`.
    pub fn read(raw: Value) -> Submitted {
        let envelope_value = raw.get("envelope").cloned().unwrap_or(Value::Null);
        let event_id = str_at(&envelope_value, "event_id").map(str::to_string);
        let claimed_hash = str_at(&envelope_value, "hash").map(str::to_string);
        let device = match (
            str_at(&envelope_value, "device_id"),
            envelope_value.get("device_seq").and_then(Value::as_u64),
            str_at(&envelope_value, "prev_hash"),
            &claimed_hash,
        ) {
            (Some(d), Some(s), Some(p), Some(_)) if s >= 1 => {
                Some((d.to_string(), s, p.to_string()))
            }
            _ => None,
        };
        // The hash the server computes: over the envelope without `hash`
        // when there is an envelope object, else over the whole entry.
        let event_hash = match &envelope_value {
            Value::Object(map) => {
                let mut m = map.clone();
                m.remove("hash");
                hex::encode(&Sha256::digest(
                    jcs::to_string(&Value::Object(m)).as_bytes(),
                ))
            }
            _ => hex::encode(&Sha256::digest(jcs::to_string(&raw).as_bytes())),
        };
        let checked = check_entry(&raw, &envelope_value);
        Submitted {
            tenant_id: str_at(&envelope_value, "tenant_id").map(str::to_string),
            user_id: str_at(&envelope_value, "user_id").map(str::to_string),
            raw,
            event_id,
            device,
            claimed_hash,
            event_hash,
            checked,
        }
    }
}

fn check_entry(raw: &Value, envelope: &Value) -> Result<Checked, (String, String)> {
    let malformed = |why: String| ("MALFORMED".to_string(), why);
    let Value::Object(members) = raw else {
        return Err(malformed(
            "an event must be an object { envelope, salt, payload }".into(),
        ));
    };
    if let Some(k) = members
        .keys()
        .find(|k| !["envelope", "salt", "payload"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "unknown member {k:?}; an event is {{ envelope, salt, payload }}"
        )));
    }
    let envelope =
        Envelope::from_value(envelope).map_err(|e| malformed(format!("envelope: {e}")))?;
    let salt = str_at(raw, "salt")
        .filter(|s| hex::decode::<SALT_LEN>(s).is_some())
        .ok_or_else(|| malformed("salt must be 32 lowercase hex digits".into()))?;
    let payload = raw
        .get("payload")
        .ok_or_else(|| malformed("payload is missing".into()))
        .and_then(|p| {
            Payload::from_value(p).map_err(|e| malformed(format!("payload: {}", e.message)))
        })?;
    let salt_bytes = hex::decode::<SALT_LEN>(salt).unwrap_or_default();
    let payload = payload.as_str().to_string();
    Ok(Checked {
        envelope_json: envelope.canonical(),
        hash_ok: envelope.compute_hash() == envelope.hash,
        digest_ok: payload::digest_bytes(&salt_bytes, payload.as_bytes())
            == envelope.payload_digest,
        envelope,
        salt: salt.to_string(),
        payload,
    })
}

/// The keys to read for `batch`.
pub fn wanted(batch: &[Submitted]) -> Wanted {
    let mut w = Wanted::default();
    for s in batch {
        if let Some(id) = &s.event_id {
            w.events.insert(id.clone());
        }
        if let Some((d, _, _)) = &s.device {
            w.devices.insert(d.clone());
        }
        if let Ok(c) = &s.checked {
            w.aggregates.insert(c.envelope.aggregate_id.clone());
            w.versions.insert((
                c.envelope.aggregate_id.clone(),
                c.envelope.aggregate_version,
            ));
        }
    }
    w
}

impl Wanted {
    /// The `(aggregate_id, aggregate_version)` pairs that can have stored
    /// events, given the stored `aggregates` (read first): every stored
    /// event moved its aggregate's version to at least its own, in the same
    /// transaction, so a pair above that version (or of an aggregate never
    /// stored) has none, and the planner itself keeps track of the batch's
    /// own. In an ordinary push every event is above its aggregate's
    /// version, and nothing needs reading.
    pub fn stored_versions<'a>(
        &'a self,
        aggregates: &HashMap<String, (String, u64)>,
    ) -> Vec<(&'a str, u64)> {
        self.versions
            .iter()
            .filter(|(a, v)| aggregates.get(a).is_some_and(|(_, stored)| v <= stored))
            .map(|(a, v)| (a.as_str(), *v))
            .collect()
    }
}

/// A stored event row (accepted or conflict).
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The envelope.
    pub envelope: Envelope,
    /// JCS of the envelope with `hash`.
    pub envelope_json: String,
    /// Salt, hex.
    pub salt: String,
    /// JCS of the payload.
    pub payload_json: String,
    /// Its receipt.
    pub receipt: Receipt,
    /// `accepted` or `conflict`.
    pub outcome: LedgerOutcome,
    /// For conflicts.
    pub conflicts_with: Vec<String>,
}

/// A quarantined entry.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    /// The event id, when readable.
    pub event_id: Option<String>,
    /// The device and position, when readable.
    pub device: Option<(String, u64)>,
    /// JCS of what was pushed.
    pub submitted_json: String,
    /// The hash the server computed.
    pub event_hash: String,
    /// The hash the device claimed.
    pub claimed_hash: Option<String>,
    /// Why.
    pub code: String,
    /// For people.
    pub message: String,
    /// Its receipt.
    pub receipt: Receipt,
}

/// Everything one push writes, and its results.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// False when an atomic batch is refused whole: nothing is written.
    pub committed: bool,
    /// One result per pushed event.
    pub results: Vec<EventResult>,
    /// New event rows.
    pub events: Vec<EventRow>,
    /// New quarantine rows.
    pub quarantined: Vec<QuarantineRow>,
    /// New ledger entries (tenant and user), in order.
    pub ledger: Vec<LedgerEntry>,
    /// New device heads.
    pub devices: HashMap<String, DeviceHead>,
    /// New aggregate states.
    pub aggregates: HashMap<String, (String, u64)>,
    /// The tenant ledger head after this push.
    pub tenant_head: Head,
    /// The user ledger head after this push.
    pub user_head: Head,
}

/// Optional limits on what is accepted.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Highest `schema_version` accepted per `event_type`; others are free.
    pub max_schema: HashMap<String, u64>,
}

struct Planner<'a> {
    tenant: &'a str,
    user: &'a str,
    received_at: &'a str,
    policy: &'a Policy,
    state: State,
    plan: Plan,
    /// Devices with a gap: `missing_from`.
    blocked: HashMap<String, u64>,
    /// Events received in this batch, by id: (claimed and computed hash,
    /// result index).
    seen: HashMap<String, ((String, String), usize)>,
}

/// Decides the outcome of every event of a push by `user` of `tenant`.
pub fn plan(
    tenant: &str,
    user: &str,
    batch: &[Submitted],
    atomic: bool,
    state: State,
    received_at: &str,
    policy: &Policy,
) -> Plan {
    let genesis = || (0, GENESIS_HASH.to_string());
    let mut p = Planner {
        tenant,
        user,
        received_at,
        policy,
        plan: Plan {
            committed: true,
            tenant_head: state.tenant_head.clone().unwrap_or_else(genesis),
            user_head: state.user_head.clone().unwrap_or_else(genesis),
            ..Plan::default()
        },
        state,
        blocked: HashMap::new(),
        seen: HashMap::new(),
    };
    for (index, s) in batch.iter().enumerate() {
        let result = p.one(index, s);
        p.plan.results.push(result);
    }
    if atomic {
        p.refuse_if_incomplete();
    }
    p.plan
}

impl Plan {
    /// One receipt per entered event, stored or quarantined: its event id
    /// (if it could be read), outcome and receipt.
    pub fn receipts(&self) -> impl Iterator<Item = (Option<&str>, &str, &Receipt)> {
        let stored = self.events.iter().map(|e| {
            (
                Some(e.envelope.event_id.as_str()),
                e.outcome.as_str(),
                &e.receipt,
            )
        });
        let quarantined = self
            .quarantined
            .iter()
            .map(|q| (q.event_id.as_deref(), "quarantined", &q.receipt));
        stored.chain(quarantined)
    }
}

impl Planner<'_> {
    fn result(&self, index: usize, s: &Submitted, status: Status) -> EventResult {
        EventResult {
            index,
            event_id: s.event_id.clone(),
            status,
            receipt: None,
            conflicts_with: Vec::new(),
            code: None,
            message: None,
            missing_device_seq: None,
        }
    }

    fn device_head(&self, device: &str) -> DeviceHead {
        self.plan
            .devices
            .get(device)
            .or_else(|| self.state.devices.get(device))
            .cloned()
            .unwrap_or_else(|| DeviceHead::genesis(self.user))
    }

    /// Enters an event in both ledgers and returns its receipt.
    fn enter(&mut self, event_hash: &str, outcome: LedgerOutcome) -> Receipt {
        let mut entries = Vec::with_capacity(2);
        for (ledger, head) in [
            (TENANT_LEDGER.to_string(), &mut self.plan.tenant_head),
            (user_ledger(self.user), &mut self.plan.user_head),
        ] {
            let mut e = LedgerEntry {
                tenant_id: self.tenant.to_string(),
                ledger,
                seq: head.0 + 1,
                event_hash: event_hash.to_string(),
                outcome,
                received_at: self.received_at.to_string(),
                prev: head.1.clone(),
                hash: String::new(),
            };
            e.seal();
            *head = (e.seq, e.hash.clone());
            entries.push(e);
        }
        let receipt = Receipt {
            server_seq: entries[0].seq,
            user_seq: entries[1].seq,
            ledger_hash: entries[0].hash.clone(),
            user_ledger_hash: entries[1].hash.clone(),
            received_at: self.received_at.to_string(),
        };
        self.plan.ledger.extend(entries);
        receipt
    }

    fn quarantine(
        &mut self,
        index: usize,
        s: &Submitted,
        code: &str,
        message: String,
    ) -> EventResult {
        let receipt = self.enter(&s.event_hash, LedgerOutcome::Quarantined);
        self.plan.quarantined.push(QuarantineRow {
            event_id: s.event_id.clone(),
            device: s.device.as_ref().map(|(d, seq, _)| (d.clone(), *seq)),
            submitted_json: jcs::to_string(&s.raw),
            event_hash: s.event_hash.clone(),
            claimed_hash: s.claimed_hash.clone(),
            code: code.to_string(),
            message: message.clone(),
            receipt: receipt.clone(),
        });
        if let (Some(id), Some(h)) = (&s.event_id, &s.claimed_hash) {
            self.seen
                .insert(id.clone(), ((h.clone(), s.event_hash.clone()), index));
        }
        EventResult {
            receipt: Some(receipt),
            code: Some(code.to_string()),
            message: Some(message),
            ..self.result(index, s, Status::Quarantined)
        }
    }

    fn one(&mut self, index: usize, s: &Submitted) -> EventResult {
        // Another tenant's or user's event touches nothing of theirs: not
        // their device chain, not their event ids.
        if s.tenant_id.as_deref().is_some_and(|t| t != self.tenant) {
            return self.quarantine(
                index,
                s,
                "WRONG_TENANT",
                format!("tenant_id is not the token's tenant {:?}", self.tenant),
            );
        }
        if s.user_id.as_deref().is_some_and(|u| u != self.user) {
            return self.quarantine(
                index,
                s,
                "WRONG_USER",
                format!("user_id is not the token's subject {:?}", self.user),
            );
        }
        // Seen before (from this user), here or in an earlier push?
        if let (Some(id), Some(claimed)) = (&s.event_id, &s.claimed_hash) {
            let earlier = self
                .state
                .existing
                .get(id)
                .map(|e| {
                    (
                        (e.claimed_hash.clone(), e.event_hash.clone()),
                        Some(e.receipt.clone()),
                    )
                })
                .or_else(|| {
                    self.seen.get(id).map(|(h, i)| {
                        (
                            h.clone(),
                            self.plan.results.get(*i).and_then(|r| r.receipt.clone()),
                        )
                    })
                });
            if let Some((hash, receipt)) = earlier {
                if hash == (claimed.clone(), s.event_hash.clone()) {
                    return EventResult {
                        receipt,
                        ..self.result(index, s, Status::Duplicate)
                    };
                }
                return self.quarantine(
                    index,
                    s,
                    "DUPLICATE_EVENT_ID",
                    format!("event_id {id} was already received with another hash"),
                );
            }
        }

        // The device chain.
        if let Some((device, seq, prev)) = &s.device {
            if let Some(from) = self.blocked.get(device) {
                return self.missing(index, s, *from);
            }
            let head = self.device_head(device);
            if head.user_id != self.user {
                // Never let one user's pushes move another user's chain.
                return self.quarantine(
                    index,
                    s,
                    "DEVICE_OF_ANOTHER_USER",
                    format!("device {device} belongs to another user"),
                );
            }
            let last = head.device_seq;
            if *seq > last + 1 {
                self.blocked.insert(device.clone(), last + 1);
                return self.missing(index, s, last + 1);
            }
            if *seq <= last {
                return self.quarantine(
                    index,
                    s,
                    "CHAIN_CONFLICT",
                    format!("device {device} already sent another event as device_seq {seq}"),
                );
            }
            // In order: later events of this device chain through this one
            // whatever else is wrong with it.
            self.plan.devices.insert(
                device.clone(),
                DeviceHead {
                    user_id: head.user_id.clone(),
                    device_seq: *seq,
                    hash: s.claimed_hash.clone().unwrap_or_default(),
                    computed_hash: s.event_hash.clone(),
                },
            );
            if *prev != head.hash && *prev != head.computed_hash {
                return self.quarantine(
                    index,
                    s,
                    "BROKEN_CHAIN",
                    format!("prev_hash of device_seq {seq} is not the hash of device_seq {last}"),
                );
            }
        }

        let c = match &s.checked {
            Ok(c) => c,
            Err((code, message)) => return self.quarantine(index, s, code, message.clone()),
        };
        let e = &c.envelope;
        if e.tenant_id != self.tenant {
            return self.quarantine(
                index,
                s,
                "WRONG_TENANT",
                format!("tenant_id is not the token's tenant {:?}", self.tenant),
            );
        }
        if e.user_id != self.user {
            return self.quarantine(
                index,
                s,
                "WRONG_USER",
                format!("user_id is not the token's subject {:?}", self.user),
            );
        }
        if !c.hash_ok {
            return self.quarantine(
                index,
                s,
                "HASH_MISMATCH",
                "hash is not the SHA-256 of the envelope's JCS".into(),
            );
        }
        if !c.digest_ok {
            return self.quarantine(
                index,
                s,
                "PAYLOAD_DIGEST_MISMATCH",
                "payload_digest does not match the salt and payload".into(),
            );
        }
        if let Some(max) = self.policy.max_schema.get(&e.event_type) {
            if e.schema_version > *max {
                return self.quarantine(
                    index,
                    s,
                    "SCHEMA_NOT_ALLOWED",
                    format!(
                        "{} schema_version {} is above {max}, the highest this server accepts",
                        e.event_type, e.schema_version
                    ),
                );
            }
        }
        let current = self
            .plan
            .aggregates
            .get(&e.aggregate_id)
            .or_else(|| self.state.aggregates.get(&e.aggregate_id))
            .cloned();
        if let Some((ty, _)) = &current {
            if *ty != e.aggregate_type {
                return self.quarantine(
                    index,
                    s,
                    "AGGREGATE_TYPE_MISMATCH",
                    format!(
                        "aggregate {:?} is a {ty:?}, not a {:?}",
                        e.aggregate_id, e.aggregate_type
                    ),
                );
            }
        }
        let version = current.as_ref().map_or(0, |(_, v)| *v);
        let key = (e.aggregate_id.clone(), e.aggregate_version);
        let (outcome, conflicts_with) = if e.aggregate_version > version {
            (LedgerOutcome::Accepted, Vec::new())
        } else {
            let ids = self.state.at_version.get(&key).cloned().unwrap_or_default();
            (LedgerOutcome::Conflict, ids)
        };
        self.plan.aggregates.insert(
            e.aggregate_id.clone(),
            (e.aggregate_type.clone(), version.max(e.aggregate_version)),
        );
        self.state
            .at_version
            .entry(key)
            .or_default()
            .push(e.event_id.clone());
        let receipt = self.enter(&s.event_hash, outcome);
        self.seen.insert(
            e.event_id.clone(),
            ((e.hash.clone(), s.event_hash.clone()), index),
        );
        self.plan.events.push(EventRow {
            envelope_json: c.envelope_json.clone(),
            envelope: e.clone(),
            salt: c.salt.clone(),
            payload_json: c.payload.clone(),
            receipt: receipt.clone(),
            outcome,
            conflicts_with: conflicts_with.clone(),
        });
        let status = match outcome {
            LedgerOutcome::Conflict => Status::Conflict,
            _ => Status::Accepted,
        };
        EventResult {
            receipt: Some(receipt),
            conflicts_with,
            ..self.result(index, s, status)
        }
    }

    fn missing(&mut self, index: usize, s: &Submitted, from: u64) -> EventResult {
        EventResult {
            code: Some("MISSING_DEVICE_SEQ".into()),
            message: Some(format!(
                "missing device_seq {from}: resend this device's events from {from}"
            )),
            missing_device_seq: Some(from),
            ..self.result(index, s, Status::Missing)
        }
    }

    /// An atomic batch is written only if every event is accepted, a
    /// conflict or a duplicate.
    fn refuse_if_incomplete(&mut self) {
        let bad = self
            .plan
            .results
            .iter()
            .any(|r| matches!(r.status, Status::Quarantined | Status::Missing));
        if !bad {
            return;
        }
        let results = std::mem::take(&mut self.plan.results);
        self.plan = Plan {
            committed: false,
            results: results
                .into_iter()
                .map(|r| match r.status {
                    Status::Quarantined | Status::Missing => EventResult {
                        status: Status::NotWritten,
                        receipt: None,
                        ..r
                    },
                    _ => EventResult {
                        status: Status::NotWritten,
                        receipt: None,
                        conflicts_with: Vec::new(),
                        code: Some("ATOMIC_BATCH_REFUSED".into()),
                        message: Some("another event of this atomic batch cannot be taken; nothing was written".into()),
                        missing_device_seq: None,
                        ..r
                    },
                })
                .collect(),
            ..Plan::default()
        };
    }
}

#[cfg(test)]
mod tests;
