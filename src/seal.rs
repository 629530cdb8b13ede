//! Sealing: turning validated drafts into hashed, chained records.
//!
//! This runs synchronously inside the append transaction, after the backend
//! has read the head, the aggregates and the idempotency keys involved.
//! Nothing here awaits, so an IndexedDB transaction cannot auto-commit
//! halfway through.

use crate::clock::Clock;
use crate::draft::Draft;
use crate::entropy::Entropy;
use crate::envelope::{Envelope, FORMAT};
use crate::error::{Error, ErrorCode, Result};
use crate::payload::SALT_LEN;
use crate::record::Record;
use crate::state::{AggregateState, Head, IdempotencyEntry, Identity};
use crate::{timestamp, uuid7};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A unit of appending: one `append` (one draft) or one `appendBatch`
/// (several drafts, all or nothing).
pub type Unit = Vec<Draft>;

/// What the backend read inside the transaction for a group of units.
#[derive(Debug, Clone, Default)]
pub struct TxnView {
    /// The device head.
    pub head: Option<Head>,
    /// The state of every aggregate the units touch (`None`: new aggregate).
    pub aggregates: HashMap<String, Option<AggregateState>>,
    /// Every idempotency key the units carry (`None`: unused).
    pub idempotency: HashMap<String, Option<IdempotencyEntry>>,
}

/// The keys a backend must read before sealing `units`.
pub fn keys_to_read(units: &[Unit]) -> (BTreeSet<String>, BTreeSet<String>) {
    let drafts = units.iter().flatten();
    let aggregates = drafts.clone().map(|d| d.aggregate_id.clone()).collect();
    let keys = drafts.filter_map(|d| d.idempotency_key.clone()).collect();
    (aggregates, keys)
}

/// The result of one draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new record, at this index of [`Sealed::records`].
    New(usize),
    /// The idempotency key was already used; this is that event's `device_seq`.
    Existing(u64),
}

/// Everything a group of units writes, and each unit's result.
#[derive(Debug, Clone, Default)]
pub struct Sealed {
    /// New records in `device_seq` order.
    pub records: Vec<Record>,
    /// The new head (unchanged if nothing was sealed).
    pub head: Head,
    /// Aggregate states to write.
    pub aggregates: BTreeMap<String, AggregateState>,
    /// Idempotency entries to add.
    pub idempotency: BTreeMap<String, IdempotencyEntry>,
    /// One result per unit, each with one outcome per draft.
    pub results: Vec<Result<Vec<Outcome>>>,
}

/// Seals `units` on top of `view`. A unit that fails (version conflict,
/// reused idempotency key, aggregate type clash) is rolled back on its own
/// and its neighbours go ahead.
pub fn seal(
    identity: &Identity,
    view: TxnView,
    units: &[Unit],
    clock: &dyn Clock,
    entropy: &dyn Entropy,
) -> Sealed {
    let mut sealer = Sealer {
        identity,
        clock,
        entropy,
        view,
        out: Sealed::default(),
    };
    sealer.out.head = sealer.view.head.clone().unwrap_or_else(Head::genesis);
    for unit in units {
        let checkpoint = sealer.checkpoint();
        let result = unit
            .iter()
            .map(|draft| sealer.seal_draft(draft))
            .collect::<Result<Vec<_>>>();
        if result.is_err() {
            sealer.rollback(checkpoint);
        }
        sealer.out.results.push(result);
    }
    sealer.out
}

struct Sealer<'a> {
    identity: &'a Identity,
    clock: &'a dyn Clock,
    entropy: &'a dyn Entropy,
    view: TxnView,
    out: Sealed,
}

struct Checkpoint {
    records: usize,
    head: Head,
    aggregates: BTreeMap<String, AggregateState>,
    idempotency: BTreeMap<String, IdempotencyEntry>,
}

impl Sealer<'_> {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            records: self.out.records.len(),
            head: self.out.head.clone(),
            aggregates: self.out.aggregates.clone(),
            idempotency: self.out.idempotency.clone(),
        }
    }

    fn rollback(&mut self, c: Checkpoint) {
        self.out.records.truncate(c.records);
        self.out.head = c.head;
        self.out.aggregates = c.aggregates;
        self.out.idempotency = c.idempotency;
    }

    fn aggregate(&self, id: &str) -> Option<AggregateState> {
        self.out
            .aggregates
            .get(id)
            .cloned()
            .or_else(|| self.view.aggregates.get(id).cloned().flatten())
    }

    fn idempotency(&self, key: &str) -> Option<IdempotencyEntry> {
        self.out
            .idempotency
            .get(key)
            .cloned()
            .or_else(|| self.view.idempotency.get(key).cloned().flatten())
    }

    fn seal_draft(&mut self, draft: &Draft) -> Result<Outcome> {
        let fingerprint = draft.idempotency_key.as_ref().map(|_| draft.fingerprint());
        if let (Some(key), Some(fp)) = (&draft.idempotency_key, &fingerprint) {
            if let Some(used) = self.idempotency(key) {
                if &used.fingerprint != fp {
                    return Err(Error::validation(
                        "idempotencyKey",
                        format!(
                            "idempotencyKey {key:?} was already used for a different event (device_seq {}); \
                             use a new key for a new event",
                            used.device_seq
                        ),
                    )
                    .with_device_seq(used.device_seq));
                }
                return Ok(Outcome::Existing(used.device_seq));
            }
        }

        let current = self.aggregate(&draft.aggregate_id);
        let version = current.as_ref().map_or(0, |a| a.version);
        if let Some(a) = &current {
            if a.aggregate_type != draft.aggregate_type {
                return Err(Error::validation(
                    "aggregateType",
                    format!(
                        "aggregate {:?} is a {:?}, not a {:?}; an aggregate keeps the type of its first event",
                        draft.aggregate_id, a.aggregate_type, draft.aggregate_type
                    ),
                ));
            }
        }
        if let Some(expected) = draft.expected_version {
            if expected != version {
                return Err(Error::new(
                    ErrorCode::VersionConflict,
                    format!(
                        "aggregate {:?} is at version {version}, not the expected {expected}; \
                         reload it, reapply the change and append again",
                        draft.aggregate_id
                    ),
                )
                .with_field("expectedVersion"));
            }
        }

        let now = self.clock.now_ms();
        let mut random = [0u8; 10 + SALT_LEN];
        self.entropy.fill(&mut random);
        let mut id_bits = [0u8; 10];
        id_bits.copy_from_slice(&random[..10]);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&random[10..]);

        let device_seq = self.out.head.device_seq + 1;
        let mut envelope = Envelope {
            format: FORMAT.to_string(),
            event_id: uuid7::from_parts(now, id_bits),
            tenant_id: self.identity.tenant_id.clone(),
            aggregate_type: draft.aggregate_type.clone(),
            aggregate_id: draft.aggregate_id.clone(),
            event_type: draft.event_type.clone(),
            schema_version: draft.schema_version,
            payload_digest: draft.payload.digest(&salt),
            user_id: self.identity.user_id.clone(),
            device_id: self.identity.device_id.clone(),
            device_seq,
            created_at: timestamp::format_ms(now),
            aggregate_version: version + 1,
            causation_id: draft.causation_id.clone(),
            correlation_id: draft.correlation_id.clone(),
            prev_hash: self.out.head.hash.clone(),
            hash: String::new(),
        };
        envelope.seal();

        self.out.head = Head {
            device_seq,
            hash: envelope.hash.clone(),
        };
        self.out.aggregates.insert(
            draft.aggregate_id.clone(),
            AggregateState {
                aggregate_type: draft.aggregate_type.clone(),
                version: version + 1,
                last_device_seq: device_seq,
            },
        );
        if let (Some(key), Some(fingerprint)) = (&draft.idempotency_key, fingerprint) {
            self.out.idempotency.insert(
                key.clone(),
                IdempotencyEntry {
                    device_seq,
                    fingerprint,
                },
            );
        }
        self.out.records.push(Record {
            envelope,
            salt,
            payload: draft.payload.clone(),
        });
        Ok(Outcome::New(self.out.records.len() - 1))
    }
}
