//! annal-server: the sync server of annal. Devices push their hash-chained
//! events; the server enters every one in a tenant ledger and a user ledger
//! of its own, hash-chained too, and never drops an event. Runs on embedded
//! SQLite by default and on PostgreSQL at scale. See docs/FORMAT.md §11.

pub mod ingest;
pub mod protocol;
