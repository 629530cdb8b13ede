//! Layout 2: sync state, receipts (indexed by outcome, so quarantined and
//! conflicting events list quickly) and other devices' pulled events.

use crate::error::Result;
use crate::web::idb::errors::from_dom;
use crate::web::idb::layout::*;
use web_sys::IdbDatabase;

pub(super) fn apply(db: &IdbDatabase) -> Result<()> {
    db.create_object_store(SYNC).map_err(from_dom)?;
    db.create_object_store(REMOTE).map_err(from_dom)?;
    let receipts = db.create_object_store(RECEIPTS).map_err(from_dom)?;
    receipts
        .create_index_with_str(BY_OUTCOME, "outcome")
        .map_err(from_dom)?;
    Ok(())
}
