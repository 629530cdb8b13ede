//! Aggregates' current states, read inside an append's transaction.
//!
//! Since layout 3 every page carries `aggregate_heads`, and the newest
//! page's entry for an aggregate is where it stands: the last key of the
//! aggregate on `by_aggregate_head`. An aggregate not appended to since its
//! store was upgraded has no such entry; its state is the `aggregates`
//! record written before layout 3.
//!
//! The keys of all the aggregates a commit has not seen come from one call
//! into glue.js (`newestHeads`). For several, it first reads every head key
//! between the smallest and the largest of their ids with one key cursor,
//! and gives up after a few keys per aggregate: one request, and steps the
//! browser prefetches, where a cursor each costs a request each. Ids that
//! sort together (a fresh store, time-ordered ids, `patient-17`) keep that
//! range small. When it gives up, it opens a cursor each after all, and the
//! store stops trying ranges.

use super::idb::errors::from_dom;
use super::idb::layout::{self, AGGREGATES, BY_AGGREGATE_HEAD, PAGES};
use super::idb::txn::{pending, Pending, Txn};
use crate::error::Result;
use crate::state::AggregateState;
use js_sys::Array;
use std::cell::Cell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbIndex;

#[wasm_bindgen(module = "/src/web/idb/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = newestHeads)]
    fn newest_heads(index: &IdbIndex, ids: &Array, range: bool) -> js_sys::Promise;
}

/// The reads that find the aggregates a commit has not seen, issued with
/// the commit's other reads.
pub(crate) struct AggregateReads {
    heads: Pending,
    /// The aggregates' ids, in the order of their stored ids to the glue.
    ids: Vec<String>,
    /// Their `aggregates` records, in stores from before layout 3.
    before_layout_3: Option<Vec<Pending>>,
}

impl AggregateReads {
    /// Requests the state of each aggregate in `wanted`, `(stored id, id)`
    /// (the stored id is blinded in blinded stores), in `txn`, which covers
    /// `pages` and, with `legacy`, `aggregates`. `ranges`: whether reading
    /// a range has paid off so far.
    pub(crate) fn issue(
        txn: &Txn,
        wanted: Vec<(String, String)>,
        legacy: bool,
        ranges: bool,
    ) -> Result<AggregateReads> {
        let stored: Array = wanted
            .iter()
            .map(|(stored, _)| JsValue::from_str(stored))
            .collect();
        let index = txn
            .store(PAGES)?
            .index(BY_AGGREGATE_HEAD)
            .map_err(from_dom)?;
        let heads = Pending::settled_in_request(newest_heads(&index, &stored, ranges));
        let before_layout_3 = match legacy {
            true => Some(
                stored
                    .iter()
                    .map(|id| pending(txn.store(AGGREGATES)?.get(&id)))
                    .collect::<Result<_>>()?,
            ),
            false => None,
        };
        Ok(AggregateReads {
            heads,
            ids: wanted.into_iter().map(|(_, id)| id).collect(),
            before_layout_3,
        })
    }

    /// Each aggregate's stored state, `None` if it has no events, by id.
    /// Clears `ranges` when a range read gave up.
    pub(crate) async fn results(
        self,
        ranges: &Cell<bool>,
    ) -> Result<Vec<(String, Option<AggregateState>)>> {
        let answer: Array = self.heads.result().await?.unchecked_into();
        let keys: Array = answer.get(0).unchecked_into();
        if answer.get(1).as_bool() == Some(true) {
            ranges.set(false);
        }
        let mut records = self.before_layout_3.map(Vec::into_iter);
        let mut states = Vec::with_capacity(self.ids.len());
        for (i, id) in self.ids.into_iter().enumerate() {
            let key = keys.get(i as u32);
            let record = records.as_mut().and_then(Iterator::next);
            let state = match (key.is_null(), record) {
                (false, _) => Some(layout::aggregate_head_from_key(&key)?.1),
                (true, Some(record)) => layout::aggregate_from_js(&record.result().await?)?,
                (true, None) => None,
            };
            states.push((id, state));
        }
        Ok(states)
    }
}
