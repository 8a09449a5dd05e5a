//! Integration tests of the SQLite store: the shared conformance suite, query plans, migrations
//! and the behaviour specific to this backend.

// Test code reports failures by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod behaviour;
mod conformance;
mod explain;
mod migrations;

use echo_store_sqlite::{SqliteConfig, SqliteStore};

/// A new, empty store in its own temporary directory.
pub async fn temp_store() -> SqliteStore {
    SqliteStore::open_temporary(SqliteConfig::default())
        .await
        .expect("open a temporary store")
}

/// A plain connection to the store's file, for raw SQL the traits cannot express.
pub fn raw(store: &SqliteStore) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(store.path()).expect("open the database file");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("set busy timeout");
    conn
}
