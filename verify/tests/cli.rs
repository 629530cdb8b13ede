//! Integration tests of the `annal-verify` binary, on both kinds of export
//! (a device's audit export and a server's ledger export): a valid export
//! passes, every named edit an attacker could make to the exported file is
//! reported as the threat model says (the undetectable ones only with an
//! external anchor), and bad invocations exit 2.

use annal::clock::ManualClock;
use annal::draft::Draft;
use annal::entropy::SeededEntropy;
use annal::envelope::{Envelope, GENESIS_HASH};
use annal::ledger::{format_received_at, LedgerOutcome, LEDGER_GENESIS, TENANT_LEDGER};
use annal::ledger_export;
use annal::ledger_export::testing::Ledgers;
use annal::memory::MemoryStore;
use annal::payload::{Payload, SALT_LEN};
use annal::state::Identity;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Events in the valid log.
const LEN: u64 = 10;

// ---------------------------------------------------------------------------
// Building exports

fn empty_store() -> MemoryStore {
    let clock = ManualClock::new(1_700_000_000_000);
    let entropy = SeededEntropy::new(1);
    let identity = Identity::generate("study-1", "nurse-1", &clock, &entropy);
    MemoryStore::new(identity, Box::new(clock), Box::new(entropy))
}

/// The audit export of a valid log of [`LEN`] events over three aggregates,
/// with non-ASCII text and nested numbers in the payloads.
fn valid_export() -> String {
    let aggregates = [
        ("diary", "d-1"),
        ("patient", "Müller/日記"),
        ("medication", "m-7"),
    ];
    let mut store = empty_store();
    for i in 1..=LEN {
        let (aggregate_type, aggregate_id) = aggregates[(i % 3) as usize];
        let draft = Draft::from_value(&json!({
            "aggregateType": aggregate_type,
            "aggregateId": aggregate_id,
            "eventType": if i % 2 == 0 { "symptom-recorded" } else { "dose-taken" },
            "payload": {
                "entry": i,
                "text": format!("douleur {i}/10 — 痛み ✓ \"quoted\"\n"),
                "vitals": {
                    "pain": i % 10,
                    "temp": 36.5 + i as f64 / 10.0,
                    "readings": [i, -(i as i64), 1.25, -0.0, {"deep": [i * 1000, null, 1e-7]}]
                }
            }
        }))
        .expect("a valid draft");
        store.append(draft).expect("append to a memory store");
    }
    assert!(store.verify().ok, "the log verifies in the store");
    let export = store.export_audit();
    assert_eq!(head_hash(&export), store.head().hash);
    export
}

/// `head.hash` of an audit document.
fn head_hash(export: &str) -> String {
    let doc: Value = serde_json::from_str(export).expect("the export is JSON");
    doc["head"]["hash"]
        .as_str()
        .expect("the export has a head hash")
        .to_string()
}

// ---------------------------------------------------------------------------
// Running the binary

/// What one run of `annal-verify` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `annal-verify` with `args`, feeding `stdin` if given.
fn annal_verify(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_annal-verify"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("annal-verify starts");
    if let Some(text) = stdin {
        // The verifier reads all of its input before it writes anything, so
        // writing first cannot deadlock on a full output pipe.
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes())
            .expect("write the document to stdin");
    }
    let output = child.wait_with_output().expect("annal-verify finishes");
    Run {
        code: output
            .status
            .code()
            .expect("annal-verify exits, not killed"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// A file under the system temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let file = TempFile::unused();
        std::fs::write(&file.0, contents).expect("write a temporary file");
        file
    }

    /// A unique path with no file behind it (yet).
    fn unused() -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("annal-verify-cli-{}-{n}.json", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("the temporary directory is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a run must report.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exit 0, `ok N events`.
    Verified(u64),
    /// Exit 1, `FAILED at device_seq N: REASON (...)`.
    Failed(u64, &'static str),
    /// Exit 2, nothing on stdout, and stderr containing this text.
    Refused(&'static str),
}
use Expect::{Failed, Refused, Verified};

fn assert_run(run: &Run, expect: Expect, context: &str) {
    let (code, stdout_ok) = match expect {
        Verified(n) => (0, run.stdout == format!("ok {n} events\n")),
        Failed(seq, reason) => (
            1,
            run.stdout
                .starts_with(&format!("FAILED at device_seq {seq}: {reason} (")),
        ),
        Refused(needle) => (2, run.stdout.is_empty() && run.stderr.contains(needle)),
    };
    assert!(
        run.code == code && stdout_ok,
        "{context}: expected {expect:?}, got {run:#?}"
    );
}

// ---------------------------------------------------------------------------
// Editing the exported document, as an attacker with a text editor would

fn at(seq: u64) -> usize {
    usize::try_from(seq - 1).expect("a small device_seq")
}

fn entries(doc: &mut Value) -> &mut Vec<Value> {
    doc["events"].as_array_mut().expect("the export has events")
}

fn entry(doc: &mut Value, seq: u64) -> &mut Value {
    &mut entries(doc)[at(seq)]
}

fn envelope(entry: &Value) -> Envelope {
    Envelope::from_value(&entry["envelope"]).expect("an intact envelope to start from")
}

/// Replaces an entry's envelope with `e`, hash and all.
fn put_envelope(entry: &mut Value, e: &Envelope) {
    entry["envelope"] = e.to_value(false);
}

/// Points `head` at the last event, as a careful attacker would.
fn fix_head(doc: &mut Value) {
    let last = envelope(entries(doc).last().expect("at least one event"));
    doc["head"] = json!({"device_seq": last.device_seq, "hash": last.hash});
}

fn flip_payload_number(doc: &mut Value, seq: u64) {
    let n = &mut entry(doc, seq)["payload"]["vitals"]["readings"][0];
    *n = json!(n.as_u64().expect("a number to flip") ^ 1);
}

fn change_event_type(doc: &mut Value, seq: u64) {
    entry(doc, seq)["envelope"]["event_type"] = json!("dose-skipped");
}

fn delete_event(doc: &mut Value, seq: u64) {
    entries(doc).remove(at(seq));
}

fn swap_events(doc: &mut Value, a: u64, b: u64) {
    entries(doc).swap(at(a), at(b));
}

/// Inserts before event `seq` a copy of it whose own hash is right but
/// whose `prev_hash` links to nothing.
fn insert_forged(doc: &mut Value, seq: u64) {
    let mut forged = entry(doc, seq).clone();
    let mut e = envelope(&forged);
    e.prev_hash = "f".repeat(64);
    e.seal();
    put_envelope(&mut forged, &e);
    entries(doc).insert(at(seq), forged);
}

/// Removes the last `k` events.
fn truncate_tail(doc: &mut Value, k: usize) {
    let events = entries(doc);
    events.truncate(events.len() - k);
}

fn truncate_tail_fix_head(doc: &mut Value, k: usize) {
    truncate_tail(doc, k);
    fix_head(doc);
}

/// Rewrites the payload of event `seq` with a correct digest, then re-hashes
/// and re-links it and every later event, and fixes the head.
fn rehash_suffix(doc: &mut Value, seq: u64) {
    let mut prev = if seq == 1 {
        GENESIS_HASH.to_string()
    } else {
        envelope(entry(doc, seq - 1)).hash
    };
    let first = entry(doc, seq);
    first["payload"] = json!({"rewritten": true, "text": "réécrit après coup"});
    let salt = first["salt"]
        .as_str()
        .and_then(annal::hex::decode::<SALT_LEN>)
        .expect("a valid salt");
    let digest = Payload::from_value(&first["payload"])
        .expect("a valid payload")
        .digest(&salt);
    let mut e = envelope(first);
    e.payload_digest = digest;
    put_envelope(first, &e);
    for entry in &mut entries(doc)[at(seq)..] {
        let mut e = envelope(entry);
        e.prev_hash = prev;
        e.seal();
        prev = e.hash.clone();
        put_envelope(entry, &e);
    }
    fix_head(doc);
}

/// One edit of the exported file.
#[derive(Clone, Copy)]
enum Edit {
    /// An edit of the parsed document, which is then re-serialized.
    Doc(fn(&mut Value)),
    /// An edit of the text, for what a parsed document cannot hold.
    Text(fn(&str) -> String),
}
use Edit::{Doc, Text};

impl Edit {
    fn apply(self, export: &str) -> String {
        match self {
            Doc(edit) => {
                let mut doc: Value = serde_json::from_str(export).expect("the export is JSON");
                edit(&mut doc);
                serde_json::to_string(&doc).expect("serialize the edited document")
            }
            Text(edit) => edit(export),
        }
    }
}

/// Each edit: its name, what the unkeyed check must report, and what the
/// check anchored to the original head hash (`--expect-head`, e.g. from a
/// server receipt) must report, on the same file.
const TABLE: &[(&str, Edit, Expect, Expect)] = &[
    ("untouched", Doc(|_| {}), Verified(LEN), Verified(LEN)),
    (
        "flip one byte of a payload",
        Doc(|d| flip_payload_number(d, 4)),
        Failed(4, "PAYLOAD_DIGEST_MISMATCH"),
        Failed(4, "PAYLOAD_DIGEST_MISMATCH"),
    ),
    (
        "change a field without rehashing",
        Doc(|d| change_event_type(d, 6)),
        Failed(6, "HASH_MISMATCH"),
        Failed(6, "HASH_MISMATCH"),
    ),
    (
        "delete an event",
        Doc(|d| delete_event(d, 3)),
        Failed(3, "MISSING_EVENT"),
        Failed(3, "MISSING_EVENT"),
    ),
    (
        "swap two events",
        Doc(|d| swap_events(d, 5, 8)),
        Failed(5, "OUT_OF_ORDER"),
        Failed(5, "OUT_OF_ORDER"),
    ),
    (
        "insert a forged event",
        Doc(|d| insert_forged(d, 7)),
        Failed(7, "BROKEN_LINK"),
        Failed(7, "BROKEN_LINK"),
    ),
    (
        "truncate the tail",
        Doc(|d| truncate_tail(d, 2)),
        Failed(9, "TRUNCATED"),
        Failed(9, "TRUNCATED"),
    ),
    (
        "truncate the tail and fix the head",
        Doc(|d| truncate_tail_fix_head(d, 2)),
        Verified(8),
        Failed(8, "HEAD_MISMATCH"),
    ),
    (
        "re-hash a whole suffix",
        Doc(|d| rehash_suffix(d, 5)),
        Verified(LEN),
        Failed(10, "HEAD_MISMATCH"),
    ),
    (
        "a duplicate member name in an envelope",
        Text(|t| t.replacen(r#""event_type":"#, r#""event_type":"x","event_type":"#, 1)),
        Refused("duplicate member name \"event_type\""),
        Refused("duplicate member name \"event_type\""),
    ),
    (
        "a second head before the real one",
        Text(|t| t.replacen(r#"],"head":"#, r#"],"head":{"device_seq":0},"head":"#, 1)),
        Refused("duplicate member name \"head\""),
        Refused("duplicate member name \"head\""),
    ),
    (
        "an envelope field set to null",
        Doc(|d| entry(d, 2)["envelope"]["causation_id"] = Value::Null),
        Failed(2, "MALFORMED"),
        Failed(2, "MALFORMED"),
    ),
    (
        "salt not hex",
        Doc(|d| entry(d, 3)["salt"] = json!("zz".repeat(SALT_LEN))),
        Failed(3, "MALFORMED"),
        Failed(3, "MALFORMED"),
    ),
    (
        "salt in uppercase hex",
        Doc(|d| {
            let salt = &mut entry(d, 3)["salt"];
            *salt = json!(salt.as_str().expect("a salt").to_uppercase());
        }),
        Failed(3, "MALFORMED"),
        Failed(3, "MALFORMED"),
    ),
    (
        "an unknown member in an event entry",
        Doc(|d| entry(d, 4)["note"] = json!("added later")),
        Failed(4, "MALFORMED"),
        Failed(4, "MALFORMED"),
    ),
    (
        "both a payload and payload bytes",
        Doc(|d| entry(d, 5)["payload_bytes"] = json!("7b7d")),
        Failed(5, "MALFORMED"),
        Failed(5, "MALFORMED"),
    ),
    (
        "an unknown member in the document",
        Doc(|d| d["comment"] = json!("looks fine")),
        Refused("unknown member \"comment\""),
        Refused("unknown member \"comment\""),
    ),
];

// ---------------------------------------------------------------------------
// Tests

#[test]
fn a_valid_export_verifies_from_a_file_and_from_stdin() {
    let export = valid_export();
    let file = TempFile::new(&export);
    let head = head_hash(&export);
    assert_run(&annal_verify(&[file.path()], None), Verified(LEN), "file");
    assert_run(&annal_verify(&["-"], Some(&export)), Verified(LEN), "stdin");
    assert_run(
        &annal_verify(&["--expect-head", &head, file.path()], None),
        Verified(LEN),
        "file anchored to its own head, option first",
    );
}

#[test]
fn every_edit_of_the_export_is_reported_as_the_threat_model_says() {
    let export = valid_export();
    let original_head = head_hash(&export);
    for &(name, edit, plain, anchored) in TABLE {
        let file = TempFile::new(&edit.apply(&export));
        assert_run(&annal_verify(&[file.path()], None), plain, name);
        assert_run(
            &annal_verify(&[file.path(), "--expect-head", &original_head], None),
            anchored,
            &format!("{name}, with --expect-head"),
        );
    }
}

#[test]
fn an_empty_store_exports_a_log_that_verifies() {
    let export = empty_store().export_audit();
    let file = TempFile::new(&export);
    assert_run(
        &annal_verify(&[file.path()], None),
        Verified(0),
        "empty store",
    );
    assert_run(
        &annal_verify(&[file.path(), "--expect-head", GENESIS_HASH], None),
        Verified(0),
        "empty store anchored to the genesis hash",
    );
}

#[test]
fn bad_invocations_exit_2() {
    let export = valid_export();
    let valid = TempFile::new(&export);
    let not_audit = TempFile::new(r#"{"format":"other"}"#);
    let empty = TempFile::new("");
    let missing = TempFile::unused();
    let upper_head = head_hash(&export).to_uppercase();
    let table: &[(&str, &[&str], &str)] = &[
        ("no arguments", &[], "usage: annal-verify FILE"),
        ("a missing file", &[missing.path()], "cannot read"),
        (
            "not an audit document",
            &[not_audit.path()],
            "not an annal audit document",
        ),
        ("an empty file", &[empty.path()], "not a JSON document"),
        (
            "--expect-head not hex",
            &[valid.path(), "--expect-head", "not-a-hash"],
            "64 lowercase hex digits",
        ),
        (
            "--expect-head in uppercase",
            &[valid.path(), "--expect-head", &upper_head],
            "64 lowercase hex digits",
        ),
        (
            "--expect-head without a value",
            &[valid.path(), "--expect-head"],
            "needs a hash",
        ),
        (
            "two files",
            &[valid.path(), valid.path()],
            "unexpected argument",
        ),
    ];
    for &(name, args, needle) in table {
        assert_run(&annal_verify(args, None), Refused(needle), name);
    }
}

#[test]
fn help_prints_usage_and_succeeds() {
    let run = annal_verify(&["--help"], None);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.starts_with("usage: annal-verify FILE"),
        "{run:#?}"
    );
}

#[test]
fn stored_payload_bytes_that_are_not_canonical_stay_visible_in_the_export() {
    // Reordering the members of a stored payload keeps its meaning but not
    // its bytes, which the digest covers. The store's own check and the
    // offline check of its export must agree that the record was touched.
    let mut store = empty_store();
    let draft = Draft::from_value(&json!({
        "aggregateType": "diary", "aggregateId": "d", "eventType": "e", "payload": {"a": 1, "b": 2}
    }))
    .expect("a valid draft");
    store.append(draft).expect("append");
    let page = store.raw_mut().pages.values_mut().next().expect("one page");
    let canonical = br#"{"a":1,"b":2}"#;
    let at = page
        .records
        .windows(canonical.len())
        .position(|w| w == canonical)
        .expect("the payload bytes are in the page");
    page.records[at..at + canonical.len()].copy_from_slice(br#"{"b":2,"a":1}"#);
    let in_store = store.verify().first_break.expect("the store sees the edit");
    assert_eq!(in_store.reason.as_str(), "PAYLOAD_DIGEST_MISMATCH");
    let export = store.export_audit();
    assert!(export.contains("payload_bytes"), "{export}");
    let file = TempFile::new(&export);
    assert_run(
        &annal_verify(&[file.path()], None),
        Failed(1, "PAYLOAD_DIGEST_MISMATCH"),
        "reordered payload bytes",
    );
}

// ---------------------------------------------------------------------------
// Ledger exports (`annal-ledger-export/1`, docs/FORMAT.md §11.6)

/// Entries in the valid ledger; the third is quarantined, the fifth a
/// conflict.
const LEDGER_LEN: u64 = 8;

/// A ledger export of `ledger` built as annal-server enters events: every
/// event advances the tenant ledger and the user ledger, and its receipt
/// names both.
fn valid_ledger_export(ledger: &str) -> String {
    let mut store = empty_store();
    let identity = store.identity().clone();
    let mut ledgers = Ledgers::new(&identity.tenant_id, &identity.user_id);
    for i in 1..=LEDGER_LEN {
        let record = store
            .append(
                Draft::from_value(&json!({
                    "aggregateType": "diary",
                    "aggregateId": "d-1",
                    "eventType": "noted",
                    "payload": {"entry": i, "text": format!("douleur {i}/10 — 痛み"), "readings": [i, 1.25]}
                }))
                .expect("a valid draft"),
            )
            .expect("append to a memory store");
        let outcome = match i {
            3 => LedgerOutcome::Quarantined,
            5 => LedgerOutcome::Conflict,
            _ => LedgerOutcome::Accepted,
        };
        let received_at = format_received_at(1_763_776_279_000_000 + i as i64 * 1001);
        ledgers.enter(&record, outcome, &received_at);
    }
    ledgers.export(ledger, "2025-11-22T02:00:00.000000Z")
}

/// What a run on a ledger export must report.
#[derive(Debug, Clone, Copy)]
enum LedgerExpect {
    /// Exit 0, `ok ledger NAME: N entries`.
    Verifies(&'static str, u64),
    /// Exit 1, `FAILED at seq N: REASON (...)`.
    Breaks(u64, &'static str),
    /// Exit 2, nothing on stdout, and stderr containing this text.
    Refuses(&'static str),
}
use LedgerExpect::{Breaks, Refuses, Verifies};

fn assert_ledger_run(run: &Run, expect: LedgerExpect, context: &str) {
    let (code, stdout_ok) = match expect {
        Verifies(ledger, n) => (
            0,
            run.stdout == format!("ok ledger {ledger}: {n} entries\n"),
        ),
        Breaks(seq, reason) => (
            1,
            run.stdout
                .starts_with(&format!("FAILED at seq {seq}: {reason} (")),
        ),
        Refuses(needle) => (2, run.stdout.is_empty() && run.stderr.contains(needle)),
    };
    assert!(
        run.code == code && stdout_ok,
        "{context}: expected {expect:?}, got {run:#?}"
    );
}

fn ledger_items(doc: &mut Value) -> &mut Vec<Value> {
    doc["items"].as_array_mut().expect("the export has items")
}

fn ledger_item(doc: &mut Value, seq: u64) -> &mut Value {
    &mut ledger_items(doc)[at(seq)]
}

/// Points `head` at the last item's entry, as a careful editor would.
fn fix_ledger_head(doc: &mut Value) {
    let last = ledger_items(doc).last().expect("an item")["entry"].clone();
    doc["head"] = json!({"seq": last["seq"], "hash": last["hash"]});
}

/// Each edit of a tenant-ledger export: its name, what the unkeyed check
/// must report, and what the check anchored to the original head must.
const LEDGER_TABLE: &[(&str, Edit, LedgerExpect, LedgerExpect)] = &[
    (
        "untouched",
        Doc(|_| {}),
        Verifies("tenant", LEDGER_LEN),
        Verifies("tenant", LEDGER_LEN),
    ),
    (
        "edit a payload",
        Doc(|d| ledger_item(d, 4)["event"]["payload"]["readings"][0] = json!(40)),
        Breaks(4, "PAYLOAD_DIGEST_MISMATCH"),
        Breaks(4, "PAYLOAD_DIGEST_MISMATCH"),
    ),
    (
        "edit an envelope",
        Doc(|d| ledger_item(d, 6)["event"]["envelope"]["event_type"] = json!("erased")),
        Breaks(6, "HASH_MISMATCH"),
        Breaks(6, "HASH_MISMATCH"),
    ),
    (
        "remove a middle item",
        Doc(|d| {
            ledger_items(d).remove(at(3));
        }),
        Breaks(3, "MISSING_ENTRY"),
        Breaks(3, "MISSING_ENTRY"),
    ),
    (
        "swap two items",
        Doc(|d| ledger_items(d).swap(at(2), at(7))),
        Breaks(2, "OUT_OF_ORDER"),
        Breaks(2, "OUT_OF_ORDER"),
    ),
    (
        "truncate the tail",
        Doc(|d| ledger_items(d).truncate(6)),
        Breaks(7, "TRUNCATED"),
        Breaks(7, "TRUNCATED"),
    ),
    (
        "truncate the tail and fix the head",
        Doc(|d| {
            ledger_items(d).truncate(6);
            fix_ledger_head(d);
        }),
        Verifies("tenant", 6),
        Breaks(6, "HEAD_MISMATCH"),
    ),
    (
        "edit an entry's received_at",
        Doc(|d| ledger_item(d, 5)["entry"]["received_at"] = json!("2025-11-22T01:00:00.000000Z")),
        Breaks(5, "ENTRY_HASH_MISMATCH"),
        Breaks(5, "ENTRY_HASH_MISMATCH"),
    ),
    (
        "a receipt that does not match its entry",
        Doc(|d| ledger_item(d, 2)["receipt"]["server_seq"] = json!(9)),
        Breaks(2, "RECEIPT_MISMATCH"),
        Breaks(2, "RECEIPT_MISMATCH"),
    ),
    (
        "hide a quarantine record",
        Doc(|d| {
            ledger_item(d, 3)
                .as_object_mut()
                .expect("an item")
                .remove("quarantine");
        }),
        Breaks(3, "OUTCOME_MISMATCH"),
        Breaks(3, "OUTCOME_MISMATCH"),
    ),
    (
        "a duplicate member name in an item",
        Text(|t| t.replacen(r#""receipt":"#, r#""receipt":null,"receipt":"#, 1)),
        Refuses("duplicate member name \"receipt\""),
        Refuses("duplicate member name \"receipt\""),
    ),
    (
        "an unknown member in the document",
        Doc(|d| d["comment"] = json!("looks fine")),
        Refuses("unknown member \"comment\""),
        Refuses("unknown member \"comment\""),
    ),
];

#[test]
fn a_valid_ledger_export_verifies_from_a_file_and_from_stdin() {
    for ledger in [TENANT_LEDGER, "user:nurse-1"] {
        let export = valid_ledger_export(ledger);
        let file = TempFile::new(&export);
        let ok = Verifies(ledger, LEDGER_LEN);
        assert_ledger_run(&annal_verify(&[file.path()], None), ok, ledger);
        assert_ledger_run(&annal_verify(&["-"], Some(&export)), ok, ledger);
        // The anchor a device holds: the last receipt's hash in this ledger.
        let doc: Value = serde_json::from_str(&export).expect("JSON");
        let receipt = &doc["items"][at(LEDGER_LEN)]["receipt"];
        let anchor = if ledger == TENANT_LEDGER {
            receipt["ledger_hash"].as_str()
        } else {
            receipt["user_ledger_hash"].as_str()
        }
        .expect("a receipt hash");
        assert_eq!(anchor, head_hash_of_ledger(&export));
        assert_ledger_run(
            &annal_verify(&["--expect-head", anchor, file.path()], None),
            ok,
            &format!("{ledger}, anchored to the last receipt"),
        );
        // The other ledger's hash is not this ledger's head.
        let other = if ledger == TENANT_LEDGER {
            receipt["user_ledger_hash"].as_str()
        } else {
            receipt["ledger_hash"].as_str()
        }
        .expect("a receipt hash");
        assert_ledger_run(
            &annal_verify(&[file.path(), "--expect-head", other], None),
            Breaks(LEDGER_LEN, "HEAD_MISMATCH"),
            &format!("{ledger}, anchored to the other ledger's hash"),
        );
    }
}

fn head_hash_of_ledger(export: &str) -> String {
    let doc: Value = serde_json::from_str(export).expect("JSON");
    doc["head"]["hash"]
        .as_str()
        .expect("a head hash")
        .to_string()
}

#[test]
fn every_edit_of_a_ledger_export_is_reported() {
    let export = valid_ledger_export(TENANT_LEDGER);
    let original_head = head_hash_of_ledger(&export);
    for &(name, edit, plain, anchored) in LEDGER_TABLE {
        let file = TempFile::new(&edit.apply(&export));
        assert_ledger_run(&annal_verify(&[file.path()], None), plain, name);
        assert_ledger_run(
            &annal_verify(&[file.path(), "--expect-head", &original_head], None),
            anchored,
            &format!("{name}, with --expect-head"),
        );
    }
}

#[test]
fn an_empty_ledger_export_verifies() {
    let export = format!(
        "{}{}",
        ledger_export::begin("study-1", "user:nurse-1", "2025-11-22T02:00:00.000000Z"),
        ledger_export::end(0, LEDGER_GENESIS)
    );
    let file = TempFile::new(&export);
    assert_ledger_run(
        &annal_verify(&[file.path(), "--expect-head", LEDGER_GENESIS], None),
        Verifies("user:nurse-1", 0),
        "empty ledger",
    );
}

#[test]
fn a_ledger_export_with_a_bad_ledger_name_exits_2() {
    let export = valid_ledger_export(TENANT_LEDGER).replacen(
        r#""ledger":"tenant""#,
        r#""ledger":"everyone""#,
        1,
    );
    let file = TempFile::new(&export);
    assert_ledger_run(
        &annal_verify(&[file.path()], None),
        Refuses("ledger must be \"tenant\" or \"user:<id>\""),
        "bad ledger name",
    );
}
