//! `annal-verify FILE [--expect-head HASH]`: checks an annal export offline,
//! either kind, told apart by its `format`:
//!
//! - an audit export (`annal-audit/1`, a device chain): prints `ok N events`
//!   or names the first broken `device_seq`;
//! - a ledger export (`annal-ledger-export/1`, a server ledger): prints
//!   `ok ledger NAME: N entries` or names the first broken `seq`.
//!
//! Exit 0 means it verified, 1 that it did not. Exit 2 means the file could
//! not be checked at all (unreadable, not an export, bad arguments).

use annal::audit::{self, AuditCheck, AUDIT_FORMAT};
use annal::ledger_export::{self, LedgerExportCheck, LedgerExportOutcome, LEDGER_EXPORT_FORMAT};
use std::process::ExitCode;

const USAGE: &str = "usage: annal-verify FILE [--expect-head HASH]
  FILE           an audit export from store.exportAudit(), or a ledger export
                 from `annal-server export`; - for standard input
  --expect-head  the head hash the log or ledger must end at, obtained elsewhere:
                 a receipt's ledger_hash (tenant ledger) or user_ledger_hash
                 (user ledger), or an earlier export's head";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (path, anchor) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("annal-verify: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let text = match read(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("annal-verify: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let doc = match annal::strict_json::parse(&text) {
        Ok(doc) => doc,
        Err(e) => return refuse(&path, &format!("not a JSON document: {e}")),
    };
    // The JSON value's type is serde_json's, which this crate does not name.
    let format = doc
        .get("format")
        .and_then(|f| f.as_str())
        .map(str::to_string);
    match format.as_deref() {
        Some(LEDGER_EXPORT_FORMAT) => {
            drop(text);
            let options = LedgerExportCheck {
                expected_head_hash: anchor,
            };
            report_ledger(&path, ledger_export::check_value(&doc, &options))
        }
        Some(AUDIT_FORMAT) => {
            drop(doc);
            let options = AuditCheck {
                expected_head_hash: anchor,
            };
            check_audit(&path, &text, &options)
        }
        _ => refuse(
            &path,
            &format!(
                "not an annal audit document or ledger export (format is neither \
                 {AUDIT_FORMAT:?} nor {LEDGER_EXPORT_FORMAT:?})"
            ),
        ),
    }
}

fn check_audit(path: &str, text: &str, options: &AuditCheck) -> ExitCode {
    match audit::check(text, options) {
        Err(message) => refuse(path, &message),
        Ok(outcome) => match outcome.report.first_break {
            None => {
                println!("ok {} events", outcome.report.checked);
                ExitCode::SUCCESS
            }
            Some(b) => {
                println!(
                    "FAILED at device_seq {}: {} ({}); {} events verified before it",
                    b.device_seq, b.reason, b.message, outcome.report.checked
                );
                ExitCode::from(1)
            }
        },
    }
}

fn report_ledger(path: &str, checked: Result<LedgerExportOutcome, String>) -> ExitCode {
    match checked {
        Err(message) => refuse(path, &message),
        Ok(outcome) => match outcome.report.first_break {
            None => {
                println!(
                    "ok ledger {}: {} entries",
                    outcome.ledger, outcome.report.checked
                );
                ExitCode::SUCCESS
            }
            Some(b) => {
                println!(
                    "FAILED at seq {}: {} ({}); {} entries verified before it",
                    b.seq, b.reason, b.message, outcome.report.checked
                );
                ExitCode::from(1)
            }
        },
    }
}

fn refuse(path: &str, message: &str) -> ExitCode {
    eprintln!("annal-verify: {path}: {message}");
    ExitCode::from(2)
}

fn parse_args(args: &[String]) -> Result<(String, Option<String>), String> {
    let mut path = None;
    let mut anchor = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--expect-head" => {
                let hash = iter.next().ok_or("--expect-head needs a hash")?;
                if !annal::hex::is_lower_hex(hash, 32) {
                    return Err("--expect-head must be 64 lowercase hex digits".into());
                }
                anchor = Some(hash.clone());
            }
            _ if path.is_none() => path = Some(arg.clone()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok((path.ok_or("no FILE given")?, anchor))
}

fn read(path: &str) -> std::io::Result<String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}
