//! Server-Sent Events over a real socket: live delivery, resume with
//! Last-Event-ID, and the open-streams gauge.

#[path = "support/client.rs"]
mod client;

use annal_server::app;
use annal_server::auth::Scope;
use annal_server::db::Db;
use client::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const T: &str = "study-1";

/// An SSE connection read line by line.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    async fn open(addr: std::net::SocketAddr, token: &str, last_event_id: Option<u64>) -> Stream {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let request = format!(
            "GET /v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(socket);
        let mut status = String::new();
        reader.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        // Skip the headers.
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Stream { reader }
    }

    /// The next `entry` event: `(id, data)`.
    async fn next(&mut self) -> (u64, Value) {
        let read = async {
            let (mut id, mut data, mut event) = (None, None, None);
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).await.unwrap();
                // Chunked encoding: skip chunk-size lines and blank separators.
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                }
                if let (Some(i), Some(d), Some(e)) = (&id, &data, &event) {
                    assert_eq!(e, "entry");
                    return (*i, d.clone());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an SSE event within 10 s")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_deliver_live_and_resume_after_last_event_id() {
    let file = TempSqlite::new();
    let db = Db::open(&file.url(), None).await.unwrap();
    let state = state(db);
    let router = app(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum::serve(listener, router.clone());
    tokio::spawn(async move { server.await });

    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 1);
    let events = d.entries("a", 4);
    push(&router, &tok, &events[..2]).await;

    // Backfill, then live.
    let mut s = Stream::open(addr, &tok, None).await;
    assert_eq!(s.next().await.0, 1);
    let (id, item) = s.next().await;
    assert_eq!(id, 2);
    assert_eq!(item["event"], events[1]);
    let (_, metrics) = call(&router, "GET", "/metrics", None, None).await;
    assert!(metrics.as_str().unwrap().contains("annal_open_streams 1"));
    push(&router, &tok, &events[2..3]).await;
    let (id, item) = s.next().await;
    assert_eq!(id, 3);
    assert_eq!(item["entry"]["ledger"], "user:p-1");
    drop(s);

    // Missed while disconnected, then resumed exactly after the last seen.
    push(&router, &tok, &events[3..]).await;
    let mut s = Stream::open(addr, &tok, Some(3)).await;
    let (id, item) = s.next().await;
    assert_eq!(id, 4);
    assert_eq!(item["event"], events[3]);

    // Another user's stream sees nothing of p-1.
    let other = token(T, "p-2", Scope::Own);
    let mut theirs = Stream::open(addr, &other, None).await;
    let mut e = Device::new(T, "p-2", 2);
    push(&router, &other, &e.entries("b", 1)).await;
    let (id, item) = theirs.next().await;
    assert_eq!(
        (id, item["entry"]["ledger"].as_str()),
        (1, Some("user:p-2"))
    );
}
