//! IndexedDB plumbing: requests and transactions as futures, errors as
//! annal errors, and the database layout with its migrations.

pub(crate) mod errors;
pub(crate) mod layout;
pub(crate) mod migrations;
pub(crate) mod open;
pub(crate) mod txn;
