//! `annal-server serve | token | migrate | export`.

use annal::ledger::{user_ledger, TENANT_LEDGER};
use annal::ledger_export;
use annal_server::auth::{Auth, Scope};
use annal_server::db::{Db, PullQuery};
use annal_server::ingest::Policy;
use annal_server::protocol::MAX_PULL_LIMIT;
use annal_server::{app, AppState};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "annal-server", version, about = "The annal sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the sync API.
    Serve(Serve),
    /// Mints a token with the configured secret (development and demos).
    Token(Token),
    /// Applies database migrations and exits.
    Migrate(Database),
    /// Writes a ledger, whole, as an `annal-ledger-export/1` document that
    /// `annal-verify` checks offline (docs/FORMAT.md §11.6).
    Export(Export),
}

#[derive(Args)]
struct Database {
    /// `sqlite:PATH`, a file path, or `postgres://user:pass@127.0.0.1/db`.
    #[arg(long, env = "ANNAL_DATABASE_URL", default_value = "sqlite:annal.db")]
    database_url: String,
    /// PostgreSQL: the owner role that applies migrations, when the app
    /// role of --database-url may not.
    #[arg(long, env = "ANNAL_ADMIN_DATABASE_URL")]
    admin_database_url: Option<String>,
}

#[derive(Args)]
struct Keys {
    /// File holding the HS256 secret; created with a random secret if absent.
    #[arg(
        long,
        env = "ANNAL_JWT_SECRET_FILE",
        default_value = "annal.jwt-secret"
    )]
    jwt_secret_file: PathBuf,
    /// Verify EdDSA tokens with this PEM public key instead of HS256.
    #[arg(long, env = "ANNAL_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// The `aud` tokens must carry.
    #[arg(long, env = "ANNAL_JWT_AUDIENCE", default_value = "annal")]
    audience: String,
}

#[derive(Args)]
struct Serve {
    #[command(flatten)]
    database: Database,
    #[command(flatten)]
    keys: Keys,
    /// Address to listen on.
    #[arg(long, env = "ANNAL_LISTEN", default_value = "127.0.0.1:8787")]
    listen: String,
    /// An origin allowed by CORS; repeat for more.
    #[arg(long = "cors-origin", default_value = "http://127.0.0.1:8080")]
    cors_origins: Vec<String>,
    /// `EVENT_TYPE=N`: the highest schema_version accepted for that type.
    #[arg(long = "max-schema")]
    max_schema: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Own,
    Tenant,
}

#[derive(Args)]
struct Token {
    #[command(flatten)]
    keys: Keys,
    /// The tenant claim.
    #[arg(long)]
    tenant: String,
    /// The user (`sub`) claim.
    #[arg(long)]
    user: String,
    /// What the token may read.
    #[arg(long, value_enum, default_value = "own")]
    scope: ScopeArg,
    /// Lifetime: `90s`, `30m`, `1h`, `7d`.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

#[derive(Args)]
struct Export {
    #[command(flatten)]
    database: Database,
    /// The tenant whose ledger is exported.
    #[arg(long)]
    tenant: String,
    /// Export this user's ledger instead of the tenant ledger.
    #[arg(long)]
    user: Option<String>,
    /// Where to write the document; standard output if absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secret(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        Ok(_) => Err(format!(
            "{} holds fewer than 32 bytes; use a longer secret",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            annal::entropy::Entropy::fill(&annal::entropy::OsEntropy, &mut bytes);
            let text = annal::hex::encode(&bytes);
            write_private(path, text.as_bytes())
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            eprintln!(
                "annal-server: created a new token secret in {}",
                path.display()
            );
            Ok(text.into_bytes())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

fn auth(keys: &Keys) -> Result<Auth, String> {
    match &keys.jwt_public_key {
        Some(pem) => {
            let pem =
                std::fs::read(pem).map_err(|e| format!("cannot read {}: {e}", pem.display()))?;
            Auth::eddsa(&pem, &keys.audience)
        }
        None => Ok(Auth::hs256(&secret(&keys.jwt_secret_file)?, &keys.audience)),
    }
}

fn ttl_seconds(text: &str) -> Result<u64, String> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("bad --ttl {text:?}; use e.g. 30m, 1h, 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad --ttl unit in {text:?}; use s, m, h or d")),
    };
    Ok(n * mult)
}

fn policy(rules: &[String]) -> Result<Policy, String> {
    let mut p = Policy::default();
    for rule in rules {
        let (ty, n) = rule
            .split_once('=')
            .ok_or_else(|| format!("bad --max-schema {rule:?}; use EVENT_TYPE=N"))?;
        let n: u64 = n
            .parse()
            .map_err(|_| format!("bad --max-schema {rule:?}; N is a number"))?;
        p.max_schema.insert(ty.to_string(), n);
    }
    Ok(p)
}

async fn serve(args: Serve) -> Result<(), String> {
    let auth = auth(&args.keys)?;
    let policy = policy(&args.max_schema)?;
    let db = Db::open(
        &args.database.database_url,
        args.database.admin_database_url.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let notify = annal_server::notify::Notifier::default();
    if db.backend() == "postgres" {
        notify.listen_postgres(args.database.database_url.clone());
    }
    let state = AppState {
        db,
        auth: Arc::new(auth),
        policy: Arc::new(policy),
        metrics: Arc::default(),
        notify,
        cors_origins: args.cors_origins,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "annal-server: listening on http://{addr} ({})",
        state.db.backend()
    );
    let notify = state.notify.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            eprintln!("annal-server: shutting down");
            // End open streams so the shutdown is not held up by them.
            notify.shut_down();
        })
        .await
        .map_err(|e| e.to_string())
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Writes the export of one ledger to `out`, paging through it from
/// genesis; returns how many entries it holds and its head.
async fn write_export(
    db: &Db,
    tenant: &str,
    ledger: &str,
    out: &mut impl Write,
) -> Result<(u64, String), String> {
    let io = |e: std::io::Error| format!("cannot write the export: {e}");
    let exported_at = annal::ledger::format_received_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    );
    out.write_all(ledger_export::begin(tenant, ledger, &exported_at).as_bytes())
        .map_err(io)?;
    let mut head = (0, annal::ledger::LEDGER_GENESIS.to_string());
    loop {
        let page = db
            .pull(&PullQuery {
                tenant: tenant.to_string(),
                ledger: ledger.to_string(),
                after: head.0,
                limit: MAX_PULL_LIMIT,
                aggregate_id: None,
                event_type: None,
                omit_device: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        for item in &page.items {
            if item.entry.seq != head.0 + 1 {
                return Err(format!(
                    "the database returned entry {} after entry {}",
                    item.entry.seq, head.0
                ));
            }
            let value = serde_json::to_value(item).map_err(|e| e.to_string())?;
            out.write_all(ledger_export::item(head.0 == 0, &value).as_bytes())
                .map_err(io)?;
            head = (item.entry.seq, item.entry.hash.clone());
        }
        if !page.has_more || page.items.is_empty() {
            break;
        }
    }
    out.write_all(ledger_export::end(head.0, &head.1).as_bytes())
        .map_err(io)?;
    out.flush().map_err(io)?;
    Ok(head)
}

/// Opening a SQLite database creates it when absent; an export of a
/// mistyped path would then be a valid, empty ledger. Refuse instead.
fn refuse_missing_sqlite(url: &str) -> Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" || Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("no SQLite database at {path}"))
    }
}

async fn export(args: Export) -> Result<(), String> {
    annal::ids::check_id("tenant", &args.tenant).map_err(|e| e.message)?;
    let ledger = match &args.user {
        Some(user) => {
            annal::ids::check_id("user", user).map_err(|e| e.message)?;
            user_ledger(user)
        }
        None => TENANT_LEDGER.to_string(),
    };
    refuse_missing_sqlite(&args.database.database_url)?;
    let db = Db::open(
        &args.database.database_url,
        args.database.admin_database_url.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (seq, hash) = match &args.out {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_export(&db, &args.tenant, &ledger, &mut out).await?
        }
        Some(path) => {
            // Written beside the target and renamed when complete, so a
            // failed export never leaves a truncated document behind.
            let mut partial = path.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let head = match write_export(&db, &args.tenant, &ledger, &mut out).await {
                Ok(head) => head,
                Err(e) => {
                    drop(out);
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            drop(out);
            std::fs::rename(&partial, path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            head
        }
    };
    eprintln!(
        "annal-server: exported ledger {ledger} of tenant {}: {seq} entries, head {hash}",
        args.tenant
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => auth(&args.keys).and_then(|auth| {
            let scope = match args.scope {
                ScopeArg::Own => Scope::Own,
                ScopeArg::Tenant => Scope::Tenant,
            };
            let token = auth.mint(&args.tenant, &args.user, scope, ttl_seconds(&args.ttl)?)?;
            println!("{token}");
            Ok(())
        }),
        Command::Migrate(args) => Db::open(&args.database_url, args.admin_database_url.as_deref())
            .await
            .map(|db| eprintln!("annal-server: {} schema is up to date", db.backend()))
            .map_err(|e| e.to_string()),
        Command::Export(args) => export(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annal-server: {e}");
            ExitCode::FAILURE
        }
    }
}
