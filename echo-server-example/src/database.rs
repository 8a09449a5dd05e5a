//! The store a database URL names, opened and migrated: the one place that maps a URL to a
//! backend, for the server and for every command.
//!
//! | URL | store | cargo feature |
//! | --- | --- | --- |
//! | a file path, or `sqlite://PATH` | SQLite, migrated on open | `sqlite` |
//! | `postgres://…` or `postgresql://…` | PostgreSQL, migrated here | `postgres` |
//!
//! A URL whose backend this binary was built without is refused with
//! [`CliError::NotBuilt`], which names the feature to rebuild with. A build with neither store
//! still compiles (so `cargo check --no-default-features` and `cargo hack --each-feature`
//! work) and refuses every URL that way.

use std::sync::Arc;

use echo_core::runner::DynJobSignal;
use echo_core::store::DynStore;

use crate::commands::CliError;
use crate::state::StoreExtras;

/// Connection-pool sizing. Only PostgreSQL has a pool; SQLite ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizing {
    /// Connections kept open.
    pub pool_size: u32,
    /// Extra connections opened under load.
    pub max_overflow: u32,
}

impl PoolSizing {
    /// Enough for a one-shot command (`echoai run`, `migrate`, `export`…); the server sizes its
    /// pool from its configuration.
    pub const COMMAND: Self = Self {
        pool_size: 2,
        max_overflow: 8,
    };
}

/// An opened, migrated store with what the server needs of its backend.
#[derive(Debug)]
pub struct OpenedStore {
    /// The store.
    pub store: Arc<DynStore>,
    /// Pool statistics and schema check, when the backend has them.
    pub extras: StoreExtras,
    /// Wakes workers when a job is enqueued (PostgreSQL's LISTEN/NOTIFY); `None` means poll.
    /// Connects lazily, so opening it costs nothing to a process without workers.
    pub job_signal: Option<Arc<DynJobSignal>>,
    /// Migrations this call applied: `Some(n)` for PostgreSQL (migrated here); `None` for
    /// SQLite, which migrates on every open.
    pub applied_migrations: Option<usize>,
}

/// Whether `url` names a PostgreSQL database (whether or not this build can open it).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store `url` names and brings its schema up to date. PostgreSQL migrations run
/// under an advisory lock, so this is safe while other servers run.
///
/// # Errors
/// [`CliError::NotBuilt`] when the backend is not compiled in, [`CliError::Usage`] for an
/// empty path, [`CliError::Store`] when the database cannot be opened or migrated.
pub async fn open(url: &str, sizing: PoolSizing) -> Result<OpenedStore, CliError> {
    if is_postgres(url) {
        return open_postgres(url, sizing).await;
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.trim().is_empty() {
        return Err(CliError::Usage("--database must not be empty".into()));
    }
    open_sqlite(path).await
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, sizing: PoolSizing) -> Result<OpenedStore, CliError> {
    use echo_store_postgres::{PgConfig, PgJobSignal, PgStore};
    let pg = PgStore::connect(
        url,
        PgConfig {
            pool_size: sizing.pool_size,
            max_overflow: sizing.max_overflow,
            ..PgConfig::default()
        },
    )
    .await?;
    let applied = pg.migrate().await?;
    let stats = pg.clone();
    let check = pg.clone();
    let extras = StoreExtras {
        pool_stats: Some(Arc::new(move || stats.pool_stats())),
        schema_check: Some(Arc::new(move || {
            let pg = check.clone();
            Box::pin(async move {
                let pending = pg.pending_migrations().await.map_err(|e| e.to_string())?;
                pending_is_unready(&pending)
            })
        })),
    };
    Ok(OpenedStore {
        store: Arc::new(pg.clone()),
        extras,
        job_signal: Some(Arc::new(PgJobSignal::new(pg))),
        applied_migrations: Some(applied),
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, _sizing: PoolSizing) -> Result<OpenedStore, CliError> {
    Err(CliError::NotBuilt {
        what: "PostgreSQL support",
        feature: "postgres",
    })
}

#[cfg(feature = "sqlite")]
// Without `postgres` the struct update fills no field, but with it it fills the pool stats.
#[cfg_attr(not(feature = "postgres"), allow(clippy::needless_update))]
async fn open_sqlite(path: &str) -> Result<OpenedStore, CliError> {
    use echo_store_sqlite::{SqliteConfig, SqliteStore};
    let store = SqliteStore::open(path, SqliteConfig::default()).await?;
    let check = store.clone();
    Ok(OpenedStore {
        store: Arc::new(store),
        // Migrated on open, so current unless the file is swapped under the server; the
        // check is one PRAGMA. There is no pool to report.
        extras: StoreExtras {
            schema_check: Some(Arc::new(move || {
                let store = check.clone();
                Box::pin(async move {
                    let version = store.schema_version().await.map_err(|e| e.to_string())?;
                    let names = echo_store_sqlite::MIGRATION_NAMES;
                    let pending: Vec<String> = names
                        .iter()
                        .skip(usize::try_from(version).unwrap_or(0))
                        .map(|n| n.trim_end_matches(".sql").to_owned())
                        .collect();
                    pending_is_unready(&pending)
                })
            })),
            ..StoreExtras::default()
        },
        job_signal: None,
        applied_migrations: None,
    })
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_path: &str) -> Result<OpenedStore, CliError> {
    Err(CliError::NotBuilt {
        what: "SQLite support",
        feature: "sqlite",
    })
}

/// Readiness: a database missing migrations of this build is not ready (one that is ahead is:
/// migrations are expand-only, so an older binary keeps working during a rollout).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn pending_is_unready(pending: &[String]) -> Result<(), String> {
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} migration(s) pending: {}",
            pending.len(),
            pending.join(", ")
        ))
    }
}

/// The migrations the database `url` names has not applied, without changing anything (a
/// missing SQLite file is not created). For `echoai migrate --check`.
///
/// # Errors
/// As [`open`]: [`CliError::NotBuilt`], [`CliError::Usage`], [`CliError::Store`].
pub async fn pending_migrations(url: &str) -> Result<Vec<String>, CliError> {
    if is_postgres(url) {
        return pending_postgres(url).await;
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.trim().is_empty() {
        return Err(CliError::Usage("--database must not be empty".into()));
    }
    pending_sqlite(path).await
}

#[cfg(feature = "postgres")]
async fn pending_postgres(url: &str) -> Result<Vec<String>, CliError> {
    use echo_store_postgres::{PgConfig, PgStore};
    let pg = PgStore::connect(
        url,
        PgConfig {
            pool_size: 1,
            max_overflow: 0,
            ..PgConfig::default()
        },
    )
    .await?;
    Ok(pg.pending_migrations().await?)
}

#[cfg(not(feature = "postgres"))]
async fn pending_postgres(_url: &str) -> Result<Vec<String>, CliError> {
    Err(CliError::NotBuilt {
        what: "PostgreSQL support",
        feature: "postgres",
    })
}

#[cfg(feature = "sqlite")]
async fn pending_sqlite(path: &str) -> Result<Vec<String>, CliError> {
    let names = echo_store_sqlite::pending_migrations(path).await?;
    Ok(names
        .into_iter()
        .map(|n| n.trim_end_matches(".sql").to_owned())
        .collect())
}

#[cfg(not(feature = "sqlite"))]
async fn pending_sqlite(_path: &str) -> Result<Vec<String>, CliError> {
    Err(CliError::NotBuilt {
        what: "SQLite support",
        feature: "sqlite",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_recognised_by_scheme() {
        assert!(is_postgres("postgres://u@h/db"));
        assert!(is_postgres("postgresql://u@h/db"));
        assert!(!is_postgres("./postgres.db"));
        assert!(!is_postgres("sqlite://postgres://x"));
    }

    #[tokio::test]
    async fn an_empty_path_is_refused() {
        for url in ["", "  ", "sqlite://"] {
            let err = open(url, PoolSizing::COMMAND).await.unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{url:?}: {err:?}");
        }
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_postgres_url_names_the_missing_feature() {
        let err = open("postgres://u@h/db", PoolSizing::COMMAND)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this echoai was built without PostgreSQL support; rebuild with --features postgres"
        );
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_sqlite_path_opens_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("echo.db").display());
        let opened = open(&url, PoolSizing::COMMAND).await.unwrap();
        assert_eq!(opened.applied_migrations, None);
        assert!(opened.job_signal.is_none());
        let check = opened.extras.schema_check.unwrap();
        assert_eq!(check().await, Ok(()));
    }
}
