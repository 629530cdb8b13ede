//! Reading a push's results: which events the server now holds (their
//! receipts), which it set aside or flagged, and where to resend from.

use crate::protocol::{EventResult, PushResponse, Receipt, Status};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// An event the server quarantined: stored and surfaced, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The event's `device_seq`.
    pub device_seq: u64,
    /// Its id.
    pub event_id: String,
    /// The server's code, e.g. `SCHEMA_NOT_ALLOWED`.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// Its receipt.
    pub receipt: Receipt,
}

/// An event the server took and flagged as a concurrent version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The event's `device_seq`.
    pub device_seq: u64,
    /// Its id.
    pub event_id: String,
    /// The events with the same aggregate version.
    pub conflicts_with: Vec<String>,
    /// Its receipt.
    pub receipt: Receipt,
}

/// What one push changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// The new acknowledged watermark: every event up to it has a receipt.
    pub acked: u64,
    /// Receipts of newly acknowledged events, by `device_seq`.
    pub receipts: Vec<(u64, Receipt)>,
    /// Newly quarantined events.
    pub rejected: Vec<Rejected>,
    /// Newly flagged conflicts.
    pub conflicts: Vec<Conflict>,
    /// The server is missing an earlier event: resend from this `device_seq`.
    pub resend_from: Option<u64>,
    /// Of the receipts, those the server answered `duplicate`: the first
    /// delivery's.
    pub duplicates: Vec<u64>,
    /// The checkpoint the receipts verified the ledger to, when they moved
    /// it (`crate::sync::own_entries`), to store with them.
    pub checkpoint: Option<crate::sync::pull::Checkpoint>,
}

/// What the server answered for one event it now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Taken.
    Accepted,
    /// Already held: the receipt is the first delivery's.
    Duplicate,
    /// Stored and set aside.
    Quarantined(&'a Rejected),
    /// Taken and flagged as a concurrent version.
    Conflict(&'a Conflict),
}

impl PushOutcome {
    /// Each newly acknowledged event's `device_seq`, receipt and verdict,
    /// in `device_seq` order.
    pub fn verdicts(&self) -> Vec<(u64, &Receipt, Verdict<'_>)> {
        let rejected: HashMap<u64, &Rejected> =
            self.rejected.iter().map(|q| (q.device_seq, q)).collect();
        let conflicts: HashMap<u64, &Conflict> =
            self.conflicts.iter().map(|c| (c.device_seq, c)).collect();
        let duplicates: HashSet<u64> = self.duplicates.iter().copied().collect();
        let mut out: Vec<(u64, &Receipt, Verdict<'_>)> = self
            .receipts
            .iter()
            .map(|(seq, receipt)| {
                let verdict = if let Some(q) = rejected.get(seq) {
                    Verdict::Quarantined(q)
                } else if let Some(c) = conflicts.get(seq) {
                    Verdict::Conflict(c)
                } else if duplicates.contains(seq) {
                    Verdict::Duplicate
                } else {
                    Verdict::Accepted
                };
                (*seq, receipt, verdict)
            })
            .collect();
        out.sort_by_key(|(seq, _, _)| *seq);
        out
    }
}

/// A response that does not answer the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResponse(pub String);

/// Reads `response` to a push of the events `first_seq ..` (`ids[i]` is
/// the `event_id` of `first_seq + i`), with `acked` the watermark before.
pub fn apply(
    acked: u64,
    first_seq: u64,
    ids: &[String],
    response: &PushResponse,
) -> Result<PushOutcome, BadResponse> {
    if response.results.len() != ids.len() {
        return Err(BadResponse(format!(
            "{} results for {} events",
            response.results.len(),
            ids.len()
        )));
    }
    let mut out = PushOutcome {
        acked,
        ..PushOutcome::default()
    };
    for (i, r) in response.results.iter().enumerate() {
        let seq = first_seq + i as u64;
        if r.index != i || r.event_id.as_deref().is_some_and(|id| id != ids[i]) {
            return Err(BadResponse(format!(
                "result {i} is not for event {}",
                ids[i]
            )));
        }
        let receipt = |r: &EventResult| {
            r.receipt
                .clone()
                .ok_or_else(|| BadResponse(format!("result {i} has no receipt")))
        };
        match r.status {
            Status::Accepted => {
                out.receipts.push((seq, receipt(r)?));
            }
            Status::Duplicate => {
                out.receipts.push((seq, receipt(r)?));
                out.duplicates.push(seq);
            }
            Status::Conflict => {
                let receipt = receipt(r)?;
                out.conflicts.push(Conflict {
                    device_seq: seq,
                    event_id: ids[i].clone(),
                    conflicts_with: r.conflicts_with.clone(),
                    receipt: receipt.clone(),
                });
                out.receipts.push((seq, receipt));
            }
            Status::Quarantined => {
                let receipt = receipt(r)?;
                out.rejected.push(Rejected {
                    device_seq: seq,
                    event_id: ids[i].clone(),
                    code: r.code.clone().unwrap_or_default(),
                    message: r.message.clone().unwrap_or_default(),
                    receipt: receipt.clone(),
                });
                out.receipts.push((seq, receipt));
            }
            Status::Missing => {
                let from = r.missing_device_seq.unwrap_or(seq);
                out.resend_from = Some(out.resend_from.map_or(from, |f: u64| f.min(from)));
                break;
            }
            Status::NotWritten => {
                return Err(BadResponse("not_written for a non-atomic push".into()));
            }
        }
        if seq == out.acked + 1 {
            out.acked = seq;
        }
    }
    if let Some(from) = out.resend_from {
        // The server lacks `from`: everything from there is unacknowledged.
        out.acked = out.acked.min(from.saturating_sub(1));
        out.receipts.retain(|(s, _)| *s < from);
        out.duplicates.retain(|s| *s < from);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A receipt whose seqs are both `n`, for tests.
    pub(crate) fn receipt(n: u64) -> Receipt {
        Receipt {
            server_seq: n,
            user_seq: n,
            ledger_hash: "a".repeat(64),
            user_ledger_hash: "b".repeat(64),
            received_at: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    fn result(i: usize, status: Status) -> EventResult {
        EventResult {
            index: i,
            event_id: Some(format!("e{i}")),
            status,
            receipt: matches!(
                status,
                Status::Accepted | Status::Duplicate | Status::Conflict | Status::Quarantined
            )
            .then(|| receipt(i as u64 + 1)),
            conflicts_with: Vec::new(),
            code: (status == Status::Quarantined).then(|| "HASH_MISMATCH".into()),
            message: None,
            missing_device_seq: (status == Status::Missing).then_some(3),
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("e{i}")).collect()
    }

    #[test]
    fn receipts_advance_the_watermark_and_faults_are_kept() {
        let response = PushResponse {
            committed: true,
            results: vec![
                result(0, Status::Accepted),
                result(1, Status::Quarantined),
                result(2, Status::Conflict),
                result(3, Status::Duplicate),
            ],
        };
        let out = apply(10, 11, &ids(4), &response).unwrap();
        assert_eq!(out.acked, 14);
        assert_eq!(out.receipts.len(), 4);
        assert_eq!(out.rejected[0].device_seq, 12);
        assert_eq!(out.conflicts[0].device_seq, 13);
        assert_eq!(out.duplicates, vec![14]);
        assert_eq!(out.resend_from, None);
        let verdicts: Vec<(u64, Verdict<'_>)> =
            out.verdicts().into_iter().map(|(s, _, v)| (s, v)).collect();
        assert_eq!(
            verdicts,
            vec![
                (11, Verdict::Accepted),
                (12, Verdict::Quarantined(&out.rejected[0])),
                (13, Verdict::Conflict(&out.conflicts[0])),
                (14, Verdict::Duplicate),
            ]
        );
    }

    #[test]
    fn missing_means_resend_from_there() {
        let response = PushResponse {
            committed: true,
            results: vec![result(0, Status::Missing), result(1, Status::Missing)],
        };
        let out = apply(5, 6, &ids(2), &response).unwrap();
        assert_eq!(out.resend_from, Some(3));
        assert_eq!(out.acked, 2, "the server lost events 3..5: resend them");
        assert!(out.receipts.is_empty());
    }

    #[test]
    fn a_response_for_another_request_is_refused() {
        let short = PushResponse {
            committed: true,
            results: vec![result(0, Status::Accepted)],
        };
        assert!(apply(0, 1, &ids(2), &short).is_err());
        let mut wrong = result(0, Status::Accepted);
        wrong.event_id = Some("other".into());
        let r = PushResponse {
            committed: true,
            results: vec![wrong],
        };
        assert!(apply(0, 1, &ids(1), &r).is_err());
        let mut no_receipt = result(0, Status::Accepted);
        no_receipt.receipt = None;
        let r = PushResponse {
            committed: true,
            results: vec![no_receipt],
        };
        assert!(apply(0, 1, &ids(1), &r).is_err());
    }
}
