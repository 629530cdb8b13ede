//! The injected clock. The browser supplies `Date.now()`; tests and users'
//! own test suites supply a [`ManualClock`].

use std::cell::Cell;

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(not(target_arch = "wasm32"))]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: a test double shipped for users'
/// own tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<i64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now: Cell::new(start_ms),
        }
    }
    /// Moves the clock by `ms` (which may be negative: device clocks jump).
    pub fn advance(&self, ms: i64) {
        self.now.set(self.now.get() + ms);
    }
    /// Sets the clock.
    pub fn set(&self, ms: i64) {
        self.now.set(ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }
}
