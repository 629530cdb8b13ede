//! Whole-log scans: `verify()` and `exportAudit()`.
//!
//! Pages are read in batches, each in its own short read transaction, so a
//! long scan never holds up appends. The batch that reaches the end of the
//! log also reads the head and the aggregate index, so the scan ends on one
//! consistent snapshot however many events were appended meanwhile.

use super::idb::errors::from_dom;
use super::idb::layout::{self, AGGREGATES, META, META_HEAD_KEY, PAGES};
use super::idb::txn::{pending, values_by_key_of, Pending, Txn};
use super::open_ahead::open_pages;
use super::store::IdbStore;
use crate::at_rest::{AtRest, Opened};
use crate::chain::{BreakReason, ChainVerifier, VerifyReport};
use crate::error::Result;
use crate::page::Page;
use crate::state::{AggregateState, Head};
use js_sys::Array;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbKeyRange;

const PAGES_PER_SCAN: u32 = 64;
/// `verify()` reports progress at least this often, in events.
const PROGRESS_EVERY: u64 = 1000;

/// The stored bytes of each page's records.
fn records_of(pages: &[Page]) -> Vec<&[u8]> {
    pages.iter().map(|p| &p.records[..]).collect()
}

/// The derived records read together with the last batch of pages.
struct Tail {
    head: Head,
    head_mac: Option<String>,
    aggregates: HashMap<String, AggregateState>,
}

impl IdbStore {
    /// Reads every page in key order, handing each batch to `visit`, and
    /// returns the head and aggregate index as of the last batch. `visit`
    /// returns false to stop early (then no tail is read).
    ///
    /// The next batch is requested before the current one is handed to
    /// `visit`, so IndexedDB reads it while this one is decrypted (in an
    /// encrypted store, `open_ahead`) and checked. `visit` gets each page
    /// with its records opened as `at_rest` says.
    async fn scan(
        &self,
        at_rest: &AtRest,
        mut visit: impl FnMut(&[Page], Vec<Opened<'_>>) -> bool,
    ) -> Result<Option<Tail>> {
        let pages_of = |values: &Array| {
            values
                .iter()
                .map(|v| layout::page_from_js(&v))
                .collect::<Result<Vec<Page>>>()
        };
        let mut batch = self.scan_batch(0.0)?;
        loop {
            let (txn, values) = batch;
            let values: Array = values.result().await?.unchecked_into();
            if values.length() == PAGES_PER_SCAN {
                // Request the next batch before parsing this one, while the
                // transaction is certainly still active.
                let last = layout::page_first_device_seq(&values.get(PAGES_PER_SCAN - 1))?;
                batch = self.scan_batch(last as f64 + 1.0)?;
                let pages = pages_of(&values)?;
                let opened = open_pages(self, at_rest, &records_of(&pages)).await?;
                if !visit(&pages, opened) {
                    // The batch already requested is read and dropped.
                    return Ok(None);
                }
                continue;
            }
            // The last batch: its transaction also reads the head and the
            // aggregate index, issued before any parsing.
            let aggregates = txn.store(AGGREGATES)?;
            let head = pending(txn.store(META)?.get(&JsValue::from_str(META_HEAD_KEY)))?;
            let keys = pending(aggregates.get_all_keys())?;
            let states = pending(aggregates.get_all())?;
            let pages = pages_of(&values)?;
            let opened = open_pages(self, at_rest, &records_of(&pages)).await?;
            let keep_going = visit(&pages, opened);
            let head_value = head.result().await?;
            let head_mac = layout::head_mac_from_js(&head_value);
            let head = layout::head_from_js(&head_value)?.unwrap_or_default();
            let keys: Array = keys.result().await?.unchecked_into();
            let states: Array = states.result().await?.unchecked_into();
            let mut aggregates = HashMap::new();
            for (k, v) in keys.iter().zip(states.iter()) {
                if let (Some(id), Some(state)) = (k.as_string(), layout::aggregate_from_js(&v)?) {
                    aggregates.insert(id, state);
                }
            }
            return Ok(keep_going.then_some(Tail {
                head,
                head_mac,
                aggregates,
            }));
        }
    }

    /// Starts a read transaction and requests the pages from key `lo` on.
    fn scan_batch(&self, lo: f64) -> Result<(Txn, Pending)> {
        let txn = Txn::begin(
            self.db()?,
            &[META, AGGREGATES, PAGES],
            false,
            self.durability,
        )?;
        let range = IdbKeyRange::lower_bound(&JsValue::from(lo)).map_err(from_dom)?;
        let pages = txn.store(PAGES)?;
        let values = values_by_key_of(&pages, &pages, &range, Some(PAGES_PER_SCAN));
        Ok((txn, values))
    }

    /// Recomputes every hash and link and checks the head and indexes.
    /// `progress(checked, total)` is called after each batch.
    pub(crate) async fn verify(&self, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport> {
        let report = self.verify_once(progress).await?;
        // A record under a key newer than this context's ring means another
        // context rotated during the scan: read the ring again and rescan.
        let ring_before = self.at_rest()?.ring().map(|r| r.max_id());
        if report.first_break.as_ref().map(|b| b.reason) == Some(BreakReason::DecryptFailed) {
            self.keys.mark_ring_stale();
            let ring_after = self.at_rest_for(None).await?.ring().map(|r| r.max_id());
            if ring_after > ring_before {
                return self.verify_once(progress).await;
            }
        }
        Ok(report)
    }

    async fn verify_once(&self, progress: &dyn Fn(u64, u64)) -> Result<VerifyReport> {
        let total = self.head().await?.device_seq;
        let at_rest = self.at_rest_for(None).await?;
        let mut verifier =
            ChainVerifier::new(self.identity.expected()).with_at_rest((*at_rest).clone());
        let mut reported = 0;
        let tail = self
            .scan(&at_rest, |pages, opened| {
                for (p, opened) in pages.iter().zip(opened) {
                    if verifier.is_broken() {
                        break;
                    }
                    verifier.feed_opened_page(&p.meta, opened);
                    if verifier.checked() >= reported + PROGRESS_EVERY {
                        reported = verifier.checked();
                        progress(reported, total.max(reported));
                    }
                }
                !verifier.is_broken()
            })
            .await?;
        let checked = verifier.checked();
        if checked > reported || checked == 0 {
            progress(checked, total.max(checked));
        }
        Ok(match tail {
            Some(t) => verifier.finish(Some(&t.head), t.head_mac.as_deref(), Some(&t.aggregates)),
            None => verifier.finish(None, None, None),
        })
    }

    /// The audit document, as chunks of text in order.
    pub(crate) async fn export_audit(&self, exported_at: &str) -> Result<Vec<String>> {
        let at_rest = self.at_rest_for(None).await?;
        let mut chunks = vec![crate::audit::begin(&self.identity, exported_at)];
        let mut first = true;
        let tail = self
            .scan(&at_rest, |_, opened| {
                let chunk: String = opened
                    .iter()
                    .map(|o| crate::audit::page_entries(&mut first, o))
                    .collect();
                chunks.push(chunk);
                true
            })
            .await?;
        let head = tail.map(|t| t.head).unwrap_or_default();
        chunks.push(crate::audit::end(&head));
        Ok(chunks)
    }
}
