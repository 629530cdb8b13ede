//! Running sync for an open store: its configuration, one pass at a time
//! per context (a second `sync()` waits for the running one, then runs),
//! and the status the app shows.

use super::fetch::FetchTransport;
use super::idb_store::IdbSyncStore;
use super::tokens::JsTokens;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sync::backoff::Backoff;
use crate::sync::engine::{Engine, Scope, SyncReport, SyncState};
use crate::web::platform::{BrowserClock, BrowserEntropy};
use crate::web::store::IdbStore;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// How this store syncs.
#[derive(Debug, Clone)]
pub(crate) struct SyncConfig {
    pub(crate) server_url: String,
    pub(crate) tokens: JsTokens,
    pub(crate) scope: Scope,
}

/// Sync bookkeeping of one open store in one context.
#[derive(Default)]
pub(crate) struct SyncHandle {
    config: RefCell<Option<SyncConfig>>,
    running: Cell<bool>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    last_sync_at: Cell<Option<i64>>,
}

impl SyncHandle {
    pub(crate) fn configure(&self, config: SyncConfig) {
        *self.config.borrow_mut() = Some(config);
    }

    pub(crate) fn last_sync_at(&self) -> Option<i64> {
        self.last_sync_at.get()
    }
}

impl IdbStore {
    /// One sync pass: push the outbox, pull and verify the ledger.
    pub(crate) async fn sync(self: &Rc<Self>) -> Result<SyncReport> {
        let config = self.sync.config.borrow().clone().ok_or_else(|| {
            Error::validation(
                "sync",
                "call configureSync({ serverUrl, getToken }) before sync()",
            )
        })?;
        self.at_rest()?;
        // One pass at a time in this context.
        while self.sync.running.replace(true) {
            let (tx, rx) = oneshot::channel();
            self.sync.waiters.borrow_mut().push(tx);
            let _ = rx.await;
        }
        let result = self.sync_pass(&config).await;
        self.sync.running.set(false);
        if let Some(next) = self.sync.waiters.borrow_mut().pop() {
            let _ = next.send(());
        }
        if result.is_ok() {
            self.sync.last_sync_at.set(Some(BrowserClock.now_ms()));
        }
        result
    }

    async fn sync_pass(self: &Rc<Self>, config: &SyncConfig) -> Result<SyncReport> {
        let store = IdbSyncStore {
            store: self.clone(),
        };
        let transport = FetchTransport {
            base_url: config.server_url.clone(),
        };
        Engine {
            store: &store,
            transport: &transport,
            tokens: &config.tokens,
            clock: &BrowserClock,
            entropy: &BrowserEntropy,
            backoff: Backoff::default(),
            scope: config.scope,
            progress: None,
        }
        .run()
        .await
    }

    /// The saved sync state and the head, for `syncStatus()`.
    pub(crate) async fn sync_state(self: &Rc<Self>) -> Result<(SyncState, u64)> {
        let head = self.head().await?.device_seq;
        let state = IdbSyncStore {
            store: self.clone(),
        }
        .load()
        .await?;
        Ok((state, head))
    }
}
