//! Settings of a [`SqliteStore`](crate::SqliteStore).

use std::time::Duration;

use echo_core::model::ValidationError;

/// How a [`SqliteStore`](crate::SqliteStore) uses its database file.
///
/// Start from [`SqliteConfig::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use echo_store_sqlite::SqliteConfig;
///
/// let config = SqliteConfig {
///     pool_size: 4,
///     busy_timeout: Duration::from_secs(2),
///     ..SqliteConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Most connections open at once. In WAL mode readers run in parallel and never wait for
    /// the writer; writers take turns on the database's single write lock, so more
    /// connections mostly help read-heavy loads. Default 8; at least 1.
    pub pool_size: u32,
    /// How long a statement waits for another connection's lock before the call fails with
    /// `StoreError::Unavailable`. Default 5 s.
    pub busy_timeout: Duration,
    /// How long a call waits for a free pooled connection before failing with
    /// `StoreError::Unavailable`. Default 10 s.
    pub acquire_timeout: Duration,
    /// Page cache per connection, in KiB: an upper bound, filled as pages are read. A user's
    /// dashboard reads a few MiB of index pages on a large database; below that, each call
    /// re-reads them from the OS. Default 16,384 (16 MiB).
    pub cache_size_kib: u32,
    /// Prepared statements kept per connection. The store runs about 60 distinct statements;
    /// below that, hot statements get re-prepared. Default 128.
    pub statement_cache_capacity: usize,
    /// How often a background thread copies committed pages from the write-ahead log back
    /// into the database file (a passive checkpoint, which waits for nobody and blocks
    /// nobody); sooner, down to every 5 ms, while writes come faster than 1,000 pages an
    /// interval. By default SQLite has the committing writer do this every 1,000 log pages,
    /// with two `fsync`s, inside that writer's call; doing it here keeps that work off the
    /// commit path, and writers fall back to checkpointing themselves only if the log grows
    /// past 10,000 pages (about 40 MiB) between two passes. `None`: SQLite's default.
    /// Default 250 ms; not zero.
    pub checkpoint_interval: Option<Duration>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            pool_size: 8,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            cache_size_kib: 16 * 1024,
            statement_cache_capacity: 128,
            checkpoint_interval: Some(Duration::from_millis(250)),
        }
    }
}

impl SqliteConfig {
    /// Checks the settings; the error names the offending one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.pool_size == 0 {
            return Err(ValidationError::new(
                "sqlite pool_size",
                "must be at least 1",
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(ValidationError::new(
                "sqlite acquire_timeout",
                "must be greater than zero",
            ));
        }
        if self.checkpoint_interval.is_some_and(|d| d.is_zero()) {
            return Err(ValidationError::new(
                "sqlite checkpoint_interval",
                "must be greater than zero (or None for SQLite's own checkpoints)",
            ));
        }
        Ok(())
    }
}
