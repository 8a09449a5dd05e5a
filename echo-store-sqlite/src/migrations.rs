//! Embedded, versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Migration `n` (1-based) is `MIGRATIONS[n - 1]`; a database at `user_version = k` has had the
//! first `k` applied. Files are append-only once released: fix a mistake with a new file.

use std::path::Path;

use echo_core::store::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{SqlResultExt, SqliteStoreError};

/// Declares the migration files once: their SQL ([`MIGRATIONS`]) and their names.
macro_rules! migrations {
    ($($file:literal),* $(,)?) => {
        /// The migrations' SQL, in order. Public (hidden) so tests can build a file as an
        /// older build left it; not a stable API.
        #[doc(hidden)]
        pub const MIGRATIONS: &[&str] = &[$(include_str!(concat!("../migrations/", $file))),*];

        /// The migrations' file names, in the order of [`MIGRATIONS`].
        pub const MIGRATION_NAMES: &[&str] = &[$($file),*];
    };
}

migrations![
    "0001_init.sql",
    "0002_sessions.sql",
    "0003_retention.sql",
    "0004_email_verification.sql",
    "0005_iteration_sources.sql",
    "0006_prompt_sets.sql",
    "0007_alerts.sql",
    "0008_webhooks.sql",
    "0009_experiment_precision.sql",
];

/// The schema version this build creates and expects (the number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`SCHEMA_VERSION`] in one `BEGIN IMMEDIATE` transaction, so
/// concurrent openers serialise and each migration is applied exactly once. Returns how many
/// migrations were applied.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .db()?;
    check_not_newer(found)?;
    let mut applied = 0;
    for (version, sql) in (1u32..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql).db()?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))
            .db()?;
        tracing::info!(version, "applied SQLite schema migration");
        applied += 1;
    }
    tx.commit().db()?;
    Ok(applied)
}

/// Refuses a file migrated by a newer build.
fn check_not_newer(found: i64) -> Result<(), StoreError> {
    let supported = i64::from(SCHEMA_VERSION);
    if found > supported {
        return Err(StoreError::backend(SqliteStoreError::SchemaTooNew {
            found,
            supported,
        }));
    }
    Ok(())
}

/// The names of the migrations the database at `path` lacks, without changing it (a missing
/// file lacks them all, and is not created). Blocking.
pub(crate) fn pending(path: &Path) -> Result<Vec<&'static str>, StoreError> {
    if !path.exists() {
        return Ok(MIGRATION_NAMES.to_vec());
    }
    // Read-write without CREATE: a WAL database opened read-only fails when its shared-memory
    // file is gone, and reading `user_version` writes nothing.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .db()?;
    check_not_newer(found)?;
    Ok(MIGRATION_NAMES
        .iter()
        .skip(usize::try_from(found).unwrap_or(0))
        .copied()
        .collect())
}
