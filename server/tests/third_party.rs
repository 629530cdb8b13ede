//! The documentation is enough to write a client: runs
//! `tests/third_party_client.py`, a Python client written only from
//! docs/FORMAT.md and server/openapi.json, against the real server binary.
//!
//! The server runs as a child process on a temporary SQLite file and a
//! free port; the tokens come from `annal-server token` with the same
//! secret file. Needs `python3` on the PATH (standard library only).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_annal-server");
const TENANT: &str = "third-party-tenant";
const USER: &str = "third-party-user";

/// A running server and its temporary directory, both gone on drop (also
/// when the test panics).
#[derive(Debug)]
struct Server {
    child: Option<Child>,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn secret_file(&self) -> PathBuf {
        self.dir.join("jwt-secret")
    }

    fn log(&self) -> String {
        let mut log = String::new();
        for name in ["server.stdout", "server.stderr"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(name)) {
                log.push_str(&text);
            }
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("annal-third-party-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `GET /v1/health` over a plain HTTP/1.1 connection; true on a 200.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// Starts `annal-server serve` and waits for its health check; retries on
/// another port if the one picked was taken in the meantime.
fn start_server() -> Server {
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let dir = temp_dir();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("socket address");
        let mut server = Server {
            child: None,
            addr,
            dir,
        };
        let stdout = std::fs::File::create(server.dir.join("server.stdout")).expect("log file");
        let stderr = std::fs::File::create(server.dir.join("server.stderr")).expect("log file");
        let database = format!("sqlite:{}", server.dir.join("annal.db").display());
        let child = Command::new(BIN)
            .arg("serve")
            .args(["--database-url", &database])
            .arg("--jwt-secret-file")
            .arg(server.secret_file())
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start annal-server serve");
        server.child = Some(child);

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if healthy(addr) {
                return server;
            }
            let exited = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                last_log = format!("{exited:?}\n{}", server.log());
                break; // dropping `server` kills it and removes its directory
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("annal-server did not become healthy; last attempt: {last_log}");
}

fn mint_token(secret_file: &Path, scope: &str) -> String {
    let output = Command::new(BIN)
        .args([
            "token", "--tenant", TENANT, "--user", USER, "--scope", scope,
        ])
        .arg("--jwt-secret-file")
        .arg(secret_file)
        .output()
        .expect("run annal-server token");
    assert!(
        output.status.success(),
        "annal-server token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("token is UTF-8")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
    token
}

#[test]
fn a_client_written_from_the_docs_alone_syncs_and_verifies() {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 --version failed ({}): the third-party client test needs Python 3",
            out.status
        ),
        Err(e) => panic!(
            "python3 not found ({e}): the third-party client test (part of `make test`) \
             needs Python 3 on the PATH"
        ),
    }

    let server = start_server();
    let own = mint_token(&server.secret_file(), "own");
    let tenant = mint_token(&server.secret_file(), "tenant");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/third_party_client.py");
    let url = format!("http://{}", server.addr);

    let output = Command::new("python3")
        .arg(&script)
        .args(["--url", &url, "--token", &own, "--tenant-token", &tenant])
        .args(["--tenant", TENANT, "--user", USER])
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        script.display(),
        output.status,
        server.log()
    );
    print!("{stdout}");
}
