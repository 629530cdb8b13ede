//! The ledger export (`annal-ledger-export/1`): one server ledger, the
//! tenant ledger or a user ledger, written out whole from genesis with what
//! each entry records; and the offline check of such a document. It is to a
//! server ledger what the audit export ([`crate::audit`]) is to a device
//! chain. See docs/FORMAT.md §11.6.
//!
//! The document is written in pieces (`begin`, one `item` per entry, `end`)
//! so that a large ledger never has to sit in memory as one string.

use crate::envelope::Envelope;
use crate::jcs::write_string;
use crate::ledger::{self, LedgerEntry, LedgerOutcome, LedgerVerifier, TENANT_LEDGER};
use crate::payload::{Payload, SALT_LEN};
use crate::{hex, ids, jcs, strict_json};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// `format` of a ledger export.
pub const LEDGER_EXPORT_FORMAT: &str = "annal-ledger-export/1";

const DOCUMENT_MEMBERS: [&str; 6] = [
    "format",
    "exported_at",
    "tenant_id",
    "ledger",
    "items",
    "head",
];
const HEAD_MEMBERS: [&str; 2] = ["seq", "hash"];
const ITEM_MEMBERS: [&str; 5] = ["entry", "receipt", "event", "quarantine", "conflicts_with"];
const ENTRY_MEMBERS: [&str; 8] = [
    "tenant_id",
    "ledger",
    "seq",
    "event_hash",
    "outcome",
    "received_at",
    "prev",
    "hash",
];
const RECEIPT_MEMBERS: [&str; 5] = [
    "server_seq",
    "user_seq",
    "ledger_hash",
    "user_ledger_hash",
    "received_at",
];
const EVENT_MEMBERS: [&str; 3] = ["envelope", "salt", "payload"];
const QUARANTINE_MEMBERS: [&str; 4] = ["code", "message", "claimed_hash", "submitted"];

// ---------------------------------------------------------------------------
// Writing

/// The opening of a ledger export, up to the first item. The head comes
/// last (see [`end`]) so a document can be written while the ledger is read.
pub fn begin(tenant_id: &str, ledger: &str, exported_at: &str) -> String {
    let mut out = String::from("{\"format\":");
    write_string(&mut out, LEDGER_EXPORT_FORMAT);
    out.push_str(",\"exported_at\":");
    write_string(&mut out, exported_at);
    out.push_str(",\"tenant_id\":");
    write_string(&mut out, tenant_id);
    out.push_str(",\"ledger\":");
    write_string(&mut out, ledger);
    out.push_str(",\"items\":[");
    out
}

/// One item, exactly as `GET /v1/events` serves it (`{ entry, receipt,
/// event?, quarantine?, conflicts_with? }`), in canonical form, preceded by
/// a comma unless it is the first.
pub fn item(first: bool, item: &Value) -> String {
    let mut out = String::new();
    if !first {
        out.push(',');
    }
    jcs::write_value(&mut out, item);
    out
}

/// The end of a ledger export: the head, `seq` and `hash` of the last
/// entry, or `(0, 64 zeros)` for an empty ledger.
pub fn end(seq: u64, hash: &str) -> String {
    let mut out = format!("],\"head\":{{\"seq\":{seq},\"hash\":");
    write_string(&mut out, hash);
    out.push_str("}}");
    out
}

// ---------------------------------------------------------------------------
// Checking

/// Why a ledger export failed. The string forms are stable API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerExportReason {
    /// An item is not shaped as §11.6 requires, or what it records cannot be
    /// read (envelope, salt or payload breaking §2–§3).
    Malformed,
    /// An entry names another tenant or ledger than the document.
    WrongLedger,
    /// Entries were reordered, or one appears twice.
    OutOfOrder,
    /// An entry is absent: the next one follows a gap.
    MissingEntry,
    /// An entry's `prev` is not the previous entry's `hash`.
    BrokenLink,
    /// An entry's `hash` is not the hash of its fields (§11.3).
    EntryHashMismatch,
    /// The receipt does not describe the entry.
    ReceiptMismatch,
    /// What the item carries (`event`, `quarantine`, `conflicts_with`)
    /// contradicts the entry's `outcome`.
    OutcomeMismatch,
    /// An envelope's `hash` is not the hash of its other fields (§5).
    HashMismatch,
    /// The event the item carries is not the one the entry records.
    EventHashMismatch,
    /// A `payload_digest` does not match the salt and payload (§4).
    PayloadDigestMismatch,
    /// An event names another tenant, or (user ledger) another user.
    IdentityMismatch,
    /// The head names entries past the end of the items.
    Truncated,
    /// The head does not describe the last entry, or is not the anchor.
    HeadMismatch,
}

impl LedgerExportReason {
    /// The stable string form, e.g. `PAYLOAD_DIGEST_MISMATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerExportReason::Malformed => "MALFORMED",
            LedgerExportReason::WrongLedger => "WRONG_LEDGER",
            LedgerExportReason::OutOfOrder => "OUT_OF_ORDER",
            LedgerExportReason::MissingEntry => "MISSING_ENTRY",
            LedgerExportReason::BrokenLink => "BROKEN_LINK",
            LedgerExportReason::EntryHashMismatch => "ENTRY_HASH_MISMATCH",
            LedgerExportReason::ReceiptMismatch => "RECEIPT_MISMATCH",
            LedgerExportReason::OutcomeMismatch => "OUTCOME_MISMATCH",
            LedgerExportReason::HashMismatch => "HASH_MISMATCH",
            LedgerExportReason::EventHashMismatch => "EVENT_HASH_MISMATCH",
            LedgerExportReason::PayloadDigestMismatch => "PAYLOAD_DIGEST_MISMATCH",
            LedgerExportReason::IdentityMismatch => "IDENTITY_MISMATCH",
            LedgerExportReason::Truncated => "TRUNCATED",
            LedgerExportReason::HeadMismatch => "HEAD_MISMATCH",
        }
    }
}

impl fmt::Display for LedgerExportReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first failure of a ledger export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerExportBreak {
    /// The ledger `seq` at which the export stops making sense.
    pub seq: u64,
    /// Why, as a stable code.
    pub reason: LedgerExportReason,
    /// Why, for people.
    pub message: String,
}

/// The result of checking a ledger export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerExportReport {
    /// Whether everything verified.
    pub ok: bool,
    /// How many entries verified before the first failure (all, if ok).
    pub checked: u64,
    /// The first failure, if any.
    pub first_break: Option<LedgerExportBreak>,
}

/// The head a ledger export claims: its last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    /// `seq` of the last entry, 0 for an empty ledger.
    pub seq: u64,
    /// `hash` of the last entry, 64 zeros for an empty ledger.
    pub hash: String,
}

/// Options for checking a ledger export.
#[derive(Debug, Clone, Default)]
pub struct LedgerExportCheck {
    /// An anchor from outside the document, such as a receipt's
    /// `ledger_hash` (tenant ledger) or `user_ledger_hash` (user ledger) of
    /// the last entry: the head hash the ledger must end at. Catches
    /// truncation and rewriting of the document's own head.
    pub expected_head_hash: Option<String>,
}

/// What a ledger export claims, and its verification.
#[derive(Debug, Clone)]
pub struct LedgerExportOutcome {
    /// The document's `tenant_id`.
    pub tenant_id: String,
    /// The document's `ledger`: `"tenant"` or `"user:<id>"`.
    pub ledger: String,
    /// The document's `head`.
    pub head: LedgerHead,
    /// The verification result.
    pub report: LedgerExportReport,
}

/// Checks a ledger export given as JSON text. Errors (`Err`) mean the text
/// is not a ledger export at all; a document that is one but does not
/// verify is an `Ok` whose report names the first failure.
pub fn check(text: &str, options: &LedgerExportCheck) -> Result<LedgerExportOutcome, String> {
    let doc = strict_json::parse(text).map_err(|e| format!("not a JSON document: {e}"))?;
    check_value(&doc, options)
}

/// Checks a ledger export already parsed (strictly, with
/// [`strict_json::parse`]: duplicate member names must have been refused).
pub fn check_value(
    doc: &Value,
    options: &LedgerExportCheck,
) -> Result<LedgerExportOutcome, String> {
    if doc.get("format").and_then(Value::as_str) != Some(LEDGER_EXPORT_FORMAT) {
        return Err(format!(
            "not an annal ledger export (format is not {LEDGER_EXPORT_FORMAT:?})"
        ));
    }
    let members = doc.as_object().ok_or("not a JSON object")?;
    if let Some(k) = unknown_member(members, &DOCUMENT_MEMBERS) {
        return Err(format!(
            "unknown member {k:?} in an {LEDGER_EXPORT_FORMAT} document"
        ));
    }
    let text_field = |obj: &Value, name: &str| -> Result<String, String> {
        obj.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("missing {name}"))
    };
    text_field(doc, "exported_at")?;
    let tenant_id = text_field(doc, "tenant_id")?;
    ids::check_id("tenant_id", &tenant_id).map_err(|e| e.message)?;
    let ledger = text_field(doc, "ledger")?;
    let user = ledger_user(&ledger)?;
    let head_value = doc.get("head").ok_or("missing head")?;
    let head = match head_value.as_object() {
        Some(m) if unknown_member(m, &HEAD_MEMBERS).is_none() => LedgerHead {
            seq: head_value
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or("missing head.seq")?,
            hash: text_field(head_value, "hash")
                .ok()
                .filter(|h| hex::is_lower_hex(h, 32))
                .ok_or("head.hash must be 64 lowercase hex digits")?,
        },
        _ => return Err("head must be { seq, hash } and nothing else".into()),
    };
    let items = doc
        .get("items")
        .and_then(Value::as_array)
        .ok_or("missing items")?;

    let mut run = Run {
        tenant_id: &tenant_id,
        ledger: &ledger,
        user: user.as_deref(),
        verifier: LedgerVerifier::new(&tenant_id, &ledger, 0, ledger::LEDGER_GENESIS),
        last_server_seq: 0,
        user_seqs: HashMap::new(),
    };
    let mut first_break = None;
    let mut checked = 0;
    for index in 0..items.len() {
        if let Err(b) = run.item(index, items) {
            first_break = Some(b);
            break;
        }
        checked += 1;
    }
    let (last, last_hash) = {
        let (seq, hash) = run.verifier.checkpoint();
        (seq, hash.to_string())
    };
    if first_break.is_none() {
        first_break = if head.seq > last {
            Some(LedgerExportBreak {
                seq: last + 1,
                reason: LedgerExportReason::Truncated,
                message: format!(
                    "the items end at entry {last} but the head names entry {}: entries were removed from the end",
                    head.seq
                ),
            })
        } else if head.seq < last || head.hash != last_hash {
            Some(LedgerExportBreak {
                seq: head.seq.min(last).max(1),
                reason: LedgerExportReason::HeadMismatch,
                message: format!(
                    "the head (entry {}) does not describe the last entry ({last})",
                    head.seq
                ),
            })
        } else {
            match &options.expected_head_hash {
                Some(anchor) if *anchor != head.hash => Some(LedgerExportBreak {
                    seq: head.seq,
                    reason: LedgerExportReason::HeadMismatch,
                    message: format!(
                        "the ledger ends at entry {} with hash {}, not at the expected anchor {anchor}: \
                         its tail was removed or rewritten",
                        head.seq, head.hash
                    ),
                }),
                _ => None,
            }
        };
    }
    Ok(LedgerExportOutcome {
        tenant_id: tenant_id.clone(),
        ledger: ledger.clone(),
        head,
        report: LedgerExportReport {
            ok: first_break.is_none(),
            checked,
            first_break,
        },
    })
}

/// The user of a ledger name: `None` for `"tenant"`, the id for `"user:<id>"`.
fn ledger_user(ledger: &str) -> Result<Option<String>, String> {
    if ledger == TENANT_LEDGER {
        return Ok(None);
    }
    match ledger.strip_prefix("user:") {
        Some(user) => {
            ids::check_id("user_id", user)
                .map_err(|e| format!("ledger {ledger:?}: {}", e.message))?;
            Ok(Some(user.to_string()))
        }
        None => Err(format!(
            "ledger must be \"tenant\" or \"user:<id>\", not {ledger:?}"
        )),
    }
}

fn unknown_member<'a>(members: &'a Map<String, Value>, known: &[&str]) -> Option<&'a String> {
    members.keys().find(|k| !known.contains(&k.as_str()))
}

/// The state of one check, item by item.
struct Run<'a> {
    tenant_id: &'a str,
    ledger: &'a str,
    /// The user of a user ledger.
    user: Option<&'a str>,
    verifier: LedgerVerifier,
    /// User ledger: the last receipt's `server_seq`.
    last_server_seq: u64,
    /// Tenant ledger: the last receipt's `user_seq` of each user, from the
    /// items that carry an event.
    user_seqs: HashMap<String, u64>,
}

/// A receipt as served.
struct Receipt {
    server_seq: u64,
    user_seq: u64,
    ledger_hash: String,
    user_ledger_hash: String,
    received_at: String,
}

impl Run<'_> {
    /// Checks `items[index]`, which must be the entry `index + 1`.
    fn item(&mut self, index: usize, items: &[Value]) -> Result<(), LedgerExportBreak> {
        let expected = index as u64 + 1;
        let item = &items[index];
        let fail = |seq: u64, reason: LedgerExportReason, message: String| LedgerExportBreak {
            seq,
            reason,
            message,
        };
        let malformed = |why: String| {
            fail(
                expected,
                LedgerExportReason::Malformed,
                format!("item {expected}: {why}"),
            )
        };

        // 1. Shape, and the entry.
        let Value::Object(members) = item else {
            return Err(malformed("an item must be an object".into()));
        };
        if let Some(k) = unknown_member(members, &ITEM_MEMBERS) {
            return Err(malformed(format!("unknown member {k:?}")));
        }
        let entry = read_entry(item.get("entry")).map_err(&malformed)?;

        // 2. The ledger chain: the right ledger, position, link and hash.
        if entry.tenant_id != self.tenant_id || entry.ledger != self.ledger {
            return Err(fail(
                expected,
                LedgerExportReason::WrongLedger,
                format!(
                    "entry {} belongs to ledger {:?} of tenant {:?}, not {:?} of {:?}",
                    entry.seq, entry.ledger, entry.tenant_id, self.ledger, self.tenant_id
                ),
            ));
        }
        if entry.seq > expected {
            let later = items[index + 1..]
                .iter()
                .any(|i| i["entry"]["seq"].as_u64() == Some(expected));
            return Err(if later {
                fail(
                    expected,
                    LedgerExportReason::OutOfOrder,
                    format!(
                        "entry {} stands where entry {expected} belongs, which comes later: entries were reordered",
                        entry.seq
                    ),
                )
            } else {
                fail(
                    expected,
                    LedgerExportReason::MissingEntry,
                    format!(
                        "entry {expected} is missing: entry {} follows entry {}",
                        entry.seq,
                        expected - 1
                    ),
                )
            });
        }
        if entry.seq < expected {
            return Err(fail(
                entry.seq,
                LedgerExportReason::OutOfOrder,
                format!(
                    "entry {} appears again where entry {expected} belongs: entries were duplicated or reordered",
                    entry.seq
                ),
            ));
        }
        let linked = entry.prev == self.verifier.checkpoint().1;
        self.verifier.feed(&entry).map_err(|b| {
            let reason = if linked {
                LedgerExportReason::EntryHashMismatch
            } else {
                LedgerExportReason::BrokenLink
            };
            fail(b.seq, reason, b.message)
        })?;
        let seq = entry.seq;

        // 3. The receipt describes the entry.
        let receipt = read_receipt(item.get("receipt")).map_err(&malformed)?;
        let (own_seq, own_hash, seq_name, hash_name) = match self.user {
            None => (
                receipt.server_seq,
                &receipt.ledger_hash,
                "server_seq",
                "ledger_hash",
            ),
            Some(_) => (
                receipt.user_seq,
                &receipt.user_ledger_hash,
                "user_seq",
                "user_ledger_hash",
            ),
        };
        let receipt_fail = |why: String| {
            fail(
                seq,
                LedgerExportReason::ReceiptMismatch,
                format!("the receipt of entry {seq} {why}"),
            )
        };
        if own_seq != seq {
            return Err(receipt_fail(format!("has {seq_name} {own_seq}, not {seq}")));
        }
        if *own_hash != entry.hash {
            return Err(receipt_fail(format!(
                "has a {hash_name} that is not the entry's hash"
            )));
        }
        if receipt.received_at != entry.received_at {
            return Err(receipt_fail(format!(
                "says received_at {:?}, the entry {:?}",
                receipt.received_at, entry.received_at
            )));
        }
        if self.user.is_some() {
            // A user ledger follows the tenant ledger's order.
            if receipt.server_seq <= self.last_server_seq {
                return Err(receipt_fail(format!(
                    "has server_seq {}, not after the previous entry's {}",
                    receipt.server_seq, self.last_server_seq
                )));
            }
            self.last_server_seq = receipt.server_seq;
        }

        // 4. What the item carries agrees with the outcome.
        let event = item.get("event");
        let quarantine = item.get("quarantine");
        let conflicts_with = item.get("conflicts_with");
        let outcome_fail = |why: &str| {
            fail(
                seq,
                LedgerExportReason::OutcomeMismatch,
                format!("entry {seq} is {} but {why}", entry.outcome),
            )
        };
        match entry.outcome {
            LedgerOutcome::Accepted | LedgerOutcome::Conflict => {
                if event.is_none() {
                    return Err(outcome_fail("the item carries no event"));
                }
                if quarantine.is_some() {
                    return Err(outcome_fail("the item carries a quarantine record"));
                }
            }
            LedgerOutcome::Quarantined => {
                if event.is_some() {
                    return Err(outcome_fail("the item carries an event"));
                }
                if quarantine.is_none() {
                    return Err(outcome_fail("the item carries no quarantine record"));
                }
            }
        }
        if let Some(ids) = conflicts_with {
            if entry.outcome != LedgerOutcome::Conflict {
                return Err(outcome_fail("the item lists conflicting events"));
            }
            let ok = ids
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
            if !ok {
                return Err(malformed(
                    "conflicts_with must be a non-empty array of event ids".into(),
                ));
            }
        }

        // 5. The event, or the quarantine record, is the one entered.
        if let Some(event) = event {
            let (envelope, salt, payload) = read_event(event).map_err(&malformed)?;
            let computed = envelope.compute_hash();
            if computed != envelope.hash {
                return Err(fail(
                    seq,
                    LedgerExportReason::HashMismatch,
                    format!("the envelope of entry {seq} does not match its hash"),
                ));
            }
            if computed != entry.event_hash {
                return Err(fail(
                    seq,
                    LedgerExportReason::EventHashMismatch,
                    format!("entry {seq} records another event than the item carries"),
                ));
            }
            if payload.digest(&salt) != envelope.payload_digest {
                return Err(fail(
                    seq,
                    LedgerExportReason::PayloadDigestMismatch,
                    format!("the payload of entry {seq} does not match its payload_digest"),
                ));
            }
            if envelope.tenant_id != self.tenant_id {
                return Err(fail(
                    seq,
                    LedgerExportReason::IdentityMismatch,
                    format!(
                        "the event of entry {seq} belongs to tenant {:?}, not {:?}",
                        envelope.tenant_id, self.tenant_id
                    ),
                ));
            }
            match self.user {
                Some(user) if envelope.user_id != user => {
                    return Err(fail(
                        seq,
                        LedgerExportReason::IdentityMismatch,
                        format!(
                            "the event of entry {seq} belongs to user {:?}, not {user:?}",
                            envelope.user_id
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    // The tenant ledger follows each user ledger's order.
                    let last = self.user_seqs.entry(envelope.user_id.clone()).or_insert(0);
                    if receipt.user_seq <= *last {
                        return Err(receipt_fail(format!(
                            "has user_seq {} of user {:?}, not after that user's previous {}",
                            receipt.user_seq, envelope.user_id, *last
                        )));
                    }
                    *last = receipt.user_seq;
                }
            }
        }
        if let Some(q) = quarantine {
            let (claimed_hash, submitted) = read_quarantine(q).map_err(&malformed)?;
            if submitted_hash(submitted) != entry.event_hash {
                return Err(fail(
                    seq,
                    LedgerExportReason::EventHashMismatch,
                    format!("entry {seq} records another submission than the item carries"),
                ));
            }
            let submitted_claim = submitted
                .get("envelope")
                .and_then(|e| e.get("hash"))
                .and_then(Value::as_str);
            if claimed_hash != submitted_claim {
                return Err(fail(
                    seq,
                    LedgerExportReason::EventHashMismatch,
                    format!(
                        "the claimed_hash of entry {seq} is not the hash its submitted envelope claims"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads an entry: exactly its eight members, of the right types.
fn read_entry(v: Option<&Value>) -> Result<LedgerEntry, String> {
    let members = v
        .and_then(Value::as_object)
        .ok_or("entry is missing or not an object")?;
    if let Some(k) = unknown_member(members, &ENTRY_MEMBERS) {
        return Err(format!("entry has an unknown member {k:?}"));
    }
    let entry = ledger::entry_from_value(v.unwrap_or(&Value::Null))?;
    if entry.seq == 0 {
        return Err("entry seq must be 1 or more".into());
    }
    Ok(entry)
}

/// Reads a receipt: exactly its five members, of the right types.
fn read_receipt(v: Option<&Value>) -> Result<Receipt, String> {
    let members = v
        .and_then(Value::as_object)
        .ok_or("receipt is missing or not an object")?;
    if let Some(k) = unknown_member(members, &RECEIPT_MEMBERS) {
        return Err(format!("receipt has an unknown member {k:?}"));
    }
    let number = |name: &str| {
        members
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("receipt.{name} must be a whole number"))
    };
    let text = |name: &str| {
        members
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("receipt.{name} must be a string"))
    };
    Ok(Receipt {
        server_seq: number("server_seq")?,
        user_seq: number("user_seq")?,
        ledger_hash: text("ledger_hash")?,
        user_ledger_hash: text("user_ledger_hash")?,
        received_at: text("received_at")?,
    })
}

/// Reads an event `{ envelope, salt, payload }` strictly: §2 for the
/// envelope, 32 lowercase hex digits of salt, §3.2 for the payload.
fn read_event(v: &Value) -> Result<(Envelope, [u8; SALT_LEN], Payload), String> {
    let members = v.as_object().ok_or("event is not an object")?;
    if let Some(k) = unknown_member(members, &EVENT_MEMBERS) {
        return Err(format!("event has an unknown member {k:?}"));
    }
    let envelope = Envelope::from_value(members.get("envelope").ok_or("event has no envelope")?)
        .map_err(|e| format!("envelope: {e}"))?;
    let salt = members
        .get("salt")
        .and_then(Value::as_str)
        .and_then(hex::decode::<SALT_LEN>)
        .ok_or("salt must be 32 lowercase hex digits")?;
    let payload = Payload::from_value(members.get("payload").ok_or("event has no payload")?)
        .map_err(|e| format!("payload: {}", e.message))?;
    Ok((envelope, salt, payload))
}

/// Reads a quarantine record: `code` and `message` strings, an optional
/// `claimed_hash` string, and `submitted`, any JSON.
fn read_quarantine(v: &Value) -> Result<(Option<&str>, &Value), String> {
    let members = v.as_object().ok_or("quarantine is not an object")?;
    if let Some(k) = unknown_member(members, &QUARANTINE_MEMBERS) {
        return Err(format!("quarantine has an unknown member {k:?}"));
    }
    for name in ["code", "message"] {
        if !members.get(name).is_some_and(Value::is_string) {
            return Err(format!("quarantine.{name} must be a string"));
        }
    }
    let claimed_hash = match members.get("claimed_hash") {
        None => None,
        Some(Value::String(h)) => Some(h.as_str()),
        Some(_) => return Err("quarantine.claimed_hash must be a string".into()),
    };
    let submitted = members
        .get("submitted")
        .ok_or("quarantine has no submitted entry")?;
    Ok((claimed_hash, submitted))
}

/// The `event_hash` the server computes for a pushed entry (§11.3): over
/// the envelope without `hash` when there is an envelope object, else over
/// the whole entry.
pub fn submitted_hash(submitted: &Value) -> String {
    let canonical = match submitted.get("envelope") {
        Some(Value::Object(map)) => {
            let mut m = map.clone();
            m.remove("hash");
            jcs::to_string(&Value::Object(m))
        }
        _ => jcs::to_string(submitted),
    };
    hex::encode(&Sha256::digest(canonical.as_bytes()))
}

// ---------------------------------------------------------------------------
// Building exports for tests

/// Test support, not API (hidden from the docs, and may change at any time):
/// ledger exports built without a server, for annal's tests and
/// annal-verify's.
#[doc(hidden)]
pub mod testing {
    use super::{begin, end, item, submitted_hash};
    use crate::ledger::{user_ledger, LedgerEntry, LedgerOutcome, LEDGER_GENESIS, TENANT_LEDGER};
    use crate::record::Record;
    use crate::{hex, strict_json};
    use serde_json::{json, Value};

    /// The tenant ledger and one user's ledger, with events entered as
    /// annal-server enters them: both ledgers advance for every event, and
    /// its receipt names both.
    #[derive(Debug, Clone)]
    pub struct Ledgers {
        tenant_id: String,
        user_id: String,
        /// `seq` and `hash` of the last entry: the tenant ledger's, then the
        /// user ledger's.
        heads: [(u64, String); 2],
        /// The items: the tenant ledger's, then the user ledger's.
        items: [Vec<Value>; 2],
    }

    impl Ledgers {
        /// Both ledgers empty.
        pub fn new(tenant_id: &str, user_id: &str) -> Ledgers {
            Ledgers {
                tenant_id: tenant_id.into(),
                user_id: user_id.into(),
                heads: std::array::from_fn(|_| (0, LEDGER_GENESIS.to_string())),
                items: [Vec::new(), Vec::new()],
            }
        }

        /// Enters `record`, pushed as it is, with `outcome`, at
        /// `received_at`. A quarantined event is recorded as a submission
        /// refused for its schema; a conflict names one other event.
        pub fn enter(&mut self, record: &Record, outcome: LedgerOutcome, received_at: &str) {
            let pushed = json!({
                "envelope": record.envelope.to_value(false),
                "salt": hex::encode(&record.salt),
                "payload": strict_json::parse(record.payload.as_str()).expect("a payload is JSON"),
            });
            let event_hash = match outcome {
                LedgerOutcome::Accepted | LedgerOutcome::Conflict => record.envelope.hash.clone(),
                LedgerOutcome::Quarantined => submitted_hash(&pushed),
            };
            let mut entries = Vec::new();
            for (name, head) in [TENANT_LEDGER.to_string(), user_ledger(&self.user_id)]
                .into_iter()
                .zip(self.heads.iter_mut())
            {
                let mut e = LedgerEntry {
                    tenant_id: self.tenant_id.clone(),
                    ledger: name,
                    seq: head.0 + 1,
                    event_hash: event_hash.clone(),
                    outcome,
                    received_at: received_at.into(),
                    prev: head.1.clone(),
                    hash: String::new(),
                };
                e.seal();
                *head = (e.seq, e.hash.clone());
                entries.push(e);
            }
            let receipt = json!({
                "server_seq": entries[0].seq,
                "user_seq": entries[1].seq,
                "ledger_hash": entries[0].hash,
                "user_ledger_hash": entries[1].hash,
                "received_at": received_at,
            });
            for (entry, items) in entries.iter().zip(self.items.iter_mut()) {
                let mut item = json!({"entry": entry, "receipt": receipt});
                match outcome {
                    LedgerOutcome::Accepted => item["event"] = pushed.clone(),
                    LedgerOutcome::Conflict => {
                        item["event"] = pushed.clone();
                        item["conflicts_with"] = json!(["018bcfe5-7000-7fff-bfff-ffffffffffff"]);
                    }
                    LedgerOutcome::Quarantined => {
                        item["quarantine"] = json!({
                            "code": "SCHEMA_NOT_ALLOWED",
                            "message": "noted schema_version 1 is above 0",
                            "claimed_hash": record.envelope.hash,
                            "submitted": pushed,
                        });
                    }
                }
                items.push(item);
            }
        }

        /// The export of `ledger`, the tenant ledger or the user's, as
        /// annal-server writes it.
        pub fn export(&self, ledger: &str, exported_at: &str) -> String {
            let own = if ledger == TENANT_LEDGER {
                0
            } else {
                assert_eq!(
                    ledger,
                    user_ledger(&self.user_id),
                    "not one of these ledgers"
                );
                1
            };
            let mut text = begin(&self.tenant_id, ledger, exported_at);
            for (i, it) in self.items[own].iter().enumerate() {
                text.push_str(&item(i == 0, it));
            }
            let (seq, hash) = &self.heads[own];
            text.push_str(&end(*seq, hash));
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::draft::Draft;
    use crate::entropy::SeededEntropy;
    use crate::ledger::{format_received_at, user_ledger, LEDGER_GENESIS};
    use crate::memory::MemoryStore;
    use crate::state::Identity;
    use serde_json::json;
    use testing::Ledgers;

    const TENANT: &str = "study-1";
    const USER: &str = "nurse-1";

    /// A ledger export of `ledger` with an event of each outcome in
    /// `outcomes`, in order.
    fn export(ledger: &str, outcomes: &[LedgerOutcome]) -> Value {
        let clock = ManualClock::new(1_700_000_000_000);
        let entropy = SeededEntropy::new(7);
        let identity = Identity::generate(TENANT, USER, &clock, &entropy);
        let mut store = MemoryStore::new(identity, Box::new(clock), Box::new(entropy));
        let mut ledgers = Ledgers::new(TENANT, USER);
        for (i, outcome) in outcomes.iter().enumerate() {
            let record = store
                .append(
                    Draft::from_value(&json!({
                        "aggregateType": "diary",
                        "aggregateId": format!("d-{}", i % 3),
                        "eventType": "noted",
                        "payload": {"i": i, "text": "douleur 3/10 — 痛み", "n": [1.5, -0.0, 1e-7]}
                    }))
                    .unwrap(),
                )
                .unwrap();
            let received_at = format_received_at(1_763_776_279_000_000 + i as i64 * 1234);
            ledgers.enter(&record, *outcome, &received_at);
        }
        strict_json::parse(&ledgers.export(ledger, "2025-11-22T02:00:00.000000Z")).unwrap()
    }

    const MIX: [LedgerOutcome; 8] = [
        LedgerOutcome::Accepted,
        LedgerOutcome::Accepted,
        LedgerOutcome::Quarantined,
        LedgerOutcome::Accepted,
        LedgerOutcome::Conflict,
        LedgerOutcome::Accepted,
        LedgerOutcome::Accepted,
        LedgerOutcome::Accepted,
    ];

    fn valid() -> Value {
        export(TENANT_LEDGER, &MIX)
    }

    fn run(doc: &Value, anchor: Option<&str>) -> LedgerExportOutcome {
        let options = LedgerExportCheck {
            expected_head_hash: anchor.map(str::to_string),
        };
        check(&doc.to_string(), &options).expect("a ledger export")
    }

    fn assert_fails(
        doc: &Value,
        anchor: Option<&str>,
        seq: u64,
        reason: LedgerExportReason,
    ) -> LedgerExportOutcome {
        let outcome = run(doc, anchor);
        let b = outcome
            .report
            .first_break
            .clone()
            .unwrap_or_else(|| panic!("expected {reason} at {seq}, but it verified"));
        assert_eq!((b.seq, b.reason), (seq, reason), "{}", b.message);
        assert!(!outcome.report.ok);
        outcome
    }

    fn items(doc: &mut Value) -> &mut Vec<Value> {
        doc["items"].as_array_mut().unwrap()
    }

    fn head_hash(doc: &Value) -> String {
        doc["head"]["hash"].as_str().unwrap().to_string()
    }

    /// Points `head` at the last item's entry, as a careful editor would.
    fn fix_head(doc: &mut Value) {
        let last = items(doc).last().unwrap()["entry"].clone();
        doc["head"] = json!({"seq": last["seq"], "hash": last["hash"]});
    }

    #[test]
    fn a_valid_export_verifies_both_ledgers() {
        for ledger in [TENANT_LEDGER.to_string(), user_ledger(USER)] {
            let doc = export(&ledger, &MIX);
            let head = head_hash(&doc);
            let outcome = run(&doc, Some(&head));
            assert!(outcome.report.ok, "{ledger}: {:?}", outcome.report);
            assert_eq!(outcome.report.checked, MIX.len() as u64);
            assert_eq!(outcome.ledger, ledger);
            assert_eq!(outcome.tenant_id, TENANT);
            assert_eq!(outcome.head.seq, MIX.len() as u64);
        }
    }

    #[test]
    fn an_empty_ledger_verifies() {
        let doc = export(TENANT_LEDGER, &[]);
        assert_eq!(doc["head"], json!({"seq": 0, "hash": LEDGER_GENESIS}));
        let outcome = run(&doc, Some(LEDGER_GENESIS));
        assert!(outcome.report.ok, "{:?}", outcome.report);
        assert_eq!(outcome.report.checked, 0);
    }

    #[test]
    fn an_edited_payload_is_caught() {
        let mut doc = valid();
        doc["items"][3]["event"]["payload"]["i"] = json!(30);
        let outcome = assert_fails(&doc, None, 4, LedgerExportReason::PayloadDigestMismatch);
        assert_eq!(outcome.report.checked, 3, "entries 1–3 verified before it");
    }

    #[test]
    fn an_edited_envelope_is_caught() {
        let mut doc = valid();
        doc["items"][5]["event"]["envelope"]["event_type"] = json!("erased");
        assert_fails(&doc, None, 6, LedgerExportReason::HashMismatch);
        // Re-sealed: its own hash is right, but the entry records another.
        let envelope = &mut doc["items"][5]["event"]["envelope"];
        let mut e = Envelope::from_value(envelope).unwrap();
        e.seal();
        *envelope = e.to_value(false);
        assert_fails(&doc, None, 6, LedgerExportReason::EventHashMismatch);
    }

    #[test]
    fn a_removed_middle_item_is_caught() {
        let mut doc = valid();
        items(&mut doc).remove(3);
        assert_fails(&doc, None, 4, LedgerExportReason::MissingEntry);
    }

    #[test]
    fn a_truncated_tail_is_caught_and_with_a_rewritten_head_only_by_the_anchor() {
        let original = valid();
        let anchor = head_hash(&original);
        let mut doc = original.clone();
        items(&mut doc).truncate(6);
        assert_fails(&doc, None, 7, LedgerExportReason::Truncated);
        fix_head(&mut doc);
        let outcome = run(&doc, None);
        assert!(
            outcome.report.ok,
            "without an anchor the shorter ledger is consistent"
        );
        assert_eq!(outcome.report.checked, 6);
        let outcome = run(&doc, Some(&anchor));
        let b = outcome.report.first_break.unwrap();
        assert_eq!((b.seq, b.reason), (6, LedgerExportReason::HeadMismatch));
        assert_eq!(outcome.report.checked, 6);
    }

    #[test]
    fn a_consistently_rewritten_suffix_is_caught_only_by_the_anchor() {
        let original = valid();
        let anchor = head_hash(&original);
        let mut doc = original.clone();
        let mut prev = doc["items"][3]["entry"]["hash"]
            .as_str()
            .unwrap()
            .to_string();
        for item in &mut items(&mut doc)[4..] {
            let mut e = ledger::entry_from_value(&item["entry"]).unwrap();
            e.received_at = "2025-11-22T03:00:00.000000Z".into();
            e.prev = prev;
            e.seal();
            prev = e.hash.clone();
            item["receipt"]["ledger_hash"] = json!(e.hash);
            item["receipt"]["received_at"] = json!(e.received_at);
            item["entry"] = json!(e);
        }
        fix_head(&mut doc);
        let outcome = run(&doc, None);
        assert!(outcome.report.ok, "{:?}", outcome.report);
        let outcome = assert_fails(&doc, Some(&anchor), 8, LedgerExportReason::HeadMismatch);
        assert_eq!(outcome.report.checked, 8);
    }

    #[test]
    fn a_reordered_pair_is_caught() {
        let mut doc = valid();
        items(&mut doc).swap(2, 6);
        assert_fails(&doc, None, 3, LedgerExportReason::OutOfOrder);
        let mut doc = valid();
        items(&mut doc).swap(4, 5);
        assert_fails(&doc, None, 5, LedgerExportReason::OutOfOrder);
    }

    #[test]
    fn an_edited_received_at_is_caught() {
        let mut doc = valid();
        doc["items"][4]["entry"]["received_at"] = json!("2025-11-22T01:51:19.000000Z");
        assert_fails(&doc, None, 5, LedgerExportReason::EntryHashMismatch);
        let mut doc = valid();
        doc["items"][4]["receipt"]["received_at"] = json!("2025-11-22T01:51:19.000000Z");
        assert_fails(&doc, None, 5, LedgerExportReason::ReceiptMismatch);
    }

    #[test]
    fn a_receipt_not_matching_is_caught() {
        let mut doc = valid();
        doc["items"][1]["receipt"]["server_seq"] = json!(7);
        assert_fails(&doc, None, 2, LedgerExportReason::ReceiptMismatch);
        let mut doc = valid();
        doc["items"][1]["receipt"]["ledger_hash"] = json!("ab".repeat(32));
        assert_fails(&doc, None, 2, LedgerExportReason::ReceiptMismatch);
        // In a user ledger, the receipt's user fields must match.
        let mut doc = export(&user_ledger(USER), &MIX);
        doc["items"][2]["receipt"]["user_ledger_hash"] = json!("ab".repeat(32));
        assert_fails(&doc, None, 3, LedgerExportReason::ReceiptMismatch);
        let mut doc = export(&user_ledger(USER), &MIX);
        doc["items"][2]["receipt"]["server_seq"] = json!(1);
        assert_fails(&doc, None, 3, LedgerExportReason::ReceiptMismatch);
    }

    #[test]
    fn chain_edits_are_caught() {
        // A forged entry: its own hash is right, its link is not.
        let mut doc = valid();
        let entry = &mut doc["items"][6]["entry"];
        let mut e = ledger::entry_from_value(entry).unwrap();
        e.prev = "f".repeat(64);
        e.seal();
        *entry = json!(e);
        assert_fails(&doc, None, 7, LedgerExportReason::BrokenLink);
        // An entry of another ledger.
        let mut doc = valid();
        doc["items"][0]["entry"]["ledger"] = json!("user:nurse-1");
        assert_fails(&doc, None, 1, LedgerExportReason::WrongLedger);
        // A duplicated item.
        let mut doc = valid();
        let copy = doc["items"][1].clone();
        items(&mut doc).insert(2, copy);
        let outcome = assert_fails(&doc, None, 2, LedgerExportReason::OutOfOrder);
        assert_eq!(outcome.report.checked, 2);
        // A rewritten head.
        let mut doc = valid();
        doc["head"]["seq"] = json!(5);
        assert_fails(&doc, None, 5, LedgerExportReason::HeadMismatch);
    }

    #[test]
    fn content_that_contradicts_the_outcome_is_caught() {
        // An accepted event hidden.
        let mut doc = valid();
        doc["items"][0].as_object_mut().unwrap().remove("event");
        assert_fails(&doc, None, 1, LedgerExportReason::OutcomeMismatch);
        // A quarantined entry given an event.
        let mut doc = valid();
        doc["items"][2]["event"] = doc["items"][2]["quarantine"]["submitted"].clone();
        assert_fails(&doc, None, 3, LedgerExportReason::OutcomeMismatch);
        // A quarantine record whose submission is not the one entered.
        let mut doc = valid();
        doc["items"][2]["quarantine"]["submitted"]["envelope"]["aggregate_id"] = json!("other");
        assert_fails(&doc, None, 3, LedgerExportReason::EventHashMismatch);
        let mut doc = valid();
        doc["items"][2]["quarantine"]["claimed_hash"] = json!("f".repeat(64));
        assert_fails(&doc, None, 3, LedgerExportReason::EventHashMismatch);
        // Conflicts listed on an accepted entry.
        let mut doc = valid();
        doc["items"][3]["conflicts_with"] = json!(["x"]);
        assert_fails(&doc, None, 4, LedgerExportReason::OutcomeMismatch);
    }

    #[test]
    fn unreadable_items_are_malformed_at_their_position() {
        type EditItem = fn(&mut Value);
        let cases: [(usize, EditItem); 5] = [
            (1, |i| i["note"] = json!("added")),
            (2, |i| i["entry"]["extra"] = json!(1)),
            (3, |i| i["receipt"] = json!(null)),
            (4, |i| i["event"]["envelope"]["causation_id"] = Value::Null),
            (6, |i| i["event"]["salt"] = json!("AB".repeat(16))),
        ];
        for (seq, edit) in cases {
            let mut doc = valid();
            edit(&mut doc["items"][seq - 1]);
            assert_fails(&doc, None, seq as u64, LedgerExportReason::Malformed);
        }
    }

    #[test]
    fn a_user_ledger_holds_only_its_users_events() {
        let mut doc = export(&user_ledger(USER), &MIX);
        // Re-label the whole document as another user's ledger: every entry
        // then belongs elsewhere.
        doc["ledger"] = json!("user:nurse-2");
        assert_fails(&doc, None, 1, LedgerExportReason::WrongLedger);
    }

    #[test]
    fn documents_that_are_not_ledger_exports_are_refused() {
        let none = LedgerExportCheck::default();
        let refused = |doc: &Value| check(&doc.to_string(), &none).unwrap_err();
        assert!(refused(&json!({"format": "annal-audit/1"})).contains("not an annal ledger export"));
        let mut doc = valid();
        doc["comment"] = json!("x");
        assert!(refused(&doc).contains("unknown member \"comment\""));
        let mut doc = valid();
        doc["ledger"] = json!("everyone");
        assert!(refused(&doc).contains("ledger must be"));
        let mut doc = valid();
        doc["head"]["hash"] = json!("AB".repeat(32));
        assert!(refused(&doc).contains("head.hash"));
        let text =
            valid()
                .to_string()
                .replacen("\"ledger\":", "\"ledger\":\"user:x\",\"ledger\":", 1);
        assert!(check(&text, &none)
            .unwrap_err()
            .contains("duplicate member name \"ledger\""));
    }

    #[test]
    fn the_writer_emits_canonical_items_in_order() {
        let text = {
            let mut t = begin(TENANT, TENANT_LEDGER, "2025-11-22T02:00:00.000000Z");
            t.push_str(&item(true, &json!({"b": 1, "a": [2]})));
            t.push_str(&item(false, &json!({})));
            t.push_str(&end(0, LEDGER_GENESIS));
            t
        };
        assert_eq!(
            text,
            format!(
                "{{\"format\":\"annal-ledger-export/1\",\"exported_at\":\"2025-11-22T02:00:00.000000Z\",\
                 \"tenant_id\":\"study-1\",\"ledger\":\"tenant\",\"items\":[{{\"a\":[2],\"b\":1}},{{}}],\
                 \"head\":{{\"seq\":0,\"hash\":\"{LEDGER_GENESIS}\"}}}}"
            )
        );
    }
}
