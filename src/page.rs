//! The at-rest page: the events of one commit, packed into one immutable
//! value, with compact index metadata beside them.
//!
//! An IndexedDB request costs about the same whatever its size, so one value
//! holding ~50 events commits about three times faster than 50 values. Pages
//! are written once with `add` and never rewritten: the log stays
//! append-only. See docs/FORMAT.md, "At-rest layout".

use crate::envelope::Envelope;
use crate::payload::SALT_LEN;
use crate::record::Record;
use crate::state::AggregateState;
use crate::stored_envelope::{self, StoredEnvelope};
use crate::timestamp;

/// Pages are cut before their stored value (records and index metadata)
/// would pass this many bytes, so a page of ordinary events stays below
/// Chromium's 64 KiB threshold for spilling values into separate blob
/// files, with room for the structured-clone framing. A single larger event
/// gets a page of its own.
pub const TARGET_PAGE_BYTES: usize = 60 * 1024;
/// Width of a `time_buckets` entry: one minute.
pub const TIME_BUCKET_MS: i64 = 60_000;
/// Record kind byte of a plaintext `annal/1` record.
pub const KIND_PLAIN: u8 = 1;

/// Index metadata of a page, derived from its records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageMeta {
    /// `device_seq` of the first record; the page's key.
    pub first_device_seq: u64,
    /// `device_seq` of the last record.
    pub last_device_seq: u64,
    /// Distinct `aggregate_id`s, sorted.
    pub aggregate_ids: Vec<String>,
    /// Distinct `aggregate_type`s, sorted.
    pub aggregate_types: Vec<String>,
    /// Distinct `event_type`s, sorted.
    pub event_types: Vec<String>,
    /// Distinct `floor(created_at_ms / 60000)`, sorted.
    pub time_buckets: Vec<i64>,
    /// The state each aggregate of the page is left in by the page's last
    /// event of it, sorted by id: how an append finds an aggregate's current
    /// version through the `by_aggregate_head` index, with no record of its
    /// own to rewrite. `None` on pages written before layout 3, whose
    /// aggregates are in the `aggregates` object store instead.
    pub aggregate_heads: Option<Vec<(String, AggregateState)>>,
}

/// A page ready to store: metadata and the packed records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Index metadata.
    pub meta: PageMeta,
    /// The packed records.
    pub records: Vec<u8>,
}

/// One record borrowed from page bytes, before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Envelope JSON bytes (canonical, with `hash`).
    pub envelope: &'a [u8],
    /// Payload salt.
    pub salt: [u8; SALT_LEN],
    /// Canonical payload bytes.
    pub payload: &'a [u8],
}

impl RawRecord<'_> {
    /// Parses the envelope and checks its fields' rules.
    pub fn parse_envelope(&self) -> Result<StoredEnvelope<'_>, String> {
        let stored = StoredEnvelope::parse(self.envelope)?;
        stored.envelope.check_shape().map_err(|e| e.message)?;
        Ok(stored)
    }
}

/// Appends one record in the `annal/1` plaintext layout:
/// `kind(1) | u32le len | envelope | salt(16) | u32le len | payload`.
pub fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let envelope = record.envelope.canonical();
    encode_raw(
        out,
        envelope.as_bytes(),
        &record.salt,
        record.payload.as_str().as_bytes(),
    );
}

/// Appends one record from its raw parts, in the layout of [`encode_record`].
pub fn encode_raw(out: &mut Vec<u8>, envelope: &[u8], salt: &[u8; SALT_LEN], payload: &[u8]) {
    out.push(KIND_PLAIN);
    out.extend_from_slice(&(envelope.len() as u32).to_le_bytes());
    out.extend_from_slice(envelope);
    out.extend_from_slice(salt);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Where a commit's records (in `device_seq` order) are cut into pages:
/// one range of indexes per page. A page is cut before a record would take
/// its stored value past [`TARGET_PAGE_BYTES`]: the records, `record_lens[i]`
/// bytes each, plus an estimate of the index metadata they bring, where
/// `stored_len(field, value)` is how long a metadata value is as stored
/// (blinded values have one length whatever they blind).
pub fn page_ranges(
    records: &[Record],
    record_lens: &[usize],
    stored_len: impl Fn(&str, &str) -> usize,
) -> Vec<std::ops::Range<usize>> {
    use crate::crypto::blind::field;
    // Member names, the two device_seqs and framing; generous.
    const PAGE_OVERHEAD: usize = 256;
    // Per array entry, and the two numbers of an `aggregate_heads` entry.
    const PER_ENTRY: usize = 24;
    /// The distinct values of the page so far. A page holds a few dozen
    /// events, so lists beat sets, in code size too.
    #[derive(Default)]
    struct Seen<'a> {
        ids: Vec<&'a str>,
        types: Vec<&'a str>,
        event_types: Vec<&'a str>,
        buckets: Vec<i64>,
    }
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut size = PAGE_OVERHEAD;
    let mut seen = Seen::default();
    for (i, record) in records.iter().enumerate() {
        let e = &record.envelope;
        let bucket = timestamp::parse_ms(&e.created_at)
            .unwrap_or(0)
            .div_euclid(TIME_BUCKET_MS);
        let cost = |seen: &Seen| {
            let mut n = record_lens[i];
            if !seen.ids.contains(&e.aggregate_id.as_str()) {
                // In `aggregate_ids`, and in `aggregate_heads` with its type.
                n += 2 * stored_len(field::AGGREGATE_ID, &e.aggregate_id)
                    + stored_len(field::AGGREGATE_TYPE, &e.aggregate_type)
                    + 3 * PER_ENTRY;
            }
            if !seen.types.contains(&e.aggregate_type.as_str()) {
                n += stored_len(field::AGGREGATE_TYPE, &e.aggregate_type) + PER_ENTRY;
            }
            if !seen.event_types.contains(&e.event_type.as_str()) {
                n += stored_len(field::EVENT_TYPE, &e.event_type) + PER_ENTRY;
            }
            if !seen.buckets.contains(&bucket) {
                n += PER_ENTRY;
            }
            n
        };
        let mut added = cost(&seen);
        if i > start && size + added > TARGET_PAGE_BYTES {
            ranges.push(start..i);
            start = i;
            size = PAGE_OVERHEAD;
            seen = Seen::default();
            added = cost(&seen);
        }
        size += added;
        for (list, v) in [
            (&mut seen.ids, e.aggregate_id.as_str()),
            (&mut seen.types, e.aggregate_type.as_str()),
            (&mut seen.event_types, e.event_type.as_str()),
        ] {
            if !list.contains(&v) {
                list.push(v);
            }
        }
        if !seen.buckets.contains(&bucket) {
            seen.buckets.push(bucket);
        }
    }
    if start < records.len() {
        ranges.push(start..records.len());
    }
    ranges
}

/// How long a metadata value is as a string in a stored value: one byte
/// per character for ASCII, at most two otherwise (structured clone keeps
/// strings as Latin-1 or UTF-16).
pub fn clear_len(_field: &str, value: &str) -> usize {
    if value.is_ascii() {
        value.len()
    } else {
        2 * value.len()
    }
}

/// Splits `records` (already in `device_seq` order) into pages.
pub fn pack(records: &[Record]) -> Vec<Page> {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(records.len());
    for record in records {
        encode_record(&mut bytes, record);
        ends.push(bytes.len());
    }
    assemble(records, &ends, &bytes, clear_len, |page| {
        meta_of(page.iter().map(|r| &r.envelope))
    })
}

/// Pages from records encoded one after another into `bytes`, record `i`
/// ending at `ends[i]`, cut by [`page_ranges`], each with the metadata
/// `meta` derives from the page's records.
pub fn assemble(
    records: &[Record],
    ends: &[usize],
    bytes: &[u8],
    stored_len: impl Fn(&str, &str) -> usize,
    meta: impl Fn(&[Record]) -> PageMeta,
) -> Vec<Page> {
    let start_of = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
    let lens: Vec<usize> = (0..records.len()).map(|i| ends[i] - start_of(i)).collect();
    page_ranges(records, &lens, stored_len)
        .into_iter()
        .map(|range| Page {
            records: bytes[start_of(range.start)..ends[range.end - 1]].to_vec(),
            meta: meta(&records[range]),
        })
        .collect()
}

/// Derives page metadata from the page's envelopes, in order.
pub fn meta_of<'a>(envelopes: impl IntoIterator<Item = &'a Envelope>) -> PageMeta {
    let mut meta = PageMeta::default();
    // Ordered by id as bytes, like `aggregate_ids`; the last event wins.
    let mut heads = std::collections::BTreeMap::new();
    for (i, e) in envelopes.into_iter().enumerate() {
        if i == 0 {
            meta.first_device_seq = e.device_seq;
        }
        meta.last_device_seq = e.device_seq;
        meta.aggregate_ids.push(e.aggregate_id.clone());
        meta.aggregate_types.push(e.aggregate_type.clone());
        meta.event_types.push(e.event_type.clone());
        let ms = timestamp::parse_ms(&e.created_at).unwrap_or(0);
        meta.time_buckets.push(ms.div_euclid(TIME_BUCKET_MS));
        heads.insert(
            e.aggregate_id.clone(),
            AggregateState {
                aggregate_type: e.aggregate_type.clone(),
                version: e.aggregate_version,
                last_device_seq: e.device_seq,
            },
        );
    }
    meta.aggregate_heads = Some(heads.into_iter().collect());
    for list in [
        &mut meta.aggregate_ids,
        &mut meta.aggregate_types,
        &mut meta.event_types,
    ] {
        list.sort();
        list.dedup();
    }
    meta.time_buckets.sort_unstable();
    meta.time_buckets.dedup();
    meta
}

/// Where page bytes stopped making sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Index of the record that could not be read.
    pub index: usize,
    /// What was wrong.
    pub reason: String,
}

/// Splits page bytes into records without parsing them. Every length is
/// checked against the bytes that remain, so no input can read out of bounds.
pub fn decode(bytes: &[u8]) -> Result<Vec<RawRecord<'_>>, DecodeError> {
    match decode_lossy(bytes) {
        (records, None) => Ok(records),
        (_, Some((error, _))) => Err(error),
    }
}

/// Splits page bytes as far as they make sense: the records before any
/// damage, and then, if the bytes break off, why and the damaged rest.
pub fn decode_lossy(bytes: &[u8]) -> (Vec<RawRecord<'_>>, Option<(DecodeError, &[u8])>) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode_one(rest) {
            Ok((record, after)) => {
                records.push(record);
                rest = after;
            }
            Err(reason) => {
                let error = DecodeError {
                    index: records.len(),
                    reason: reason.to_string(),
                };
                return (records, Some((error, rest)));
            }
        }
    }
    (records, None)
}

fn decode_one(bytes: &[u8]) -> Result<(RawRecord<'_>, &[u8]), String> {
    let (&kind, after_kind) = bytes.split_first().ok_or("empty record")?;
    if kind != KIND_PLAIN {
        return Err(format!("unknown record kind {kind}"));
    }
    let (envelope, after) =
        take_len_prefixed(after_kind).ok_or("envelope length runs past the page")?;
    if after.len() < SALT_LEN {
        return Err("salt runs past the page".into());
    }
    let (salt, after) = after.split_at(SALT_LEN);
    let (payload, after) = take_len_prefixed(after).ok_or("payload length runs past the page")?;
    let mut salt_arr = [0u8; SALT_LEN];
    salt_arr.copy_from_slice(salt);
    let record = RawRecord {
        envelope,
        salt: salt_arr,
        payload,
    };
    Ok((record, after))
}

fn take_len_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    if bytes.len() < 4 {
        return None;
    }
    let (len, rest) = bytes.split_at(4);
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Reads every record of a page and checks each one's own hash and payload
/// digest. A failure is `ANNAL_TAMPERED` at that record's `device_seq`.
/// Links between records are `verify()`'s job.
pub fn read_checked(first_device_seq: u64, bytes: &[u8]) -> crate::error::Result<Vec<Record>> {
    read_checked_where(first_device_seq, bytes, None, |_| true)
}

/// [`read_checked`] for the records of `aggregate_id` (any, for `None`)
/// whose envelope `keep` also accepts. Only the kept records have their
/// fields' rules, hash and payload digest checked (the SHA-256 work) and
/// their payload copied. A record whose stored text begins with another
/// aggregate's id is skipped without being parsed at all; every other
/// envelope is parsed, and its `aggregate_id` compared.
/// Queries use it, so a page read for one of its events costs little more
/// than that event; `verify()` still checks every record.
pub fn read_checked_where(
    first_device_seq: u64,
    bytes: &[u8],
    aggregate_id: Option<&str>,
    keep: impl Fn(&Envelope) -> bool,
) -> crate::error::Result<Vec<Record>> {
    use crate::error::Error;
    use crate::payload::Payload;
    let tampered = |seq: u64, why: &str| {
        Error::tampered(
            seq,
            format!("stored event {seq} failed its integrity check ({why}); run verify() and restore from the server or a backup"),
        )
    };
    let raws = decode(bytes).map_err(|e| tampered(first_device_seq + e.index as u64, &e.reason))?;
    let mut records = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        let at = first_device_seq + i as u64;
        if aggregate_id.is_some_and(|id| stored_envelope::is_of_another_aggregate(raw.envelope, id))
        {
            continue;
        }
        let stored = StoredEnvelope::parse(raw.envelope).map_err(|why| tampered(at, &why))?;
        if aggregate_id.is_some_and(|id| stored.envelope.aggregate_id != id)
            || !keep(&stored.envelope)
        {
            continue;
        }
        stored
            .envelope
            .check_shape()
            .map_err(|e| tampered(at, &e.message))?;
        crate::record::check_stored(&stored, &raw.salt, raw.payload).map_err(|fault| {
            tampered(
                stored.envelope.device_seq,
                match fault {
                    crate::record::IntegrityFault::Hash => "its hash does not match its fields",
                    crate::record::IntegrityFault::Encoding => {
                        "its stored envelope is not its canonical text"
                    }
                    crate::record::IntegrityFault::PayloadDigest => {
                        "its payload does not match its digest"
                    }
                },
            )
        })?;
        let payload = String::from_utf8(raw.payload.to_vec())
            .map_err(|_| tampered(at, "payload is not UTF-8"))?;
        records.push(Record {
            envelope: stored.envelope,
            salt: raw.salt,
            payload: Payload::from_stored(payload),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::draft::Draft;
    use crate::entropy::SeededEntropy;
    use crate::error::ErrorCode;
    use crate::memory::MemoryStore;
    use crate::state::Identity;
    use serde_json::json;

    fn records(n: u64) -> Vec<Record> {
        let clock = ManualClock::new(1_700_000_000_000);
        let entropy = SeededEntropy::new(7);
        let identity = Identity::generate("default", "u-1", &clock, &entropy);
        let mut store = MemoryStore::new(identity, Box::new(clock), Box::new(entropy));
        (0..n)
            .map(|i| {
                let draft = json!({"aggregateType": "diary", "aggregateId": format!("d-{i}"), "eventType": "noted", "payload": {"text": "untouched"}});
                store.append(Draft::from_value(&draft).unwrap()).unwrap()
            })
            .collect()
    }

    /// The stored value of a page, roughly as structured clone lays it out:
    /// the records, every metadata string and number.
    fn value_size(page: &Page) -> usize {
        let m = &page.meta;
        let strings = |l: &[String]| l.iter().map(|s| clear_len("", s) + 4).sum::<usize>();
        let heads: usize = m
            .aggregate_heads
            .iter()
            .flatten()
            .map(|(id, a)| clear_len("", id) + clear_len("", &a.aggregate_type) + 2 * 9 + 8)
            .sum();
        page.records.len()
            + strings(&m.aggregate_ids)
            + strings(&m.aggregate_types)
            + strings(&m.event_types)
            + 9 * m.time_buckets.len()
            + heads
            + 128
    }

    fn batch(
        n: usize,
        id: impl Fn(usize) -> String,
        payload: impl Fn(usize) -> usize,
    ) -> Vec<Record> {
        let mut store = MemoryStore::for_tests(crate::at_rest::AtRest::Plain);
        let drafts = (0..n)
            .map(|i| {
                let v = json!({"aggregateType": "diary", "aggregateId": id(i), "eventType": format!("t-{}", i % 10), "payload": {"text": "p".repeat(payload(i))}});
                Draft::from_value(&v).unwrap()
            })
            .collect();
        store.append_batch(drafts).unwrap()
    }

    #[test]
    fn pages_stay_under_the_blob_threshold_with_their_metadata() {
        let shapes: Vec<(&str, Vec<Record>)> = vec![
            (
                "1 KiB events, each its own aggregate",
                batch(1000, |i| format!("patient-{i}"), |_| 1000),
            ),
            (
                "250-byte ids, small payloads",
                batch(600, |i| format!("{i}-{}", "é".repeat(120)), |_| 20),
            ),
            (
                "one 100 KiB event among small ones",
                batch(
                    50,
                    |i| format!("p-{}", i % 3),
                    |i| if i == 20 { 100 * 1024 } else { 500 },
                ),
            ),
        ];
        for (shape, records) in shapes {
            for at_rest in [
                crate::at_rest::AtRest::Plain,
                crate::at_rest::tests::sealed(true),
            ] {
                let pages = at_rest.pack(&records, &SeededEntropy::new(1));
                let count: usize = pages
                    .iter()
                    .map(|p| (p.meta.last_device_seq - p.meta.first_device_seq + 1) as usize)
                    .sum();
                assert_eq!(count, records.len(), "{shape}");
                for page in &pages {
                    let events = page.meta.last_device_seq - page.meta.first_device_seq + 1;
                    if events > 1 {
                        assert!(
                            value_size(page) <= TARGET_PAGE_BYTES,
                            "{shape}: a page of {events} events is {} bytes",
                            value_size(page)
                        );
                    } else {
                        assert!(
                            page.records.len() > TARGET_PAGE_BYTES / 2 || records.len() == 1,
                            "{shape}: a page of one small event"
                        );
                    }
                }
                // Pages are full: two neighbours would not have fitted in one.
                for pair in pages.windows(2) {
                    assert!(
                        value_size(&pair[0]) + value_size(&pair[1]) > TARGET_PAGE_BYTES,
                        "{shape}: pages cut too early"
                    );
                }
            }
        }
    }

    /// A query checks the events it returns and skips the hash work for the
    /// others; an edit to a returned event is still refused.
    #[test]
    fn reading_some_records_checks_exactly_those() {
        let records = records(3);
        let mut pages = pack(&records);
        assert_eq!(pages.len(), 1);
        let bytes = &mut pages[0].records;
        let at = bytes.windows(9).rposition(|w| w == b"untouched").unwrap();
        let second = bytes
            .windows(9)
            .enumerate()
            .filter(|(_, w)| *w == b"untouched")
            .nth(1)
            .unwrap()
            .0;
        assert!(second < at);
        bytes[second] = b'U';
        let err = read_checked(1, bytes).unwrap_err();
        assert_eq!((err.code, err.device_seq), (ErrorCode::Tampered, Some(2)));
        let others = read_checked_where(1, bytes, None, |e| e.device_seq != 2).unwrap();
        let seqs: Vec<u64> = others.iter().map(|r| r.envelope.device_seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(others[1], records[2]);
        let err = read_checked_where(1, bytes, None, |e| e.aggregate_id == "d-1").unwrap_err();
        assert_eq!((err.code, err.device_seq), (ErrorCode::Tampered, Some(2)));
        // Records of other aggregates are skipped by their text's start;
        // the tampered one is checked when it is the aggregate asked for.
        let d2 = read_checked_where(1, bytes, Some("d-2"), |_| true).unwrap();
        assert_eq!(d2, records[2..]);
        let err = read_checked_where(1, bytes, Some("d-1"), |_| true).unwrap_err();
        assert_eq!((err.code, err.device_seq), (ErrorCode::Tampered, Some(2)));
        // A record's aggregate id changed to the one asked for is checked.
        let mut renamed = pages[0].records.clone();
        let at = renamed.windows(3).position(|w| w == b"d-0").unwrap();
        renamed[at + 2] = b'2';
        let err = read_checked_where(1, &renamed, Some("d-2"), |_| true).unwrap_err();
        assert_eq!((err.code, err.device_seq), (ErrorCode::Tampered, Some(1)));
    }

    /// An aggregate id whose canonical text has escapes cannot be told
    /// from the start of the text; its records are parsed and compared.
    #[test]
    fn reading_one_aggregate_compares_ids_that_need_escapes_after_parsing() {
        let clock = ManualClock::new(1_700_000_000_000);
        let entropy = SeededEntropy::new(7);
        let identity = Identity::generate("default", "u-1", &clock, &entropy);
        let mut store = MemoryStore::new(identity, Box::new(clock), Box::new(entropy));
        let records: Vec<Record> = ["q\"1", "d-2", "q\"1\\"]
            .iter()
            .map(|id| {
                let draft = json!({"aggregateType": "diary", "aggregateId": id, "eventType": "noted", "payload": {}});
                store.append(Draft::from_value(&draft).unwrap()).unwrap()
            })
            .collect();
        let pages = pack(&records);
        let bytes = &pages[0].records;
        assert!(bytes.windows(5).any(|w| w == b"q\\\"1\\"));
        let of = |id: &str| read_checked_where(1, bytes, Some(id), |_| true).unwrap();
        assert_eq!(of("q\"1"), records[..1]);
        assert_eq!(of("q\"1\\"), records[2..]);
        assert_eq!(of("d-2"), records[1..2]);
        assert_eq!(of("q"), []);
    }

    /// An envelope stored as other text for the same values (here a space
    /// after its first member, so its hash still matches) is refused.
    #[test]
    fn an_envelope_stored_in_another_encoding_is_refused() {
        let records = records(2);
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &records[0]);
        let spaced = records[1]
            .envelope
            .canonical()
            .replacen("\",\"", "\", \"", 1);
        assert_eq!(Envelope::parse(&spaced).unwrap(), records[1].envelope);
        encode_raw(
            &mut bytes,
            spaced.as_bytes(),
            &records[1].salt,
            records[1].payload.as_str().as_bytes(),
        );
        let err = read_checked(1, &bytes).unwrap_err();
        assert_eq!((err.code, err.device_seq), (ErrorCode::Tampered, Some(2)));
        assert!(err.message.contains("canonical"), "{}", err.message);
        assert_eq!(
            read_checked_where(1, &bytes, None, |e| e.device_seq == 1).unwrap(),
            records[..1]
        );
    }
}
