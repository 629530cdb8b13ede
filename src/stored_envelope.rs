//! An envelope read back from storage, and the check that its stored text
//! is its canonical text.
//!
//! Nearly every stored envelope is canonical text with no escapes in its
//! strings: annal writes nothing else from ordinary ids. Such a text is
//! read here straight into the fields, member by member in the one order
//! canonical text allows, and is then canonical by construction: writing
//! it again from the fields would give the same bytes, so the hash is taken
//! over the stored bytes themselves (less the `hash` member) and nothing is
//! written or compared. Any other text (an escape, a space, another order,
//! an unknown member) goes through the general JSON reader and is written
//! again from its fields and compared, as before; the fast reader only
//! decides which of the two paths a text takes, never whether it passes.

use crate::envelope::Envelope;
use crate::record::IntegrityFault;
use sha2::{Digest, Sha256};

/// An envelope parsed from its stored bytes (fields only: the field rules
/// are [`Envelope::check_shape`]'s).
#[derive(Debug)]
pub struct StoredEnvelope<'a> {
    /// The fields.
    pub envelope: Envelope,
    /// The stored bytes.
    text: &'a [u8],
    /// Where the `,"hash":"…"` member starts and ends in `text`, when the
    /// text was read as canonical.
    hash_member: Option<(usize, usize)>,
}

impl<'a> StoredEnvelope<'a> {
    /// Parses stored envelope bytes: strictly, as [`Envelope::parse_fields`].
    pub fn parse(text: &'a [u8]) -> Result<Self, String> {
        let s = std::str::from_utf8(text).map_err(|_| "envelope is not UTF-8")?;
        if let Some((envelope, hash_member)) = read_canonical(s) {
            return Ok(StoredEnvelope {
                envelope,
                text,
                hash_member: Some(hash_member),
            });
        }
        Ok(StoredEnvelope {
            envelope: Envelope::parse_fields(s)?,
            text,
            hash_member: None,
        })
    }

    /// Whether the text was read as canonical.
    #[cfg(test)]
    fn read_as_canonical(&self) -> bool {
        self.hash_member.is_some()
    }

    /// Checks that `hash` is the hash of the other fields and that the
    /// stored bytes are exactly the envelope's canonical text.
    pub fn check_hash(&self) -> Result<(), IntegrityFault> {
        let e = &self.envelope;
        match self.hash_member {
            Some((start, end)) => {
                let mut hasher = Sha256::new();
                hasher.update(&self.text[..start]);
                hasher.update(&self.text[end..]);
                if crate::hex::is_encoding_of(&hasher.finalize(), &e.hash) {
                    Ok(())
                } else {
                    Err(IntegrityFault::Hash)
                }
            }
            None => {
                let without_hash = e.canonical_without_hash();
                if Envelope::hash_of(&without_hash) != e.hash {
                    return Err(IntegrityFault::Hash);
                }
                if is_canonical_with_hash(self.text, &without_hash, &e.hash) {
                    Ok(())
                } else {
                    Err(IntegrityFault::Encoding)
                }
            }
        }
    }
}

/// Whether `stored` is `without_hash` with the `hash` member in its place,
/// just before `payload_digest` (members are sorted): compared in pieces,
/// with no copy. `,"payload_digest":` cannot occur inside a string value,
/// whose quotes are escaped.
fn is_canonical_with_hash(stored: &[u8], without_hash: &str, hash: &str) -> bool {
    const NEXT: &str = ",\"payload_digest\":";
    let Some(at) = without_hash.find(NEXT) else {
        return false;
    };
    let (before, after) = without_hash.as_bytes().split_at(at);
    let member = [b",\"hash\":\"", hash.as_bytes(), b"\""];
    let mut rest = stored;
    for piece in std::iter::once(before)
        .chain(member)
        .chain(std::iter::once(after))
    {
        match rest.strip_prefix(piece) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `text` begins as the canonical text of an envelope of another
/// aggregate than `aggregate_id`: its first member, `aggregate_id`, holds a
/// string with no escapes that is not `aggregate_id`. `false` whenever that
/// cannot be told from the start of the text (the envelope is then parsed).
pub fn is_of_another_aggregate(text: &[u8], aggregate_id: &str) -> bool {
    const KEY: &[u8] = b"{\"aggregate_id\":\"";
    let Some(rest) = text.strip_prefix(KEY) else {
        return false;
    };
    match plain_len(rest) {
        Some(len) => &rest[..len] != aggregate_id.as_bytes(),
        None => false,
    }
}

/// Reads `text` if it is exactly the canonical text of an envelope whose
/// strings need no escapes: the members in canonical order, optionals
/// omitted or present, integers in shortest decimal. Returns the envelope
/// and where its `hash` member is; `None` for any other text.
fn read_canonical(text: &str) -> Option<(Envelope, (usize, usize))> {
    let mut r = Reader { text, at: 0 };
    let aggregate_id = r.string("{\"aggregate_id\":")?;
    let aggregate_type = r.string(",\"aggregate_type\":")?;
    let aggregate_version = r.number(",\"aggregate_version\":")?;
    let causation_id = r.optional_string(",\"causation_id\":")?;
    let correlation_id = r.optional_string(",\"correlation_id\":")?;
    let created_at = r.string(",\"created_at\":")?;
    let device_id = r.string(",\"device_id\":")?;
    let device_seq = r.number(",\"device_seq\":")?;
    let event_id = r.string(",\"event_id\":")?;
    let event_type = r.string(",\"event_type\":")?;
    let format = r.string(",\"format\":")?;
    let hash_start = r.at;
    let hash = r.string(",\"hash\":")?;
    let hash_end = r.at;
    let payload_digest = r.string(",\"payload_digest\":")?;
    let prev_hash = r.string(",\"prev_hash\":")?;
    let schema_version = r.number(",\"schema_version\":")?;
    let tenant_id = r.string(",\"tenant_id\":")?;
    let user_id = r.string(",\"user_id\":")?;
    r.literal("}")?;
    if r.at != text.len() {
        return None;
    }
    let envelope = Envelope {
        format: format.to_owned(),
        event_id: event_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        event_type: event_type.to_owned(),
        schema_version,
        payload_digest: payload_digest.to_owned(),
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        device_seq,
        created_at: created_at.to_owned(),
        aggregate_version,
        causation_id: causation_id.map(str::to_owned),
        correlation_id: correlation_id.map(str::to_owned),
        prev_hash: prev_hash.to_owned(),
        hash: hash.to_owned(),
    };
    Some((envelope, (hash_start, hash_end)))
}

/// A position in envelope text.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.at..]
    }

    fn literal(&mut self, expected: &str) -> Option<()> {
        self.rest().starts_with(expected.as_bytes()).then(|| {
            self.at += expected.len();
        })
    }

    /// `key` (the comma, name and colon), then a string that needs no
    /// escapes: its text as stored.
    fn string(&mut self, key: &str) -> Option<&'a str> {
        self.literal(key)?;
        self.literal("\"")?;
        let len = plain_len(self.rest())?;
        // `plain_len` stops at a quote, so the value is whole UTF-8
        // sequences.
        let value = self.text.get(self.at..self.at + len)?;
        self.at += len + 1;
        Some(value)
    }

    /// [`Reader::string`] of a member that may be absent: `Some(None)` when
    /// the text does not go on with `key`.
    fn optional_string(&mut self, key: &str) -> Option<Option<&'a str>> {
        if self.rest().starts_with(key.as_bytes()) {
            self.string(key).map(Some)
        } else {
            Some(None)
        }
    }

    /// `key`, then an integer in shortest decimal that fits in a `u64`.
    fn number(&mut self, key: &str) -> Option<u64> {
        self.literal(key)?;
        let rest = self.rest();
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &rest[..len] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at += len;
        Some(n)
    }
}

/// The length of the string body at the start of `bytes`: the bytes
/// before its closing quote, if no backslash or control character comes
/// first. Eight bytes are tested at a time, since this runs over every byte
/// of every envelope read.
fn plain_len(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when a byte of `w` is below `n` (n ≤ 128): exact for "any".
    let any_below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut at = 0;
    for word in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let special = any_below(w ^ (ONES * u64::from(b'"')), 1)
            | any_below(w ^ (ONES * u64::from(b'\\')), 1)
            | any_below(w, 0x20);
        if special != 0 {
            break;
        }
        at += 8;
    }
    let len = at
        + bytes[at..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (bytes[len] == b'"').then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../docs/vectors/envelopes.json");

    fn envelopes() -> Vec<Envelope> {
        let vectors: Value = serde_json::from_str(VECTORS).unwrap();
        let mut out: Vec<Envelope> = vectors
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Envelope::from_value(&v["envelope"]).unwrap())
            .collect();
        let mut both = out[0].clone();
        both.causation_id = Some("c-1".into());
        both.correlation_id = Some("k-é-\u{1f600}".into());
        both.seal();
        out.push(both.clone());
        both.causation_id = None;
        both.seal();
        out.push(both);
        out
    }

    /// Both readers of `text`: the fast one's answer, and the general
    /// path's (parse, then written again and compared).
    fn general(text: &str) -> Result<(Envelope, Result<(), IntegrityFault>), String> {
        let envelope = Envelope::parse_fields(text)?;
        let stored = StoredEnvelope {
            envelope: envelope.clone(),
            text: text.as_bytes(),
            hash_member: None,
        };
        Ok((envelope, stored.check_hash()))
    }

    #[test]
    fn plain_len_stops_at_the_first_quote_backslash_or_control_byte() {
        let body = "abcdefghijklmnopqrstuvwxyzé\u{1f600}0123456789";
        for cut in 0..=body.len() {
            let Some(head) = body.get(..cut) else {
                continue;
            };
            assert_eq!(plain_len(format!("{head}\"rest").as_bytes()), Some(cut));
            for bad in ["\\", "\n", "\u{1f}", "\u{0}"] {
                assert_eq!(plain_len(format!("{head}{bad}x\"").as_bytes()), None);
            }
        }
        assert_eq!(plain_len(b"no closing quote at all"), None);
        assert_eq!(plain_len(b"\x7f\xff\""), Some(2));
    }

    #[test]
    fn another_aggregate_is_told_from_the_start_of_the_text() {
        let e = &envelopes()[0];
        let text = e.canonical();
        let id = e.aggregate_id.as_str();
        assert!(!is_of_another_aggregate(text.as_bytes(), id));
        assert!(is_of_another_aggregate(text.as_bytes(), &format!("{id}x")));
        assert!(is_of_another_aggregate(text.as_bytes(), &id[1..]));
        // Not canonical, or escaped: left to the parser.
        for other in [
            format!(" {text}"),
            text.replacen("\"aggregate_id\":\"", "\"aggregate_id\": \"", 1),
            text.replacen("\"aggregate_id\":\"", "\"aggregate_id\":\"\\u0078", 1),
        ] {
            assert!(!is_of_another_aggregate(other.as_bytes(), "x"), "{other}");
        }
    }

    #[test]
    fn canonical_text_is_read_fast_and_to_the_same_fields() {
        for e in envelopes() {
            let text = e.canonical();
            let stored = StoredEnvelope::parse(text.as_bytes()).unwrap();
            assert!(stored.read_as_canonical(), "{text}");
            assert_eq!(stored.envelope, e);
            assert_eq!(stored.check_hash(), Ok(()));
            assert_eq!(general(&text).unwrap(), (e.clone(), Ok(())));
        }
    }

    #[test]
    fn a_changed_field_fails_the_hash_on_the_fast_path() {
        let e = &envelopes()[0];
        let text = e
            .canonical()
            .replace("\"device_seq\":1", "\"device_seq\":2");
        let stored = StoredEnvelope::parse(text.as_bytes()).unwrap();
        assert!(stored.read_as_canonical());
        assert_eq!(stored.check_hash(), Err(IntegrityFault::Hash));
    }

    /// Texts the fast reader must leave to the general path, which fails
    /// every one (re-encodings as `Encoding`, edits hidden in escapes as
    /// `Hash`, the rest as parse errors); a canonical text with escapes
    /// takes the same path and passes.
    #[test]
    fn other_texts_take_the_general_path_and_get_its_answer() {
        let e = &envelopes()[0];
        let text = e.canonical();
        let mut escaped = e.clone();
        escaped.aggregate_id = "q\"b\\\u{1}\n".into();
        escaped.seal();
        let moved = text.replace(",\"format\":\"annal/1\"", "").replacen(
            '{',
            "{\"format\":\"annal/1\",",
            1,
        );
        let cases = [
            text.replacen(':', ": ", 1),
            format!(" {text}"),
            format!("{text}\n"),
            moved,
            text.replace("\"device_seq\":1", "\"device_seq\":01"),
            text.replace("\"schema_version\":1", "\"schema_version\":1.0"),
            text.replace(
                "\"aggregate_version\":1",
                "\"aggregate_version\":18446744073709551616",
            ),
            text.replace("\"tenant_id\":\"", "\"tenant_id\":\"\\u0061"),
            text.replace("\"user_id\":\"", "\"user_id\":\"\\/"),
            text.replacen('{', "{\"extra\":1,", 1),
        ];
        for case in &cases {
            assert_ne!(case, &text);
            match (StoredEnvelope::parse(case.as_bytes()), general(case)) {
                (Ok(s), Ok((envelope, verdict))) => {
                    assert!(!s.read_as_canonical(), "read fast: {case}");
                    assert_eq!(s.envelope, envelope);
                    assert!(verdict.is_err(), "passes: {case}");
                    assert_eq!(s.check_hash(), verdict, "{case}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("the readers disagree on {case}: {a:?} / {b:?}"),
            }
        }
        let text = escaped.canonical();
        let stored = StoredEnvelope::parse(text.as_bytes()).unwrap();
        assert!(!stored.read_as_canonical());
        assert_eq!(stored.envelope, escaped);
        assert_eq!(stored.check_hash(), Ok(()));
    }

    /// Every prefix of a canonical text, and the text with any one byte
    /// changed, is either refused by the fast reader or read to the fields
    /// the general reader reads, with the same verdict.
    #[test]
    fn the_fast_reader_never_passes_what_the_general_path_fails() {
        let e = &envelopes()[3];
        let text = e.canonical();
        let bytes = text.as_bytes();
        let mut tried = 0;
        let mut check = |candidate: &[u8]| {
            let Ok(s) = std::str::from_utf8(candidate) else {
                return;
            };
            let Ok(fast) = StoredEnvelope::parse(candidate) else {
                assert!(general(s).is_err(), "fast refuses, general reads: {s}");
                return;
            };
            if fast.read_as_canonical() {
                let (envelope, verdict) = general(s).expect("general reads it");
                assert_eq!(fast.envelope, envelope, "{s}");
                assert_eq!(fast.check_hash(), verdict, "{s}");
                tried += 1;
            }
        };
        for end in 0..bytes.len() {
            check(&bytes[..end]);
        }
        for i in 0..bytes.len() {
            for b in [b'0', b'9', b'a', b'"', b'\\', b',', b'}', b' ', 0x1f, b'x'] {
                let mut changed = bytes.to_vec();
                changed[i] = b;
                check(&changed);
            }
        }
        assert!(tried > 100, "only {tried} changed texts were read fast");
    }
}
