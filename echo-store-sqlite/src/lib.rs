//! # Echo's embedded SQLite store
//!
//! [`SqliteStore`] implements every storage trait of `echo-core` ([`echo_core::store::Store`])
//! on one SQLite file, with the bundled SQLite (no system library needed). It is Echo's default
//! backend: nothing to install, and fast enough for a single-node deployment.
//!
//! ## Quick start
//! ```
//! use std::sync::Arc;
//! use echo_core::store::DynStore;
//! use echo_store_sqlite::{SqliteConfig, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("echo.db");
//! let store: Arc<DynStore> = Arc::new(SqliteStore::open(&path, SqliteConfig::default()).await?);
//! # Ok(())
//! # }
//! ```
//! [`SqliteStore::open_temporary`] opens a store in a fresh temporary directory that is deleted
//! with the store, for tests.
//!
//! ## Configuration and connection settings
//! [`SqliteConfig`] sets the pool size (default 8), the busy timeout (default 5 s), the wait for
//! a pooled connection, the page cache and the prepared-statement cache. Every pooled connection
//! is opened with:
//! - `journal_mode = WAL`: readers see a snapshot and never block the writer or each other;
//! - `synchronous = NORMAL`: with WAL, a commit is durable against application crashes, and a
//!   power loss can only roll back the last transactions, never corrupt the file;
//! - `foreign_keys = ON`: deletes cascade from users to their keys, sessions, experiments, runs
//!   and iterations, and a missing parent is reported as `StoreError::NotFound`;
//! - `busy_timeout`: how long a writer waits for the write lock before the call fails with
//!   `StoreError::Unavailable`;
//! - `cache_size`: the page cache, large enough for a dashboard's index ranges to stay in memory.
//!
//! With `checkpoint_interval` set (the default, 250 ms), a background thread of the store, on
//! a connection of its own, copies committed pages from the WAL back into the database file
//! (`PRAGMA wal_checkpoint(PASSIVE)`, which neither waits for nor blocks readers and writers),
//! more often while writes are heavy, so that each pass copies about 1,000 pages,
//! and the pooled connections' automatic checkpoint is raised to 10,000 pages as a fallback.
//! Otherwise the commit that crosses SQLite's 1,000-page mark does that copy, with its
//! `fsync`s, inside a caller's store call. The thread stops when the last clone of the store
//! is dropped (the drop waits for a pass in progress).
//!
//! ## How calls run
//! Each store call is one transaction on a pooled connection, run with
//! `tokio::task::spawn_blocking` so SQLite never blocks the async runtime. Reads of several
//! statements use a deferred transaction (a consistent snapshot); reads of a single statement
//! run it in autocommit mode, where SQLite gives the one statement its own read transaction,
//! saving the `BEGIN`/`COMMIT` pair. The per-request authentication lookups (API key and
//! session by id) run inline on the async worker when a connection is idle, without the
//! blocking-pool hop that costs more than the probe itself; they cannot wait there (an idle
//! connection or none, WAL readers never wait for the writer, a zero busy timeout that falls
//! back to the blocking pool). The audit append, which every audited request waits for, runs
//! on the calling thread through `tokio::task::block_in_place` on a multi-threaded runtime
//! (the runtime moves the worker's other tasks to another thread first), which saves the two
//! thread wake-ups of the blocking-pool round trip, about a third of the append.
//! Writes use `BEGIN IMMEDIATE`, taking the write lock before the first read, which rules out the read-then-write upgrade that makes SQLite
//! fail with `SQLITE_BUSY` instead of waiting. The retention pass (`anonymize_iterations`) finds
//! its batch in a read snapshot first and then takes the write lock only to update those rows
//! by rowid, each re-checked: the call that ends a pass reads past every row other tiers keep,
//! and writers must not wait for that read.
//!
//! ## Schema
//! Migrations are embedded (`migrations/*.sql`), tracked in `PRAGMA user_version` and applied
//! on open in one transaction; see [`SCHEMA_VERSION`]. A file migrated by a newer build is
//! refused. Ids are 16-byte UUID blobs, timestamps integer unix microseconds, enums text
//! (validated when read: an unknown value is `StoreError::Invalid`), structured values JSON
//! text. Batch runs carry a copy of their experiment's owner so a user's dashboard is one index
//! range per figure, without a join. The audit chain's head (last `seq` and `hash`) is a
//! one-row table of its own, so appends continue the chain after archived events, the head
//! included, are deleted. Unlike the PostgreSQL store, nothing enforces that audit events are
//! append-only: whoever can write the file can rewrite it, which the hash chain detects.
//!
//! ## Bulk loading
//! [`SqliteStore::import_experiments`] stores many experiments in one transaction without the
//! quota debit and job of `create_experiment`: for imports, restores and benchmark seeding
//! (a million experiments take seconds).
#![deny(missing_docs)]

mod alerts;
mod api_keys;
mod audit;
mod config;
mod db;
mod error;
mod experiments;
mod jobs;
mod migrations;
mod prompt_sets;
#[doc(hidden)]
pub mod queries;
mod rows;
mod runs;
mod sessions;
mod users;
mod wal_checkpoint;
mod webhooks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use echo_core::store::StoreError;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub use config::SqliteConfig;
pub use migrations::SCHEMA_VERSION;
#[doc(hidden)]
pub use migrations::{MIGRATION_NAMES, MIGRATIONS};

use crate::db::Db;
use crate::error::{SqlResultExt, SqliteStoreError};

/// Echo's storage on one SQLite file. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
    _wal_checkpointer: Option<Arc<wal_checkpoint::WalCheckpointer>>,
    path: Arc<PathBuf>,
    // Declared last so the pool's connections close before the directory is removed.
    _temp_dir: Option<Arc<tempfile::TempDir>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, applies pending migrations and
    /// fills the connection pool. The blocking work runs on tokio's blocking pool, so this needs
    /// a tokio runtime.
    ///
    /// Errors: [`StoreError::Invalid`] for a bad `config`; [`StoreError::Backend`] when the file
    /// cannot be opened, is not a database, cannot use WAL (e.g. `:memory:`) or was migrated by
    /// a newer build; [`StoreError::Unavailable`] when another process holds the lock longer
    /// than the busy timeout.
    pub async fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        db::blocking(move || Self::open_blocking(path, config, None)).await
    }

    /// Opens a new, empty store in a fresh temporary directory, removed when the last clone of
    /// the store is dropped. Meant for tests and throw-away runs.
    pub async fn open_temporary(config: SqliteConfig) -> Result<Self, StoreError> {
        db::blocking(move || {
            let dir = tempfile::Builder::new()
                .prefix("echo-sqlite-")
                .tempdir()
                .map_err(StoreError::backend)?;
            let path = dir.path().join("echo.db");
            Self::open_blocking(path, config, Some(dir))
        })
        .await
    }

    /// The schema version of the open database (`PRAGMA user_version`): readiness compares
    /// it with [`SCHEMA_VERSION`].
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.db
            .read_single(|conn| {
                conn.query_row("PRAGMA user_version", [], |row| row.get(0))
                    .db()
            })
            .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_blocking(
        path: PathBuf,
        config: SqliteConfig,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Self, StoreError> {
        config.validate()?;
        // Migrate on a connection of our own first: r2d2 would retry a failing open until the
        // acquire timeout and then report it without its cause. Openers racing on a new file
        // can get SQLITE_BUSY without the busy handler being consulted (WAL set-up and
        // recovery take their locks that way), so a busy open is retried within the busy
        // timeout, as the handler would have waited.
        let deadline = std::time::Instant::now() + config.busy_timeout;
        loop {
            match migrate_on_own_connection(&path, &config) {
                Err(StoreError::Unavailable { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    other?;
                    break;
                }
            }
        }

        let init = config.clone();
        let manager =
            SqliteConnectionManager::file(&path).with_init(move |conn| configure(conn, &init));
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(config.acquire_timeout)
            .build(manager)
            .map_err(StoreError::unavailable)?;
        let wal_checkpointer = match config.checkpoint_interval {
            Some(every) => {
                let conn = Connection::open(&path).db()?;
                configure(&conn, &config).db()?;
                Some(Arc::new(
                    wal_checkpoint::WalCheckpointer::spawn(conn, every)
                        .map_err(StoreError::backend)?,
                ))
            }
            None => None,
        };
        Ok(Self {
            db: Db::new(pool, config.busy_timeout),
            _wal_checkpointer: wal_checkpointer,
            path: Arc::new(path),
            _temp_dir: temp_dir.map(Arc::new),
        })
    }
}

/// The names of the migrations ([`MIGRATION_NAMES`]) the database file at `path` has not
/// applied, without changing anything: a missing file is not created and lacks them all.
/// `echoai migrate --check` uses it before a deployment.
///
/// Errors: [`StoreError::Backend`] when the file is not a database or was migrated by a newer
/// build.
pub async fn pending_migrations(path: impl AsRef<Path>) -> Result<Vec<&'static str>, StoreError> {
    let path = path.as_ref().to_path_buf();
    db::blocking(move || migrations::pending(&path)).await
}

/// Opens a connection, checks WAL mode and applies the pending migrations.
fn migrate_on_own_connection(path: &Path, config: &SqliteConfig) -> Result<u32, StoreError> {
    let mut conn = Connection::open(path).db()?;
    configure(&conn, config).db()?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(SqliteStoreError::NoWal(mode)));
    }
    migrations::migrate(&mut conn)
}

/// Per-connection settings (see the crate docs for why each).
fn configure(conn: &Connection, config: &SqliteConfig) -> rusqlite::Result<()> {
    // First, so that the statements below wait for a concurrent opener instead of failing.
    conn.busy_timeout(config.busy_timeout)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // PRAGMA takes no bound parameters; the value is an integer from typed config.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{};",
        config.cache_size_kib
    ))?;
    if config.checkpoint_interval.is_some() {
        // The background checkpointer does this work; writers only take over if the log
        // grows this long between its passes.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {};",
            wal_checkpoint::WRITER_FALLBACK_PAGES
        ))?;
    }
    conn.set_prepared_statement_cache_capacity(config.statement_cache_capacity);
    Ok(())
}
