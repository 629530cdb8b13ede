//! The server killed and restarted between batches, with nothing lost and
//! the ledger continuing; and killed while a large push is in flight, which
//! then either committed fully or not at all. Runs the real `annal-server`
//! binary (`serve`, and `token` for the tokens) on SQLite and on
//! PostgreSQL, over plain HTTP/1.1, and kills it with SIGKILL.

#[path = "support/client.rs"]
mod client;
#[path = "support/postgres.rs"]
mod pg;

use client::{
    assert_gap_free, http, http_pull_all, http_push, http_request, http_response, statuses,
    verify_ledger, Device,
};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_annal-server");
const T: &str = "study-1";

/// Where the server keeps its data.
#[derive(Debug, Clone)]
enum Backend {
    /// A SQLite file in the server's temporary directory.
    Sqlite,
    /// A fresh database in this binary's PostgreSQL cluster.
    Postgres { app_url: String, admin_url: String },
}

/// `annal-server serve` as a child process, with its temporary directory
/// (token secret, logs, SQLite file). Dropping it, also on a panic, kills
/// the process and removes the directory.
#[derive(Debug)]
struct Server {
    child: Option<Child>,
    dir: PathBuf,
    backend: Backend,
    addr: SocketAddr,
    starts: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Server {
    fn new(backend: Backend) -> Server {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "annal-restart-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        Server {
            child: None,
            dir,
            backend,
            addr: "127.0.0.1:0".parse().unwrap(),
            starts: 0,
        }
    }

    fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn secret_file(&self) -> PathBuf {
        self.dir.join("jwt-secret")
    }

    fn database_args(&self) -> Vec<String> {
        match &self.backend {
            Backend::Sqlite => vec![
                "--database-url".into(),
                format!("sqlite:{}", self.dir.join("annal.db").display()),
            ],
            Backend::Postgres { app_url, admin_url } => vec![
                "--database-url".into(),
                app_url.clone(),
                "--admin-database-url".into(),
                admin_url.clone(),
            ],
        }
    }

    /// Everything the server printed, over all its starts.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A token from `annal-server token`, with the server's secret file
    /// (which the first call creates).
    fn token(&self, user: &str, scope: &str) -> String {
        let out = Command::new(BIN)
            .args(["token", "--tenant", T, "--user", user, "--scope", scope])
            .arg("--jwt-secret-file")
            .arg(self.secret_file())
            .stdin(Stdio::null())
            .output()
            .expect("run annal-server token");
        assert!(
            out.status.success(),
            "annal-server token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Starts `annal-server serve` on the same database and waits until it
    /// answers its health check; on a fresh free port each time (another
    /// one if the port was taken in the meantime).
    async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        for _ in 0..3 {
            self.starts += 1;
            self.addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("server.log"))
                .expect("open the server log");
            use std::io::Write;
            writeln!(&log, "--- start {} on {}", self.starts, self.addr).unwrap();
            let child = Command::new(BIN)
                .arg("serve")
                .args(self.database_args())
                .arg("--jwt-secret-file")
                .arg(self.secret_file())
                .args(["--listen", &self.addr.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start annal-server serve");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok((200, health)) = http(self.addr, "GET", "/v1/health", None, None).await {
                    assert_eq!(health["status"], "ok", "{health}");
                    return;
                }
                let exited = self.child.as_mut().unwrap().try_wait().unwrap();
                if exited.is_some() {
                    self.child = None;
                    break; // perhaps the port was taken: try another
                }
                assert!(
                    Instant::now() < deadline,
                    "annal-server did not become healthy:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("annal-server would not start:\n{}", self.log());
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn sqlite() -> Server {
    Server::new(Backend::Sqlite)
}

async fn postgres() -> Server {
    let (app_url, admin_url) = pg::database().await;
    Server::new(Backend::Postgres { app_url, admin_url })
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::postgres().await).await
            }
        }
    )*};
}

on_every_backend!(
    killed_between_batches_loses_nothing,
    killed_during_a_push_commits_all_or_nothing,
);

fn event_id(e: &Value) -> &str {
    e["envelope"]["event_id"].as_str().unwrap()
}

/// Pulls a ledger over HTTP and checks it: gap-free from seq 1, valid
/// hash chain, and holding exactly `sent`, in that order.
async fn check_ledger(server: &Server, token: &str, ledger: &str, sent: &[Value]) -> Vec<Value> {
    let (name, items) = http_pull_all(server.addr, token).await;
    assert_eq!(name, ledger);
    assert_gap_free(&items);
    verify_ledger(T, ledger, &items);
    let got: Vec<&str> = items.iter().map(|i| event_id(&i["event"])).collect();
    let want: Vec<&str> = sent.iter().map(event_id).collect();
    assert_eq!(
        got, want,
        "ledger {ledger} holds every event once, in order"
    );
    for (item, e) in items.iter().zip(sent) {
        assert_eq!(
            item["event"], *e,
            "the server returns exactly what was pushed"
        );
    }
    items
}

async fn killed_between_batches_loses_nothing(mut server: Server) {
    let started = Instant::now();
    let tok1 = server.token("p-1", "own");
    let tok2 = server.token("p-2", "own");
    let auditor = server.token("auditor", "tenant");
    let mut d1 = Device::new(T, "p-1", 1);
    let mut d2 = Device::new(T, "p-2", 2);
    let mut sent1: Vec<Value> = Vec::new();
    let mut sent2: Vec<Value> = Vec::new();
    let mut tenant_order: Vec<Value> = Vec::new();
    // The first receipt of every event, by id.
    let mut receipts: HashMap<String, Value> = HashMap::new();
    let mut last_seq = 0;
    server.start().await;

    for round in 0..3 {
        // p-1's batch replays the last event of its previous batch.
        let fresh = d1.entries("a", 40);
        let mut batch = sent1.last().cloned().into_iter().collect::<Vec<_>>();
        batch.extend(fresh.iter().cloned());
        let res = http_push(server.addr, &tok1, &batch).await;
        let results = res["results"].as_array().unwrap();
        if round > 0 {
            let replayed = &results[0];
            assert_eq!(replayed["status"], "duplicate", "round {round}: {replayed}");
            assert_eq!(
                replayed["receipt"],
                receipts[event_id(&batch[0])],
                "a replay after a restart gets the original receipt"
            );
        }
        let new = &results[results.len() - fresh.len()..];
        assert_eq!(statuses(&json!({ "results": new })), vec!["accepted"; 40]);
        for (r, e) in new.iter().zip(&fresh) {
            last_seq += 1;
            assert_eq!(
                r["receipt"]["server_seq"], last_seq,
                "round {round}: the tenant ledger continues where it was"
            );
            receipts.insert(event_id(e).to_string(), r["receipt"].clone());
        }
        sent1.extend(fresh.iter().cloned());
        tenant_order.extend(fresh);
        // p-2 pushes too, so the tenant ledger interleaves users.
        let other = d2.entries("b", 10);
        let res = http_push(server.addr, &tok2, &other).await;
        assert_eq!(statuses(&res), vec!["accepted"; 10]);
        last_seq += 10;
        sent2.extend(other.iter().cloned());
        tenant_order.extend(other);

        server.kill();
        server.start().await;
    }

    // After the last restart: everything is there, chained on from before.
    let items = check_ledger(&server, &tok1, "user:p-1", &sent1).await;
    for item in &items {
        let first = &receipts[event_id(&item["event"])];
        assert_eq!(
            item["receipt"], *first,
            "the receipt pulled is the one given"
        );
    }
    check_ledger(&server, &tok2, "user:p-2", &sent2).await;
    let tenant = check_ledger(&server, &auditor, "tenant", &tenant_order).await;
    assert_eq!(tenant.len() as u64, last_seq);
    // The next push goes on from there.
    let res = http_push(server.addr, &tok1, &d1.entries("a", 1)).await;
    assert_eq!(res["results"][0]["receipt"]["server_seq"], last_seq + 1);
    assert_eq!(res["results"][0]["receipt"]["user_seq"], 121);
    eprintln!(
        "killed_between_batches ({}): {} starts, {last_seq} events, {:.2?}",
        server.backend_name(),
        server.starts,
        started.elapsed()
    );
}

/// What became of a push the server was killed during.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Nothing of it was written: the resend was accepted in full.
    NotCommitted,
    /// All of it was written: the resend came back duplicate in full.
    Committed,
}

/// Resends `batch` after a kill and checks it had been written all or not
/// at all; `answered` is the response the killed server still gave, if any.
async fn resend(server: &Server, token: &str, batch: &[Value], answered: Option<&Value>) -> Fate {
    let res = http_push(server.addr, token, batch).await;
    let st = statuses(&res);
    let fate = if st.iter().all(|s| s == "accepted") {
        Fate::NotCommitted
    } else if st.iter().all(|s| s == "duplicate") {
        Fate::Committed
    } else {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for s in &st {
            *counts.entry(s).or_default() += 1;
        }
        panic!("a push the server was killed during was written in part: {counts:?}");
    };
    if let Some(first) = answered {
        assert_eq!(
            fate,
            Fate::Committed,
            "it was answered, so it was committed"
        );
        for (a, b) in first["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(res["results"].as_array().unwrap())
        {
            assert_eq!(a["receipt"], b["receipt"], "the original receipt");
        }
    }
    fate
}
/// Where to kill the server during a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// As soon as the whole request is out.
    RequestSent,
    /// Once the push's database transaction has begun writing: on SQLite,
    /// while it holds the write lock (an outside `BEGIN IMMEDIATE` is
    /// busy); on PostgreSQL, while its transaction holds the ledger lock
    /// (its session has a transaction id).
    InTransaction,
    /// PostgreSQL: with every row written but the aggregate's version, on
    /// which the push waits for a row lock the test holds; let go only
    /// after the kill.
    RowsWrittenNotCommitted,
}

/// A superuser connection to the server's PostgreSQL database, and the
/// database's name.
async fn superuser(server: &Server) -> (PgConnection, String) {
    let Backend::Postgres { app_url, .. } = &server.backend else {
        unreachable!("PostgreSQL only")
    };
    let database = app_url.rsplit('/').next().unwrap().to_string();
    let url = pg::instance().superuser_url(&database);
    (PgConnection::connect(&url).await.unwrap(), database)
}

/// The server's PostgreSQL sessions: all of them, those inside a
/// transaction that took a lock or wrote (it has a transaction id), or
/// those waiting for a lock to upsert an aggregate's version (a push's
/// last write).
async fn server_sessions(watcher: &mut PgConnection, database: &str, which: &str) -> i64 {
    let filter = match which {
        "all" => "true",
        "in transaction" => "backend_xid IS NOT NULL",
        "waiting" => "wait_event_type = 'Lock' AND query LIKE 'INSERT INTO aggregates%'",
        _ => unreachable!(),
    };
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'annal-server' AND {filter}"
    ))
    .bind(database)
    .fetch_one(&mut *watcher)
    .await
    .unwrap()
}

/// Polling for something, every millisecond, for at most 20 s.
struct Patience {
    what: &'static str,
    deadline: Instant,
}

impl Patience {
    fn new(what: &'static str) -> Patience {
        Patience {
            what,
            deadline: Instant::now() + Duration::from_secs(20),
        }
    }

    async fn again(&self) {
        assert!(
            Instant::now() < self.deadline,
            "waited 20 s for {}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Whether another connection holds the SQLite write lock: an outside
/// `BEGIN IMMEDIATE` fails at once with SQLITE_BUSY.
async fn sqlite_writer_busy(probe: &mut SqliteConnection) -> bool {
    match sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *probe).await {
        Ok(_) => {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut *probe)
                .await
                .unwrap();
            false
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("5") => true,
        Err(e) => panic!("probing the SQLite write lock: {e}"),
    }
}

/// Whether the server has begun to answer on `socket`.
async fn answering(socket: &tokio::net::TcpStream) -> bool {
    matches!(
        tokio::time::timeout(Duration::ZERO, socket.readable()).await,
        Ok(Ok(()))
    )
}

/// A push answered before it was seen at its kill point: it must have
/// been taken whole.
async fn taken_unseen(socket: &mut tokio::net::TcpStream, batch: &[Value]) -> Option<(bool, Fate)> {
    let (status, res) = http_response(socket).await.expect("an answer");
    assert_eq!(status, 200, "{res}");
    assert_eq!(statuses(&res), vec!["accepted"; batch.len()]);
    None
}

/// Sends `batch` as one push, kills the server at `point` of it, restarts
/// it and resends the batch; returns whether the killed server still
/// answered, and what had become of the push. `None` when the push was
/// answered before it was seen inside its transaction (the probes poll,
/// and on a loaded machine a short transaction can fall between two):
/// it was taken whole, and nothing was killed.
async fn kill_during_push(
    server: &mut Server,
    token: &str,
    batch: &[Value],
    point: KillPoint,
) -> Option<(bool, Fate)> {
    let body = json!({ "events": batch }).to_string();
    let request = http_request(server.addr, "POST", "/v1/events", Some(token), Some(&body));
    let pg = match server.backend {
        Backend::Postgres { .. } => Some(superuser(server).await),
        Backend::Sqlite => None,
    };
    // The lock that stops the push before its last write.
    let mut blocker = None;
    if point == KillPoint::RowsWrittenNotCommitted {
        let (mut c, _) = superuser(server).await;
        sqlx::raw_sql(&format!(
            "BEGIN; SELECT 1 FROM aggregates WHERE tenant_id = '{T}' AND aggregate_id = 'w' FOR UPDATE"
        ))
        .execute(&mut c)
        .await
        .unwrap();
        blocker = Some(c);
    }
    // The SQLite probe connects before the push is sent: on a loaded
    // machine, connecting afterwards could take longer than the push.
    let mut sqlite_probe = match (point, &pg) {
        (KillPoint::InTransaction, None) => {
            let options = SqliteConnectOptions::new()
                .filename(server.dir.join("annal.db"))
                .busy_timeout(Duration::ZERO);
            Some(SqliteConnection::connect_with(&options).await.unwrap())
        }
        _ => None,
    };
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(&request).await.unwrap();
    match (point, pg) {
        (KillPoint::RequestSent, _) => {}
        (KillPoint::InTransaction, None) => {
            let probe = sqlite_probe.as_mut().expect("connected above");
            let p = Patience::new("the push to take the SQLite write lock");
            while !sqlite_writer_busy(probe).await {
                if answering(&socket).await {
                    return taken_unseen(&mut socket, batch).await;
                }
                p.again().await;
            }
        }
        (KillPoint::InTransaction, Some((mut watcher, database))) => {
            let p = Patience::new("the push's transaction to begin");
            while server_sessions(&mut watcher, &database, "in transaction").await != 1 {
                if answering(&socket).await {
                    return taken_unseen(&mut socket, batch).await;
                }
                p.again().await;
            }
        }
        (KillPoint::RowsWrittenNotCommitted, Some((mut watcher, database))) => {
            let p = Patience::new("the push to wait for the aggregate's row lock");
            while server_sessions(&mut watcher, &database, "waiting").await != 1 {
                p.again().await;
            }
        }
        (KillPoint::RowsWrittenNotCommitted, None) => unreachable!("PostgreSQL only"),
    }
    server.kill();
    let answered = match http_response(&mut socket).await {
        Ok((200, v)) => Some(v),
        Ok((status, v)) => panic!("{status}: {v}"),
        Err(_) => None,
    };
    if let Some(mut c) = blocker {
        sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
    }
    if let Backend::Postgres { .. } = server.backend {
        // The killed server's sessions end, rolling back what they had
        // not committed.
        let (mut watcher, database) = superuser(server).await;
        let p = Patience::new("the killed server's sessions to end");
        while server_sessions(&mut watcher, &database, "all").await != 0 {
            p.again().await;
        }
    }
    server.start().await;
    let fate = resend(server, token, batch, answered.as_ref()).await;
    Some((answered.is_some(), fate))
}

async fn killed_during_a_push_commits_all_or_nothing(mut server: Server) {
    const BATCH: usize = 1000;
    let started = Instant::now();
    let tok = server.token("p-1", "own");
    let auditor = server.token("auditor", "tenant");
    let mut d = Device::new(T, "p-1", 3);
    let mut sent: Vec<Value> = Vec::new();
    server.start().await;
    let first = d.entries("w", BATCH);
    let res = http_push(server.addr, &tok, &first).await;
    assert_eq!(statuses(&res), vec!["accepted"; BATCH]);
    sent.extend(first);

    let mut points = vec![KillPoint::RequestSent, KillPoint::InTransaction];
    if let Backend::Postgres { .. } = server.backend {
        points.push(KillPoint::RowsWrittenNotCommitted);
    }
    let mut fates = Vec::new();
    let mut missed = 0;
    for point in points {
        let (batch, answered, fate) = loop {
            let batch = d.entries("w", BATCH);
            match kill_during_push(&mut server, &tok, &batch, point).await {
                Some((answered, fate)) => break (batch, answered, fate),
                None => {
                    // The push was over before the probe saw it inside its
                    // transaction: it is kept, and another one is tried.
                    sent.extend(batch);
                    missed += 1;
                    assert!(missed < 5, "{point:?}: {missed} pushes ended unseen");
                }
            }
        };
        if point != KillPoint::RequestSent {
            // Killed inside the transaction: short of a kill landing in
            // the instant of its commit, nothing of it was kept.
            assert!(!answered, "{point:?}: the killed push was answered");
        }
        if point == KillPoint::RowsWrittenNotCommitted {
            assert_eq!(fate, Fate::NotCommitted, "{point:?}");
        }
        fates.push((point, fate));
        sent.extend(batch);
    }

    // Every event once, the chain unbroken across the kills.
    check_ledger(&server, &tok, "user:p-1", &sent).await;
    check_ledger(&server, &auditor, "tenant", &sent).await;
    eprintln!(
        "killed_during_a_push ({}): {fates:?}; {missed} pushes ended unseen; {} events, {} starts, {:.2?}",
        server.backend_name(),
        sent.len(),
        server.starts,
        started.elapsed()
    );
}

/// SIGTERM (what a service manager sends) shuts the server down promptly,
/// ending open streams instead of waiting for their clients to leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_and_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = sqlite().await;
    server.start().await;
    let token = server.token("p-1", "own");
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let pid = server.child.as_ref().unwrap().id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
            assert!(status.success(), "exit status {status}:\n{}", server.log());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM with a stream open:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child = None;
    assert!(server.log().contains("shutting down"));
    // The stream was ended by the server, not left hanging.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stream was not closed");
}
