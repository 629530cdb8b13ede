//! One sync pass: check the server speaks our protocol, push the outbox in
//! device order until it is empty, then pull and verify the ledger from the
//! checkpoint. Storage, transport and tokens are traits, so the browser
//! store, the in-memory store and tests drive the same code.

use super::backoff::{Backoff, RetryState};
use super::outbox::Push;
use super::own_entries::OwnEntries;
use super::pull::{Checkpoint, PullVerifier, Pulled, RemoteHead};
use super::push::{self, PushOutcome};
use super::transport::{Request, Response, Transport, TransportError};
use crate::clock::Clock;
use crate::entropy::Entropy;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::{user_ledger, TENANT_LEDGER};
use crate::protocol::{
    PullResponse, PushResponse, PROTOCOL_MAX, PROTOCOL_MIN, PROTOCOL_OMIT_DEVICE,
};
use crate::record::Record;
use crate::state::Identity;
use futures_util::future::{join, join3};
use std::collections::{BTreeSet, HashMap};

/// Sync progress kept with the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SyncState {
    /// Every event up to this `device_seq` has a receipt.
    pub acked: u64,
    /// When to try again after a failure.
    pub retry: RetryState,
    /// Where the ledger was last verified.
    pub checkpoint: Option<Checkpoint>,
    /// Heads of other devices' chains seen in the ledger.
    pub remote: HashMap<String, RemoteHead>,
}

/// What a store must offer to be synced.
#[allow(async_fn_in_trait)]
pub trait SyncStore {
    /// Whose store this is.
    fn identity(&self) -> Identity;
    /// The saved sync state.
    async fn sync_state(&self) -> Result<SyncState>;
    /// Up to `limit` of this device's events after `after`, in order.
    async fn pending(&self, after: u64, limit: usize) -> Result<Vec<Record>>;
    /// The hashes of this device's events at `device_seqs` (ascending), for
    /// those it holds: read together, since a pull page can hold hundreds.
    async fn local_hashes(&self, device_seqs: &[u64]) -> Result<HashMap<u64, String>>;
    /// Stores a push's receipts, rejections and conflicts and the new
    /// watermark, all together.
    async fn save_push(&self, outcome: &PushOutcome) -> Result<()>;
    /// Stores pulled events with the checkpoint and heads they lead to,
    /// all together.
    async fn save_pull(
        &self,
        pulled: &[Pulled],
        checkpoint: &Checkpoint,
        remote: &HashMap<String, RemoteHead>,
    ) -> Result<()>;
    /// Stores the retry state.
    async fn save_retry(&self, retry: &RetryState) -> Result<()>;
}

/// Where bearer tokens come from. `refresh` asks for a new one because the
/// last was refused; an expired token is refreshed, never replayed.
#[allow(async_fn_in_trait)]
pub trait TokenSource {
    /// A token for this store's user and tenant.
    async fn token(&self, refresh: bool) -> Result<String>;
}

/// Which ledger a store follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The user's own ledger (a patient's devices).
    Own,
    /// The tenant ledger (a coordinator or auditor).
    Tenant,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Events newly acknowledged by the server.
    pub pushed: u64,
    /// Events of other devices newly pulled.
    pub pulled: u64,
    /// Ledger entries verified.
    pub verified: u64,
    /// Of the pushed events, how many were quarantined.
    pub rejected: u64,
    /// Of the pushed events, how many were conflicts.
    pub conflicts: u64,
    /// The watermark after the pass.
    pub acked: u64,
}

/// Events read per outbox step.
const OUTBOX_READ: usize = 500;
/// Entries per pull page.
const PULL_LIMIT: u32 = 500;

/// A sync pass over `store`.
pub struct Engine<'a, S, T, K> {
    /// The store.
    pub store: &'a S,
    /// The network.
    pub transport: &'a T,
    /// Tokens.
    pub tokens: &'a K,
    /// Time, for retry scheduling.
    pub clock: &'a dyn Clock,
    /// Randomness, for jitter.
    pub entropy: &'a dyn Entropy,
    /// Retry policy.
    pub backoff: Backoff,
    /// Which ledger to pull.
    pub scope: Scope,
    /// Called after each pull page is verified and stored, as `(entries
    /// verified so far in this pass, checkpoint seq, whether more follow)`.
    pub progress: Option<&'a dyn Fn(u64, u64, bool)>,
}

impl<S, T, K> std::fmt::Debug for Engine<'_, S, T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why a request failed, and whether trying again later may help.
enum Failure {
    /// Network, timeout, 5xx, 429: retry with backoff.
    Transient(Option<u64>, String),
    /// Anything else: stop and report.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Fatal(e)
    }
}

fn offline(message: String) -> Error {
    Error::new(ErrorCode::Offline, message)
}

impl<S: SyncStore, T: Transport, K: TokenSource> Engine<'_, S, T, K> {
    /// The ledger this store follows.
    pub fn ledger(&self) -> String {
        match self.scope {
            Scope::Own => user_ledger(&self.store.identity().user_id),
            Scope::Tenant => TENANT_LEDGER.to_string(),
        }
    }

    /// Runs one pass now, whatever the retry schedule says. A transient
    /// failure is recorded with its next attempt time and returned as
    /// `ANNAL_OFFLINE`; nothing is lost or skipped.
    pub async fn run(&self) -> Result<SyncReport> {
        let mut state = self.store.sync_state().await?;
        match self.pass(&mut state).await {
            Ok(report) => {
                state.retry.succeeded(self.clock.now_ms());
                self.store.save_retry(&state.retry).await?;
                Ok(report)
            }
            Err(Failure::Transient(retry_after, message)) => {
                let now = self.clock.now_ms();
                let delay = state.retry.failed(
                    now,
                    retry_after,
                    message.clone(),
                    &self.backoff,
                    self.entropy,
                );
                self.store.save_retry(&state.retry).await?;
                Err(offline(format!(
                    "{message}; the events wait in the outbox and sync retries in {} s",
                    delay.div_ceil(1000)
                )))
            }
            Err(Failure::Fatal(e)) => {
                // Not a matter of waiting: no retry is scheduled, and the
                // status says `error` until a pass succeeds.
                state.retry.stopped(e.message.clone());
                self.store.save_retry(&state.retry).await?;
                Err(e)
            }
        }
    }

    async fn pass(&self, state: &mut SyncState) -> std::result::Result<SyncReport, Failure> {
        let server_max = self.check_schema().await?;
        let mut report = SyncReport::default();
        self.push_all(state, &mut report).await?;
        let omit_own = server_max >= u64::from(PROTOCOL_OMIT_DEVICE);
        self.pull_all(state, &mut report, omit_own).await?;
        report.acked = state.acked;
        Ok(report)
    }

    /// Sends a request with a token, refreshing it once if refused.
    async fn request(
        &self,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> std::result::Result<Response, Failure> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.token(refreshed).await?;
            let response = self
                .transport
                .send(Request {
                    method,
                    path: path.clone(),
                    token: Some(token),
                    body: body.clone(),
                })
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e @ (TransportError::Network(_) | TransportError::Timeout)) => {
                    return Err(Failure::Transient(None, e.to_string()))
                }
            };
            match response.status {
                200..=299 => return Ok(response),
                401 if !refreshed => refreshed = true,
                401 => {
                    return Err(Failure::Fatal(Error::new(
                        ErrorCode::Unauthorized,
                        "the server refused a freshly issued token; check getToken() returns a token for this user and tenant",
                    )))
                }
                429 | 500..=599 => {
                    return Err(Failure::Transient(
                        response.retry_after_ms,
                        format!("the server answered {}", response.status),
                    ))
                }
                status => {
                    return Err(Failure::Fatal(Error::new(
                        ErrorCode::Storage,
                        format!("the server refused the request ({status}): {}", short(&response.body)),
                    )))
                }
            }
        }
    }

    /// Checks that the server speaks a protocol version of this client;
    /// returns the newest version it speaks.
    async fn check_schema(&self) -> std::result::Result<u64, Failure> {
        let response = self.request("GET", "/v1/schema".into(), None).await?;
        let v: serde_json::Value = serde_json::from_str(&response.body)
            .map_err(|_| bad_server("its /v1/schema is not JSON"))?;
        let min = v["protocol"]["min"].as_u64().unwrap_or(u64::MAX);
        let max = v["protocol"]["max"].as_u64().unwrap_or(0);
        if min > u64::from(PROTOCOL_MAX) || max < u64::from(PROTOCOL_MIN) {
            return Err(Failure::Fatal(Error::new(
                ErrorCode::SchemaIncompatible,
                format!(
                    "the server speaks sync protocol {min}–{max} and this annal speaks {PROTOCOL_MIN}–{PROTOCOL_MAX}; \
                     nothing was pushed. Upgrade the app (or the server) so they share a version"
                ),
            )));
        }
        Ok(max)
    }

    /// Pushes the outbox in device order. While the server works on a
    /// batch, the receipts of the batch before it are stored and the next
    /// events are read, so the client adds little to the server's time. A
    /// crash in between loses nothing: those receipts are fetched again as
    /// duplicates on the next pass.
    async fn push_all(
        &self,
        state: &mut SyncState,
        report: &mut SyncReport,
    ) -> std::result::Result<(), Failure> {
        let mut stalled = 0;
        let ledger = self.ledger();
        let mut own = OwnEntries::new(
            &self.store.identity().tenant_id,
            &state
                .checkpoint
                .clone()
                .filter(|c| c.ledger == ledger)
                .unwrap_or_else(|| Checkpoint::genesis(&ledger)),
        );
        let mut pending = self.store.pending(state.acked, OUTBOX_READ).await?;
        // The next push, built from `pending` during the request before.
        let mut built: Option<Push> = None;
        // An outcome not yet stored: it is stored during the next request.
        let mut unsaved: Option<PushOutcome> = None;
        loop {
            if pending.is_empty() {
                if let Some(outcome) = unsaved.take() {
                    self.store.save_push(&outcome).await?;
                }
                return Ok(());
            }
            let push = built.take().unwrap_or_else(|| Push::of(&pending));
            let sent = &pending[..push.count];
            let ids: Vec<String> = sent.iter().map(|r| r.envelope.event_id.clone()).collect();
            let first = sent[0].envelope.device_seq;
            let last = sent[sent.len() - 1].envelope.device_seq;
            let save = async {
                match unsaved.take() {
                    Some(outcome) => self.store.save_push(&outcome).await,
                    None => Ok(()),
                }
            };
            // The events after this push, and the push they make, on the
            // guess that the server takes this one whole.
            let ahead = async {
                let next = self.store.pending(last, OUTBOX_READ).await?;
                let push = (!next.is_empty()).then(|| Push::of(&next));
                Ok::<_, Error>((next, push))
            };
            let (response, saved, next) = join3(
                self.request("POST", "/v1/events".into(), Some(push.body)),
                save,
                ahead,
            )
            .await;
            saved?;
            let response: PushResponse = serde_json::from_str(&response?.body)
                .map_err(|_| bad_server("its push response is not the documented JSON"))?;
            let mut outcome = push::apply(state.acked, first, &ids, &response).map_err(|e| {
                bad_server(&format!(
                    "its push response does not fit the request: {}",
                    e.0
                ))
            })?;
            let hashes: HashMap<u64, &str> = sent
                .iter()
                .map(|r| (r.envelope.device_seq, r.envelope.hash.as_str()))
                .collect();
            let verified = own.take(&outcome, &hashes);
            if verified > 0 {
                report.verified += verified;
                outcome.checkpoint = Some(own.checkpoint());
                state.checkpoint = outcome.checkpoint.clone();
            }
            report.pushed += outcome.acked.saturating_sub(state.acked);
            report.rejected += outcome.rejected.len() as u64;
            report.conflicts += outcome.conflicts.len() as u64;
            // A `missing` answer lowers the watermark: the next round resends
            // from there. A server that keeps asking without taking anything
            // is misbehaving.
            stalled = if outcome.acked > state.acked {
                0
            } else {
                stalled + 1
            };
            state.acked = outcome.acked;
            let whole_batch = outcome.acked == last;
            unsaved = Some(outcome);
            if stalled >= 3 {
                if let Some(outcome) = unsaved.take() {
                    self.store.save_push(&outcome).await?;
                }
                return Err(Failure::Fatal(bad_server(
                    "it keeps answering `missing` without taking the events it asks for",
                )));
            }
            let next = if whole_batch {
                next
            } else {
                self.store
                    .pending(state.acked, OUTBOX_READ)
                    .await
                    .map(|next| (next, None))
            };
            pending = match next {
                Ok((next, push)) => {
                    built = push;
                    next
                }
                Err(e) => {
                    if let Some(outcome) = unsaved.take() {
                        self.store.save_push(&outcome).await?;
                    }
                    return Err(e.into());
                }
            };
        }
    }

    /// Pulls the followed ledger from the checkpoint, page by page. The
    /// next page is requested before this one is verified and stored, so
    /// the server answers while the client checks; a page is still taken
    /// only once every page before it verified.
    async fn pull_all(
        &self,
        state: &mut SyncState,
        report: &mut SyncReport,
        omit_own: bool,
    ) -> std::result::Result<(), Failure> {
        let identity = self.store.identity();
        let ledger = self.ledger();
        let checkpoint = state
            .checkpoint
            .clone()
            .filter(|c| c.ledger == ledger)
            .unwrap_or_else(|| Checkpoint::genesis(&ledger));
        let mut verifier = PullVerifier::new(
            &identity.tenant_id,
            &checkpoint,
            &identity.device_id,
            state.remote.clone(),
        );
        let mut page = self.pull_page(&ledger, checkpoint.seq, omit_own).await?;
        loop {
            let more = match (page.has_more, page.items.last()) {
                (false, _) => None,
                (true, Some(last)) => Some(last.entry.seq),
                (true, None) => {
                    return Err(Failure::Fatal(bad_server(
                        "it answered a pull page with no items and has_more",
                    )))
                }
            };
            let (next, taken) = join(
                async {
                    match more {
                        Some(after) => Some(self.pull_page(&ledger, after, omit_own).await),
                        None => None,
                    }
                },
                self.take_page(&page, &ledger, &mut verifier, state, report),
            )
            .await;
            taken?;
            match next {
                Some(next) => page = next?,
                None => return Ok(()),
            }
        }
    }

    /// One page of the followed ledger after entry `after`. With
    /// `omit_own` (a server of protocol 2), this device's events come back
    /// as references, not bodies: it holds them (docs/FORMAT.md §11.4).
    async fn pull_page(
        &self,
        ledger: &str,
        after: u64,
        omit_own: bool,
    ) -> std::result::Result<PullResponse, Failure> {
        let mut path = format!("/v1/events?after={after}&limit={PULL_LIMIT}");
        if omit_own {
            path.push_str("&omit_device=");
            path.push_str(&self.store.identity().device_id);
        }
        let response = self.request("GET", path, None).await?;
        let page: PullResponse = serde_json::from_str(&response.body)
            .map_err(|_| bad_server("its pull response is not the documented JSON"))?;
        if page.ledger != ledger {
            return Err(Failure::Fatal(bad_server(&format!(
                "it served ledger {:?} where {ledger:?} was asked for",
                page.ledger
            ))));
        }
        Ok(page)
    }

    /// Verifies one pull page against everything before it and stores what
    /// it brings with the new checkpoint.
    async fn take_page(
        &self,
        page: &PullResponse,
        ledger: &str,
        verifier: &mut PullVerifier,
        state: &mut SyncState,
        report: &mut SyncReport,
    ) -> std::result::Result<(), Failure> {
        let identity = self.store.identity();
        // This device's hashes for the entries that hold its events.
        let own: BTreeSet<u64> = page
            .items
            .iter()
            .filter_map(|i| match (&i.event, &i.own) {
                (_, Some(own)) => Some(own.device_seq),
                (Some(e), None) if e.envelope["device_id"] == identity.device_id.as_str() => {
                    e.envelope["device_seq"].as_u64()
                }
                _ => None,
            })
            .collect();
        let own: Vec<u64> = own.into_iter().collect();
        let local = if own.is_empty() {
            HashMap::new()
        } else {
            self.store.local_hashes(&own).await?
        };
        let mut pulled = Vec::new();
        for item in &page.items {
            match verifier.feed(item, &|seq| local.get(&seq).cloned()) {
                Ok(Some(p)) => pulled.push(p),
                Ok(None) => {}
                Err(fork) => {
                    return Err(Failure::Fatal(Error::new(
                        ErrorCode::LedgerFork,
                        format!(
                            "the server's history no longer matches what this device verified (ledger {ledger}, entry {}): {}. \
                             Sync has stopped and every local event is kept; report this to the server's operator",
                            fork.seq, fork.message
                        ),
                    )))
                }
            }
        }
        let checkpoint = verifier.checkpoint();
        self.store
            .save_pull(&pulled, &checkpoint, &verifier.remote)
            .await?;
        report.pulled += pulled.len() as u64;
        report.verified += page.items.len() as u64;
        state.checkpoint = Some(checkpoint.clone());
        state.remote = verifier.remote.clone();
        if let Some(progress) = self.progress {
            progress(report.verified, checkpoint.seq, page.has_more);
        }
        Ok(())
    }
}

fn short(body: &str) -> String {
    body.chars().take(200).collect()
}

fn bad_server(what: &str) -> Error {
    Error::new(
        ErrorCode::Storage,
        format!("the sync server misbehaved: {what}; check serverUrl points at an annal-server"),
    )
}
