//! A real PostgreSQL 15 for the tests, started from its binaries
//! (`/usr/lib/postgresql/15/bin`, or `$ANNAL_PG_BIN`) in a temporary
//! directory, as the `postgres` OS user when the tests run as root, on a
//! free loopback port, with its socket in that directory.
//!
//! One cluster is started per test binary, on first use, and every call to
//! [`database`] creates a fresh database in it, so tests are independent
//! and may run in parallel. The cluster has three roles:
//! * `postgres`, the superuser, used only to create databases;
//! * `annal_owner`, which owns each database (and so its `public` schema and
//!   the tables the migrations create): the admin URL;
//! * `annal_app`, a plain LOGIN role (NOSUPERUSER, NOBYPASSRLS) that the
//!   server connects as: the app URL.
//!
//! PostgreSQL is a required part of the test suite: when the binaries are
//! missing, the tests fail and say how to install them.
//!
//! The cluster favours speed over durability (`fsync=off`,
//! `synchronous_commit=off`); [`PgInstance::start_durable`] keeps the
//! defaults, for benchmarks.
//!
//! Clean-up: a small watchdog shell holds one end of a pipe from the test
//! process; when the process exits, however it exits short of SIGKILL, the
//! pipe closes and the watchdog stops the server (`pg_ctl stop -m fast`)
//! and removes the directory. Dropping a [`PgInstance`] does the same at
//! once and waits for it.

#![allow(dead_code, unreachable_pub)]

use sqlx::{Connection, PgConnection};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where PostgreSQL 15's programs are, unless `$ANNAL_PG_BIN` says otherwise.
pub const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

const SUPERUSER_PASSWORD: &str = "annal-super";
/// The owner role, which migrates: the admin URL.
pub const OWNER: &str = "annal_owner";
const OWNER_PASSWORD: &str = "annal-owner";
/// The app role the server connects as.
pub const APP: &str = "annal_app";
const APP_PASSWORD: &str = "annal-app";

/// A running PostgreSQL cluster, stopped and removed on drop.
#[derive(Debug)]
pub struct PgInstance {
    dir: PathBuf,
    port: u16,
    /// How long initdb and start took.
    pub started_in: Duration,
    watchdog: Option<Child>,
}

fn bin_dir() -> PathBuf {
    std::env::var_os("ANNAL_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN))
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The uid and gid of the `postgres` OS user.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root, so PostgreSQL must run as the `postgres` OS user, \
                 and there is none; install PostgreSQL 15 (apt-get install postgresql-15), \
                 which creates it"
            )
        })
}

/// A command running PostgreSQL program `program`, as `postgres` if we are root.
fn pg_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut c: Command, what: &str) -> String {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {c:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn check_binaries() {
    let missing: Vec<PathBuf> = ["initdb", "pg_ctl", "psql"]
        .iter()
        .map(|p| bin_dir().join(p))
        .filter(|p| !p.is_file())
        .collect();
    if !missing.is_empty() {
        panic!(
            "PostgreSQL 15 is required by annal-server's tests and was not found: missing {missing:?}. \
             Install it with `apt-get install postgresql-15` (Debian; `make test` does this), \
             or point ANNAL_PG_BIN at a directory with initdb, pg_ctl and psql."
        );
    }
}

impl PgInstance {
    /// Starts a fresh cluster tuned for tests (no fsync).
    pub fn start() -> PgInstance {
        PgInstance::start_with(false)
    }

    /// Starts a fresh cluster with PostgreSQL's durable defaults.
    pub fn start_durable() -> PgInstance {
        PgInstance::start_with(true)
    }

    fn start_with(durable: bool) -> PgInstance {
        check_binaries();
        let t0 = Instant::now();
        let dir = make_dir();
        let data = dir.join("data");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("write the password file");
        give_to_postgres(&pwfile);
        let mut initdb = pg_command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(initdb, "initdb");
        std::fs::remove_file(&pwfile).ok();

        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=300",
                dir.display()
            );
            if !durable {
                options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let log = dir.join("server.log");
            let mut start = pg_command("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .stdin(Stdio::null());
            let ok = start.status().map(|s| s.success()).unwrap_or(false);
            if ok {
                let mut pg = PgInstance {
                    dir: dir.clone(),
                    port,
                    started_in: Duration::ZERO,
                    watchdog: None,
                };
                pg.watchdog = Some(spawn_watchdog(&dir, &data));
                pg.setup_roles();
                pg.started_in = t0.elapsed();
                return pg;
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            if !last_log.contains("could not bind") && !last_log.contains("already in use") {
                break;
            }
        }
        std::fs::remove_dir_all(&dir).ok();
        panic!("PostgreSQL did not start; its log:\n{last_log}");
    }

    fn setup_roles(&self) {
        self.psql(
            "postgres",
            &[
                &format!(
                    "CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}' \
                     NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
                ),
                &format!(
                    "CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}' \
                     NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"
                ),
                &format!("CREATE DATABASE annal OWNER {OWNER}"),
            ],
        );
    }

    /// Runs statements through psql as the superuser, over the socket,
    /// each in its own transaction; returns what they print.
    pub fn psql(&self, database: &str, statements: &[&str]) -> String {
        let mut c = Command::new(bin_dir().join("psql"));
        c.arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        for s in statements {
            c.args(["-c", s]);
        }
        run(c, "psql")
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data, the socket and the server log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The superuser's URL of `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The owner's URL of `database` (the admin URL).
    pub fn admin_url_of(&self, database: &str) -> String {
        format!(
            "postgres://{OWNER}:{OWNER_PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The app role's URL of `database`.
    pub fn app_url_of(&self, database: &str) -> String {
        format!(
            "postgres://{APP}:{APP_PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The owner's URL of the database `annal`.
    pub fn admin_url(&self) -> String {
        self.admin_url_of("annal")
    }

    /// The app role's URL of the database `annal`.
    pub fn app_url(&self) -> String {
        self.app_url_of("annal")
    }

    /// Creates an empty database owned by `annal_owner`; returns its name.
    pub async fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let name = format!("annal_t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut c = PgConnection::connect(&self.superuser_url("postgres"))
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to the test PostgreSQL: {e}\n{}", self.log())
            });
        sqlx::raw_sql(&format!("CREATE DATABASE {name} OWNER {OWNER}"))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        c.close().await.ok();
        name
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // Closing its stdin tells the watchdog to stop the server and
            // remove the directory.
            drop(w.stdin.take());
            w.wait().ok();
        }
    }
}

fn make_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // As root, /tmp: the `postgres` user must be able to reach the
    // directory, and $TMPDIR may be under a private home.
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "annal-pg-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .expect("chmod the temp dir");
    give_to_postgres(&dir);
    dir
}

fn give_to_postgres(path: &Path) {
    if is_root() {
        let (uid, gid) = postgres_user();
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
    }
}

/// A shell that waits for its stdin to close (this process exiting, or the
/// instance dropped), then stops the server and removes `dir`. It ignores
/// the signals a Ctrl-C or a plain kill sends the whole process group, so
/// that it can clean up after them.
fn spawn_watchdog(dir: &Path, data: &Path) -> Child {
    let pg_ctl = bin_dir().join("pg_ctl");
    let stop = if is_root() {
        "runuser -u postgres -- \"$1\" -D \"$2\" -m fast -w stop"
    } else {
        "\"$1\" -D \"$2\" -m fast -w stop"
    };
    let script =
        format!("trap '' INT TERM HUP; cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf \"$3\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("annal-pg-watchdog")
        .arg(pg_ctl)
        .arg(data)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PostgreSQL watchdog")
}

/// The cluster of this test binary, started on first use. If it cannot
/// start, every test that needs it fails with the same message.
pub fn instance() -> &'static PgInstance {
    static INSTANCE: OnceLock<Result<PgInstance, String>> = OnceLock::new();
    let started = INSTANCE.get_or_init(|| {
        std::panic::catch_unwind(PgInstance::start)
            .inspect(|pg| {
                eprintln!(
                    "test PostgreSQL started in {:.2?} on 127.0.0.1:{} ({})",
                    pg.started_in,
                    pg.port,
                    pg.dir.display()
                );
            })
            .map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
    });
    match started {
        Ok(pg) => pg,
        Err(e) => panic!("the test PostgreSQL could not be started: {e}"),
    }
}

/// A fresh, empty database in this binary's cluster: `(app_url, admin_url)`.
pub async fn database() -> (String, String) {
    let pg = instance();
    let name = pg.create_database().await;
    (pg.app_url_of(&name), pg.admin_url_of(&name))
}
