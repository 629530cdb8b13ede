//! The outbox: every event above the acknowledged watermark, sent in device
//! order in batches cut by count and size. Nothing is copied into a queue,
//! so what is unsynced can never drift from the log.

use crate::protocol::MAX_BODY_BYTES;
use crate::record::Record;
use serde_json::{json, Value};

/// Most events per push.
pub const BATCH_EVENTS: usize = 100;
/// Most bytes of entries per push (one larger event goes alone).
pub const BATCH_BYTES: usize = 256 * 1024;

/// A record as a push entry `{ envelope, salt, payload }` (docs/FORMAT.md §7).
pub fn entry(record: &Record) -> Value {
    let payload: Value = serde_json::from_str(record.payload.as_str()).unwrap_or(Value::Null);
    json!({
        "envelope": record.envelope.to_value(false),
        "salt": crate::hex::encode(&record.salt),
        "payload": payload,
    })
}

/// The next batch from `pending` (in `device_seq` order): at most
/// [`BATCH_EVENTS`] events and [`BATCH_BYTES`] bytes, or one event alone if
/// it is larger than that. Returns the entries and their encoded size.
pub fn next_batch(pending: &[Record]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for r in pending {
        let e = entry(r);
        let size = e.to_string().len();
        if !out.is_empty() && (out.len() == BATCH_EVENTS || bytes + size > BATCH_BYTES) {
            break;
        }
        bytes += size;
        out.push(e);
        if bytes >= BATCH_BYTES {
            break;
        }
    }
    debug_assert!(bytes <= MAX_BODY_BYTES || out.len() == 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::Draft;
    use crate::memory::MemoryStore;

    fn records(sizes: &[usize]) -> Vec<Record> {
        let mut store = MemoryStore::for_tests(crate::at_rest::AtRest::Plain);
        sizes
            .iter()
            .map(|n| {
                let d = Draft::from_value(&json!({
                    "aggregateType": "d", "aggregateId": "a", "eventType": "e", "payload": {"t": "x".repeat(*n)}
                }))
                .unwrap();
                store.append(d).unwrap()
            })
            .collect()
    }

    #[test]
    fn batches_are_cut_by_count_and_bytes() {
        let small = records(&vec![10; 250]);
        assert_eq!(next_batch(&small).len(), 100);
        let big = records(&[100_000, 100_000, 100_000]);
        assert_eq!(next_batch(&big).len(), 2);
        let huge = records(&[600_000, 10]);
        assert_eq!(next_batch(&huge).len(), 1, "an oversize event goes alone");
        assert!(next_batch(&[]).is_empty());
        let e = entry(&small[0]);
        assert_eq!(e["envelope"]["device_seq"], 1);
        assert_eq!(e["salt"].as_str().unwrap().len(), 32);
    }
}
