//! Test clients: devices built with annal's own core (so every hash is the
//! real thing), tokens, and requests through the router.
#![allow(dead_code, unreachable_pub)]

use annal::clock::ManualClock;
use annal::draft::Draft;
use annal::entropy::SeededEntropy;
use annal::memory::MemoryStore;
use annal::record::Record;
use annal::state::Identity;
use annal_server::auth::{Auth, Scope};
use annal_server::db::Db;
use annal_server::ingest::Policy;
use annal_server::{app, AppState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

pub const SECRET: &[u8] = b"test secret of at least thirty-two bytes!";
pub const AUDIENCE: &str = "annal";

/// A device: an in-memory annal store whose records are pushed.
pub struct Device {
    pub store: MemoryStore,
}

impl Device {
    pub fn new(tenant: &str, user: &str, seed: u64) -> Device {
        let clock = ManualClock::new(1_700_000_000_000 + seed as i64);
        let entropy = SeededEntropy::new(seed);
        let identity = Identity::generate(tenant, user, &clock, &entropy);
        Device {
            store: MemoryStore::new(identity, Box::new(clock), Box::new(entropy)),
        }
    }

    pub fn record(&mut self, aggregate: &str, event_type: &str, payload: Value) -> Record {
        let draft = Draft::from_value(&json!({
            "aggregateType": "diary", "aggregateId": aggregate, "eventType": event_type, "payload": payload
        }))
        .expect("a valid draft");
        self.store.append(draft).expect("append")
    }

    /// `n` new events on `aggregate`, as push entries.
    pub fn entries(&mut self, aggregate: &str, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| entry(&self.record(aggregate, "noted", json!({"i": i, "text": "pain 3/10"}))))
            .collect()
    }
}

/// A push entry for a record.
pub fn entry(r: &Record) -> Value {
    json!({
        "envelope": r.envelope.to_value(false),
        "salt": annal::hex::encode(&r.salt),
        "payload": serde_json::from_str::<Value>(r.payload.as_str()).unwrap(),
    })
}

pub fn token(tenant: &str, user: &str, scope: Scope) -> String {
    Auth::hs256(SECRET, AUDIENCE)
        .mint(tenant, user, scope, 3600)
        .unwrap()
}

pub fn state(db: Db) -> AppState {
    AppState {
        db,
        auth: Arc::new(Auth::hs256(SECRET, AUDIENCE)),
        policy: Arc::new(Policy {
            max_schema: [("vitals-recorded".to_string(), 2)].into(),
        }),
        metrics: Arc::default(),
        notify: annal_server::notify::Notifier::default(),
        cors_origins: vec!["http://127.0.0.1:8080".into()],
    }
}

pub fn router(db: Db) -> Router {
    app(state(db))
}

/// Sends a request; returns the status and the JSON (or text) body.
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub async fn push(app: &Router, token: &str, events: &[Value]) -> Value {
    push_batch(app, token, events, false).await
}

pub async fn push_batch(app: &Router, token: &str, events: &[Value], atomic: bool) -> Value {
    let body = json!({ "atomic": atomic, "events": events }).to_string();
    let (status, v) = call(app, "POST", "/v1/events", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

pub fn statuses(response: &Value) -> Vec<String> {
    response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

/// Every item of a ledger, page by page.
pub async fn pull_all(app: &Router, token: &str) -> (String, Vec<Value>) {
    let mut after = 0;
    let mut items = Vec::new();
    loop {
        let (status, page) = call(
            app,
            "GET",
            &format!("/v1/events?after={after}&limit=500"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ledger = page["ledger"].as_str().unwrap().to_string();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            return (ledger, items);
        }
    }
}

/// Verifies a pulled ledger from genesis with annal's verifier, and every
/// accepted event's hash against its entry.
pub fn verify_ledger(tenant: &str, ledger: &str, items: &[Value]) {
    let mut v =
        annal::ledger::LedgerVerifier::new(tenant, ledger, 0, annal::ledger::LEDGER_GENESIS);
    for item in items {
        let entry = annal::ledger::entry_from_value(&item["entry"]).unwrap();
        v.feed(&entry)
            .unwrap_or_else(|b| panic!("ledger breaks at {}: {}", b.seq, b.message));
        if let Some(event) = item.get("event") {
            let envelope = annal::envelope::Envelope::from_value(&event["envelope"]).unwrap();
            assert_eq!(envelope.compute_hash(), entry.event_hash);
        }
    }
}

/// A fresh SQLite database file, removed on drop.
pub struct TempSqlite {
    pub path: PathBuf,
}

impl TempSqlite {
    pub fn new() -> TempSqlite {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("annal-test-{}-{n}.db", std::process::id()));
        TempSqlite { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// The bytes of one HTTP/1.1 request that closes its connection afterwards:
/// a JSON body with its `Content-Length`, and a bearer token if given.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
    bytes
}

/// Reads a whole HTTP/1.1 response (the server closes the connection);
/// returns the status and the JSON (or text) body. An error, or a response
/// cut off before its end, is `Err`.
pub async fn http_response(socket: &mut tokio::net::TcpStream) -> std::io::Result<(u16, Value)> {
    use std::io::{Error, ErrorKind};
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await?;
    let cut = |what: &str| Error::new(ErrorKind::UnexpectedEof, format!("response {what}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| cut("without a complete head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| cut("without a status"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let mut rest = &raw[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| cut("cut off in a chunk size"))?;
            let size = String::from_utf8_lossy(&rest[..line_end]);
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| cut("with a bad chunk size"))?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break body;
            }
            if rest.len() < size + 2 {
                return Err(cut("cut off in a chunk"));
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < n {
            return Err(cut("shorter than its Content-Length"));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, value))
}

/// One request over a fresh loopback connection: `(status, body)`.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, Value)> {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket
        .write_all(&http_request(addr, method, path, token, body))
        .await?;
    http_response(&mut socket).await
}

/// Pushes a batch over HTTP; the response must be a 200.
pub async fn http_push(addr: std::net::SocketAddr, token: &str, events: &[Value]) -> Value {
    let body = json!({ "events": events }).to_string();
    let (status, v) = http(addr, "POST", "/v1/events", Some(token), Some(&body))
        .await
        .unwrap_or_else(|e| panic!("POST /v1/events to {addr}: {e}"));
    assert_eq!(status, 200, "POST /v1/events to {addr}: {v}");
    v
}

/// Every item of the caller's ledger over HTTP, page by page.
pub async fn http_pull_all(addr: std::net::SocketAddr, token: &str) -> (String, Vec<Value>) {
    let mut after = 0;
    let mut items = Vec::new();
    loop {
        let path = format!("/v1/events?after={after}&limit=1000");
        let (status, page) = http(addr, "GET", &path, Some(token), None)
            .await
            .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
        assert_eq!(status, 200, "GET {path}: {page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            return (page["ledger"].as_str().unwrap().to_string(), items);
        }
    }
}

/// Checks that `items` are a ledger's entries from seq 1 with no gap.
pub fn assert_gap_free(items: &[Value]) {
    for (i, item) in items.iter().enumerate() {
        assert_eq!(
            item["entry"]["seq"].as_u64(),
            Some(i as u64 + 1),
            "the ledger has a gap or is out of order at position {i}"
        );
    }
}
