//! How a push's receipts are kept (docs/FORMAT.md §8.1): an IndexedDB
//! request costs about the same whatever its size, so the receipts of
//! consecutive accepted events share one row. An event the server
//! quarantined or flagged keeps a row of its own, with its details, so the
//! `by_outcome` index finds it.

use crate::protocol::Receipt;
use crate::sync::push::{Conflict, PushOutcome, Rejected, Verdict};

/// One stored row of receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptRow<'a> {
    /// The receipts of events `first ..= last`, accepted (or duplicates of
    /// accepted ones), in `device_seq` order.
    Run {
        /// The first event's `device_seq`: the row's key.
        first: u64,
        /// The last event's `device_seq`.
        last: u64,
        /// One receipt per event.
        receipts: Vec<&'a Receipt>,
    },
    /// A quarantined event.
    Quarantined(&'a Rejected),
    /// An event taken as a concurrent version.
    Conflict(&'a Conflict),
}

impl ReceiptRow<'_> {
    /// The row's key: the `device_seq` of its first event.
    pub fn key(&self) -> u64 {
        match self {
            ReceiptRow::Run { first, .. } => *first,
            ReceiptRow::Quarantined(q) => q.device_seq,
            ReceiptRow::Conflict(c) => c.device_seq,
        }
    }
}

/// The rows that store `outcome`'s receipts, in `device_seq` order.
pub fn rows(outcome: &PushOutcome) -> Vec<ReceiptRow<'_>> {
    let mut out = Vec::new();
    let mut run: Option<(u64, u64, Vec<&Receipt>)> = None;
    for (seq, receipt, verdict) in outcome.verdicts() {
        let single = match verdict {
            Verdict::Quarantined(q) => Some(ReceiptRow::Quarantined(q)),
            Verdict::Conflict(c) => Some(ReceiptRow::Conflict(c)),
            Verdict::Accepted | Verdict::Duplicate => None,
        };
        let joins = matches!(&run, Some((_, last, _)) if last + 1 == seq);
        if single.is_some() || !joins {
            if let Some((first, last, receipts)) = run.take() {
                out.push(ReceiptRow::Run {
                    first,
                    last,
                    receipts,
                });
            }
        }
        match single {
            Some(row) => out.push(row),
            None => match &mut run {
                Some((_, last, receipts)) => {
                    *last = seq;
                    receipts.push(receipt);
                }
                None => run = Some((seq, seq, vec![receipt])),
            },
        }
    }
    if let Some((first, last, receipts)) = run {
        out.push(ReceiptRow::Run {
            first,
            last,
            receipts,
        });
    }
    out
}

/// The `device_seq`s whose rows a save of `outcome` replaces: rows whose
/// key lies in this range are deleted first, so that after the server
/// asked for events again (`missing`) no older row starts inside a newer
/// one. `None` when the outcome holds no receipts.
pub fn replaced(outcome: &PushOutcome) -> Option<(u64, u64)> {
    let first = outcome.receipts.iter().map(|(s, _)| *s).min()?;
    let last = outcome.receipts.iter().map(|(s, _)| *s).max()?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::push::tests::receipt;

    fn outcome(seqs: &[u64], rejected: &[u64], conflicts: &[u64]) -> PushOutcome {
        PushOutcome {
            acked: seqs.iter().copied().max().unwrap_or(0),
            receipts: seqs.iter().map(|s| (*s, receipt(*s))).collect(),
            rejected: rejected
                .iter()
                .map(|s| Rejected {
                    device_seq: *s,
                    event_id: format!("e{s}"),
                    code: "SCHEMA_NOT_ALLOWED".into(),
                    message: "no".into(),
                    receipt: receipt(*s),
                })
                .collect(),
            conflicts: conflicts
                .iter()
                .map(|s| Conflict {
                    device_seq: *s,
                    event_id: format!("e{s}"),
                    conflicts_with: vec!["x".into()],
                    receipt: receipt(*s),
                })
                .collect(),
            ..PushOutcome::default()
        }
    }

    fn shape(rows: &[ReceiptRow<'_>]) -> Vec<(char, u64, u64)> {
        rows.iter()
            .map(|r| match r {
                ReceiptRow::Run {
                    first,
                    last,
                    receipts,
                } => {
                    assert_eq!(receipts.len() as u64, last - first + 1);
                    for (i, r) in receipts.iter().enumerate() {
                        assert_eq!(r.server_seq, first + i as u64, "receipts in order");
                    }
                    ('a', *first, *last)
                }
                ReceiptRow::Quarantined(q) => ('q', q.device_seq, q.device_seq),
                ReceiptRow::Conflict(c) => ('c', c.device_seq, c.device_seq),
            })
            .collect()
    }

    #[test]
    fn accepted_receipts_share_a_row() {
        let seqs: Vec<u64> = (11..=110).collect();
        let o = outcome(&seqs, &[], &[]);
        assert_eq!(shape(&rows(&o)), vec![('a', 11, 110)]);
        assert_eq!(rows(&o)[0].key(), 11);
        assert_eq!(replaced(&o), Some((11, 110)));
    }

    #[test]
    fn a_quarantined_or_conflicting_event_has_a_row_of_its_own() {
        let seqs: Vec<u64> = (1..=10).collect();
        let o = outcome(&seqs, &[1, 5], &[6, 10]);
        assert_eq!(
            shape(&rows(&o)),
            vec![
                ('q', 1, 1),
                ('a', 2, 4),
                ('q', 5, 5),
                ('c', 6, 6),
                ('a', 7, 9),
                ('c', 10, 10)
            ]
        );
    }

    #[test]
    fn a_gap_in_the_seqs_cuts_the_run() {
        let o = outcome(&[3, 1, 2, 7, 8], &[], &[]);
        assert_eq!(shape(&rows(&o)), vec![('a', 1, 3), ('a', 7, 8)]);
    }

    #[test]
    fn no_receipts_no_rows() {
        let o = outcome(&[], &[], &[]);
        assert!(rows(&o).is_empty());
        assert_eq!(replaced(&o), None);
    }
}
