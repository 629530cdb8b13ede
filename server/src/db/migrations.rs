//! Versioned schema files, applied in order on start. A database migrated
//! by a newer annal-server is refused rather than misread.

/// `(version, SQL)` of each SQLite migration.
pub const SQLITE: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_ledger.sql"))];

/// `(version, SQL)` of each PostgreSQL migration.
pub const POSTGRES: &[(i64, &str)] =
    &[(1, include_str!("../../migrations/postgres/0001_ledger.sql"))];

/// The newest version in `list`.
pub fn latest(list: &[(i64, &str)]) -> i64 {
    list.iter().map(|(v, _)| *v).max().unwrap_or(0)
}
