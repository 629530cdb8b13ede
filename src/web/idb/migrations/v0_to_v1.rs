//! Layout 1: meta, pages (with their four multi-entry indexes), aggregates
//! and idempotency keys.

use crate::error::Result;
use crate::web::idb::errors::from_dom;
use crate::web::idb::layout::*;
use wasm_bindgen::JsValue;
use web_sys::{IdbDatabase, IdbIndexParameters, IdbObjectStoreParameters};

pub(super) fn apply(db: &IdbDatabase) -> Result<()> {
    db.create_object_store(META).map_err(from_dom)?;
    db.create_object_store(AGGREGATES).map_err(from_dom)?;
    db.create_object_store(IDEMPOTENCY).map_err(from_dom)?;

    let params = IdbObjectStoreParameters::new();
    params.set_key_path(&JsValue::from_str("first_device_seq"));
    let pages = db
        .create_object_store_with_optional_parameters(PAGES, &params)
        .map_err(from_dom)?;
    let multi = IdbIndexParameters::new();
    multi.set_multi_entry(true);
    for (index, key_path) in [
        (BY_AGGREGATE_ID, "aggregate_ids"),
        (BY_AGGREGATE_TYPE, "aggregate_types"),
        (BY_EVENT_TYPE, "event_types"),
        (BY_TIME_BUCKET, "time_buckets"),
    ] {
        pages
            .create_index_with_str_and_optional_parameters(index, key_path, &multi)
            .map_err(from_dom)?;
    }
    Ok(())
}
