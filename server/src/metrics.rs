//! Counters for `/metrics`, in the Prometheus text format.

use crate::protocol::{EventResult, Status};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the push latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
const STATUSES: [(Status, &str); 6] = [
    (Status::Accepted, "accepted"),
    (Status::Duplicate, "duplicate"),
    (Status::Conflict, "conflict"),
    (Status::Quarantined, "quarantined"),
    (Status::Missing, "missing"),
    (Status::NotWritten, "not_written"),
];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    events: [AtomicU64; 6],
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    streams: AtomicI64,
}

impl Metrics {
    /// Counts a push's results and its latency.
    pub fn pushed(&self, results: &[EventResult], took: Duration) {
        for r in results {
            if let Some(i) = STATUSES.iter().position(|(s, _)| *s == r.status) {
                self.events[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A stream opened (`+1`) or closed (`-1`).
    pub fn stream(&self, delta: i64) {
        self.streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP annal_events_total Pushed events by outcome.");
        let _ = writeln!(out, "# TYPE annal_events_total counter");
        for (i, (_, name)) in STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "annal_events_total{{outcome=\"{name}\"}} {}",
                self.events[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP annal_push_seconds Time to take a push.");
        let _ = writeln!(out, "# TYPE annal_push_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "annal_push_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "annal_push_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "annal_push_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "annal_push_seconds_count {count}");
        let _ = writeln!(out, "# HELP annal_open_streams Open event streams.");
        let _ = writeln!(out, "# TYPE annal_open_streams gauge");
        let _ = writeln!(
            out,
            "annal_open_streams {}",
            self.streams.load(Ordering::Relaxed)
        );
        out
    }
}
