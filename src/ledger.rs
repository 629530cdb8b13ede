//! Server ledgers (`annal-ledger/1`): the hash chains annal-server keeps of
//! everything it received. The tenant ledger orders a tenant's events by
//! `server_seq`; each user ledger orders one user's events by `user_seq`.
//! Clients verify the ledger they pull from their last checkpoint, so a
//! server that rewrites, forks or truncates history is caught.
//! See docs/FORMAT.md §11.

use crate::jcs;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// `format` of every ledger entry.
pub const LEDGER_FORMAT: &str = "annal-ledger/1";
/// `prev` of a ledger's first entry.
pub const LEDGER_GENESIS: &str = crate::envelope::GENESIS_HASH;
/// The name of the tenant ledger.
pub const TENANT_LEDGER: &str = "tenant";

/// The name of user `user_id`'s ledger: `"user:" + user_id`.
pub fn user_ledger(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// What the server did with an event. Duplicates are not entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerOutcome {
    /// Taken into the copy of record.
    Accepted,
    /// Taken, and flagged: it raced another event for the same aggregate version.
    Conflict,
    /// Kept but set aside: it failed a check; its receipt names why.
    Quarantined,
}

impl LedgerOutcome {
    /// The string form.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOutcome::Accepted => "accepted",
            LedgerOutcome::Conflict => "conflict",
            LedgerOutcome::Quarantined => "quarantined",
        }
    }

    /// Parses the string form.
    pub fn parse(s: &str) -> Option<LedgerOutcome> {
        match s {
            "accepted" => Some(LedgerOutcome::Accepted),
            "conflict" => Some(LedgerOutcome::Conflict),
            "quarantined" => Some(LedgerOutcome::Quarantined),
            _ => None,
        }
    }
}

impl fmt::Display for LedgerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The tenant.
    pub tenant_id: String,
    /// `"tenant"` or `"user:<id>"`.
    pub ledger: String,
    /// Position in this ledger, from 1, without gaps.
    pub seq: u64,
    /// The event's `hash` as the server recomputed it.
    pub event_hash: String,
    /// What the server did with the event.
    pub outcome: LedgerOutcome,
    /// Server time, `YYYY-MM-DDTHH:MM:SS.ssssssZ`, kept verbatim.
    pub received_at: String,
    /// `hash` of the previous entry, or 64 zeros.
    pub prev: String,
    /// Lowercase hex SHA-256 of the JCS of the other fields and `format`.
    pub hash: String,
}

impl LedgerEntry {
    /// The JCS text that is hashed, written straight from the fields: the
    /// members in RFC 8785 order (all names are ASCII, so byte order).
    /// Equal to [`LedgerEntry::canonical_by_tree`], which a test checks.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(256 + self.tenant_id.len() + self.ledger.len());
        for (i, (key, value)) in [
            ("event_hash", self.event_hash.as_str()),
            ("format", LEDGER_FORMAT),
            ("ledger", &self.ledger),
            ("outcome", self.outcome.as_str()),
            ("prev", &self.prev),
            ("received_at", &self.received_at),
        ]
        .into_iter()
        .enumerate()
        {
            out.push_str(if i == 0 { "{\"" } else { ",\"" });
            out.push_str(key);
            out.push_str("\":");
            jcs::write_string(&mut out, value);
        }
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"tenant_id\":");
        jcs::write_string(&mut out, &self.tenant_id);
        out.push('}');
        out
    }

    /// The same text through a JSON tree and the general JCS writer.
    pub fn canonical_by_tree(&self) -> String {
        jcs::to_string(&json!({
            "format": LEDGER_FORMAT,
            "tenant_id": self.tenant_id,
            "ledger": self.ledger,
            "seq": self.seq,
            "event_hash": self.event_hash,
            "outcome": self.outcome.as_str(),
            "received_at": self.received_at,
            "prev": self.prev,
        }))
    }

    /// The hash this entry must have.
    pub fn compute_hash(&self) -> String {
        crate::hex::encode(&Sha256::digest(self.canonical().as_bytes()))
    }

    /// Sets `hash`.
    pub fn seal(&mut self) {
        self.hash = self.compute_hash();
    }
}

/// `received_at` for Unix microseconds: `YYYY-MM-DDTHH:MM:SS.ssssssZ`.
pub fn format_received_at(unix_micros: i64) -> String {
    let ms = crate::timestamp::format_ms(unix_micros.div_euclid(1000));
    let micros = unix_micros.rem_euclid(1000);
    // "…SS.sssZ" → "…SS.sss" + three more digits + "Z".
    format!("{}{micros:03}Z", &ms[..ms.len() - 1])
}

/// Where a pulled ledger stops making sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerBreak {
    /// The entry's `seq`.
    pub seq: u64,
    /// What is wrong, for people.
    pub message: String,
}

/// Checks a ledger fed in `seq` order, from a checkpoint.
#[derive(Debug, Clone)]
pub struct LedgerVerifier {
    tenant_id: String,
    ledger: String,
    next_seq: u64,
    prev: String,
}

impl LedgerVerifier {
    /// A verifier for `ledger` of `tenant_id` whose last trusted entry was
    /// `(seq, hash)` (`(0, 64 zeros)` for a fresh client).
    pub fn new(tenant_id: &str, ledger: &str, seq: u64, hash: &str) -> Self {
        LedgerVerifier {
            tenant_id: tenant_id.to_string(),
            ledger: ledger.to_string(),
            next_seq: seq + 1,
            prev: hash.to_string(),
        }
    }

    /// The checkpoint reached so far: `(seq, hash)`.
    pub fn checkpoint(&self) -> (u64, &str) {
        (self.next_seq - 1, &self.prev)
    }

    /// Checks the next entry and advances the checkpoint.
    pub fn feed(&mut self, e: &LedgerEntry) -> Result<(), LedgerBreak> {
        let fail = |message: String| {
            Err(LedgerBreak {
                seq: e.seq,
                message,
            })
        };
        if e.tenant_id != self.tenant_id || e.ledger != self.ledger {
            return fail(format!(
                "entry {} belongs to ledger {:?} of tenant {:?}, not {:?} of {:?}",
                e.seq, e.ledger, e.tenant_id, self.ledger, self.tenant_id
            ));
        }
        if e.seq != self.next_seq {
            return fail(format!(
                "entry {} arrived where entry {} belongs: the ledger has a gap or was reordered",
                e.seq, self.next_seq
            ));
        }
        if e.prev != self.prev {
            return fail(format!(
                "entry {} does not link to the previous entry: the server's history was rewritten or forked",
                e.seq
            ));
        }
        if e.compute_hash() != e.hash {
            return fail(format!("entry {} does not match its hash", e.seq));
        }
        self.prev = e.hash.clone();
        self.next_seq += 1;
        Ok(())
    }
}

/// Parses an entry from JSON, ignoring members other than its fields.
pub fn entry_from_value(v: &Value) -> Result<LedgerEntry, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("not a ledger entry: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, prev: &str) -> LedgerEntry {
        let mut e = LedgerEntry {
            tenant_id: "study-1".into(),
            ledger: TENANT_LEDGER.into(),
            seq,
            event_hash: "ab".repeat(32),
            outcome: LedgerOutcome::Accepted,
            received_at: format_received_at(1_763_776_279_123_456),
            prev: prev.into(),
            hash: String::new(),
        };
        e.seal();
        e
    }

    #[test]
    fn the_canonical_text_is_the_general_jcs_of_the_fields() {
        let mut e = entry(u64::MAX, &"0".repeat(64));
        assert_eq!(e.canonical(), e.canonical_by_tree());
        e.tenant_id = "t\u{1}\"é\u{2028}😀".into();
        e.ledger = "user:ü\\n".into();
        for outcome in [
            LedgerOutcome::Accepted,
            LedgerOutcome::Conflict,
            LedgerOutcome::Quarantined,
        ] {
            e.outcome = outcome;
            e.seq = 0;
            assert_eq!(e.canonical(), e.canonical_by_tree());
        }
    }

    #[test]
    fn received_at_has_microseconds() {
        assert_eq!(
            format_received_at(1_763_776_279_123_456),
            "2025-11-22T01:51:19.123456Z"
        );
        assert_eq!(format_received_at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_received_at(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn golden_ledger_entry() {
        // Cross-checked with an independent Node implementation of JCS and
        // SHA-256 (docs/FORMAT.md §11.5).
        let e = entry(1, LEDGER_GENESIS);
        assert_eq!(
            e.canonical(),
            r#"{"event_hash":"abababababababababababababababababababababababababababababababab","format":"annal-ledger/1","ledger":"tenant","outcome":"accepted","prev":"0000000000000000000000000000000000000000000000000000000000000000","received_at":"2025-11-22T01:51:19.123456Z","seq":1,"tenant_id":"study-1"}"#
        );
        assert_eq!(e.hash, GOLDEN_HASH);
    }

    #[test]
    fn format_md_quotes_the_golden_entry() {
        let doc = include_str!("../docs/FORMAT.md");
        let e = entry(1, LEDGER_GENESIS);
        assert!(
            doc.contains(&e.canonical()),
            "§11.5 must quote the canonical entry"
        );
        assert!(
            doc.contains(&format!("hash {}", e.hash)),
            "§11.5 must quote its hash"
        );
    }

    const GOLDEN_HASH: &str = "38c64335f9f0abe9516ed3e5b49f5c06e34c9e8189a5d64c426e4bac54364843";

    #[test]
    fn the_verifier_catches_gaps_forks_and_edits() {
        let a = entry(1, LEDGER_GENESIS);
        let b = entry(2, &a.hash);
        let c = entry(3, &b.hash);
        let mut v = LedgerVerifier::new("study-1", TENANT_LEDGER, 0, LEDGER_GENESIS);
        v.feed(&a).unwrap();
        v.feed(&b).unwrap();
        assert_eq!(v.checkpoint(), (2, b.hash.as_str()));
        // Resume from the checkpoint.
        let mut resumed = LedgerVerifier::new("study-1", TENANT_LEDGER, 2, &b.hash);
        resumed.feed(&c).unwrap();
        // A gap.
        let mut gap = LedgerVerifier::new("study-1", TENANT_LEDGER, 1, &a.hash);
        assert!(gap.feed(&c).is_err());
        // A fork: a different entry 2.
        let mut forked = entry(2, &a.hash);
        forked.event_hash = "cd".repeat(32);
        forked.seal();
        let mut v2 = LedgerVerifier::new("study-1", TENANT_LEDGER, 2, &b.hash);
        assert!(v2.feed(&entry(3, &forked.hash)).is_err());
        // An edit without re-hashing.
        let mut edited = c.clone();
        edited.outcome = LedgerOutcome::Quarantined;
        let mut v3 = LedgerVerifier::new("study-1", TENANT_LEDGER, 2, &b.hash);
        assert!(v3.feed(&edited).is_err());
        // Another ledger's entry.
        let mut other = c.clone();
        other.ledger = user_ledger("u-1");
        other.seal();
        let mut v4 = LedgerVerifier::new("study-1", TENANT_LEDGER, 2, &b.hash);
        assert!(v4.feed(&other).is_err());
    }
}
