//! Verifying this device's own ledger entries from push receipts.
//!
//! A receipt names the entry the server wrote for an event: its `seq` and
//! `hash` in the followed ledger and its `received_at`. The rest of that
//! entry (tenant, ledger, the event's hash, the outcome, the previous
//! entry's hash) the device knows already. So when the entries of its own
//! events follow the checkpoint with nothing in between, the device checks
//! each by recomputing its hash, exactly as a pull would (docs/FORMAT.md
//! §11.5), and moves the checkpoint on without pulling its own events
//! back. The first receipt that does not continue the ledger from the
//! checkpoint (another device's entry came in between, an event was a
//! duplicate or quarantined, a hash does not match) stops this for the
//! rest of the pass; the pull then verifies from where it stopped, and
//! catches whatever a server changed.

use crate::ledger::{LedgerEntry, LedgerOutcome, LedgerVerifier, TENANT_LEDGER};
use crate::protocol::Receipt;
use crate::sync::pull::Checkpoint;
use crate::sync::push::{PushOutcome, Verdict};
use std::collections::HashMap;

/// The checkpoint, moved on over receipts while they continue it.
#[derive(Debug, Clone)]
pub struct OwnEntries {
    tenant: String,
    ledger: String,
    verifier: LedgerVerifier,
    stopped: bool,
}

impl OwnEntries {
    /// Starts at `checkpoint` of ledger `checkpoint.ledger` of `tenant`.
    pub fn new(tenant: &str, checkpoint: &Checkpoint) -> OwnEntries {
        OwnEntries {
            tenant: tenant.to_string(),
            ledger: checkpoint.ledger.clone(),
            verifier: LedgerVerifier::new(
                tenant,
                &checkpoint.ledger,
                checkpoint.seq,
                &checkpoint.hash,
            ),
            stopped: false,
        }
    }

    /// The checkpoint reached.
    pub fn checkpoint(&self) -> Checkpoint {
        let (seq, hash) = self.verifier.checkpoint();
        Checkpoint {
            ledger: self.ledger.clone(),
            seq,
            hash: hash.to_string(),
        }
    }

    /// Takes the receipts of `outcome` in `device_seq` order, where
    /// `hashes` holds this device's hash of each pushed event. Returns how
    /// many entries were verified.
    pub fn take(&mut self, outcome: &PushOutcome, hashes: &HashMap<u64, &str>) -> u64 {
        let mut verified = 0;
        for (seq, receipt, verdict) in outcome.verdicts() {
            if self.stopped {
                break;
            }
            // A duplicate's entry is the first delivery's, whose outcome the
            // answer does not say; a quarantined event's entry holds the
            // hash the server computed, which may not be this device's.
            let outcome = match verdict {
                Verdict::Accepted => Some(LedgerOutcome::Accepted),
                Verdict::Conflict(_) => Some(LedgerOutcome::Conflict),
                Verdict::Quarantined(_) | Verdict::Duplicate => None,
            };
            let taken = match (outcome, hashes.get(&seq)) {
                (Some(outcome), Some(hash)) => self.feed(receipt, outcome, hash),
                _ => false,
            };
            if taken {
                verified += 1;
            } else {
                self.stopped = true;
            }
        }
        verified
    }

    fn feed(&mut self, receipt: &Receipt, outcome: LedgerOutcome, event_hash: &str) -> bool {
        let (seq, hash) = if self.ledger == TENANT_LEDGER {
            (receipt.server_seq, &receipt.ledger_hash)
        } else {
            (receipt.user_seq, &receipt.user_ledger_hash)
        };
        let entry = LedgerEntry {
            tenant_id: self.tenant.clone(),
            ledger: self.ledger.clone(),
            seq,
            event_hash: event_hash.to_string(),
            outcome,
            received_at: receipt.received_at.clone(),
            prev: self.verifier.checkpoint().1.to_string(),
            hash: hash.clone(),
        };
        self.verifier.feed(&entry).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::GENESIS_HASH;
    use crate::ledger::user_ledger;

    /// A user ledger of `n` entries for events with hashes `h1`, `h2`, …,
    /// with their receipts (tenant-ledger fields left empty).
    fn ledger(n: u64, outcomes: &[LedgerOutcome]) -> (Vec<LedgerEntry>, Vec<Receipt>) {
        let mut prev = GENESIS_HASH.to_string();
        let mut entries = Vec::new();
        let mut receipts = Vec::new();
        for seq in 1..=n {
            let mut e = LedgerEntry {
                tenant_id: "t".into(),
                ledger: user_ledger("u"),
                seq,
                event_hash: format!("h{seq}"),
                outcome: outcomes
                    .get(seq as usize - 1)
                    .copied()
                    .unwrap_or(LedgerOutcome::Accepted),
                received_at: format!("2026-01-01T00:00:00.{seq:06}Z"),
                prev: prev.clone(),
                hash: String::new(),
            };
            e.seal();
            prev = e.hash.clone();
            receipts.push(Receipt {
                server_seq: 0,
                user_seq: seq,
                ledger_hash: String::new(),
                user_ledger_hash: e.hash.clone(),
                received_at: e.received_at.clone(),
            });
            entries.push(e);
        }
        (entries, receipts)
    }

    fn outcome(first: u64, receipts: &[Receipt]) -> PushOutcome {
        PushOutcome {
            receipts: receipts
                .iter()
                .enumerate()
                .map(|(i, r)| (first + i as u64, r.clone()))
                .collect(),
            ..PushOutcome::default()
        }
    }

    fn hashes(names: &[String]) -> HashMap<u64, &str> {
        names
            .iter()
            .enumerate()
            .map(|(i, h)| (i as u64 + 1, h.as_str()))
            .collect()
    }

    fn names(n: u64) -> Vec<String> {
        (1..=n).map(|s| format!("h{s}")).collect()
    }

    #[test]
    fn receipts_that_continue_the_ledger_move_the_checkpoint() {
        let (entries, receipts) = ledger(5, &[]);
        let names = names(5);
        let mut own = OwnEntries::new("t", &Checkpoint::genesis(&user_ledger("u")));
        assert_eq!(own.take(&outcome(1, &receipts[..3]), &hashes(&names)), 3);
        assert_eq!(own.take(&outcome(4, &receipts[3..]), &hashes(&names)), 2);
        let c = own.checkpoint();
        assert_eq!((c.seq, c.hash.as_str()), (5, entries[4].hash.as_str()));
    }

    #[test]
    fn a_conflict_is_hashed_as_one() {
        let (entries, receipts) = ledger(2, &[LedgerOutcome::Accepted, LedgerOutcome::Conflict]);
        let names = names(2);
        let mut own = OwnEntries::new("t", &Checkpoint::genesis(&user_ledger("u")));
        let mut o = outcome(1, &receipts);
        o.conflicts.push(crate::sync::push::Conflict {
            device_seq: 2,
            event_id: "e2".into(),
            conflicts_with: vec!["x".into()],
            receipt: receipts[1].clone(),
        });
        assert_eq!(own.take(&o, &hashes(&names)), 2);
        assert_eq!(own.checkpoint().hash, entries[1].hash);
    }

    #[test]
    fn anything_that_does_not_continue_it_stops_the_pass_there() {
        let (entries, receipts) = ledger(4, &[]);
        let names = names(4);
        let genesis = Checkpoint::genesis(&user_ledger("u"));

        // Another entry before ours: our first receipt is at seq 2.
        let mut own = OwnEntries::new("t", &genesis);
        assert_eq!(own.take(&outcome(1, &receipts[1..]), &hashes(&names)), 0);
        assert_eq!(own.checkpoint(), genesis);

        // A receipt whose hash is not the entry of our event.
        let mut own = OwnEntries::new("t", &genesis);
        let mut wrong = receipts.clone();
        wrong[1].user_ledger_hash = entries[2].hash.clone();
        assert_eq!(own.take(&outcome(1, &wrong), &hashes(&names)), 1);
        assert_eq!(own.checkpoint().seq, 1);
        assert_eq!(
            own.take(&outcome(3, &receipts[2..]), &hashes(&names)),
            0,
            "stopped for the rest of the pass"
        );

        // A different event hash, or another received_at: the hash fails.
        let mut own = OwnEntries::new("t", &genesis);
        let other = vec!["h1".to_string(), "hX".to_string()];
        assert_eq!(own.take(&outcome(1, &receipts[..2]), &hashes(&other)), 1);
        let mut own = OwnEntries::new("t", &genesis);
        let mut late = receipts.clone();
        late[0].received_at = "2026-01-01T00:00:01.000000Z".into();
        assert_eq!(own.take(&outcome(1, &late), &hashes(&names)), 0);

        // A duplicate or a quarantined event.
        let mut own = OwnEntries::new("t", &genesis);
        let mut o = outcome(1, &receipts);
        o.duplicates.push(2);
        assert_eq!(own.take(&o, &hashes(&names)), 1);
        let mut own = OwnEntries::new("t", &genesis);
        let mut o = outcome(1, &receipts);
        o.rejected.push(crate::sync::push::Rejected {
            device_seq: 1,
            event_id: "e1".into(),
            code: "SCHEMA_NOT_ALLOWED".into(),
            message: String::new(),
            receipt: receipts[0].clone(),
        });
        assert_eq!(own.take(&o, &hashes(&names)), 0);

        // Another ledger or tenant than the receipts are for.
        let mut own = OwnEntries::new("t", &Checkpoint::genesis(&user_ledger("v")));
        assert_eq!(own.take(&outcome(1, &receipts), &hashes(&names)), 0);
        let mut own = OwnEntries::new("t2", &genesis);
        assert_eq!(own.take(&outcome(1, &receipts), &hashes(&names)), 0);
    }

    #[test]
    fn the_tenant_ledger_uses_the_tenant_fields() {
        let mut prev = GENESIS_HASH.to_string();
        let mut receipts = Vec::new();
        for seq in 1..=2 {
            let mut e = LedgerEntry {
                tenant_id: "t".into(),
                ledger: TENANT_LEDGER.into(),
                seq: seq + 10,
                event_hash: format!("h{seq}"),
                outcome: LedgerOutcome::Accepted,
                received_at: "2026-01-01T00:00:00.000001Z".into(),
                prev: prev.clone(),
                hash: String::new(),
            };
            if seq == 1 {
                e.prev = "p".repeat(64);
            }
            e.seal();
            prev = e.hash.clone();
            receipts.push(Receipt {
                server_seq: seq + 10,
                user_seq: seq,
                ledger_hash: e.hash.clone(),
                user_ledger_hash: "u".repeat(64),
                received_at: e.received_at.clone(),
            });
        }
        let start = Checkpoint {
            ledger: TENANT_LEDGER.into(),
            seq: 10,
            hash: "p".repeat(64),
        };
        let names = names(2);
        let mut own = OwnEntries::new("t", &start);
        assert_eq!(own.take(&outcome(1, &receipts), &hashes(&names)), 2);
        assert_eq!(own.checkpoint().seq, 12);
    }
}
