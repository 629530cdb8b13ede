//! An aggregate's current state, read inside an append's transaction.
//!
//! Since layout 3 every page carries `aggregate_heads`, and the newest
//! page's entry for an aggregate is where it stands: one key-only cursor
//! step on `by_aggregate_head`, backwards from the aggregate's last key.
//! An aggregate not appended to since its store was upgraded has no such
//! entry; its state is the `aggregates` record written before layout 3.

use super::idb::errors::from_dom;
use super::idb::layout::{self, AGGREGATES, BY_AGGREGATE_HEAD, PAGES};
use super::idb::txn::{pending, Pending, Txn};
use crate::error::Result;
use crate::state::AggregateState;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbCursor, IdbCursorDirection};

/// The reads that find one aggregate, issued together.
pub(crate) struct AggregateRead {
    newest_head: Pending,
    /// Only in stores that had `aggregates` records when opened.
    before_layout_3: Option<Pending>,
}

impl AggregateRead {
    /// Requests the state of the aggregate stored as `stored_id` (blinded
    /// in blinded stores) in `txn`, which must cover `pages` and, with
    /// `legacy`, `aggregates`.
    pub(crate) fn issue(txn: &Txn, stored_id: &str, legacy: bool) -> Result<AggregateRead> {
        let index = txn
            .store(PAGES)?
            .index(BY_AGGREGATE_HEAD)
            .map_err(from_dom)?;
        let range = layout::aggregate_head_range(stored_id)?;
        let newest_head = pending(
            index.open_key_cursor_with_range_and_direction(&range, IdbCursorDirection::Prev),
        )?;
        let before_layout_3 = match legacy {
            true => Some(pending(
                txn.store(AGGREGATES)?.get(&JsValue::from_str(stored_id)),
            )?),
            false => None,
        };
        Ok(AggregateRead {
            newest_head,
            before_layout_3,
        })
    }

    /// The aggregate's stored state; `None` if it has no events.
    pub(crate) async fn result(self) -> Result<Option<AggregateState>> {
        let cursor = self.newest_head.result().await?;
        if let Some(cursor) = cursor.dyn_ref::<IdbCursor>() {
            let (_, state) = layout::aggregate_head_from_key(&cursor.key().map_err(from_dom)?)?;
            return Ok(Some(state));
        }
        match self.before_layout_3 {
            Some(read) => layout::aggregate_from_js(&read.result().await?),
            None => Ok(None),
        }
    }
}
