use super::*;
use annal::clock::ManualClock;
use annal::draft::Draft;
use annal::entropy::SeededEntropy;
use annal::memory::MemoryStore;
use annal::record::Record;
use annal::state::Identity;
use serde_json::json;

const T: &str = "study-1";
const U: &str = "nurse-1";
const AT: &str = "2026-11-22T00:00:00.000000Z";

fn device(seed: u64) -> MemoryStore {
    let clock = ManualClock::new(1_700_000_000_000);
    let entropy = SeededEntropy::new(seed);
    let identity = Identity::generate(T, U, &clock, &entropy);
    MemoryStore::new(identity, Box::new(clock), Box::new(entropy))
}

fn append(store: &mut MemoryStore, aggregate: &str, expected: Option<u64>) -> Record {
    let mut v = json!({"aggregateType": "diary", "aggregateId": aggregate, "eventType": "noted", "payload": {"pain": 3}});
    if let Some(e) = expected {
        v["expectedVersion"] = e.into();
    }
    store.append(Draft::from_value(&v).unwrap()).unwrap()
}

fn entry(r: &Record) -> Value {
    json!({
        "envelope": r.envelope.to_value(false),
        "salt": hex::encode(&r.salt),
        "payload": serde_json::from_str::<Value>(r.payload.as_str()).unwrap(),
    })
}

fn run(entries: Vec<Value>, state: State, atomic: bool) -> Plan {
    let batch: Vec<Submitted> = entries.into_iter().map(Submitted::read).collect();
    plan(T, U, &batch, atomic, state, AT, &Policy::default())
}

fn statuses(p: &Plan) -> Vec<Status> {
    p.results.iter().map(|r| r.status).collect()
}

#[test]
fn a_chain_is_accepted_and_entered_in_both_ledgers() {
    let mut d = device(1);
    let rs: Vec<Record> = (0..3).map(|_| append(&mut d, "a", None)).collect();
    let p = run(rs.iter().map(entry).collect(), State::default(), false);
    assert_eq!(statuses(&p), vec![Status::Accepted; 3]);
    assert_eq!(p.events.len(), 3);
    assert_eq!(p.ledger.len(), 6);
    assert_eq!(p.tenant_head.0, 3);
    assert_eq!(p.user_head.0, 3);
    let mut v = annal::ledger::LedgerVerifier::new(T, TENANT_LEDGER, 0, GENESIS_HASH);
    for e in p.ledger.iter().filter(|e| e.ledger == TENANT_LEDGER) {
        v.feed(e).unwrap();
        assert_eq!(e.event_hash, rs[e.seq as usize - 1].envelope.hash);
    }
    assert_eq!(p.devices[&d.identity().device_id].device_seq, 3);
}

#[test]
fn a_gap_is_missing_and_nothing_after_it_is_written() {
    let mut d = device(2);
    let rs: Vec<Record> = (0..4).map(|_| append(&mut d, "a", None)).collect();
    let p = run(
        vec![entry(&rs[0]), entry(&rs[2]), entry(&rs[3])],
        State::default(),
        false,
    );
    assert_eq!(
        statuses(&p),
        vec![Status::Accepted, Status::Missing, Status::Missing]
    );
    assert_eq!(p.results[1].missing_device_seq, Some(2));
    assert_eq!(p.results[2].missing_device_seq, Some(2));
    assert_eq!(p.ledger.len(), 2);
}

#[test]
fn replays_are_duplicates_and_a_changed_event_is_quarantined() {
    let mut d = device(3);
    let r = append(&mut d, "a", None);
    let first = run(vec![entry(&r)], State::default(), false);
    let receipt = first.results[0].receipt.clone().unwrap();
    let state = State {
        existing: [(
            r.envelope.event_id.clone(),
            Existing {
                claimed_hash: r.envelope.hash.clone(),
                event_hash: r.envelope.hash.clone(),
                receipt: receipt.clone(),
            },
        )]
        .into(),
        devices: first.devices.clone(),
        tenant_head: Some(first.tenant_head.clone()),
        user_head: Some(first.user_head.clone()),
        ..State::default()
    };
    let again = run(vec![entry(&r)], state.clone(), false);
    assert_eq!(statuses(&again), vec![Status::Duplicate]);
    assert_eq!(again.results[0].receipt, Some(receipt));
    assert!(again.ledger.is_empty());
    // Same id, other content.
    let mut changed = entry(&r);
    changed["envelope"]["event_type"] = "edited".into();
    let p = run(vec![changed], state, false);
    assert_eq!(p.results[0].code.as_deref(), Some("DUPLICATE_EVENT_ID"));
    // The same event twice in one batch.
    let p = run(vec![entry(&r), entry(&r)], State::default(), false);
    assert_eq!(statuses(&p), vec![Status::Accepted, Status::Duplicate]);
}

#[test]
fn a_bad_event_is_quarantined_and_the_chain_continues_through_it() {
    let mut d = device(4);
    let rs: Vec<Record> = (0..3).map(|_| append(&mut d, "a", None)).collect();
    let mut bad = entry(&rs[1]);
    bad["payload"] = json!({"pain": 9});
    let p = run(
        vec![entry(&rs[0]), bad, entry(&rs[2])],
        State::default(),
        false,
    );
    assert_eq!(
        statuses(&p),
        vec![Status::Accepted, Status::Quarantined, Status::Accepted]
    );
    assert_eq!(
        p.results[1].code.as_deref(),
        Some("PAYLOAD_DIGEST_MISMATCH")
    );
    assert_eq!(p.ledger.len(), 6);
    assert_eq!(p.quarantined.len(), 1);
}

#[test]
fn identity_hash_schema_and_shape_are_checked() {
    let mut d = device(5);
    let r = append(&mut d, "a", None);
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut e = entry(&r);
                e["envelope"]["hash"] = "0".repeat(64).into();
                e
            },
            "HASH_MISMATCH",
        ),
        (
            {
                let mut e = entry(&r);
                e["salt"] = "zz".into();
                e
            },
            "MALFORMED",
        ),
        (
            {
                let mut e = entry(&r);
                e["extra"] = 1.into();
                e
            },
            "MALFORMED",
        ),
        (json!(42), "MALFORMED"),
        (json!({"envelope": {"event_id": "x"}}), "MALFORMED"),
    ];
    for (e, code) in cases {
        let p = run(vec![e], State::default(), false);
        assert_eq!(p.results[0].code.as_deref(), Some(code));
        assert_eq!(p.results[0].status, Status::Quarantined);
    }
    // Another user's device.
    let clock = ManualClock::new(1_700_000_000_000);
    let entropy = SeededEntropy::new(6);
    let mut other = MemoryStore::new(
        Identity::generate(T, "nurse-2", &clock, &entropy),
        Box::new(clock),
        Box::new(entropy),
    );
    let theirs = append(&mut other, "b", None);
    let p = run(vec![entry(&theirs)], State::default(), false);
    assert_eq!(p.results[0].code.as_deref(), Some("WRONG_USER"));
    // A schema above the configured maximum.
    let policy = Policy {
        max_schema: [("noted".to_string(), 0)].into(),
    };
    let p = plan(
        T,
        U,
        &[Submitted::read(entry(&r))],
        false,
        State::default(),
        AT,
        &policy,
    );
    assert_eq!(p.results[0].code.as_deref(), Some("SCHEMA_NOT_ALLOWED"));
}

#[test]
fn concurrent_versions_are_a_conflict_naming_the_other_event() {
    let mut a = device(7);
    let mut b = device(8);
    let ra = append(&mut a, "shared", None);
    let rb = append(&mut b, "shared", None);
    let p = run(vec![entry(&ra), entry(&rb)], State::default(), false);
    assert_eq!(statuses(&p), vec![Status::Accepted, Status::Conflict]);
    assert_eq!(
        p.results[1].conflicts_with,
        vec![ra.envelope.event_id.clone()]
    );
    assert_eq!(p.ledger.len(), 4);
}

#[test]
fn an_atomic_batch_is_all_or_nothing() {
    let mut d = device(9);
    let rs: Vec<Record> = (0..2).map(|_| append(&mut d, "a", None)).collect();
    let mut bad = entry(&rs[1]);
    bad["envelope"]["hash"] = "1".repeat(64).into();
    let p = run(vec![entry(&rs[0]), bad], State::default(), true);
    assert!(!p.committed);
    assert_eq!(statuses(&p), vec![Status::NotWritten; 2]);
    assert!(p.ledger.is_empty() && p.events.is_empty());
    assert_eq!(p.results[0].code.as_deref(), Some("ATOMIC_BATCH_REFUSED"));
    assert_eq!(p.results[1].code.as_deref(), Some("HASH_MISMATCH"));
    let p = run(rs.iter().map(entry).collect(), State::default(), true);
    assert!(p.committed);
}

#[test]
fn chain_faults_are_quarantined_by_name() {
    let mut d = device(10);
    let rs: Vec<Record> = (0..3).map(|_| append(&mut d, "a", None)).collect();
    // A wrong prev_hash at the right position, re-hashed so only the link is bad.
    let mut forked = rs[1].clone();
    forked.envelope.prev_hash = "e".repeat(64);
    forked.envelope.seal();
    let p = run(vec![entry(&rs[0]), entry(&forked)], State::default(), false);
    assert_eq!(p.results[1].code.as_deref(), Some("BROKEN_CHAIN"));
    // Another event claiming a position already taken.
    let mut again = rs[0].clone();
    again.envelope.event_id = "018bcfe5-7000-7fff-bfff-ffffffffffff".into();
    again.envelope.seal();
    let p = run(vec![entry(&rs[0]), entry(&again)], State::default(), false);
    assert_eq!(p.results[1].code.as_deref(), Some("CHAIN_CONFLICT"));
    // An aggregate keeps its type.
    let mut e = device(11);
    let first = append(&mut e, "x", None);
    let mut other_type = e
        .append(Draft::from_value(&json!({"aggregateType": "note", "aggregateId": "y", "eventType": "t", "payload": {}})).unwrap())
        .unwrap();
    other_type.envelope.aggregate_id = "x".into();
    other_type.envelope.seal();
    let p = run(
        vec![entry(&first), entry(&other_type)],
        State::default(),
        false,
    );
    assert_eq!(
        p.results[1].code.as_deref(),
        Some("AGGREGATE_TYPE_MISMATCH")
    );
}

#[test]
fn a_device_belongs_to_the_user_who_first_pushed_it() {
    let mut d = device(13);
    let rs: Vec<Record> = (0..2).map(|_| append(&mut d, "a", None)).collect();
    let first = plan(
        T,
        U,
        &[Submitted::read(entry(&rs[0]))],
        false,
        State::default(),
        AT,
        &Policy::default(),
    );
    let state = State {
        devices: first.devices.clone(),
        ..State::default()
    };
    // Another user pushes the victim's next event: refused before the chain.
    let p = plan(
        T,
        "intruder",
        &[Submitted::read(entry(&rs[1]))],
        false,
        state.clone(),
        AT,
        &Policy::default(),
    );
    assert_eq!(p.results[0].code.as_deref(), Some("WRONG_USER"));
    assert!(p.devices.is_empty(), "the owner's chain did not move");
    // Or crafts an event of their own on the victim's device id.
    let mut forged = rs[1].clone();
    forged.envelope.user_id = "intruder".into();
    forged.envelope.seal();
    let p = plan(
        T,
        "intruder",
        &[Submitted::read(entry(&forged))],
        false,
        state.clone(),
        AT,
        &Policy::default(),
    );
    assert_eq!(p.results[0].code.as_deref(), Some("DEVICE_OF_ANOTHER_USER"));
    assert!(p.devices.is_empty());
    let p = plan(
        T,
        U,
        &[Submitted::read(entry(&rs[1]))],
        false,
        state,
        AT,
        &Policy::default(),
    );
    assert_eq!(statuses(&p), vec![Status::Accepted]);
}

#[test]
fn after_a_damaged_hash_the_next_event_may_link_to_either_hash() {
    let mut d = device(12);
    let rs: Vec<Record> = (0..2).map(|_| append(&mut d, "a", None)).collect();
    let mut damaged = entry(&rs[0]);
    damaged["envelope"]["hash"] = "d".repeat(64).into();
    // The device's own next event links to the true hash.
    let p = run(
        vec![damaged.clone(), entry(&rs[1])],
        State::default(),
        false,
    );
    assert_eq!(statuses(&p), vec![Status::Quarantined, Status::Accepted]);
    // One that links to the hash as claimed is taken too.
    let mut relinked = rs[1].clone();
    relinked.envelope.prev_hash = "d".repeat(64);
    relinked.envelope.seal();
    let p = run(vec![damaged, entry(&relinked)], State::default(), false);
    assert_eq!(statuses(&p), vec![Status::Quarantined, Status::Accepted]);
}

#[test]
fn only_versions_a_stored_aggregate_has_reached_are_read() {
    let w = Wanted {
        versions: [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 5)]
            .into_iter()
            .map(|(a, v)| (a.to_string(), v))
            .collect(),
        ..Wanted::default()
    };
    let stored: HashMap<String, (String, u64)> = [("a", 2), ("c", 4)]
        .into_iter()
        .map(|(a, v)| (a.to_string(), ("diary".to_string(), v)))
        .collect();
    assert_eq!(w.stored_versions(&stored), vec![("a", 1), ("a", 2)]);
    assert!(w.stored_versions(&HashMap::new()).is_empty());
}
