//! [`SyncStore`] for the in-memory store: the sync engine's test double,
//! shipped so apps can test their sync handling natively.

use super::backoff::RetryState;
use super::engine::{SyncState, SyncStore};
use super::pull::{Checkpoint, Pulled, RemoteHead};
use super::push::{Conflict, PushOutcome, Rejected};
use crate::error::Result;
use crate::filter::Filter;
use crate::memory::MemoryStore;
use crate::protocol::Receipt;
use crate::record::Record;
use crate::state::Identity;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// A [`MemoryStore`] with sync state beside it.
#[derive(Debug)]
pub struct MemorySync {
    /// The device's log.
    pub store: RefCell<MemoryStore>,
    state: RefCell<SyncState>,
    /// Receipts by `device_seq`.
    pub receipts: RefCell<BTreeMap<u64, Receipt>>,
    /// Events the server quarantined.
    pub rejected: RefCell<Vec<Rejected>>,
    /// Events the server flagged as conflicts.
    pub conflicts: RefCell<Vec<Conflict>>,
    /// Other devices' events, verified, in ledger order.
    pub remote: RefCell<Vec<Pulled>>,
}

impl MemorySync {
    /// Sync state for `store`, starting from nothing synced.
    pub fn new(store: MemoryStore) -> MemorySync {
        MemorySync {
            store: RefCell::new(store),
            state: RefCell::default(),
            receipts: RefCell::default(),
            rejected: RefCell::default(),
            conflicts: RefCell::default(),
            remote: RefCell::default(),
        }
    }

    /// The saved state.
    pub fn state(&self) -> SyncState {
        self.state.borrow().clone()
    }

    /// Events not yet acknowledged.
    pub fn pending_count(&self) -> u64 {
        self.store.borrow().head().device_seq - self.state.borrow().acked
    }
}

impl SyncStore for MemorySync {
    fn identity(&self) -> Identity {
        self.store.borrow().identity().clone()
    }

    async fn sync_state(&self) -> Result<SyncState> {
        Ok(self.state.borrow().clone())
    }

    async fn pending(&self, after: u64, limit: usize) -> Result<Vec<Record>> {
        let filter = Filter {
            from_seq: Some(after + 1),
            limit: Some(limit),
            ..Filter::default()
        };
        self.store.borrow().events(&filter)
    }

    async fn local_hashes(&self, device_seqs: &[u64]) -> Result<HashMap<u64, String>> {
        let store = self.store.borrow();
        let head = store.head().device_seq;
        let mut out = HashMap::new();
        for &seq in device_seqs.iter().filter(|s| **s >= 1 && **s <= head) {
            out.insert(seq, store.get(seq)?.envelope.hash);
        }
        Ok(out)
    }

    async fn save_push(&self, outcome: &PushOutcome) -> Result<()> {
        let mut receipts = self.receipts.borrow_mut();
        for (seq, r) in &outcome.receipts {
            receipts.insert(*seq, r.clone());
        }
        self.rejected
            .borrow_mut()
            .extend(outcome.rejected.iter().cloned());
        self.conflicts
            .borrow_mut()
            .extend(outcome.conflicts.iter().cloned());
        let mut state = self.state.borrow_mut();
        state.acked = outcome.acked;
        if let Some(checkpoint) = &outcome.checkpoint {
            state.checkpoint = Some(checkpoint.clone());
        }
        Ok(())
    }

    async fn save_pull(
        &self,
        pulled: &[Pulled],
        checkpoint: &Checkpoint,
        remote: &HashMap<String, RemoteHead>,
    ) -> Result<()> {
        self.remote.borrow_mut().extend(pulled.iter().cloned());
        let mut state = self.state.borrow_mut();
        state.checkpoint = Some(checkpoint.clone());
        state.remote = remote.clone();
        Ok(())
    }

    async fn save_retry(&self, retry: &RetryState) -> Result<()> {
        self.state.borrow_mut().retry = retry.clone();
        Ok(())
    }
}
