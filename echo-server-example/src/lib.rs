//! Echo's reference server and the `echoai` command line.
//!
//! `main.rs` only parses the command line; everything else is here so tests drive the same code.
//! - [`commands`]: `echoai run` (the main job) and `echoai analyze`.
//! - [`report`]: the per-provider report, as a table or JSON.
//! - [`providers`]: building provider clients from the command line and the environment.

pub mod cli;
pub mod commands;
pub mod progress;
pub mod providers;
pub mod report;

use std::sync::Arc;

use echo_core::store::{DynStore, StoreError};
use echo_store_postgres::{PgConfig, PgStore};
use echo_store_sqlite::{SqliteConfig, SqliteStore};

/// Opens the store a `--database` value names: a file path or `sqlite://PATH` (SQLite,
/// migrated on open), or a `postgres://` / `postgresql://` URL (PostgreSQL, migrated here:
/// idempotent and safe while other servers run, under an advisory lock). Returns the store and,
/// for PostgreSQL, how many migrations this call applied.
pub async fn open_store(
    database: &str,
) -> Result<(Arc<DynStore>, Option<usize>), commands::CliError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        // A command-line process needs few connections; the server sizes its own pool.
        let config = PgConfig {
            pool_size: 2,
            max_overflow: 8,
            ..PgConfig::default()
        };
        let store = PgStore::connect(database, config).await?;
        let applied = store.migrate().await?;
        return Ok((Arc::new(store), Some(applied)));
    }
    let path = database.strip_prefix("sqlite://").unwrap_or(database);
    if path.trim().is_empty() {
        return Err(commands::CliError::Usage(
            "--database must not be empty".into(),
        ));
    }
    let store: Result<SqliteStore, StoreError> =
        SqliteStore::open(path, SqliteConfig::default()).await;
    Ok((Arc::new(store?), None))
}

/// Logs go to standard error (standard output carries the report), filtered by `filter`.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
