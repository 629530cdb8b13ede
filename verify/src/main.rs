//! `annal-verify FILE [--expect-head HASH]`: checks an annal audit export
//! offline. Prints `ok N events` and exits 0, or names the first broken
//! `device_seq` and the reason and exits 1. Exit 2 means the file could not
//! be checked at all (unreadable, not an audit document, bad arguments).

use annal::audit::{self, AuditCheck};
use std::process::ExitCode;

const USAGE: &str = "usage: annal-verify FILE [--expect-head HASH]\n\
  FILE           an audit export from store.exportAudit(), or - for standard input\n\
  --expect-head  the head hash the log must end at, e.g. from a server receipt";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (path, options) = match parse_args(&args) {
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
    match audit::check(&text, &options) {
        Err(message) => {
            eprintln!("annal-verify: {path}: {message}");
            ExitCode::from(2)
        }
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

fn parse_args(args: &[String]) -> Result<(String, AuditCheck), String> {
    let mut path = None;
    let mut options = AuditCheck::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--expect-head" => {
                let hash = iter.next().ok_or("--expect-head needs a hash")?;
                if !annal::hex::is_lower_hex(hash, 32) {
                    return Err("--expect-head must be 64 lowercase hex digits".into());
                }
                options.expected_head_hash = Some(hash.clone());
            }
            _ if path.is_none() => path = Some(arg.clone()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok((path.ok_or("no FILE given")?, options))
}

fn read(path: &str) -> std::io::Result<String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}
