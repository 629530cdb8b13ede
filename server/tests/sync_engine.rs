//! The core sync engine against the real annal-server (SQLite, in-process
//! router): draining, lost responses, retry storms, convergence of two
//! devices, tenant scope, a malicious server, token refresh and an
//! incompatible server. The browser store runs the same engine.

#[path = "support/client.rs"]
mod client;

use annal::clock::ManualClock;
use annal::entropy::SeededEntropy;
use annal::error::{ErrorCode, Result};
use annal::sync::backoff::Backoff;
use annal::sync::engine::{Engine, Scope, SyncReport, TokenSource};
use annal::sync::memory::MemorySync;
use annal::sync::transport::{
    Fault, FaultyTransport, Request, Response, Transport, TransportError,
};
use annal_server::auth::Scope as TokenScope;
use annal_server::db::Db;
use axum::body::Body;
use axum::Router;
use client::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use tower::ServiceExt;

const T: &str = "study-1";

/// An edit a malicious server makes to pull pages.
type Rewrite = Box<dyn Fn(&mut Value)>;

/// The router as a transport, optionally rewriting pull responses.
struct RouterTransport {
    app: Router,
    rewrite: RefCell<Option<Rewrite>>,
    schema: RefCell<Option<String>>,
}

impl RouterTransport {
    fn new(app: Router) -> Self {
        RouterTransport {
            app,
            rewrite: RefCell::new(None),
            schema: RefCell::new(None),
        }
    }
}

impl Transport for RouterTransport {
    async fn send(&self, req: Request) -> std::result::Result<Response, TransportError> {
        if req.path == "/v1/schema" {
            if let Some(body) = self.schema.borrow().clone() {
                return Ok(Response {
                    status: 200,
                    retry_after_ms: None,
                    body,
                });
            }
        }
        let mut builder = axum::http::Request::builder()
            .method(req.method)
            .uri(&req.path);
        if let Some(t) = &req.token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let request = builder
            .header("content-type", "application/json")
            .body(req.body.clone().map_or_else(Body::empty, Body::from))
            .unwrap();
        let res = self
            .app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let status = res.status().as_u16();
        let retry_after_ms = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| annal::sync::backoff::parse_retry_after(v, 0));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let mut body = String::from_utf8_lossy(&bytes).into_owned();
        if req.method == "GET" && req.path.starts_with("/v1/events") {
            if let Some(rewrite) = &*self.rewrite.borrow() {
                let mut v: Value = serde_json::from_str(&body).unwrap();
                rewrite(&mut v);
                body = v.to_string();
            }
        }
        Ok(Response {
            status,
            retry_after_ms,
            body,
        })
    }
}

/// Tokens minted like an app's backend would, counting refreshes; the
/// cached one can be expired until a refresh.
struct Tokens {
    user: String,
    scope: TokenScope,
    expired_first: Cell<bool>,
    refreshes: Cell<u32>,
}

impl Tokens {
    fn new(user: &str, scope: TokenScope) -> Self {
        Tokens {
            user: user.into(),
            scope,
            expired_first: Cell::new(false),
            refreshes: Cell::new(0),
        }
    }
}

impl TokenSource for Tokens {
    async fn token(&self, refresh: bool) -> Result<String> {
        if refresh {
            // A refresh gets a fresh token; until then the cached one is
            // the expired one.
            self.refreshes.set(self.refreshes.get() + 1);
            self.expired_first.set(false);
        }
        if self.expired_first.get() {
            use jsonwebtoken::{encode, EncodingKey, Header};
            let claims =
                json!({"sub": self.user, "tenant": T, "aud": AUDIENCE, "exp": 1_000_000_000u64});
            return Ok(encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap());
        }
        Ok(token(T, &self.user, self.scope))
    }
}

fn device(user: &str, seed: u64) -> MemorySync {
    MemorySync::new(Device::new(T, user, seed).store)
}

fn append(d: &MemorySync, aggregate: &str, n: usize) {
    let mut store = d.store.borrow_mut();
    for i in 0..n {
        let draft = annal::draft::Draft::from_value(&json!({
            "aggregateType": "diary", "aggregateId": aggregate, "eventType": "noted", "payload": {"i": i}
        }))
        .unwrap();
        store.append(draft).unwrap();
    }
}

async fn sync<Tr: Transport>(
    d: &MemorySync,
    transport: &Tr,
    tokens: &Tokens,
    clock: &ManualClock,
    scope: Scope,
) -> Result<SyncReport> {
    let entropy = SeededEntropy::new(9);
    Engine {
        store: d,
        transport,
        tokens,
        clock,
        entropy: &entropy,
        backoff: Backoff::default(),
        scope,
        progress: None,
    }
    .run()
    .await
}

/// A test's world: a fresh server (SQLite, in-process), the router as the
/// transport behind fault injection (none until a test asks), a manual
/// clock, and the tokens of patient p-1.
struct World {
    app: Router,
    net: FaultyTransport<RouterTransport>,
    clock: ManualClock,
    tokens: Tokens,
    _file: TempSqlite,
}

impl World {
    /// A world whose clock reads 0.
    async fn new() -> World {
        World::at(0).await
    }

    /// A world whose clock reads `now_ms`.
    async fn at(now_ms: i64) -> World {
        let file = TempSqlite::new();
        let app = router(Db::open(&file.url(), None).await.unwrap());
        World {
            net: FaultyTransport::new(RouterTransport::new(app.clone())),
            app,
            clock: ManualClock::new(now_ms),
            tokens: Tokens::new("p-1", TokenScope::Own),
            _file: file,
        }
    }

    /// One sync of `d` as patient p-1.
    async fn sync(&self, d: &MemorySync) -> Result<SyncReport> {
        sync(d, &self.net, &self.tokens, &self.clock, Scope::Own).await
    }

    /// One sync of `d` as `user` with a token of `scope`.
    async fn sync_as(&self, d: &MemorySync, user: &str, scope: Scope) -> Result<SyncReport> {
        let token_scope = match scope {
            Scope::Own => TokenScope::Own,
            Scope::Tenant => TokenScope::Tenant,
        };
        let tokens = Tokens::new(user, token_scope);
        sync(d, &self.net, &tokens, &self.clock, scope).await
    }

    /// What the server holds, read by an auditor and verified.
    async fn events(&self) -> Vec<Value> {
        let auditor = token(T, "auditor", TokenScope::Tenant);
        let (ledger, items) = pull_all(&self.app, &auditor).await;
        verify_ledger(T, &ledger, &items);
        items
    }

    /// Makes the server edit every pull page before it is sent.
    fn rewrite_pulls(&self, rewrite: impl Fn(&mut Value) + 'static) {
        *self.net.inner().rewrite.borrow_mut() = Some(Box::new(rewrite));
    }

    /// Makes the server answer `GET /v1/schema` with `schema`.
    fn claim_schema(&self, schema: Value) {
        *self.net.inner().schema.borrow_mut() = Some(schema.to_string());
    }
}

/// A device of `user` with `n` events of `aggregate` queued.
fn device_with(user: &str, seed: u64, aggregate: &str, n: usize) -> MemorySync {
    let d = device(user, seed);
    append(&d, aggregate, n);
    d
}

#[tokio::test]
async fn offline_events_drain_in_order_and_the_outbox_empties() {
    let w = World::at(1_000).await;
    let d = device_with("p-1", 1, "a", 200);
    w.net.fail_all(Fault::Fail);
    let err = w.sync(&d).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Offline);
    assert_eq!(d.pending_count(), 200);
    w.net.heal();
    let report = w.sync(&d).await.unwrap();
    assert_eq!((report.pushed, report.acked), (200, 200));
    assert_eq!(d.pending_count(), 0);
    assert_eq!(d.receipts.borrow().len(), 200);
    let items = w.events().await;
    let seqs: Vec<u64> = items
        .iter()
        .map(|i| i["event"]["envelope"]["device_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    // The checkpoint covers our own 200 entries, verified against local hashes.
    assert_eq!(d.state().checkpoint.unwrap().seq, 200);
    let retry = d.state().retry;
    assert_eq!((retry.attempts, retry.last_error), (0, None));
    assert!(
        retry.last_success_ms.is_some(),
        "when sync last worked is kept"
    );
}

#[tokio::test]
async fn lost_responses_never_duplicate() {
    let w = World::new().await;
    let d = device_with("p-1", 2, "a", 30);
    for _ in 0..3 {
        // Request 1 of each pass is the schema check; 2 is the push.
        w.net.fail_nth(w.net.sent() + 2, Fault::LoseResponse);
        assert_eq!(w.sync(&d).await.unwrap_err().code, ErrorCode::Offline);
    }
    w.net.fail_next(2, Fault::Duplicate);
    w.sync(&d).await.unwrap();
    assert_eq!(d.pending_count(), 0);
    assert_eq!(d.receipts.borrow().len(), 30);
    let items = w.events().await;
    assert_eq!(items.len(), 30, "no duplicates on the server");
    // Every stored receipt is the server's.
    for item in &items {
        let seq = item["event"]["envelope"]["device_seq"].as_u64().unwrap();
        assert_eq!(
            d.receipts.borrow()[&seq].server_seq,
            item["entry"]["seq"].as_u64().unwrap()
        );
    }
}

#[tokio::test]
async fn a_500_storm_backs_off_with_jitter_and_honours_retry_after() {
    let w = World::at(1_000_000).await;
    let d = device_with("p-1", 3, "a", 5);
    w.net.fail_all(Fault::Status(503, Some(7_000)));
    let mut previous_ceiling = 0;
    for attempt in 1..=8u32 {
        let now = annal::clock::Clock::now_ms(&w.clock);
        assert_eq!(w.sync(&d).await.unwrap_err().code, ErrorCode::Offline);
        let retry = d.state().retry;
        assert_eq!(retry.attempts, attempt);
        let delay = (retry.next_attempt_ms - now) as u64;
        let ceiling = (1000u64 << (attempt - 1)).min(300_000);
        assert!(delay >= 7_000, "Retry-After is a floor: {delay}");
        assert!(
            delay <= ceiling.max(7_000),
            "attempt {attempt}: {delay} > {ceiling}"
        );
        assert!(ceiling >= previous_ceiling);
        previous_ceiling = ceiling;
        w.clock.advance(delay as i64);
    }
    w.net.heal();
    w.sync(&d).await.unwrap();
    assert_eq!(d.state().retry.attempts, 0);
    assert_eq!(w.events().await.len(), 5);
}

#[tokio::test]
async fn two_devices_converge_and_a_coordinator_sees_everyone() {
    let w = World::new().await;
    let phone = device_with("p-1", 4, "diary", 3);
    let tablet = device_with("p-1", 5, "meds", 4);
    w.sync(&phone).await.unwrap();
    w.sync(&tablet).await.unwrap();
    w.sync(&phone).await.unwrap();
    assert_eq!(phone.remote.borrow().len(), 4);
    assert_eq!(tablet.remote.borrow().len(), 3);
    assert_eq!(
        phone.state().checkpoint,
        tablet.state().checkpoint,
        "both verified the same user ledger"
    );
    let other = device_with("p-2", 6, "x", 2);
    w.sync_as(&other, "p-2", Scope::Own).await.unwrap();
    assert!(
        other.remote.borrow().is_empty(),
        "another patient's events are never pulled"
    );
    let coordinator = device("coord", 7);
    let report = w
        .sync_as(&coordinator, "coord", Scope::Tenant)
        .await
        .unwrap();
    assert_eq!((report.pulled, report.verified), (9, 9));
    assert_eq!(coordinator.state().checkpoint.unwrap().ledger, "tenant");
}

#[tokio::test]
async fn a_server_that_rewrites_or_drops_history_is_caught() {
    for tamper in ["rewrite", "drop"] {
        let w = World::new().await;
        let phone = device("p-1", 8);
        let tablet = device_with("p-1", 9, "meds", 3);
        w.sync(&tablet).await.unwrap();
        w.sync(&phone).await.unwrap();
        append(&tablet, "meds", 2);
        w.sync(&tablet).await.unwrap();
        let checkpoint = phone.state().checkpoint;
        w.rewrite_pulls(move |page: &mut Value| {
            let items = page["items"].as_array_mut().unwrap();
            if tamper == "drop" {
                items.remove(0);
            } else {
                items[1]["event"]["payload"] = json!({"i": 99});
            }
        });
        let err = w.sync(&phone).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::LedgerFork, "{tamper}: {}", err.message);
        assert_eq!(
            phone.state().checkpoint,
            checkpoint,
            "{tamper}: nothing of the forked page is kept"
        );
        assert_eq!(phone.remote.borrow().len(), 3);
    }
}

/// A page that says more follow but holds nothing would have the client
/// ask for the same page forever (the next page is asked for before this
/// one is checked): it is refused as a misbehaving server.
#[tokio::test]
async fn an_empty_page_with_more_to_come_is_refused() {
    let w = World::new().await;
    let phone = device_with("p-1", 8, "diary", 2);
    w.rewrite_pulls(|page: &mut Value| {
        page["items"] = json!([]);
        page["has_more"] = json!(true);
    });
    let err = w.sync(&phone).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Storage, "{}", err.message);
    assert!(
        err.message.contains("no items and has_more"),
        "{}",
        err.message
    );
    assert_eq!(phone.state().acked, 2, "the push before the pull is kept");
    assert_eq!(
        phone.state().checkpoint.map(|c| c.seq),
        Some(2),
        "the push's own receipts verified entries 1–2; the refused page added nothing"
    );
}

/// A device's own entries are verified from its push receipts when they
/// follow its checkpoint, so its pull does not bring them back; once
/// another device's entries come in between, the pull verifies from the
/// checkpoint as before.
#[tokio::test]
async fn own_entries_are_verified_from_receipts_until_another_device_comes_between() {
    let w = World::new().await;
    let served = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let count = served.clone();
    w.rewrite_pulls(move |page: &mut Value| {
        count.set(count.get() + page["items"].as_array().map_or(0, Vec::len));
    });
    let phone = device_with("p-1", 21, "a", 1200);
    let report = w.sync(&phone).await.unwrap();
    assert_eq!(
        (report.pushed, report.verified, report.pulled),
        (1200, 1200, 0)
    );
    assert_eq!(served.get(), 0, "no entry of its own pulled back");
    let items = w.events().await;
    let head = items.last().unwrap()["receipt"]["user_ledger_hash"].clone();
    let checkpoint = phone.state().checkpoint.unwrap();
    assert_eq!((checkpoint.seq, json!(checkpoint.hash)), (1200, head));

    let tablet = device_with("p-1", 22, "b", 3);
    w.sync(&tablet).await.unwrap();
    append(&phone, "a", 2);
    served.set(0);
    let report = w.sync(&phone).await.unwrap();
    assert_eq!((report.pushed, report.pulled), (2, 3));
    assert_eq!(
        report.verified, 5,
        "the tablet's 3 and its own 2, all by the pull"
    );
    assert_eq!(served.get(), 5);
    let checkpoint = phone.state().checkpoint.unwrap();
    assert_eq!(checkpoint.seq, 1205);
    // The tablet, which pulled the phone's 1,200 first, verifies its own
    // 3 by the pull too, and then the phone's 2.
    let report = w.sync(&tablet).await.unwrap();
    assert_eq!((report.pulled, report.verified), (2, 2));
    assert_eq!(tablet.state().checkpoint.unwrap(), checkpoint);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_an_incompatible_server_gets_nothing() {
    let w = World::new().await;
    w.tokens.expired_first.set(true);
    let d = device_with("p-1", 10, "a", 3);
    w.sync(&d).await.unwrap();
    assert_eq!(w.tokens.refreshes.get(), 1);
    assert_eq!(d.pending_count(), 0);

    let w = World::new().await;
    w.claim_schema(json!({"protocol": {"min": 3, "max": 4}, "max_schema_version": {}}));
    let d = device_with("p-1", 11, "a", 3);
    let err = w.sync(&d).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaIncompatible);
    assert!(err.message.contains("Upgrade"), "{}", err.message);
    assert!(w.events().await.is_empty(), "nothing was pushed");
    assert_eq!(d.pending_count(), 3);
}

#[tokio::test]
async fn ten_thousand_queued_events_drain() {
    let w = World::new().await;
    let d = device_with("p-1", 12, "a", 10_000);
    let report = w.sync(&d).await.unwrap();
    assert_eq!(report.pushed, 10_000);
    assert_eq!(d.pending_count(), 0);
    assert_eq!(w.events().await.len(), 10_000);
}
