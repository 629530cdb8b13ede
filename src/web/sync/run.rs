//! Running sync for an open store: its configuration, one pass at a time
//! per context (a second `sync()` waits for the running one, then runs),
//! cancellation, and the status the app shows. Which context syncs, and
//! when, is decided in TypeScript (`js/src/sync/`): Web Locks and the page
//! and service-worker events live there.

use super::fetch::{FetchTransport, InFlight};
use super::idb_store::{IdbSyncStore, OnPulled};
use super::tokens::JsTokens;
use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::sync::backoff::{Backoff, RetryState};
use crate::sync::engine::{Engine, Scope, SyncReport, SyncState, SyncStore};
use crate::web::platform::{BrowserClock, BrowserEntropy};
use crate::web::store::IdbStore;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::JsValue;

/// The app's clock (`{ now() }`, e.g. a `FakeClock` from `annal/testing`),
/// or `Date.now()`.
#[derive(Debug, Clone)]
pub(crate) struct JsClock {
    pub(crate) now: Option<js_sys::Function>,
}

impl Clock for JsClock {
    fn now_ms(&self) -> i64 {
        self.now
            .as_ref()
            .and_then(|f| f.call0(&JsValue::NULL).ok())
            .and_then(|v| v.as_f64())
            .filter(|t| t.is_finite())
            .map_or_else(|| BrowserClock.now_ms(), |t| t as i64)
    }
}

/// How this store syncs.
#[derive(Debug, Clone)]
pub(crate) struct SyncConfig {
    pub(crate) server_url: String,
    pub(crate) tokens: JsTokens,
    pub(crate) scope: Scope,
    pub(crate) clock: JsClock,
    pub(crate) timeout_ms: u32,
    pub(crate) fetch: Option<js_sys::Function>,
}

/// Told after each pull page: see [`Engine::progress`].
pub(crate) type OnProgress = dyn Fn(u64, u64, bool);

/// Who hears about a pass while it runs.
#[derive(Default)]
pub(crate) struct PassHooks {
    /// `(verified in this pass, checkpoint seq, more follow)` after each pull page.
    pub(crate) progress: Option<Box<OnProgress>>,
    /// Each page of pulled events, once stored.
    pub(crate) pulled: Option<OnPulled>,
}

/// Sync bookkeeping of one open store in one context.
#[derive(Default)]
pub(crate) struct SyncHandle {
    config: RefCell<Option<SyncConfig>>,
    running: Cell<bool>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Bumped by `cancel()`: a pass started before it stops.
    generation: Cell<u64>,
    in_flight: RefCell<Rc<InFlight>>,
}

impl SyncHandle {
    pub(crate) fn configure(&self, config: SyncConfig) {
        *self.config.borrow_mut() = Some(config);
    }

    /// Whether a pass runs in this context now.
    pub(crate) fn running(&self) -> bool {
        self.running.get()
    }

    /// Stops the running pass (its request in flight is aborted) and every
    /// pass waiting for it. Nothing is lost: what was not acknowledged stays
    /// in the outbox.
    pub(crate) fn cancel(&self) {
        self.generation.set(self.generation.get() + 1);
        self.in_flight.borrow().abort();
    }
}

fn cancelled() -> Error {
    Error::new(
        ErrorCode::Cancelled,
        "sync was cancelled by cancelSync(); nothing was lost, the events wait in the outbox; call sync() to go on",
    )
}

impl IdbStore {
    /// One sync pass: push the outbox, pull and verify the ledger.
    pub(crate) async fn sync(self: &Rc<Self>, hooks: PassHooks) -> Result<SyncReport> {
        let config = self.sync.config.borrow().clone().ok_or_else(|| {
            Error::validation(
                "sync",
                "call configureSync({ serverUrl, getToken }) before sync()",
            )
        })?;
        self.at_rest()?;
        let generation = self.sync.generation.get();
        // One pass at a time in this context.
        while self.sync.running.replace(true) {
            let (tx, rx) = oneshot::channel();
            self.sync.waiters.borrow_mut().push(tx);
            let _ = rx.await;
        }
        let result = if self.sync.generation.get() == generation {
            let in_flight = Rc::new(InFlight::default());
            *self.sync.in_flight.borrow_mut() = in_flight.clone();
            let before = IdbSyncStore::of(self).load().await.map(|s| s.retry);
            let result = self.sync_pass(&config, in_flight, hooks).await;
            match (result, before) {
                (Err(_), Ok(retry)) if self.sync.generation.get() != generation => {
                    // A cancelled pass is not a failure of the server: put
                    // the retry schedule back as it was.
                    let _ = IdbSyncStore::of(self).save_retry(&retry).await;
                    Err(cancelled())
                }
                (result, _) => result,
            }
        } else {
            Err(cancelled())
        };
        self.sync.running.set(false);
        if let Some(next) = self.sync.waiters.borrow_mut().pop() {
            let _ = next.send(());
        }
        result
    }

    async fn sync_pass(
        self: &Rc<Self>,
        config: &SyncConfig,
        in_flight: Rc<InFlight>,
        hooks: PassHooks,
    ) -> Result<SyncReport> {
        let store = IdbSyncStore {
            store: self.clone(),
            on_pulled: hooks.pulled,
        };
        let transport = FetchTransport {
            base_url: config.server_url.clone(),
            timeout_ms: config.timeout_ms,
            fetch: config.fetch.clone(),
            in_flight,
        };
        Engine {
            store: &store,
            transport: &transport,
            tokens: &config.tokens,
            clock: &config.clock,
            entropy: &BrowserEntropy,
            backoff: Backoff::default(),
            scope: config.scope,
            progress: hooks.progress.as_deref(),
        }
        .run()
        .await
    }

    /// The saved sync state and the head's `device_seq`, for `syncStatus()`.
    /// Readable while the store is locked: neither needs a key.
    pub(crate) async fn sync_state(self: &Rc<Self>) -> Result<(SyncState, u64)> {
        let head = self.read_head().await?.device_seq;
        let state = IdbSyncStore::of(self).load().await?;
        Ok((state, head))
    }
}

/// Whether `retry` says to wait until later.
pub(crate) fn retrying(retry: &RetryState) -> bool {
    retry.attempts > 0
}
