//! What this context knows of the log as of its last commit, so an append
//! need not read the head, the aggregates and the idempotency keys again.
//!
//! It is a guess: another tab or worker may have appended meanwhile. The
//! guess is safe because the page an append adds is keyed by its first
//! `device_seq`. On a stale head that key exists already, the `add` fails,
//! the transaction aborts with nothing written, and the append runs again
//! after reading everything. Any other append since bumps the head, so a
//! head that is still current vouches for the cached aggregates and keys.
//!
//! A cache that began at an empty store is *complete*: every aggregate and
//! idempotency key in the store is one this context wrote, so one it does
//! not know has no events, or is unused, and nothing needs reading. The
//! same current head vouches for that. A store this context created, or
//! found empty, thus never reads before an append; a cache that starts
//! over (`MAX_ENTRIES`) or is dropped (a stale head) is not complete again
//! until the store is empty, which it never is again, so that context
//! reads what it lacks as before.

use crate::state::{AggregateState, Head, IdempotencyEntry};
use std::collections::HashMap;

/// Entries kept before the cache starts over, so a store with many
/// aggregates does not grow this context's memory without bound: 2 to 3 MB
/// of wasm heap at most (blinded ids are longer). At 4,096, a store of
/// 10,000 aggregates appended round-robin overflowed it every few batches,
/// and every event looked its aggregate up again (the 1,000,000-event
/// bench store).
const MAX_ENTRIES: usize = 16_384;

/// The stored (blinded, in encrypted stores) state this context last saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteCache {
    /// The head after the last commit (`None`: an empty store).
    pub(crate) head: Option<Head>,
    aggregates: HashMap<String, Option<AggregateState>>,
    keys: HashMap<String, Option<IdempotencyEntry>>,
    /// Whether the maps hold every aggregate and key in the store as of
    /// `head` (see the module notes).
    complete: bool,
}

/// What a complete cache knows of an aggregate or key it never saw.
const NOT_YET: &Option<AggregateState> = &None;
const UNUSED: &Option<IdempotencyEntry> = &None;

impl WriteCache {
    /// What is known of aggregate `id`: `Some(None)` for "has no events".
    pub(crate) fn aggregate(&self, id: &str) -> Option<&Option<AggregateState>> {
        match self.aggregates.get(id) {
            None if self.complete => Some(NOT_YET),
            known => known,
        }
    }

    /// What is known of idempotency key `key`: `Some(None)` for "unused".
    pub(crate) fn key(&self, key: &str) -> Option<&Option<IdempotencyEntry>> {
        match self.keys.get(key) {
            None if self.complete => Some(UNUSED),
            known => known,
        }
    }

    /// The cache after a commit: the new head, everything the commit read,
    /// and everything it wrote over that. `before` is the head the commit
    /// read or the cache held; the genesis head (or none) means the store
    /// had no events, which makes the cache complete.
    pub(crate) fn after_commit(
        previous: Option<WriteCache>,
        before: Option<&Head>,
        head: Option<Head>,
        read: (
            HashMap<String, Option<AggregateState>>,
            HashMap<String, Option<IdempotencyEntry>>,
        ),
        written: (
            impl IntoIterator<Item = (String, AggregateState)>,
            impl IntoIterator<Item = (String, IdempotencyEntry)>,
        ),
    ) -> WriteCache {
        let mut cache = previous.unwrap_or_default();
        cache.complete |= before.is_none_or(|h| h.device_seq == 0);
        if cache.aggregates.len() + cache.keys.len() > MAX_ENTRIES {
            cache.aggregates.clear();
            cache.keys.clear();
            cache.complete = false;
        }
        cache.head = head;
        cache.aggregates.extend(read.0);
        cache.keys.extend(read.1);
        cache
            .aggregates
            .extend(written.0.into_iter().map(|(id, s)| (id, Some(s))));
        cache
            .keys
            .extend(written.1.into_iter().map(|(k, e)| (k, Some(e))));
        cache
    }
}
