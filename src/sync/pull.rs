//! Verifying what a pull brings: the server ledger continues from the
//! stored checkpoint, every entry and receipt agrees, every event is the
//! one hashed into the ledger, this device's events are the ones it wrote,
//! and every other device's chain is whole. Anything else means the server
//! rewrote, forked or truncated history.

use crate::envelope::{Envelope, GENESIS_HASH};
use crate::ledger::{LedgerEntry, LedgerOutcome, LedgerVerifier, TENANT_LEDGER};
use crate::payload::{self, Payload, SALT_LEN};
use crate::protocol::{PullItem, Receipt};
use crate::record::Record;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Quarantine codes decided before the device chain is looked at, or that
/// leave it where it was: such an event does not move its device's chain.
pub const NO_CHAIN_CODES: [&str; 5] = [
    "WRONG_TENANT",
    "WRONG_USER",
    "DUPLICATE_EVENT_ID",
    "DEVICE_OF_ANOTHER_USER",
    "CHAIN_CONFLICT",
];

/// Where a ledger was last verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `"tenant"` or `"user:<id>"`.
    pub ledger: String,
    /// The last verified entry's `seq` (0 before the first pull).
    pub seq: u64,
    /// Its `hash` (64 zeros before the first pull).
    pub hash: String,
}

impl Checkpoint {
    /// The start of `ledger`.
    pub fn genesis(ledger: &str) -> Checkpoint {
        Checkpoint {
            ledger: ledger.to_string(),
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The last event seen from another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteHead {
    /// Its `device_seq`.
    pub device_seq: u64,
    /// Its claimed `hash`.
    pub hash: String,
    /// The hash the server computed (they differ only for a quarantined event).
    pub computed_hash: String,
}

/// Proof the server's history changed: where, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The ledger `seq` of the first entry that does not fit.
    pub seq: u64,
    /// What does not fit.
    pub message: String,
}

/// An event of another device, verified, to keep locally.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    /// The event.
    pub record: Record,
    /// Its ledger entry.
    pub entry: LedgerEntry,
    /// Its receipt.
    pub receipt: Receipt,
}

/// Checks pulled items one by one, in order.
#[derive(Debug, Clone)]
pub struct PullVerifier {
    tenant: String,
    ledger: LedgerVerifier,
    ledger_name: String,
    own_device: String,
    /// Heads of other devices' chains, carried from pull to pull.
    pub remote: HashMap<String, RemoteHead>,
}

fn parse_record(event: &crate::protocol::StoredEvent) -> Result<Record, String> {
    let envelope = Envelope::from_value(&event.envelope)?;
    let salt = crate::hex::decode::<SALT_LEN>(&event.salt).ok_or("salt is not 32 hex digits")?;
    let payload = Payload::from_value(&event.payload).map_err(|e| e.message)?;
    Ok(Record {
        envelope,
        salt,
        payload,
    })
}

impl PullVerifier {
    /// A verifier resuming at `checkpoint`, for a store of `tenant` whose
    /// own device is `own_device`.
    pub fn new(
        tenant: &str,
        checkpoint: &Checkpoint,
        own_device: &str,
        remote: HashMap<String, RemoteHead>,
    ) -> PullVerifier {
        PullVerifier {
            tenant: tenant.to_string(),
            ledger: LedgerVerifier::new(
                tenant,
                &checkpoint.ledger,
                checkpoint.seq,
                &checkpoint.hash,
            ),
            ledger_name: checkpoint.ledger.clone(),
            own_device: own_device.to_string(),
            remote,
        }
    }

    /// The checkpoint reached.
    pub fn checkpoint(&self) -> Checkpoint {
        let (seq, hash) = self.ledger.checkpoint();
        Checkpoint {
            ledger: self.ledger_name.clone(),
            seq,
            hash: hash.to_string(),
        }
    }

    /// Checks the next item. `local_hash(device_seq)` gives the hash of this
    /// device's own event at that position, if it has one.
    pub fn feed(
        &mut self,
        item: &PullItem,
        local_hash: &dyn Fn(u64) -> Option<String>,
    ) -> Result<Option<Pulled>, Fork> {
        let e = &item.entry;
        // Checked on a copy: the checkpoint moves only once the whole item
        // has verified.
        let mut ledger = self.ledger.clone();
        ledger.feed(e).map_err(|b| Fork {
            seq: e.seq,
            message: format!("the server ledger changed: {}", b.message),
        })?;
        let pulled = self.check_item(item, local_hash)?;
        self.ledger = ledger;
        Ok(pulled)
    }

    fn check_item(
        &mut self,
        item: &PullItem,
        local_hash: &dyn Fn(u64) -> Option<String>,
    ) -> Result<Option<Pulled>, Fork> {
        let e = &item.entry;
        let fork = |message: String| Fork {
            seq: e.seq,
            message,
        };
        let r = &item.receipt;
        let (receipt_seq, receipt_hash) = if self.ledger_name == TENANT_LEDGER {
            (r.server_seq, &r.ledger_hash)
        } else {
            (r.user_seq, &r.user_ledger_hash)
        };
        if receipt_seq != e.seq || *receipt_hash != e.hash || r.received_at != e.received_at {
            return Err(fork(format!(
                "the receipt of entry {} does not match the entry",
                e.seq
            )));
        }
        match (e.outcome, &item.event, &item.own, &item.quarantine) {
            // The server left out an event because this device wrote it (a
            // pull with `omit_device`): the ledger hashed it, so its entry's
            // `event_hash` must be this device's own event at that place.
            (LedgerOutcome::Accepted | LedgerOutcome::Conflict, None, Some(own), None) => {
                let seq = own.device_seq;
                match local_hash(seq) {
                    Some(h) if h == e.event_hash => Ok(None),
                    _ => Err(fork(format!(
                        "entry {} stands for an event of this device at device_seq {seq} that this device did not write",
                        e.seq
                    ))),
                }
            }
            (LedgerOutcome::Accepted | LedgerOutcome::Conflict, Some(event), None, None) => {
                let record = parse_record(event).map_err(|why| {
                    fork(format!(
                        "the event of entry {} cannot be read: {why}",
                        e.seq
                    ))
                })?;
                let env = &record.envelope;
                if env.compute_hash() != env.hash || env.hash != e.event_hash {
                    return Err(fork(format!(
                        "the event of entry {} is not the event the ledger hashed",
                        e.seq
                    )));
                }
                if payload::digest_bytes(&record.salt, record.payload.as_str().as_bytes())
                    != env.payload_digest
                {
                    return Err(fork(format!("the payload of entry {} was changed", e.seq)));
                }
                if env.tenant_id != self.tenant {
                    return Err(fork(format!(
                        "entry {} holds another tenant's event",
                        e.seq
                    )));
                }
                if env.device_id == self.own_device {
                    return match local_hash(env.device_seq) {
                        Some(h) if h == env.hash => Ok(None),
                        _ => Err(fork(format!(
                            "entry {} holds an event of this device at device_seq {} that this device did not write",
                            e.seq, env.device_seq
                        ))),
                    };
                }
                let head = self
                    .remote
                    .get(&env.device_id)
                    .cloned()
                    .unwrap_or(RemoteHead {
                        device_seq: 0,
                        hash: GENESIS_HASH.to_string(),
                        computed_hash: GENESIS_HASH.to_string(),
                    });
                if env.device_seq != head.device_seq + 1
                    || (env.prev_hash != head.hash && env.prev_hash != head.computed_hash)
                {
                    return Err(fork(format!(
                        "entry {} breaks the chain of device {} at device_seq {}",
                        e.seq, env.device_id, env.device_seq
                    )));
                }
                self.remote.insert(
                    env.device_id.clone(),
                    RemoteHead {
                        device_seq: env.device_seq,
                        hash: env.hash.clone(),
                        computed_hash: env.hash.clone(),
                    },
                );
                Ok(Some(Pulled {
                    record,
                    entry: e.clone(),
                    receipt: r.clone(),
                }))
            }
            (LedgerOutcome::Quarantined, None, None, Some(q)) => {
                // The server moves a device's chain on through a quarantined
                // event that came in order, except one refused before the
                // chain was looked at (docs/FORMAT.md §11.2); do the same.
                if NO_CHAIN_CODES.contains(&q.code.as_str()) {
                    return Ok(None);
                }
                let envelope = q.submitted.get("envelope");
                let text = |k: &str| envelope.and_then(|v| v.get(k)).and_then(Value::as_str);
                let seq = envelope
                    .and_then(|v| v.get("device_seq"))
                    .and_then(Value::as_u64);
                if let (Some(device), Some(seq), Some(claimed)) =
                    (text("device_id"), seq, text("hash"))
                {
                    if device != self.own_device {
                        let next = self.remote.get(device).map_or(1, |h| h.device_seq + 1);
                        if seq == next {
                            self.remote.insert(
                                device.to_string(),
                                RemoteHead {
                                    device_seq: seq,
                                    hash: claimed.to_string(),
                                    computed_hash: e.event_hash.clone(),
                                },
                            );
                        }
                    }
                }
                Ok(None)
            }
            _ => Err(fork(format!(
                "entry {} ({}) does not carry what its outcome says",
                e.seq, e.outcome
            ))),
        }
    }
}
