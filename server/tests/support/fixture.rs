//! A database under test on each backend, and [`on_every_backend!`], which
//! runs a test once on SQLite and once on PostgreSQL.
//!
//! Include it next to `client.rs` and `postgres.rs`, under these names:
//!
//! ```ignore
//! #[path = "support/client.rs"]
//! mod client;
//! #[path = "support/postgres.rs"]
//! mod pg;
//! #[macro_use]
//! #[path = "support/fixture.rs"]
//! mod fixture;
//! ```
#![allow(dead_code, unreachable_pub)]

use super::client::TempSqlite;
use super::pg;
use annal_server::db::Db;

/// A database under test, and how to reach it again.
pub struct Fixture {
    pub db: Db,
    pub url: String,
    pub admin_url: Option<String>,
    _file: Option<TempSqlite>,
}

impl Fixture {
    /// The same database, opened again (as after a restart).
    pub async fn reopen(&self) -> Db {
        Db::open(&self.url, self.admin_url.as_deref())
            .await
            .unwrap()
    }
}

/// A fresh SQLite file, removed when the fixture is dropped.
pub async fn sqlite() -> Fixture {
    let file = TempSqlite::new();
    let url = file.url();
    Fixture {
        db: Db::open(&url, None).await.unwrap(),
        url,
        admin_url: None,
        _file: Some(file),
    }
}

/// A fresh database in the test binary's PostgreSQL cluster.
pub async fn postgres() -> Fixture {
    let (url, admin) = pg::database().await;
    Fixture {
        db: Db::open(&url, Some(&admin)).await.unwrap(),
        url,
        admin_url: Some(admin),
        _file: None,
    }
}

/// For each `name`, a module `name` with two tests, `sqlite` and
/// `postgres`, that call `async fn name(f: Fixture)` on that backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::fixture::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::fixture::postgres().await).await
            }
        }
    )*};
}
