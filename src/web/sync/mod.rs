//! Sync in the browser: the core engine (`crate::sync`) driven over
//! IndexedDB, fetch and the app's `getToken`.

pub(crate) mod fetch;
pub(crate) mod idb_store;
pub(crate) mod remote_rows;
pub(crate) mod run;
pub(crate) mod tokens;
