//! Layout 3: aggregate versions move from the `aggregates` object store into
//! page metadata. New pages carry `aggregate_heads`, indexed by
//! `by_aggregate_head`, so an append writes its pages and the head and no
//! per-aggregate record. Pages already written are never rewritten: they
//! have no `aggregate_heads`, and the records they left in `aggregates` stay
//! as they are, read for aggregates not appended to since.

use crate::error::Result;
use crate::web::idb::errors::from_dom;
use crate::web::idb::layout::*;
use web_sys::{IdbIndexParameters, IdbTransaction};

pub(super) fn apply(tx: &IdbTransaction) -> Result<()> {
    let pages = tx.object_store(PAGES).map_err(from_dom)?;
    let multi = IdbIndexParameters::new();
    multi.set_multi_entry(true);
    pages
        .create_index_with_str_and_optional_parameters(BY_AGGREGATE_HEAD, "aggregate_heads", &multi)
        .map_err(from_dom)?;
    Ok(())
}
