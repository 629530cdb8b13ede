//! The audit export: a self-contained JSON document holding a store's
//! identity, its head and every event with its salt and payload, in chain
//! order; and the offline check of such a document.
//!
//! The document is written in pieces (`begin`, one `event` per record,
//! `end`) so that a large log never has to sit in memory as one string.

use crate::at_rest::Opened;
use crate::chain::{Break, BreakReason, ChainVerifier, ExpectedIdentity, VerifyReport};
use crate::envelope::Envelope;
use crate::jcs::write_string;
use crate::page::{self, RawRecord};
use crate::payload::{Payload, SALT_LEN};
use crate::state::{Head, Identity};
use crate::{hex, jcs, strict_json};
use serde_json::Value;

/// `format` of an audit document.
pub const AUDIT_FORMAT: &str = "annal-audit/1";

const DOCUMENT_MEMBERS: [&str; 5] = ["format", "exported_at", "store", "events", "head"];
const ENTRY_MEMBERS: [&str; 5] = [
    "envelope",
    "envelope_bytes",
    "salt",
    "payload",
    "payload_bytes",
];

/// The opening of an audit document, up to the first event. The head comes
/// last (see [`end`]) so a document can be written while the log is read.
pub fn begin(identity: &Identity, exported_at: &str) -> String {
    let mut out = String::from("{\"format\":");
    write_string(&mut out, AUDIT_FORMAT);
    out.push_str(",\"exported_at\":");
    write_string(&mut out, exported_at);
    out.push_str(",\"store\":{\"store_id\":");
    write_string(&mut out, &identity.store_id);
    out.push_str(",\"tenant_id\":");
    write_string(&mut out, &identity.tenant_id);
    out.push_str(",\"user_id\":");
    write_string(&mut out, &identity.user_id);
    out.push_str(",\"device_id\":");
    write_string(&mut out, &identity.device_id);
    out.push_str("},\"events\":[");
    out
}

/// One event entry, preceded by a comma unless it is the first. Stored
/// bytes that are not valid JSON (a damaged record) are exported as hex so
/// the document stays valid and the damage stays visible.
pub fn event(first: bool, raw: &RawRecord<'_>) -> String {
    let mut out = String::with_capacity(raw.envelope.len() + raw.payload.len() + 80);
    if !first {
        out.push(',');
    }
    out.push('{');
    match std::str::from_utf8(raw.envelope)
        .ok()
        .and_then(|t| strict_json::parse(t).ok())
    {
        Some(v) => {
            out.push_str("\"envelope\":");
            jcs::write_value(&mut out, &v);
        }
        None => {
            out.push_str("\"envelope_bytes\":");
            write_string(&mut out, &hex::encode(raw.envelope));
        }
    }
    out.push_str(",\"salt\":");
    write_string(&mut out, &hex::encode(&raw.salt));
    // The payload digest covers the stored bytes, so the payload is
    // exported as JSON only when those bytes are exactly its canonical form;
    // anything else goes out as the bytes themselves.
    let canonical = std::str::from_utf8(raw.payload)
        .ok()
        .and_then(|t| strict_json::parse(t).ok())
        .filter(|v| jcs::to_string(v).as_bytes() == raw.payload);
    match canonical {
        Some(v) => {
            out.push_str(",\"payload\":");
            jcs::write_value(&mut out, &v);
        }
        None => {
            out.push_str(",\"payload_bytes\":");
            write_string(&mut out, &hex::encode(raw.payload));
        }
    }
    out.push('}');
    out
}

/// The event entries of one stored page. Bytes that break off mid-page are
/// exported as one damaged entry (`envelope_bytes` only), so the damage
/// shows up as `MALFORMED` at its place instead of as missing events.
///
/// Sealed pages are decrypted first (the export is plaintext), with
/// [`crate::at_rest::AtRest::open`] or elsewhere; a record that does not decrypt is
/// exported, with the rest of its page, as damage.
pub fn page_entries(first: &mut bool, opened: &Opened<'_>) -> String {
    let (records, plain_damage) = page::decode_lossy(&opened.plain);
    let damage = match (&opened.damage, plain_damage) {
        (_, Some((_, rest))) => Some(rest),
        (Some(d), None) => Some(d.rest),
        (None, None) => None,
    };
    let mut out = String::new();
    for raw in &records {
        out.push_str(&event(*first, raw));
        *first = false;
    }
    if let Some(rest) = damage {
        if !*first {
            out.push(',');
        }
        out.push_str("{\"envelope_bytes\":");
        write_string(&mut out, &hex::encode(rest));
        out.push('}');
        *first = false;
    }
    out
}

/// The end of an audit document: the head the events lead to.
pub fn end(head: &Head) -> String {
    let mut out = format!("],\"head\":{{\"device_seq\":{},\"hash\":", head.device_seq);
    write_string(&mut out, &head.hash);
    out.push_str("}}");
    out
}

/// Options for checking an audit document.
#[derive(Debug, Clone, Default)]
pub struct AuditCheck {
    /// An anchor from outside the document, such as a server receipt: the
    /// head hash the log must end at. Catches truncation and rewriting of
    /// the document's own head.
    pub expected_head_hash: Option<String>,
}

/// The identity and head an audit document claims, and its verification.
#[derive(Debug, Clone)]
pub struct AuditOutcome {
    /// The document's `head`.
    pub head: Head,
    /// The verification result.
    pub report: VerifyReport,
}

/// Checks an audit document: structure, every hash, digest and link, the
/// head, and the optional external anchor.
pub fn check(text: &str, options: &AuditCheck) -> Result<AuditOutcome, String> {
    let doc = strict_json::parse(text).map_err(|e| format!("not a JSON document: {e}"))?;
    if doc.get("format").and_then(Value::as_str) != Some(AUDIT_FORMAT) {
        return Err(format!(
            "not an annal audit document (format is not {AUDIT_FORMAT:?})"
        ));
    }
    let unknown = doc
        .as_object()
        .and_then(|m| m.keys().find(|k| !DOCUMENT_MEMBERS.contains(&k.as_str())));
    if let Some(k) = unknown {
        return Err(format!(
            "unknown member {k:?} in an {AUDIT_FORMAT} document"
        ));
    }
    let text_field = |obj: &Value, name: &str| -> Result<String, String> {
        obj.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("missing {name}"))
    };
    let store = doc.get("store").ok_or("missing store")?;
    let identity = ExpectedIdentity {
        tenant_id: text_field(store, "tenant_id")?,
        user_id: text_field(store, "user_id")?,
        device_id: text_field(store, "device_id")?,
    };
    let head_value = doc.get("head").ok_or("missing head")?;
    let head = Head {
        device_seq: head_value
            .get("device_seq")
            .and_then(Value::as_u64)
            .ok_or("missing head.device_seq")?,
        hash: text_field(head_value, "hash")?,
    };
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .ok_or("missing events")?;

    let mut verifier = ChainVerifier::new(identity);
    for entry in events {
        if verifier.is_broken() {
            break;
        }
        match read_entry(entry) {
            Ok((envelope, salt, payload)) => verifier.feed(&envelope, &salt, &payload),
            Err(why) => verifier.feed_malformed(&why),
        }
    }
    let mut report = verifier.finish(Some(&head), None, None);
    if let (true, Some(anchor)) = (report.ok, &options.expected_head_hash) {
        if *anchor != head.hash {
            report.ok = false;
            report.first_break = Some(Break {
                device_seq: head.device_seq,
                reason: BreakReason::HeadMismatch,
                message: format!(
                    "the log ends at event {} with hash {}, not at the expected anchor {anchor}: \
                     its tail was removed or rewritten",
                    head.device_seq, head.hash
                ),
            });
        }
    }
    Ok(AuditOutcome { head, report })
}

fn read_entry(entry: &Value) -> Result<(Envelope, [u8; SALT_LEN], Vec<u8>), String> {
    let Value::Object(members) = entry else {
        return Err("event entry is not an object".into());
    };
    if let Some(k) = members
        .keys()
        .find(|k| !ENTRY_MEMBERS.contains(&k.as_str()))
    {
        return Err(format!("event entry has an unknown member {k:?}"));
    }
    let envelope = match (entry.get("envelope"), entry.get("envelope_bytes")) {
        (Some(v), None) => Envelope::from_value(v)?,
        (None, Some(_)) => return Err("the stored envelope bytes are damaged".into()),
        (Some(_), Some(_)) => return Err("event has both envelope and envelope_bytes".into()),
        (None, None) => return Err("event has no envelope".into()),
    };
    if entry.get("payload").is_some() && entry.get("payload_bytes").is_some() {
        return Err("event has both payload and payload_bytes".into());
    }
    let salt = entry
        .get("salt")
        .and_then(Value::as_str)
        .and_then(hex::decode::<SALT_LEN>)
        .ok_or("salt must be 32 lowercase hex digits")?;
    let payload = match (entry.get("payload"), entry.get("payload_bytes")) {
        // A payload that breaks the input rules cannot have produced the
        // digest; its bytes as given still get checked and will not match.
        (Some(v), _) => match Payload::from_value(v) {
            Ok(p) => p.as_str().as_bytes().to_vec(),
            Err(_) => jcs::to_string(v).into_bytes(),
        },
        (None, Some(Value::String(h))) => decode_hex_vec(h).ok_or("payload_bytes is not hex")?,
        _ => return Err("event has no payload".into()),
    };
    Ok((envelope, salt, payload))
}

fn decode_hex_vec(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| hex::decode::<1>(text.get(i..i + 2)?).map(|b| b[0]))
        .collect()
}
