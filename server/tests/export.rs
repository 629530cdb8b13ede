//! `annal-server export`, end to end: events pushed through the router into
//! a temporary SQLite database, the real binary exporting the tenant ledger
//! and a user ledger (docs/FORMAT.md §11.6), and the exports checked offline
//! by annal's checker and by the real `annal-verify` binary, before and
//! after a one-byte edit.

#[path = "support/client.rs"]
mod client;

use annal::ledger_export::{self, LedgerExportCheck, LedgerExportReason};
use annal_server::auth::Scope;
use annal_server::db::Db;
use client::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const T: &str = "study-1";

/// A temporary file path, removed (with its `.partial` sibling) on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempPath(
            std::env::temp_dir().join(format!("annal-export-{}-{n}-{name}", std::process::id())),
        )
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("the temporary directory is UTF-8")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(format!("{}.partial", self.path()));
    }
}

fn annal_server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annal-server"))
        .args(args)
        .output()
        .expect("annal-server runs")
}

/// The `annal-verify` binary of this build. It belongs to another package,
/// so Cargo does not build it for this test: build it into the same target
/// directory and profile as `annal-server` (a no-op when it is up to date;
/// building every time means a stale binary is never the one tested).
fn annal_verify_binary() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_annal-server"));
    let profile_dir = server.parent().expect("the binary's directory");
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .expect("a profile directory name");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["build", "--quiet", "-p", "annal-verify", "--target-dir"])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p annal-verify failed");
    let verify = profile_dir.join(format!("annal-verify{}", std::env::consts::EXE_SUFFIX));
    assert!(verify.exists(), "{} was not built", verify.display());
    verify
}

/// Runs `annal-verify` with `args`: exit code and stdout.
fn annal_verify(binary: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(binary)
        .args(args)
        .output()
        .expect("annal-verify runs");
    (
        out.status.code().expect("annal-verify exits"),
        String::from_utf8(out.stdout).expect("UTF-8"),
    )
}

/// An event whose payload names it, so one of them can be found in a file.
fn noted(d: &mut Device, aggregate: &str, name: &str) -> Value {
    let payload = json!({
        "note": name,
        "text": "douleur 3/10 — 痛み ✓ \"quoted\"\n",
        "readings": [36.6, 1e-7, -0.0, 2.5e-300, 9007199254740991_u64, -9007199254740991_i64, {"deep": [null, true]}]
    });
    entry(&d.record(aggregate, "noted", payload))
}

/// Fills `url` through the router: two patients, accepted events, a
/// quarantined one and a conflict. Returns the last push's response.
async fn fill(url: &str) -> Value {
    let app = router(Db::open(url, None).await.expect("open SQLite"));
    let p1 = token(T, "p-1", Scope::Own);
    let p2 = token(T, "p-2", Scope::Own);
    let mut phone = Device::new(T, "p-1", 1);
    let mut tablet = Device::new(T, "p-1", 2);
    let mut other = Device::new(T, "p-2", 3);
    // Tenant ledger 1–3 (p-1), 4–5 (p-2).
    let batch: Vec<Value> = (1..=3)
        .map(|i| noted(&mut phone, "diary-1", &format!("entry-{i}")))
        .collect();
    assert_eq!(statuses(&push(&app, &p1, &batch).await), ["accepted"; 3]);
    let batch = [
        noted(&mut other, "diary-2", "entry-4"),
        noted(&mut other, "diary-2", "entry-5"),
    ];
    assert_eq!(statuses(&push(&app, &p2, &batch).await), ["accepted"; 2]);
    // 6: quarantined (a wrong hash), 7: accepted, chaining through it.
    let mut batch = vec![
        noted(&mut phone, "diary-3", "entry-6"),
        noted(&mut phone, "diary-3", "entry-7"),
    ];
    batch[0]["envelope"]["hash"] = json!("f".repeat(64));
    assert_eq!(
        statuses(&push(&app, &p1, &batch).await),
        ["quarantined", "accepted"]
    );
    // 8: a conflict, version 1 of diary-1 again from another device.
    let res = push(&app, &p1, &[noted(&mut tablet, "diary-1", "entry-8")]).await;
    assert_eq!(statuses(&res), ["conflict"]);
    // 9: p-2 again.
    push(&app, &p2, &[noted(&mut other, "diary-2", "entry-9")]).await
}

/// Every item of a ledger as `GET /v1/events` serves it.
async fn served(url: &str, user: &str, scope: Scope) -> Vec<Value> {
    let app = router(Db::open(url, None).await.expect("open SQLite"));
    pull_all(&app, &token(T, user, scope)).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_ledger_verifies_offline_and_a_one_byte_edit_is_caught() {
    let db = TempSqlite::new();
    let url = db.url();
    let last = fill(&url).await;
    let anchor = last["results"][0]["receipt"]["ledger_hash"]
        .as_str()
        .expect("a receipt")
        .to_string();

    // Export the tenant ledger with the real binary.
    let out = TempPath::new("tenant.json");
    let run = annal_server(&[
        "export",
        "--tenant",
        T,
        "--database-url",
        &url,
        "--out",
        out.path(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "exported ledger tenant of tenant {T}: 9 entries, head {anchor}"
        )),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out.0).expect("the export was written");

    // The items are exactly what GET /v1/events serves, in seq order.
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["format"], "annal-ledger-export/1");
    assert_eq!(doc["tenant_id"], T);
    assert_eq!(doc["ledger"], "tenant");
    assert_eq!(doc["head"], json!({"seq": 9, "hash": anchor}));
    assert_eq!(
        doc["items"].as_array().expect("items"),
        &served(&url, "auditor", Scope::Tenant).await
    );
    assert_eq!(doc["items"][5]["entry"]["outcome"], "quarantined");
    assert_eq!(doc["items"][7]["entry"]["outcome"], "conflict");

    // annal's checker, anchored to the last receipt.
    let anchored = LedgerExportCheck {
        expected_head_hash: Some(anchor.clone()),
    };
    let outcome = ledger_export::check(&text, &anchored).expect("a ledger export");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.checked, 9);

    // The real annal-verify.
    let verify = annal_verify_binary();
    assert_eq!(
        annal_verify(&verify, &[out.path(), "--expect-head", &anchor]),
        (0, "ok ledger tenant: 9 entries\n".to_string())
    );

    // One byte of entry 4's payload changed: "entry-4" → "Entry-4".
    let edited = text.replacen("\"entry-4\"", "\"Entry-4\"", 1);
    assert_eq!(edited.len(), text.len());
    assert_ne!(edited, text);
    std::fs::write(&out.0, &edited).expect("write the edited export");
    let (code, stdout) = annal_verify(&verify, &[out.path()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with("FAILED at seq 4: PAYLOAD_DIGEST_MISMATCH ("),
        "{stdout}"
    );
    let outcome = ledger_export::check(&edited, &LedgerExportCheck::default()).expect("parses");
    let b = outcome.report.first_break.expect("the edit is caught");
    assert_eq!(
        (b.seq, b.reason),
        (4, LedgerExportReason::PayloadDigestMismatch)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_ledger_exports_to_standard_output() {
    let db = TempSqlite::new();
    let url = db.url();
    let last = fill(&url).await;
    let run = annal_server(&[
        "export",
        "--tenant",
        T,
        "--user",
        "p-2",
        "--database-url",
        &url,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8(run.stdout).expect("UTF-8");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["ledger"], "user:p-2");
    assert_eq!(
        doc["items"].as_array().expect("items"),
        &served(&url, "p-2", Scope::Own).await
    );
    let anchor = last["results"][0]["receipt"]["user_ledger_hash"]
        .as_str()
        .expect("a receipt");
    let outcome = ledger_export::check(
        &text,
        &LedgerExportCheck {
            expected_head_hash: Some(anchor.to_string()),
        },
    )
    .expect("a ledger export");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.checked, 3);
    assert_eq!(outcome.ledger, "user:p-2");
}

#[test]
fn exporting_a_missing_database_or_a_bad_tenant_fails() {
    let missing = TempSqlite::new();
    let run = annal_server(&["export", "--tenant", T, "--database-url", &missing.url()]);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no SQLite database"),
        "{run:?}"
    );
    assert!(
        !missing.path.exists(),
        "the export must not create a database"
    );
    let run = annal_server(&["export", "--tenant", "", "--database-url", &missing.url()]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_longer_than_a_page_exports_whole() {
    // A pull page holds at most MAX_PULL_LIMIT (1000) items; the export pages.
    let db = TempSqlite::new();
    let url = db.url();
    let app = router(Db::open(&url, None).await.expect("open SQLite"));
    let tok = token(T, "p-1", Scope::Own);
    let mut d = Device::new(T, "p-1", 9);
    let first = d.entries("a", 1000);
    let rest = d.entries("a", 50);
    push(&app, &tok, &first).await;
    let last = push(&app, &tok, &rest).await;
    let out = TempPath::new("long.json");
    let run = annal_server(&[
        "export",
        "--tenant",
        T,
        "--database-url",
        &url,
        "--out",
        out.path(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out.0).expect("the export was written");
    let anchor = last["results"][49]["receipt"]["ledger_hash"]
        .as_str()
        .expect("a receipt");
    let outcome = ledger_export::check(
        &text,
        &LedgerExportCheck {
            expected_head_hash: Some(anchor.to_string()),
        },
    )
    .expect("a ledger export");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.checked, 1050);
}
