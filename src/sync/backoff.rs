//! When to try again: exponential backoff with full jitter (base 1 s, cap
//! 5 min), and never sooner than a server's `Retry-After`.

use crate::entropy::Entropy;

/// The retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling of the first retry, in ms.
    pub base_ms: u64,
    /// Largest delay, in ms.
    pub cap_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            cap_ms: 300_000,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry):
    /// uniform in `[0, min(cap, base × 2^(attempt−1))]`, and at least
    /// `retry_after_ms` when the server sent one.
    pub fn delay_ms(
        &self,
        attempt: u32,
        retry_after_ms: Option<u64>,
        entropy: &dyn Entropy,
    ) -> u64 {
        let exp = attempt.saturating_sub(1).min(32);
        let ceiling = self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms);
        let mut bytes = [0u8; 8];
        entropy.fill(&mut bytes);
        let jittered = u64::from_le_bytes(bytes) % (ceiling + 1);
        jittered.max(retry_after_ms.unwrap_or(0))
    }
}

/// Retry state, kept beside the outbox watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RetryState {
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Unix ms before which no attempt is made.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Unix ms of the last pass that succeeded.
    pub last_success_ms: Option<i64>,
}

impl RetryState {
    /// Records a failure at `now_ms` and schedules the next attempt.
    pub fn failed(
        &mut self,
        now_ms: i64,
        retry_after_ms: Option<u64>,
        error: String,
        policy: &Backoff,
        entropy: &dyn Entropy,
    ) -> u64 {
        self.attempts = self.attempts.saturating_add(1);
        let delay = policy.delay_ms(self.attempts, retry_after_ms, entropy);
        self.next_attempt_ms = now_ms.saturating_add(delay as i64);
        self.last_error = Some(error);
        delay
    }

    /// Records a success at `now_ms`: the next attempt may run at once.
    pub fn succeeded(&mut self, now_ms: i64) {
        *self = RetryState {
            last_success_ms: Some(now_ms),
            ..RetryState::default()
        };
    }

    /// Records a failure that waiting cannot mend: no retry is scheduled.
    pub fn stopped(&mut self, error: String) {
        *self = RetryState {
            last_error: Some(error),
            last_success_ms: self.last_success_ms,
            ..RetryState::default()
        };
    }

    /// Whether an attempt may run at `now_ms`.
    pub fn due(&self, now_ms: i64) -> bool {
        now_ms >= self.next_attempt_ms
    }
}

/// Parses `Retry-After` into a delay in ms from `now_ms`: delta seconds
/// (what annal-server sends), or an HTTP date (what a proxy in front of it
/// may send; a date in the past means now).
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = crate::timestamp::parse_http_date(value)?;
    Some(u64::try_from(at.saturating_sub(now_ms)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn delays_grow_exponentially_under_full_jitter_and_cap() {
        let policy = Backoff::default();
        let e = SeededEntropy::new(5);
        for attempt in 1..=20u32 {
            let ceiling = (1000u64 << (attempt - 1).min(32)).min(300_000);
            let samples: Vec<u64> = (0..200)
                .map(|_| policy.delay_ms(attempt, None, &e))
                .collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter: spread over the whole range, not bunched at the top.
            let max = *samples.iter().max().unwrap();
            let min = *samples.iter().min().unwrap();
            assert!(
                max > ceiling / 2 && min < ceiling / 2,
                "attempt {attempt}: {min}..{max}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = Backoff::default();
        let e = SeededEntropy::new(6);
        for _ in 0..100 {
            assert!(policy.delay_ms(1, Some(30_000), &e) >= 30_000);
        }
        assert_eq!(parse_retry_after(" 12 ", 0), Some(12_000));
        let date = crate::timestamp::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 90_000),
            Some(90_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 5),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-3", 0), None);
    }

    #[test]
    fn retry_state_schedules_and_resets() {
        let policy = Backoff::default();
        let e = SeededEntropy::new(7);
        let mut r = RetryState::default();
        assert!(r.due(0));
        let d = r.failed(1_000, Some(5_000), "HTTP 429".into(), &policy, &e);
        assert!(d >= 5_000);
        assert!(!r.due(1_000 + d as i64 - 1));
        assert!(r.due(1_000 + d as i64));
        assert_eq!((r.attempts, r.last_error.as_deref()), (1, Some("HTTP 429")));
        r.succeeded(9_000);
        assert_eq!(
            r,
            RetryState {
                last_success_ms: Some(9_000),
                ..RetryState::default()
            }
        );
        r.failed(10_000, None, "HTTP 503".into(), &policy, &e);
        r.stopped("refused".into());
        assert_eq!((r.attempts, r.next_attempt_ms), (0, 0));
        assert_eq!(
            r.last_success_ms,
            Some(9_000),
            "a failure keeps when sync last worked"
        );
    }
}
