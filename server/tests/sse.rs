//! Server-Sent Events over real sockets, on SQLite and on PostgreSQL: live
//! delivery, resume with Last-Event-ID, isolation between users and
//! tenants, filters, and the open-streams gauge. On PostgreSQL, two
//! instances share one database, and a stream on one delivers, gap-free and
//! in order, what was pushed to either (LISTEN/NOTIFY).

#[path = "support/client.rs"]
mod client;
#[macro_use]
#[path = "support/fixture.rs"]
mod fixture;
#[path = "support/postgres.rs"]
mod pg;

use annal_server::auth::Scope;
use annal_server::db::Db;
use annal_server::{app, AppState};
use axum::Router;
use client::*;
use fixture::Fixture;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const T: &str = "study-1";

/// How long a stream may take to deliver what it is owed.
const PATIENCE: Duration = Duration::from_secs(10);

on_every_backend!(
    streams_deliver_live_and_resume_after_last_event_id,
    other_users_and_tenants_see_nothing,
    filters_apply_to_streams,
    the_gauge_counts_open_streams,
);

/// An app served on a real loopback socket; stopped on drop.
struct Served {
    addr: SocketAddr,
    router: Router,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(state: AppState) -> Served {
    let router = app(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum::serve(listener, router.clone());
    let task = tokio::spawn(async move {
        server.await.unwrap();
    });
    Served { addr, router, task }
}

/// An SSE connection. A task reads it (de-chunking the body and parsing
/// events) and hands over the `entry` events, so waiting with a timeout
/// never loses half-read data.
struct Stream {
    events: mpsc::UnboundedReceiver<(u64, Value)>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Dropping the task closes the socket.
        self.reader.abort();
    }
}

/// Sends `GET path` for a stream; returns the status line and the reader
/// positioned after the headers, and whether the body is chunked.
async fn request_stream(
    addr: SocketAddr,
    path: &str,
    token: &str,
    last_event_id: Option<u64>,
) -> (String, BufReader<TcpStream>, bool) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    (status, reader, chunked)
}

impl Stream {
    /// Opens `path` (`/v1/stream`, perhaps with a query); must be a 200.
    async fn open(addr: SocketAddr, path: &str, token: &str, last_event_id: Option<u64>) -> Stream {
        let (status, reader, chunked) = request_stream(addr, path, token, last_event_id).await;
        assert!(status.starts_with("HTTP/1.1 200"), "GET {path}: {status}");
        let (tx, events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_events(reader, chunked, tx));
        Stream { events, reader }
    }

    /// The status a stream request gets, and the error body if it is not 200.
    async fn refused(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(&http_request(addr, "GET", path, Some(token), None))
            .await
            .unwrap();
        http_response(&mut socket).await.unwrap()
    }

    /// The next `entry` event: `(id, data)`.
    async fn next(&mut self) -> (u64, Value) {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no SSE event within {PATIENCE:?}"))
            .expect("the stream ended")
    }

    /// The next event if one comes within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<(u64, Value)> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next `n` events.
    async fn take(&mut self, n: usize) -> Vec<(u64, Value)> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }
}

/// Reads the body of a stream, event by event, until it ends.
async fn read_events(
    mut reader: BufReader<TcpStream>,
    chunked: bool,
    tx: mpsc::UnboundedSender<(u64, Value)>,
) {
    let mut text = String::new();
    loop {
        // Next piece of the body.
        let piece = if chunked {
            let mut size = String::new();
            if reader.read_line(&mut size).await.unwrap_or(0) == 0 {
                return;
            }
            let size = size.trim().split(';').next().unwrap_or("");
            let Ok(size) = usize::from_str_radix(size, 16) else {
                panic!("bad chunk size {size:?}");
            };
            if size == 0 {
                return;
            }
            let mut data = vec![0; size + 2];
            if reader.read_exact(&mut data).await.is_err() {
                return;
            }
            data.truncate(size);
            data
        } else {
            let mut data = vec![0; 64 * 1024];
            match reader.read(&mut data).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data[..n].to_vec(),
            }
        };
        text.push_str(std::str::from_utf8(&piece).expect("UTF-8 event text"));
        // Whole events end with a blank line.
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, None, Vec::new());
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "" => {} // a comment: keep-alive
                    "id" => id = Some(value.parse::<u64>().expect("a numeric id")),
                    "event" => event = Some(value.to_string()),
                    "data" => data.push(value.to_string()),
                    other => panic!("unexpected SSE field {other:?}"),
                }
            }
            if data.is_empty() {
                continue;
            }
            assert_eq!(event.as_deref(), Some("entry"), "{block}");
            let id = id.expect("every entry has an id");
            let value: Value = serde_json::from_str(&data.join("\n")).expect("JSON data");
            assert_eq!(value["entry"]["seq"], id, "the event id is the ledger seq");
            if tx.send((id, value)).is_err() {
                return;
            }
        }
    }
}

/// The open-streams gauge of `/metrics`.
async fn open_streams(router: &Router) -> i64 {
    let (_, metrics) = call(router, "GET", "/metrics", None, None).await;
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("annal_open_streams "))
        .expect("the gauge is exported")
        .parse()
        .unwrap()
}

/// Waits (polling) until the gauge reads `n`.
async fn until_open_streams(router: &Router, n: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = open_streams(router).await;
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "annal_open_streams stayed at {now}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn streams_deliver_live_and_resume_after_last_event_id(f: Fixture) {
    let server = serve(state(f.db.clone())).await;
    let (addr, router) = (server.addr, &server.router);
    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 1);
    let events = d.entries("a", 6);
    push(router, &tok, &events[..2]).await;

    // Backfill, then live.
    let mut s = Stream::open(addr, "/v1/stream", &tok, None).await;
    let (id, item) = s.next().await;
    assert_eq!((id, &item["event"]), (1, &events[0]));
    let (id, item) = s.next().await;
    assert_eq!((id, &item["event"]), (2, &events[1]));
    push(router, &tok, &events[2..3]).await;
    let (id, item) = s.next().await;
    assert_eq!(id, 3);
    assert_eq!(item["entry"]["ledger"], "user:p-1");
    assert_eq!(item["event"], events[2]);
    drop(s);

    // Missed while disconnected, then resumed exactly after the last seen,
    // by Last-Event-ID and by ?after=.
    push(router, &tok, &events[3..5]).await;
    let mut s = Stream::open(addr, "/v1/stream", &tok, Some(3)).await;
    let got = s.take(2).await;
    assert_eq!(got[0].0, 4);
    assert_eq!(got[0].1["event"], events[3]);
    assert_eq!(got[1].0, 5);
    let mut by_query = Stream::open(addr, "/v1/stream?after=4", &tok, None).await;
    assert_eq!(by_query.next().await.0, 5);
    // Last-Event-ID wins over ?after=, as a browser's EventSource resends
    // the header with the URL it was first given.
    let mut both = Stream::open(addr, "/v1/stream?after=0", &tok, Some(4)).await;
    assert_eq!(both.next().await.0, 5);

    // Live again on all three, one entry each, nothing twice.
    push(router, &tok, &events[5..]).await;
    for s in [&mut s, &mut by_query, &mut both] {
        let (id, item) = s.next().await;
        assert_eq!((id, &item["event"]), (6, &events[5]));
    }

    // What the stream delivered is the ledger a pull gives.
    let mut all = Stream::open(addr, "/v1/stream", &tok, None).await;
    let streamed: Vec<Value> = all.take(6).await.into_iter().map(|(_, v)| v).collect();
    let (ledger, pulled) = pull_all(router, &tok).await;
    assert_eq!(streamed, pulled);
    verify_ledger(T, &ledger, &streamed);
}

async fn other_users_and_tenants_see_nothing(f: Fixture) {
    let server = serve(state(f.db.clone())).await;
    let (addr, router) = (server.addr, &server.router);
    let (tok1, tok2) = (token(T, "p-1", Scope::Own), token(T, "p-2", Scope::Own));
    let coordinator = token(T, "coordinator", Scope::Tenant);
    let other_tenant = token("study-2", "p-1", Scope::Tenant);
    let mut s1 = Stream::open(addr, "/v1/stream", &tok1, None).await;
    let mut s2 = Stream::open(addr, "/v1/stream", &tok2, None).await;
    let mut sc = Stream::open(addr, "/v1/stream", &coordinator, None).await;
    let mut so = Stream::open(addr, "/v1/stream", &other_tenant, None).await;

    let (mut d1, mut d2) = (Device::new(T, "p-1", 21), Device::new(T, "p-2", 22));
    let mut elsewhere = Device::new("study-2", "p-1", 23);
    // p-2 first, then p-1: p-1's stream must show p-1's entry first, so
    // nothing of p-2's came before it.
    let e2 = d2.entries("b", 2);
    push(router, &tok2, &e2).await;
    let e1 = d1.entries("a", 1);
    push(router, &tok1, &e1).await;
    let (id, item) = s1.next().await;
    assert_eq!((id, &item["event"]), (1, &e1[0]));
    assert_eq!(item["entry"]["ledger"], "user:p-1");
    for (i, (id, item)) in s2.take(2).await.into_iter().enumerate() {
        assert_eq!((id, &item["event"]), (i as u64 + 1, &e2[i]));
    }
    // The coordinator sees both users, in tenant order.
    let tenant_items = sc.take(3).await;
    let ids: Vec<u64> = tenant_items.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(tenant_items[0].1["event"], e2[0]);
    assert_eq!(tenant_items[2].1["event"], e1[0]);
    assert!(tenant_items
        .iter()
        .all(|(_, i)| i["entry"]["ledger"] == "tenant"));

    // Another tenant pushes with the same user id: p-1 of study-1 sees none
    // of it; then p-1's own next entry arrives as seq 2, nothing before it.
    let mine = elsewhere.entries("a", 1);
    push(router, &token("study-2", "p-1", Scope::Own), &mine).await;
    let (id, item) = so.next().await;
    assert_eq!((id, &item["event"]), (1, &mine[0]));
    assert_eq!(item["event"]["envelope"]["tenant_id"], "study-2");
    let e1b = d1.entries("a", 1);
    push(router, &tok1, &e1b).await;
    let (id, item) = s1.next().await;
    assert_eq!((id, &item["event"]), (2, &e1b[0]));
    let e2b = d2.entries("b", 1);
    push(router, &tok2, &e2b).await;
    let (id, item) = s2.next().await;
    assert_eq!((id, &item["event"]), (3, &e2b[0]));
    let rest = sc.take(2).await;
    assert_eq!(
        rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [4, 5],
        "study-1's ledger did not take study-2's entry"
    );
    let mut tenant_ledger: Vec<Value> = tenant_items.into_iter().map(|(_, v)| v).collect();
    tenant_ledger.extend(rest.into_iter().map(|(_, v)| v));
    verify_ledger(T, "tenant", &tenant_ledger);
    // And study-2's stream got study-2's one entry only.
    assert!(so.next_within(Duration::from_millis(200)).await.is_none());

    // Asking for another tenant's stream is refused, never served.
    let (status, body) = Stream::refused(addr, "/v1/stream?tenant=study-1", &other_tenant).await;
    assert_eq!(status, 403, "{body}");
    // And a stream without a valid token is a 401.
    let (status, _) = Stream::refused(addr, "/v1/stream", "garbage").await;
    assert_eq!(status, 401);
}

async fn filters_apply_to_streams(f: Fixture) {
    let server = serve(state(f.db.clone())).await;
    let (addr, router) = (server.addr, &server.router);
    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 31);
    // User ledger: 1 a, 2 b, 3 a, 4 b (vitals), 5 a (quarantined), 6 a.
    let mut pushed = vec![
        entry(&d.record("a", "noted", json!({"n": 1}))),
        entry(&d.record("b", "noted", json!({"n": 2}))),
        entry(&d.record("a", "noted", json!({"n": 3}))),
        entry(&d.record("b", "vitals-recorded", json!({"bp": 120}))),
        entry(&d.record("a", "noted", json!({"n": 5}))),
        entry(&d.record("a", "noted", json!({"n": 6}))),
    ];
    pushed[4]["envelope"]["hash"] = json!("e".repeat(64));
    let res = push(router, &tok, &pushed).await;
    assert_eq!(
        statuses(&res),
        [
            "accepted",
            "accepted",
            "accepted",
            "accepted",
            "quarantined",
            "accepted"
        ]
    );

    let ids = |items: &[(u64, Value)]| items.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    // Backfill through a filter leaves out the other aggregate and the
    // quarantined entry; the ids are the ledger seqs.
    let mut a = Stream::open(addr, "/v1/stream?aggregateId=a", &tok, None).await;
    let got = a.take(3).await;
    assert_eq!(ids(&got), [1, 3, 6]);
    assert!(got
        .iter()
        .all(|(_, i)| i["event"]["envelope"]["aggregate_id"] == "a"));
    // Pages of one: the stream reads on without waiting for a push.
    let mut paged = Stream::open(addr, "/v1/stream?aggregateId=a&limit=1", &tok, None).await;
    assert_eq!(ids(&paged.take(3).await), [1, 3, 6]);
    let mut vitals = Stream::open(addr, "/v1/stream?eventType=vitals-recorded", &tok, None).await;
    let (id, item) = vitals.next().await;
    assert_eq!((id, &item["event"]), (4, &pushed[3]));
    let mut both = Stream::open(addr, "/v1/stream?aggregateId=b&eventType=noted", &tok, None).await;
    assert_eq!(both.next().await.0, 2);
    // Resume through a filter.
    let mut resumed = Stream::open(addr, "/v1/stream?aggregateId=a", &tok, Some(3)).await;
    assert_eq!(resumed.next().await.0, 6);

    // Live: b, a, vitals on b.
    let live = vec![
        entry(&d.record("b", "noted", json!({"n": 7}))),
        entry(&d.record("a", "noted", json!({"n": 8}))),
        entry(&d.record("b", "vitals-recorded", json!({"bp": 130}))),
    ];
    push(router, &tok, &live).await;
    for s in [&mut a, &mut paged, &mut resumed] {
        let (id, item) = s.next().await;
        assert_eq!((id, &item["event"]), (8, &live[1]));
    }
    let (id, item) = vitals.next().await;
    assert_eq!((id, &item["event"]), (9, &live[2]));
    assert_eq!(both.next().await.0, 7);
    // Nothing else came through any filter: the next a is seq 10.
    let last = d.entries("a", 1);
    push(router, &tok, &last).await;
    for s in [&mut a, &mut paged, &mut resumed] {
        assert_eq!(s.next().await.0, 10);
    }
    for s in [&mut vitals, &mut both] {
        assert!(s.next_within(Duration::from_millis(100)).await.is_none());
    }

    // Bad filters are refused like on a pull.
    for q in ["aggregateId=a%00b", "nope=1", "limit=-1", "after=x"] {
        let (status, body) = Stream::refused(addr, &format!("/v1/stream?{q}"), &tok).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("BAD_QUERY")),
            "{q}"
        );
    }
}

async fn the_gauge_counts_open_streams(f: Fixture) {
    let server = serve(state(f.db.clone())).await;
    let (addr, router) = (server.addr, &server.router);
    let tok = token(T, "p-1", Scope::Own);
    assert_eq!(open_streams(router).await, 0);
    let s1 = Stream::open(addr, "/v1/stream", &tok, None).await;
    let mut s2 = Stream::open(addr, "/v1/stream", &tok, None).await;
    let s3 = Stream::open(addr, "/v1/stream?aggregateId=a", &tok, None).await;
    until_open_streams(router, 3).await;
    // A refused stream is never counted.
    let (status, _) = Stream::refused(addr, "/v1/stream?nope=1", &tok).await;
    assert_eq!(status, 400);
    assert_eq!(open_streams(router).await, 3);
    // Clients going away are noticed, idle or not.
    drop(s1);
    until_open_streams(router, 2).await;
    let mut d = Device::new(T, "p-1", 41);
    push(router, &tok, &d.entries("a", 1)).await;
    assert_eq!(s2.next().await.0, 1);
    drop(s3);
    drop(s2);
    until_open_streams(router, 0).await;
}

/// Two instances, each with its own Notifier listening on PostgreSQL, on
/// one database, each on its own socket: a stream on one delivers what is
/// pushed to either, in order, without a gap, and the ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_on_one_instance_delivers_what_another_took() {
    let (url, admin) = pg::database().await;
    let instance = |name: &'static str| {
        let (url, admin) = (url.clone(), admin.clone());
        async move {
            let db = Db::open(&url, Some(&admin))
                .await
                .unwrap_or_else(|e| panic!("instance {name}: {e}"));
            let state = state(db);
            state.notify.listen_postgres(url);
            serve(state).await
        }
    };
    let a = instance("A").await;
    let b = instance("B").await;
    let coordinator = token(T, "coordinator", Scope::Tenant);
    let mut on_b = Stream::open(b.addr, "/v1/stream", &coordinator, None).await;
    let mut on_a = Stream::open(a.addr, "/v1/stream", &coordinator, None).await;

    // Each instance's LISTEN connects in the background. Push through one
    // instance until the other's stream hears of it; entries pushed before
    // it listened are not lost, they come with the first that is heard.
    let mut sent: Vec<Value> = Vec::new();
    let mut warm = Device::new(T, "warm-up", 50);
    let warm_tok = token(T, "warm-up", Scope::Own);
    let mut streamed_b: Vec<(u64, Value)> = Vec::new();
    let mut streamed_a: Vec<(u64, Value)> = Vec::new();
    for (from, to, streamed) in [
        (a.addr, &mut on_b, &mut streamed_b),
        (b.addr, &mut on_a, &mut streamed_a),
    ] {
        // What the listening instance took itself it heard of locally.
        let taken = sent.len() - streamed.len();
        streamed.extend(to.take(taken).await);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let e = warm.entries("w", 1);
            assert_eq!(
                statuses(&http_push(from, &warm_tok, &e).await),
                ["accepted"]
            );
            sent.extend(e);
            if let Some(first) = to.next_within(Duration::from_millis(100)).await {
                streamed.push(first);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the other instance never heard of a push (LISTEN/NOTIFY)"
            );
        }
        // Whatever was pushed before it listened follows at once.
        let owed = sent.len() - streamed.len();
        streamed.extend(to.take(owed).await);
    }
    let warmed = sent.len();

    // Now 8 clients push at once, half through A and half through B, and
    // each of them alternates instance batch by batch.
    const CLIENTS: usize = 8;
    const BATCHES: usize = 5;
    const PER_BATCH: usize = 20;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let user = format!("p-{c}");
        let tok = token(T, &user, Scope::Own);
        let events =
            Device::new(T, &user, 60 + c as u64).entries(&format!("agg-{c}"), BATCHES * PER_BATCH);
        let addrs = [a.addr, b.addr];
        sent.extend(events.iter().cloned());
        tasks.push(tokio::spawn(async move {
            for (i, batch) in events.chunks(PER_BATCH).enumerate() {
                let res = http_push(addrs[(c + i) % 2], &tok, batch).await;
                assert_eq!(statuses(&res), vec!["accepted"; batch.len()]);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = sent.len();
    assert_eq!(total, warmed + CLIENTS * BATCHES * PER_BATCH);

    for (name, stream, streamed) in [
        ("B", &mut on_b, &mut streamed_b),
        ("A", &mut on_a, &mut streamed_a),
    ] {
        let owed = total - streamed.len();
        streamed.extend(stream.take(owed).await);
        let ids: Vec<u64> = streamed.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            (1..=total as u64).collect::<Vec<_>>(),
            "instance {name}'s stream is in order and gap-free"
        );
        let items: Vec<Value> = streamed.iter().map(|(_, v)| v.clone()).collect();
        verify_ledger(T, "tenant", &items);
        // Every pushed event exactly once.
        let got: HashSet<&str> = items
            .iter()
            .map(|i| i["event"]["envelope"]["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(got.len(), total);
        assert!(sent
            .iter()
            .all(|e| got.contains(e["envelope"]["event_id"].as_str().unwrap())));
        // Nothing more.
        assert!(
            stream
                .next_within(Duration::from_millis(100))
                .await
                .is_none(),
            "instance {name} streamed more than was pushed"
        );
        // The stream is the ledger either instance serves on a pull.
        for (from, via) in [("A", a.addr), ("B", b.addr)] {
            let (ledger, pulled) = http_pull_all(via, &coordinator).await;
            assert_eq!(ledger, "tenant");
            assert_eq!(
                pulled, items,
                "instance {name}'s stream vs a pull from {from}"
            );
        }
    }

    // A user's own stream on B follows the user ledger, also gap-free,
    // whichever instance took each batch.
    let tok = token(T, "p-3", Scope::Own);
    let mut own = Stream::open(b.addr, "/v1/stream", &tok, None).await;
    let items: Vec<Value> = own
        .take(BATCHES * PER_BATCH)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_gap_free(&items);
    verify_ledger(T, "user:p-3", &items);
    // The same seed gives the same device, so its 101st event continues
    // the chain pushed above.
    let more = Device::new(T, "p-3", 63).entries("agg-3", BATCHES * PER_BATCH + 1);
    http_push(a.addr, &tok, &more[BATCHES * PER_BATCH..]).await;
    let (id, item) = own.next().await;
    assert_eq!(
        (id, &item["event"]),
        ((BATCHES * PER_BATCH) as u64 + 1, &more[BATCHES * PER_BATCH])
    );
}
