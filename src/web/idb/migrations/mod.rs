//! One file per layout step. `upgrade` runs every step between the
//! database's version and [`super::layout::LAYOUT_VERSION`], inside the
//! browser's `versionchange` transaction.

mod v0_to_v1;
mod v1_to_v2;
mod v2_to_v3;

use crate::error::Result;
use web_sys::{IdbDatabase, IdbTransaction};

/// Brings a database from `old_version` to the current layout.
pub(crate) fn upgrade(db: &IdbDatabase, tx: &IdbTransaction, old_version: u32) -> Result<()> {
    if old_version < 1 {
        v0_to_v1::apply(db)?;
    }
    if old_version < 2 {
        v1_to_v2::apply(db)?;
    }
    if old_version < 3 {
        v2_to_v3::apply(tx)?;
    }
    Ok(())
}
