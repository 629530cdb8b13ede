//! The outbox: every event above the acknowledged watermark, sent in device
//! order in batches cut by count and size. Nothing is copied into a queue,
//! so what is unsynced can never drift from the log.

use crate::protocol::MAX_BODY_BYTES;
use crate::record::Record;

/// Most events per push.
pub const BATCH_EVENTS: usize = 500;
/// Most bytes of entries per push (one larger event goes alone).
pub const BATCH_BYTES: usize = 1024 * 1024;

/// A record as a push entry `{ envelope, payload, salt }` (docs/FORMAT.md
/// §7), as JSON text: the envelope's and the payload's canonical texts as
/// they are, with no tree built and written again.
pub fn entry(record: &Record) -> String {
    let payload = record.payload.as_str();
    let mut out = String::with_capacity(payload.len() + 800);
    out.push_str("{\"envelope\":");
    record.envelope.write_canonical(&mut out, true);
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push_str(",\"salt\":\"");
    out.push_str(&crate::hex::encode(&record.salt));
    out.push_str("\"}");
    out
}

/// A push ready to send: how many of the pending events it carries, and
/// its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The events it carries: the first `count` of those it was built from.
    pub count: usize,
    /// The request body.
    pub body: String,
}

impl Push {
    /// The next push of `pending` (see [`next_batch`]).
    pub fn of(pending: &[Record]) -> Push {
        let batch = next_batch(pending);
        Push {
            count: batch.len(),
            body: body(&batch),
        }
    }
}

/// The next batch from `pending` (in `device_seq` order): at most
/// [`BATCH_EVENTS`] events and [`BATCH_BYTES`] bytes of entries, or one
/// event alone if it is larger than that. Returns the entries' texts.
pub fn next_batch(pending: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for r in pending {
        let e = entry(r);
        let size = e.len();
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

/// The `POST /v1/events` body of a non-atomic push of `entries`.
pub fn body(entries: &[String]) -> String {
    let mut out = String::with_capacity(entries.iter().map(|e| e.len() + 1).sum::<usize>() + 32);
    out.push_str("{\"atomic\":false,\"events\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::Draft;
    use crate::memory::MemoryStore;
    use serde_json::json;

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
        assert_eq!(next_batch(&small).len(), 250);
        let many = records(&vec![10; 600]);
        assert_eq!(next_batch(&many).len(), BATCH_EVENTS);
        let big = records(&[400_000, 400_000, 400_000]);
        assert_eq!(next_batch(&big).len(), 2);
        let huge = records(&[1_048_000, 10]);
        assert_eq!(next_batch(&huge).len(), 1, "an oversize event goes alone");
        assert!(next_batch(&[]).is_empty());
    }

    #[test]
    fn an_entry_is_the_documented_json() {
        let r = &records(&[10])[0];
        let e: serde_json::Value = serde_json::from_str(&entry(r)).unwrap();
        let want = serde_json::json!({
            "envelope": r.envelope.to_value(false),
            "salt": crate::hex::encode(&r.salt),
            "payload": serde_json::from_str::<serde_json::Value>(r.payload.as_str()).unwrap(),
        });
        assert_eq!(e, want);
        let b: crate::protocol::PushRequest =
            serde_json::from_str(&body(&[entry(r), entry(r)])).unwrap();
        assert!(!b.atomic);
        assert_eq!(b.events, vec![want.clone(), want]);
    }
}
