//! `annal::sync::pull::PullVerifier` against what a real annal-server
//! (SQLite, in process) serves: two devices of one user, a coordinator on
//! the tenant ledger, resuming from a saved checkpoint, and a malicious
//! server that edits, drops, reorders, forks and fabricates history.

#[path = "support/client.rs"]
mod client;

use annal::envelope::Envelope;
use annal::ledger::{user_ledger, LedgerEntry, LedgerOutcome, TENANT_LEDGER};
use annal::protocol::{OwnEvent, PullItem, PullResponse, Receipt, StoredEvent};
use annal::record::Record;
use annal::sync::pull::{Checkpoint, Fork, PullVerifier, Pulled, RemoteHead};
use annal_server::auth::Scope;
use annal_server::db::Db;
use axum::http::StatusCode;
use axum::Router;
use client::*;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;

const T: &str = "study-1";
const USER: &str = "p-1";

type Remote = HashMap<String, RemoteHead>;

// ---------------------------------------------------------------- helpers

/// `n` new events of `d` on `aggregate`.
fn records(d: &mut Device, aggregate: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| d.record(aggregate, "noted", json!({"i": i, "text": "pain 3/10"})))
        .collect()
}

fn entries(records: &[Record]) -> Vec<Value> {
    records.iter().map(entry).collect()
}

fn device_id(d: &Device) -> String {
    d.store.identity().device_id.clone()
}

/// The receipts of a push response, one per result.
fn receipts(res: &Value) -> Vec<Receipt> {
    res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_value(r["receipt"].clone()).expect("a receipt"))
        .collect()
}

/// Every page of the caller's ledger after `after`, `limit` items a page,
/// read as the documented JSON.
async fn pages(app: &Router, tok: &str, after: u64, limit: u32) -> Vec<PullResponse> {
    let mut after = after;
    let mut out = Vec::new();
    loop {
        let uri = format!("/v1/events?after={after}&limit={limit}");
        let (status, body) = call(app, "GET", &uri, Some(tok), None).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        let page: PullResponse = serde_json::from_value(body).expect("a PullResponse");
        after = page.next_after;
        let more = page.has_more;
        out.push(page);
        if !more {
            return out;
        }
    }
}

fn items_of(pages: &[PullResponse]) -> Vec<PullItem> {
    pages.iter().flat_map(|p| p.items.iter().cloned()).collect()
}

/// Feeds `items` in order; the events of other devices it returns.
fn feed_all(
    v: &mut PullVerifier,
    items: &[PullItem],
    local: &dyn Fn(u64) -> Option<String>,
) -> Result<Vec<Pulled>, Fork> {
    let mut out = Vec::new();
    for item in items {
        if let Some(p) = v.feed(item, local)? {
            out.push(p);
        }
    }
    Ok(out)
}

#[track_caller]
fn expect_fork(result: Result<Vec<Pulled>, Fork>, seq: u64, needle: &str) -> Fork {
    match result {
        Ok(pulled) => panic!(
            "expected a fork at entry {seq} ({needle:?}); {} events were verified instead",
            pulled.len()
        ),
        Err(fork) => {
            assert_eq!(fork.seq, seq, "the fork is reported elsewhere: {fork:?}");
            assert!(
                fork.message.contains(needle),
                "the fork at {} says {:?}, expected it to mention {needle:?}",
                fork.seq,
                fork.message
            );
            fork
        }
    }
}

/// The device an item's event (or quarantined submission) claims.
fn device_of(item: &PullItem) -> String {
    let envelope = match (&item.event, &item.quarantine) {
        (Some(e), _) => &e.envelope,
        (None, Some(q)) => &q.submitted["envelope"],
        (None, None) => panic!("item {} carries nothing", item.entry.seq),
    };
    envelope["device_id"].as_str().unwrap().to_string()
}

fn envelope_of(item: &PullItem) -> Envelope {
    Envelope::from_value(&item.event.as_ref().expect("an event").envelope).unwrap()
}

/// Rewrites an item's envelope (the entry is left alone).
fn edit_envelope(item: &mut PullItem, f: impl FnOnce(&mut Envelope)) {
    let mut env = envelope_of(item);
    f(&mut env);
    item.event.as_mut().unwrap().envelope = env.to_value(false);
}

/// Re-seals one entry with `LedgerEntry::seal` and gives its receipt the
/// entry's seq and new hash, as a server covering its tracks would. The
/// next entry still links to the old hash.
fn reseal(item: &mut PullItem) {
    item.entry.seal();
    if item.entry.ledger == TENANT_LEDGER {
        item.receipt.server_seq = item.entry.seq;
        item.receipt.ledger_hash = item.entry.hash.clone();
    } else {
        item.receipt.user_seq = item.entry.seq;
        item.receipt.user_ledger_hash = item.entry.hash.clone();
    }
}

/// Renumbers, re-links and re-seals every entry from index `from` on (the
/// entry at `from` keeps its own `prev` when `from` is 0): a history of
/// the server's own making that is a valid hash chain throughout.
fn rechain(items: &mut [PullItem], from: usize) {
    for i in from..items.len() {
        if i > 0 {
            let (seq, hash) = (items[i - 1].entry.seq, items[i - 1].entry.hash.clone());
            items[i].entry.seq = seq + 1;
            items[i].entry.prev = hash;
        }
        reseal(&mut items[i]);
    }
}

fn stored(r: &Record) -> StoredEvent {
    serde_json::from_value(entry(r)).unwrap()
}

// ------------------------------------------------ two devices of one user

/// Two devices of user p-1, pushing in turn:
///
/// | seq | device | what |
/// |---|---|---|
/// | 1 | A | a1 |
/// | 2 | A | a2, pushed with a wrong hash: quarantined |
/// | 3, 4 | B | b1, b2 |
/// | 5, 6, 7 | A | a3, a4, a5 |
/// | 8, 9 | B | b3, b4 |
struct World {
    _file: TempSqlite,
    app: Router,
    tok: String,
    a: Device,
    b: Device,
    a_recs: Vec<Record>,
    b_recs: Vec<Record>,
    b_receipts: Vec<Receipt>,
    items: Vec<PullItem>,
}

/// Where B's events sit in `World::items`.
const B_AT: [usize; 4] = [2, 3, 7, 8];

async fn world() -> World {
    let file = TempSqlite::new();
    let app = router(Db::open(&file.url(), None).await.unwrap());
    let tok = token(T, USER, Scope::Own);
    let mut a = Device::new(T, USER, 1);
    let mut b = Device::new(T, USER, 2);
    assert_ne!(device_id(&a), device_id(&b));
    let a_recs = records(&mut a, "diary-a", 5);
    let b_recs = records(&mut b, "diary-b", 4);
    let mut a_push = entries(&a_recs);
    a_push[1]["envelope"]["hash"] = json!("f".repeat(64));
    let b_push = entries(&b_recs);

    let res = push(&app, &tok, &a_push[..2]).await;
    assert_eq!(statuses(&res), vec!["accepted", "quarantined"]);
    assert_eq!(res["results"][1]["code"], "HASH_MISMATCH");
    let res = push(&app, &tok, &b_push[..2]).await;
    assert_eq!(statuses(&res), vec!["accepted"; 2]);
    let mut b_receipts = receipts(&res);
    let res = push(&app, &tok, &a_push[2..]).await;
    assert_eq!(
        statuses(&res),
        vec!["accepted"; 3],
        "a3 links to a2's real hash"
    );
    let res = push(&app, &tok, &b_push[2..]).await;
    assert_eq!(statuses(&res), vec!["accepted"; 2]);
    b_receipts.extend(receipts(&res));

    // Two items a page: the verifier is fed across page boundaries.
    let world_pages = pages(&app, &tok, 0, 2).await;
    assert_eq!(world_pages.len(), 5);
    assert!(world_pages.iter().all(|p| p.ledger == user_ledger(USER)));
    let items = items_of(&world_pages);
    let (ida, idb) = (device_id(&a), device_id(&b));
    let layout: Vec<&str> = items
        .iter()
        .map(|i| if device_of(i) == ida { "A" } else { "B" })
        .collect();
    assert_eq!(layout, ["A", "A", "B", "B", "A", "A", "A", "B", "B"]);
    assert_eq!(device_of(&items[2]), idb);
    assert_eq!(items[1].entry.outcome, LedgerOutcome::Quarantined);
    assert!(items
        .iter()
        .enumerate()
        .all(|(i, it)| it.entry.seq == i as u64 + 1));
    World {
        _file: file,
        app,
        tok,
        a,
        b,
        a_recs,
        b_recs,
        b_receipts,
        items,
    }
}

impl World {
    fn a_id(&self) -> String {
        device_id(&self.a)
    }

    fn b_id(&self) -> String {
        device_id(&self.b)
    }

    /// A's own hash at `device_seq`, from its store.
    fn a_local(&self, device_seq: u64) -> Option<String> {
        self.a.store.get(device_seq).ok().map(|r| r.envelope.hash)
    }

    /// Device A verifying `items` from the start of the ledger.
    fn as_a(&self, items: &[PullItem]) -> Result<Vec<Pulled>, Fork> {
        self.resume_a(
            &Checkpoint::genesis(&user_ledger(USER)),
            Remote::new(),
            items,
        )
    }

    /// Device A verifying `items` from a saved checkpoint and heads.
    fn resume_a(
        &self,
        checkpoint: &Checkpoint,
        remote: Remote,
        items: &[PullItem],
    ) -> Result<Vec<Pulled>, Fork> {
        let mut v = PullVerifier::new(T, checkpoint, &self.a_id(), remote);
        feed_all(&mut v, items, &|s| self.a_local(s))
    }

    /// What device A saves after verifying the honest `items[..n]`.
    fn a_state_after(&self, n: usize) -> (Checkpoint, Remote) {
        let mut v = PullVerifier::new(
            T,
            &Checkpoint::genesis(&user_ledger(USER)),
            &self.a_id(),
            Remote::new(),
        );
        feed_all(&mut v, &self.items[..n], &|s| self.a_local(s)).expect("the honest history");
        (v.checkpoint(), v.remote.clone())
    }

    /// Device B verifying `items` from the start of the ledger.
    fn as_b(&self, items: &[PullItem]) -> Result<Vec<Pulled>, Fork> {
        let mut v = PullVerifier::new(
            T,
            &Checkpoint::genesis(&user_ledger(USER)),
            &self.b_id(),
            Remote::new(),
        );
        feed_all(&mut v, items, &|s| {
            self.b.store.get(s).ok().map(|r| r.envelope.hash)
        })
    }

    /// B pushes `n` more events; they and their receipts.
    async fn b_pushes(&mut self, n: usize) -> (Vec<Record>, Vec<Receipt>) {
        let more = records(&mut self.b, "diary-b", n);
        let res = push(&self.app, &self.tok, &entries(&more)).await;
        assert_eq!(statuses(&res), vec!["accepted"; n]);
        let rs = receipts(&res);
        (more, rs)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_pull_each_others_events_and_resume() {
    let mut w = world().await;
    let ledger = user_ledger(USER);
    let asked = RefCell::new(Vec::new());
    let a_store = &w.a.store;
    let local = |seq: u64| {
        asked.borrow_mut().push(seq);
        a_store.get(seq).ok().map(|r| r.envelope.hash)
    };
    let mut v = PullVerifier::new(T, &Checkpoint::genesis(&ledger), &w.a_id(), Remote::new());
    let pulled = feed_all(&mut v, &w.items, &local).expect("an honest server is no fork");

    // Exactly B's events, as B appended them, with their entries and the
    // receipts B was given.
    assert_eq!(pulled.len(), 4);
    for (i, p) in pulled.iter().enumerate() {
        assert_eq!(p.record, w.b_recs[i], "B's event {}", i + 1);
        assert_eq!(p.entry, w.items[B_AT[i]].entry);
        assert_eq!(p.receipt, w.items[B_AT[i]].receipt);
        assert_eq!(p.receipt, w.b_receipts[i], "the receipt B got at push");
    }
    // A's own accepted events were checked against its store; the
    // quarantined a2 (no event served) was not asked for.
    assert_eq!(*asked.borrow(), vec![1, 3, 4, 5]);
    let last = &w.items[8].entry;
    assert_eq!(
        v.checkpoint(),
        Checkpoint {
            ledger: ledger.clone(),
            seq: 9,
            hash: last.hash.clone()
        }
    );
    let b4 = &w.b_recs[3].envelope.hash;
    assert_eq!(
        v.remote,
        Remote::from([(
            w.b_id(),
            RemoteHead {
                device_seq: 4,
                hash: b4.clone(),
                computed_hash: b4.clone()
            }
        )])
    );

    // What a client keeps between pulls, through JSON.
    let saved = serde_json::to_string(&(v.checkpoint(), &v.remote)).unwrap();
    drop(v);

    let more = records(&mut w.b, "diary-b", 2);
    let res = push(&w.app, &w.tok, &entries(&more)).await;
    assert_eq!(statuses(&res), vec!["accepted"; 2]);
    let more_receipts = receipts(&res);
    let (checkpoint, remote): (Checkpoint, Remote) = serde_json::from_str(&saved).unwrap();
    let new_pages = pages(&w.app, &w.tok, checkpoint.seq, 100).await;
    assert_eq!(new_pages.len(), 1);
    let new = items_of(&new_pages);
    assert_eq!(
        new.iter().map(|i| i.entry.seq).collect::<Vec<_>>(),
        vec![10, 11]
    );
    asked.borrow_mut().clear();
    let mut v = PullVerifier::new(T, &checkpoint, &w.a_id(), remote);
    let pulled = feed_all(&mut v, &new, &local).expect("the new page continues the ledger");
    assert_eq!(
        pulled.iter().map(|p| p.record.clone()).collect::<Vec<_>>(),
        more
    );
    assert_eq!(
        pulled.iter().map(|p| p.receipt.clone()).collect::<Vec<_>>(),
        more_receipts
    );
    assert!(asked.borrow().is_empty());
    assert_eq!(v.checkpoint().seq, 11);
    assert_eq!(v.checkpoint().hash, new[1].entry.hash);
    assert_eq!(v.remote[&w.b_id()].device_seq, 6);
    assert_eq!(v.remote[&w.b_id()].hash, more[1].envelope.hash);

    // Resuming from the checkpoint but without the saved heads, B's event
    // 5 does not follow anything this verifier knows.
    let mut forgetful = PullVerifier::new(T, &checkpoint, &w.a_id(), Remote::new());
    expect_fork(
        feed_all(&mut forgetful, &new, &local),
        10,
        "breaks the chain of device",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_device_follows_a_chain_through_its_quarantined_event() {
    let w = world().await;
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(&user_ledger(USER)),
        &w.b_id(),
        Remote::new(),
    );
    let b_local = |s: u64| w.b.store.get(s).ok().map(|r| r.envelope.hash);
    let pulled = feed_all(&mut v, &w.items[..2], &b_local).unwrap();
    assert_eq!(pulled.len(), 1);
    // a2 was quarantined: the head moves on with the claimed and the
    // computed hash, as the server's chain does.
    assert_eq!(
        v.remote[&w.a_id()],
        RemoteHead {
            device_seq: 2,
            hash: "f".repeat(64),
            computed_hash: w.a_recs[1].envelope.hash.clone(),
        }
    );
    assert_eq!(w.items[1].entry.event_hash, w.a_recs[1].envelope.hash);
    let rest = feed_all(&mut v, &w.items[2..], &b_local).unwrap();
    let got: Vec<Record> = pulled.into_iter().chain(rest).map(|p| p.record).collect();
    let a = &w.a_recs;
    assert_eq!(
        got,
        vec![a[0].clone(), a[2].clone(), a[3].clone(), a[4].clone()]
    );
    assert_eq!(v.remote[&w.a_id()].device_seq, 5);
    assert_eq!(v.checkpoint().seq, 9);
}

// ------------------------------------------------------------ tenant scope

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_verifies_two_patients_on_the_tenant_ledger() {
    let file = TempSqlite::new();
    let app = router(Db::open(&file.url(), None).await.unwrap());
    let mut p1 = Device::new(T, "patient-1", 11);
    let mut p2 = Device::new(T, "patient-2", 12);
    let coordinator = Device::new(T, "coordinator", 13);
    let (tok1, tok2) = (
        token(T, "patient-1", Scope::Own),
        token(T, "patient-2", Scope::Own),
    );
    let r1 = records(&mut p1, "diary-1", 3);
    let r2 = records(&mut p2, "diary-2", 3);
    let mut expected: Vec<(Record, Receipt)> = Vec::new();
    for (tok, recs) in [
        (&tok1, &r1[..2]),
        (&tok2, &r2[..2]),
        (&tok1, &r1[2..]),
        (&tok2, &r2[2..]),
    ] {
        let res = push(&app, tok, &entries(recs)).await;
        assert_eq!(statuses(&res), vec!["accepted"; recs.len()]);
        expected.extend(recs.iter().cloned().zip(receipts(&res)));
    }

    let tok = token(T, "coordinator", Scope::Tenant);
    let tenant_pages = pages(&app, &tok, 0, 4).await;
    assert_eq!(tenant_pages.len(), 2);
    assert!(tenant_pages.iter().all(|p| p.ledger == TENANT_LEDGER));
    let items = items_of(&tenant_pages);
    assert_eq!(items.len(), 6);

    let never = |seq: u64| -> Option<String> {
        panic!("the coordinator's device never pushed, yet device_seq {seq} was looked up")
    };
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(TENANT_LEDGER),
        &device_id(&coordinator),
        Remote::new(),
    );
    let pulled = feed_all(&mut v, &items, &never).expect("an honest tenant ledger");
    assert_eq!(pulled.len(), 6);
    for ((p, (record, receipt)), item) in pulled.iter().zip(&expected).zip(&items) {
        assert_eq!(p.record, *record);
        assert_eq!(p.receipt, *receipt);
        assert_eq!(p.entry, item.entry);
        assert_eq!(p.entry.ledger, TENANT_LEDGER);
        assert_eq!(p.entry.seq, receipt.server_seq);
    }
    assert_eq!(
        v.checkpoint(),
        Checkpoint {
            ledger: TENANT_LEDGER.into(),
            seq: 6,
            hash: items[5].entry.hash.clone()
        }
    );
    assert_eq!(v.remote.len(), 2);
    assert_eq!(v.remote[&device_id(&p1)].device_seq, 3);
    assert_eq!(v.remote[&device_id(&p1)].hash, r1[2].envelope.hash);
    assert_eq!(v.remote[&device_id(&p2)].device_seq, 3);
    assert_eq!(v.remote[&device_id(&p2)].hash, r2[2].envelope.hash);

    // Resuming in the middle of the tenant ledger.
    let mut first = PullVerifier::new(
        T,
        &Checkpoint::genesis(TENANT_LEDGER),
        &device_id(&coordinator),
        Remote::new(),
    );
    feed_all(&mut first, &tenant_pages[0].items, &never).unwrap();
    let mut second = PullVerifier::new(
        T,
        &first.checkpoint(),
        &device_id(&coordinator),
        first.remote.clone(),
    );
    let rest = items_of(&pages(&app, &tok, first.checkpoint().seq, 100).await);
    assert_eq!(rest, tenant_pages[1].items);
    assert_eq!(feed_all(&mut second, &rest, &never).unwrap().len(), 2);
    assert_eq!(second.checkpoint(), v.checkpoint());

    // Patient 1's own device on the tenant ledger: its events are checked
    // against its store, patient 2's are pulled.
    let mut own = PullVerifier::new(
        T,
        &Checkpoint::genesis(TENANT_LEDGER),
        &device_id(&p1),
        Remote::new(),
    );
    let pulled = feed_all(&mut own, &items, &|s| {
        p1.store.get(s).ok().map(|r| r.envelope.hash)
    })
    .unwrap();
    assert_eq!(pulled.into_iter().map(|p| p.record).collect::<Vec<_>>(), r2);

    // The receipt fields checked are the tenant ledger's own.
    let mut t = items.clone();
    t[2].receipt.server_seq += 1;
    let mut v = PullVerifier::new(T, &Checkpoint::genesis(TENANT_LEDGER), "x", Remote::new());
    expect_fork(feed_all(&mut v, &t, &never), 3, "receipt of entry 3");
    let mut t = items.clone();
    t[2].receipt.ledger_hash = "ab".repeat(32);
    let mut v = PullVerifier::new(T, &Checkpoint::genesis(TENANT_LEDGER), "x", Remote::new());
    expect_fork(feed_all(&mut v, &t, &never), 3, "receipt of entry 3");
    let mut t = items.clone();
    t[2].receipt.user_seq += 7;
    t[2].receipt.user_ledger_hash = "ab".repeat(32);
    let mut v = PullVerifier::new(T, &Checkpoint::genesis(TENANT_LEDGER), "x", Remote::new());
    assert!(
        feed_all(&mut v, &t, &never).is_ok(),
        "user-ledger fields are not the tenant ledger's to check"
    );

    // The tenant ledger is not a user ledger, nor another tenant's.
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(&user_ledger("patient-1")),
        &device_id(&p1),
        Remote::new(),
    );
    expect_fork(feed_all(&mut v, &items, &never), 1, "belongs to ledger");
    let mut v = PullVerifier::new(
        "study-2",
        &Checkpoint::genesis(TENANT_LEDGER),
        "x",
        Remote::new(),
    );
    expect_fork(feed_all(&mut v, &items, &never), 1, "belongs to ledger");
}

// ------------------------------------------------------- malicious server

/// (a) An entry already served is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_entry_is_a_fork() {
    let w = world().await;
    assert!(w.as_a(&w.items).is_ok());

    // event_hash of the quarantined a2 (nothing else vouches for it),
    // re-sealed: entry 2 holds up, entry 3 no longer links.
    let mut t = w.items.clone();
    t[1].entry.event_hash = "ab".repeat(32);
    reseal(&mut t[1]);
    expect_fork(w.as_a(&t), 3, "does not link to the previous entry");
    // The same edit without re-sealing.
    let mut t = w.items.clone();
    t[1].entry.event_hash = "ab".repeat(32);
    expect_fork(w.as_a(&t), 2, "does not match its hash");

    // The outcome of b1, accepted → conflict, re-sealed.
    let mut t = w.items.clone();
    t[2].entry.outcome = LedgerOutcome::Conflict;
    reseal(&mut t[2]);
    expect_fork(w.as_a(&t), 4, "does not link to the previous entry");
    // Without re-sealing.
    let mut t = w.items.clone();
    t[2].entry.outcome = LedgerOutcome::Conflict;
    expect_fork(w.as_a(&t), 3, "does not match its hash");
    // received_at of a3 (entry and receipt), re-sealed.
    let mut t = w.items.clone();
    t[4].entry.received_at = "2030-01-01T00:00:00.000000Z".into();
    t[4].receipt.received_at = t[4].entry.received_at.clone();
    reseal(&mut t[4]);
    expect_fork(w.as_a(&t), 6, "does not link to the previous entry");

    // Across a resume: A verified entries 1–4. The server then rewrites
    // entry 3 and re-chains everything after it; entry 5 onward is a valid
    // chain, but not one that continues what A verified.
    let (cp, remote) = w.a_state_after(4);
    assert!(w.resume_a(&cp, remote.clone(), &w.items[4..]).is_ok());
    let mut t = w.items.clone();
    t[2].entry.outcome = LedgerOutcome::Conflict;
    rechain(&mut t, 2);
    assert!(w.as_a(&t).is_ok(), "a consistent rewrite, seen fresh");
    expect_fork(
        w.resume_a(&cp, remote.clone(), &t[4..]),
        5,
        "does not link to the previous entry",
    );
    // Entry 6 rewritten and re-sealed, served after the checkpoint.
    let mut t = w.items.clone();
    t[5].entry.outcome = LedgerOutcome::Conflict;
    reseal(&mut t[5]);
    expect_fork(
        w.resume_a(&cp, remote, &t[4..]),
        7,
        "does not link to the previous entry",
    );
}

/// (b) An entry is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_entry_is_a_fork() {
    let w = world().await;
    let mut t = w.items.clone();
    t.remove(4);
    expect_fork(w.as_a(&t), 6, "arrived where entry 5 belongs");
    let mut t = w.items.clone();
    t.remove(1); // the quarantined entry
    expect_fork(w.as_a(&t), 3, "arrived where entry 2 belongs");
    // The first entry after a checkpoint.
    let (cp, remote) = w.a_state_after(4);
    expect_fork(
        w.resume_a(&cp, remote.clone(), &w.items[5..]),
        6,
        "arrived where entry 5 belongs",
    );
    // One in the middle of the page after the checkpoint.
    let mut t = w.items[4..].to_vec();
    t.remove(2);
    expect_fork(
        w.resume_a(&cp, remote, &t),
        8,
        "arrived where entry 7 belongs",
    );
}

/// (c) Entries are served out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_entries_are_a_fork() {
    let w = world().await;
    let mut t = w.items.clone();
    t.swap(2, 3);
    expect_fork(w.as_a(&t), 4, "arrived where entry 3 belongs");
    let mut t = w.items.clone();
    t.swap(5, 6);
    expect_fork(w.as_a(&t), 7, "arrived where entry 6 belongs");
    // Reordered, then renumbered and re-chained: the ledger holds up, B's
    // chain does not.
    let mut t = w.items.clone();
    t.swap(2, 3);
    rechain(&mut t, 2);
    expect_fork(w.as_a(&t), 3, "breaks the chain of device");
    // A's events reordered the same way: B's verifier sees A's chain break.
    let mut t = w.items.clone();
    t.swap(4, 5);
    rechain(&mut t, 4);
    expect_fork(w.as_b(&t), 5, "breaks the chain of device");
    // Across a resume.
    let (cp, remote) = w.a_state_after(6);
    let mut t = w.items[6..].to_vec();
    t.swap(1, 2);
    expect_fork(
        w.resume_a(&cp, remote, &t),
        9,
        "arrived where entry 8 belongs",
    );
}

/// (d) After a checkpoint, the server serves a different history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_history_after_the_checkpoint_is_a_fork() {
    let mut w = world().await;
    let (cp, remote) = w.a_state_after(9);
    w.b_pushes(2).await;
    let new = items_of(&pages(&w.app, &w.tok, cp.seq, 100).await);
    assert_eq!(new.len(), 2);
    assert_eq!(
        w.resume_a(&cp, remote.clone(), &new).unwrap().len(),
        2,
        "the honest page"
    );
    let mut all = w.items.clone();
    all.extend(new.iter().cloned());

    // The server rewrote entry 5 and re-chained all that follows: the new
    // page is a valid chain of its own, but forks from the checkpoint.
    let mut t = all.clone();
    t[4].entry.outcome = LedgerOutcome::Conflict;
    rechain(&mut t, 4);
    assert!(w.as_a(&t).is_ok(), "valid-looking from the start");
    expect_fork(
        w.resume_a(&cp, remote.clone(), &t[9..]),
        10,
        "does not link to the previous entry",
    );

    // A chain that starts right after the checkpoint but from elsewhere.
    let mut t = new.clone();
    t[0].entry.prev = "ab".repeat(32);
    rechain(&mut t, 0);
    expect_fork(
        w.resume_a(&cp, remote.clone(), &t),
        10,
        "does not link to the previous entry",
    );

    // The server drops b3 and serves the ledger again from entry 6,
    // renumbered: the page does not start after the checkpoint.
    let mut t = all.clone();
    t.remove(7);
    rechain(&mut t, 7);
    expect_fork(
        w.resume_a(&cp, remote.clone(), &t[5..]),
        6,
        "arrived where entry 10 belongs",
    );
    // … or serves the same old page again.
    expect_fork(
        w.resume_a(&cp, remote, &w.items[7..]),
        8,
        "arrived where entry 10 belongs",
    );
}

/// (e) An event's payload is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_payload_is_a_fork() {
    let w = world().await;
    let mut t = w.items.clone();
    t[2].event.as_mut().unwrap().payload["text"] = json!("pain 9/10");
    expect_fork(w.as_a(&t), 3, "payload of entry 3 was changed");
    // The salt instead.
    let mut t = w.items.clone();
    t[3].event.as_mut().unwrap().salt = "00".repeat(16);
    expect_fork(w.as_a(&t), 4, "payload of entry 4 was changed");
    // A payload that is not a payload at all.
    let mut t = w.items.clone();
    t[3].event.as_mut().unwrap().payload = json!([1, 2]);
    expect_fork(w.as_a(&t), 4, "cannot be read");
    // After a checkpoint.
    let (cp, remote) = w.a_state_after(7);
    let mut t = w.items[7..].to_vec();
    t[1].event.as_mut().unwrap().payload["i"] = json!(42);
    expect_fork(
        w.resume_a(&cp, remote, &t),
        9,
        "payload of entry 9 was changed",
    );
}

/// (f) An envelope is changed, with or without a new hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_envelope_is_a_fork() {
    let w = world().await;
    // A field changed and the envelope's hash recomputed: it is no longer
    // the event the ledger hashed.
    let mut t = w.items.clone();
    edit_envelope(&mut t[2], |e| {
        e.aggregate_id = "diary-x".into();
        e.seal();
    });
    assert_eq!(envelope_of(&t[2]).compute_hash(), envelope_of(&t[2]).hash);
    expect_fork(w.as_a(&t), 3, "not the event the ledger hashed");
    // Changed without recomputing the hash.
    let mut t = w.items.clone();
    edit_envelope(&mut t[2], |e| {
        e.created_at = "2020-01-01T00:00:00.000Z".into()
    });
    expect_fork(w.as_a(&t), 3, "not the event the ledger hashed");
    // Only the hash changed.
    let mut t = w.items.clone();
    edit_envelope(&mut t[3], |e| e.hash = "ab".repeat(32));
    expect_fork(w.as_a(&t), 4, "not the event the ledger hashed");
    // An envelope that does not parse.
    let mut t = w.items.clone();
    t[3].event.as_mut().unwrap().envelope["extra"] = json!(1);
    expect_fork(w.as_a(&t), 4, "cannot be read");

    // A consistent liar: new envelope hash, entry event_hash to match, the
    // ledger re-chained. B's next event no longer links to b1.
    let mut t = w.items.clone();
    edit_envelope(&mut t[2], |e| {
        e.event_type = "withdrawn".into();
        e.seal();
    });
    t[2].entry.event_hash = envelope_of(&t[2]).hash;
    rechain(&mut t, 2);
    expect_fork(w.as_a(&t), 4, "breaks the chain of device");
    // The same, tenant_id changed: caught at once.
    let mut t = w.items.clone();
    edit_envelope(&mut t[2], |e| {
        e.tenant_id = "study-2".into();
        e.seal();
    });
    t[2].entry.event_hash = envelope_of(&t[2]).hash;
    rechain(&mut t, 2);
    expect_fork(w.as_a(&t), 3, "another tenant's event");
    // After a checkpoint: b3's envelope rewritten consistently.
    let (cp, remote) = w.a_state_after(7);
    let mut t = w.items[7..].to_vec();
    edit_envelope(&mut t[0], |e| {
        e.prev_hash = "ab".repeat(32);
        e.seal();
    });
    t[0].entry.event_hash = envelope_of(&t[0]).hash;
    t[0].entry.prev = cp.hash.clone();
    rechain(&mut t, 0);
    expect_fork(w.resume_a(&cp, remote, &t), 8, "breaks the chain of device");
}

/// (g) An event of the verifying device that it did not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fabricated_event_of_this_device_is_a_fork() {
    let w = world().await;
    let a_id = w.a_id();

    // a3 replaced by another event at the same device_seq, consistently.
    let mut t = w.items.clone();
    edit_envelope(&mut t[4], |e| {
        e.event_type = "withdrawn".into();
        e.seal();
    });
    t[4].entry.event_hash = envelope_of(&t[4]).hash;
    rechain(&mut t, 4);
    let fork = expect_fork(w.as_a(&t), 5, "did not write");
    assert!(fork.message.contains("device_seq 3"), "{}", fork.message);

    // An event for A at device_seq 6, which A never wrote, appended as a
    // well-formed item: a real envelope of another device, re-addressed.
    let mut c = Device::new(T, USER, 3);
    let fake = c.record("diary-a", "noted", json!({"i": 5, "text": "never said"}));
    let mut env = fake.envelope.clone();
    env.device_id = a_id.clone();
    env.device_seq = 6;
    env.prev_hash = w.a_recs[4].envelope.hash.clone();
    env.seal();
    let last = &w.items[8];
    let mut entry = LedgerEntry {
        tenant_id: T.into(),
        ledger: user_ledger(USER),
        seq: 10,
        event_hash: env.hash.clone(),
        outcome: LedgerOutcome::Accepted,
        received_at: last.entry.received_at.clone(),
        prev: last.entry.hash.clone(),
        hash: String::new(),
    };
    entry.seal();
    let mut event = stored(&fake);
    event.envelope = env.to_value(false);
    let fabricated = PullItem {
        receipt: Receipt {
            server_seq: last.receipt.server_seq + 1,
            user_seq: 10,
            ledger_hash: "ab".repeat(32),
            user_ledger_hash: entry.hash.clone(),
            received_at: entry.received_at.clone(),
        },
        entry,
        event: Some(event),
        quarantine: None,
        conflicts_with: Vec::new(),
        own: None,
    };
    let mut t = w.items.clone();
    t.push(fabricated.clone());
    let fork = expect_fork(w.as_a(&t), 10, "did not write");
    assert!(fork.message.contains("device_seq 6"), "{}", fork.message);
    // The same after a checkpoint.
    let (cp, remote) = w.a_state_after(9);
    expect_fork(
        w.resume_a(&cp, remote, std::slice::from_ref(&fabricated)),
        10,
        "did not write",
    );

    // A device whose store has none of these events (local_hash is None):
    // its first event in the ledger is already one it cannot vouch for.
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(&user_ledger(USER)),
        &a_id,
        Remote::new(),
    );
    expect_fork(feed_all(&mut v, &w.items, &|_| None), 1, "did not write");
    // … and one whose store holds other events at those positions.
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(&user_ledger(USER)),
        &a_id,
        Remote::new(),
    );
    expect_fork(
        feed_all(&mut v, &w.items, &|_| Some("ab".repeat(32))),
        1,
        "did not write",
    );
}

/// (h) Another device's chain is broken inside a ledger that holds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_remote_device_chain_is_a_fork() {
    let w = world().await;
    let b_id = w.b_id();
    // b2 dropped, the entries after it renumbered, re-linked and re-sealed
    // with LedgerEntry::seal: the ledger verifies, B skips device_seq 2.
    let mut t = w.items.clone();
    t.remove(3);
    rechain(&mut t, 3);
    let mut ledger =
        annal::ledger::LedgerVerifier::new(T, &user_ledger(USER), 0, annal::ledger::LEDGER_GENESIS);
    for item in &t {
        ledger
            .feed(&item.entry)
            .expect("the forged ledger is a valid chain");
    }
    let fork = expect_fork(w.as_a(&t), 7, "breaks the chain of device");
    assert!(
        fork.message.contains(&format!("{b_id} at device_seq 3")),
        "{}",
        fork.message
    );

    // b2 re-linked to something else than b1.
    let mut t = w.items.clone();
    edit_envelope(&mut t[3], |e| {
        e.prev_hash = "ab".repeat(32);
        e.seal();
    });
    t[3].entry.event_hash = envelope_of(&t[3]).hash;
    rechain(&mut t, 3);
    expect_fork(w.as_a(&t), 4, "at device_seq 2");

    // B's chain starting at device_seq 2 (b1 dropped).
    let mut t = w.items.clone();
    t.remove(2);
    rechain(&mut t, 2);
    expect_fork(w.as_a(&t), 3, "at device_seq 2");

    // b2 served twice.
    let mut t = w.items.clone();
    t.insert(4, w.items[3].clone());
    rechain(&mut t, 4);
    expect_fork(w.as_a(&t), 5, "at device_seq 2");

    // Across a resume: the saved head says B is at 2; the server drops b3
    // from what follows and re-chains from the checkpoint.
    let (cp, remote) = w.a_state_after(4);
    assert_eq!(remote[&b_id].device_seq, 2);
    let mut t = w.items[4..].to_vec();
    t.remove(3);
    rechain(&mut t, 0);
    expect_fork(w.resume_a(&cp, remote, &t), 8, "at device_seq 4");
}

/// (i) A receipt that does not match its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_does_not_match_its_entry_is_a_fork() {
    let w = world().await;
    type Edit = (&'static str, fn(&mut Receipt));
    let edits: [Edit; 3] = [
        ("user_seq", |r| r.user_seq += 1),
        ("user_ledger_hash", |r| r.user_ledger_hash = "ab".repeat(32)),
        ("received_at", |r| {
            r.received_at = "2030-01-01T00:00:00.000000Z".into()
        }),
    ];
    for (what, edit) in edits {
        let mut t = w.items.clone();
        edit(&mut t[2].receipt);
        let fork = w.as_a(&t).expect_err(what);
        assert_eq!(fork.seq, 3, "{what}: {fork:?}");
        assert!(
            fork.message.contains("receipt of entry 3"),
            "{what}: {fork:?}"
        );
        // On a quarantined entry too.
        let mut t = w.items.clone();
        edit(&mut t[1].receipt);
        expect_fork(w.as_a(&t), 2, "receipt of entry 2");
    }
    // The entry re-sealed, its receipt left as it was.
    let mut t = w.items.clone();
    t[2].entry.outcome = LedgerOutcome::Conflict;
    t[2].entry.seal();
    expect_fork(w.as_a(&t), 3, "receipt of entry 3");
    // After a checkpoint.
    let (cp, remote) = w.a_state_after(8);
    let mut t = w.items[8..].to_vec();
    t[0].receipt.user_seq = 8;
    expect_fork(w.resume_a(&cp, remote, &t), 9, "receipt of entry 9");
}

/// (j) An item that does not carry what its outcome says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_entry_without_its_event_is_a_fork() {
    let w = world().await;
    let mut t = w.items.clone();
    t[2].event = None;
    expect_fork(w.as_a(&t), 3, "does not carry what its outcome says");
    // Dropping an own event's body is caught just the same.
    let mut t = w.items.clone();
    t[0].event = None;
    expect_fork(w.as_a(&t), 1, "entry 1 (accepted) does not carry");
    // An accepted entry with a quarantine besides its event.
    let mut t = w.items.clone();
    t[2].quarantine = w.items[1].quarantine.clone();
    expect_fork(w.as_a(&t), 3, "does not carry what its outcome says");
    // A quarantined entry without its quarantine, or with an event.
    let mut t = w.items.clone();
    t[1].quarantine = None;
    expect_fork(w.as_a(&t), 2, "entry 2 (quarantined) does not carry");
    let mut t = w.items.clone();
    t[1].event = Some(stored(&w.a_recs[1]));
    expect_fork(w.as_a(&t), 2, "entry 2 (quarantined) does not carry");
    // b1 turned into "quarantined" and re-sealed, its event still there.
    let mut t = w.items.clone();
    t[2].entry.outcome = LedgerOutcome::Quarantined;
    rechain(&mut t, 2);
    expect_fork(w.as_a(&t), 3, "does not carry what its outcome says");
    // After a checkpoint.
    let (cp, remote) = w.a_state_after(7);
    let mut t = w.items[7..].to_vec();
    t[1].event = None;
    expect_fork(
        w.resume_a(&cp, remote, &t),
        9,
        "does not carry what its outcome says",
    );
}

// ------------------------------------------- honest servers are not forks

/// An honest server quarantines an event that reuses a known `event_id`
/// with another hash (`DUPLICATE_EVENT_ID`) before it looks at the device
/// chain (server/src/ingest.rs, `one`), so that event does not move its
/// device's chain, and the device's real next event is accepted at the
/// same `device_seq`. The verifier must not call that a fork.
///
/// Here patient 2 pushes a copy of patient 1's first event with
/// `device_seq` 3; patient 1 then pushes its real event 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_id_quarantine_is_not_a_fork_on_the_tenant_ledger() {
    let file = TempSqlite::new();
    let app = router(Db::open(&file.url(), None).await.unwrap());
    let mut p1 = Device::new(T, "patient-1", 21);
    let coordinator = Device::new(T, "coordinator", 23);
    let r1 = records(&mut p1, "diary-1", 3);
    let tok1 = token(T, "patient-1", Scope::Own);
    let res = push(&app, &tok1, &entries(&r1[..2])).await;
    assert_eq!(statuses(&res), vec!["accepted"; 2]);
    let mut copy = entry(&r1[0]);
    copy["envelope"]["device_seq"] = json!(3);
    let res = push(&app, &token(T, "patient-2", Scope::Own), &[copy]).await;
    assert_eq!(statuses(&res), vec!["quarantined"]);
    assert_eq!(res["results"][0]["code"], "WRONG_USER");
    let res = push(&app, &tok1, &entries(&r1[2..])).await;
    assert_eq!(
        statuses(&res),
        vec!["accepted"],
        "the server's chain of patient 1's device did not move"
    );

    let items = items_of(&pages(&app, &token(T, "coordinator", Scope::Tenant), 0, 100).await);
    assert_eq!(items.len(), 4);
    let mut v = PullVerifier::new(
        T,
        &Checkpoint::genesis(TENANT_LEDGER),
        &device_id(&coordinator),
        Remote::new(),
    );
    let pulled = feed_all(&mut v, &items, &|_| None).unwrap_or_else(|f| {
        panic!(
            "an honest server reported as a fork at entry {}: {}",
            f.seq, f.message
        )
    });
    assert_eq!(pulled.into_iter().map(|p| p.record).collect::<Vec<_>>(), r1);
    assert_eq!(v.remote[&device_id(&p1)].device_seq, 3);
}

/// The same within one user's ledger: device B pushes its event 1 again
/// with `device_seq` 3 (a client bug), then its real event 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_id_quarantine_is_not_a_fork_on_the_user_ledger() {
    let mut w = world().await;
    let mut copy = entry(&w.b_recs[0]);
    copy["envelope"]["device_seq"] = json!(5);
    let res = push(&w.app, &w.tok, &[copy]).await;
    assert_eq!(res["results"][0]["code"], "DUPLICATE_EVENT_ID");
    let (more, _) = w.b_pushes(1).await;
    let items = items_of(&pages(&w.app, &w.tok, 0, 100).await);
    assert_eq!(items.len(), 11);
    let pulled = w.as_a(&items).unwrap_or_else(|f| {
        panic!(
            "an honest server reported as a fork at entry {}: {}",
            f.seq, f.message
        )
    });
    assert_eq!(pulled.last().unwrap().record, more[0]);
}

/// Protocol 2: with `omit_device`, this device's events come as references
/// to its own copies. They verify against those copies; a reference to the
/// wrong event, to one the device never wrote, or standing for another
/// device's event is a fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_events_as_references_verify_and_a_wrong_reference_is_a_fork() {
    let w = world().await;
    let lean: Vec<PullItem> = w
        .items
        .iter()
        .cloned()
        .map(|mut i| {
            if i.event.is_some() && device_of(&i) == w.a_id() {
                i.own = Some(OwnEvent {
                    device_seq: envelope_of(&i).device_seq,
                });
                i.event = None;
            }
            i
        })
        .collect();
    assert_eq!(
        lean.iter().filter(|i| i.own.is_some()).count(),
        4,
        "A's accepted events"
    );
    assert_eq!(
        w.as_a(&lean).unwrap(),
        w.as_a(&w.items).unwrap(),
        "the same events of B are taken"
    );
    for seq in [2, 6] {
        let mut t = lean.clone();
        t[0].own = Some(OwnEvent { device_seq: seq });
        expect_fork(w.as_a(&t), 1, "did not write");
    }
    let mut t = lean.clone();
    t[B_AT[0]].event = None;
    t[B_AT[0]].own = Some(OwnEvent { device_seq: 3 });
    expect_fork(w.as_a(&t), B_AT[0] as u64 + 1, "did not write");
    let mut t = lean.clone();
    t[0].event = w.items[0].event.clone();
    expect_fork(w.as_a(&t), 1, "does not carry");
}
