//! Settings of a [`PgStore`](crate::PgStore): the connection pool and the queue's wake-ups.

use std::time::Duration;

use echo_core::model::ValidationError;

/// How a [`PgStore`](crate::PgStore) uses its database.
///
/// Start from [`PgConfig::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use echo_store_postgres::PgConfig;
///
/// let config = PgConfig {
///     pool_size: 10,
///     max_overflow: 5,
///     acquire_timeout: Duration::from_secs(5),
///     ..PgConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// assert_eq!(config.max_connections(), 15);
/// ```
///
/// # Pool sizing
/// sqlx's pool has a maximum and a minimum, not SQLAlchemy's size plus overflow; this config
/// keeps the familiar pair and maps it:
/// - `max_connections = pool_size + max_overflow`: the most connections open at once;
/// - `min_connections = pool_size`: connections kept open even when idle, so a burst does not
///   pay for new connections (TLS, authentication, backend start-up);
/// - overflow connections, above `pool_size`, are closed once idle for `idle_timeout`.
///
/// Every server and worker process has its own pool, so the sum of their `max_connections`
/// must stay below the server's `max_connections` (100 by default), leaving room for
/// administration and migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Connections kept open (sqlx `min_connections`). Default 20; at least 1.
    pub pool_size: u32,
    /// Extra connections opened under load, beyond `pool_size`. Default 10.
    pub max_overflow: u32,
    /// How long a call waits for a pooled connection before failing with
    /// `StoreError::Unavailable`. Default 30 s.
    pub acquire_timeout: Duration,
    /// Connections are replaced after this age, so server-side memory growth and failovers
    /// behind a proxy are picked up. `None` keeps them forever. Default 1 h.
    pub max_lifetime: Option<Duration>,
    /// Overflow connections idle this long are closed. `None` keeps them. Default 10 min.
    pub idle_timeout: Option<Duration>,
    /// Pings an idle connection before handing it out ("pre-ping"), so a connection the server
    /// or a proxy dropped is replaced instead of failing the call. Costs one round trip per
    /// acquire. Default `true`.
    pub test_before_acquire: bool,
    /// `application_name` of the sessions, shown in `pg_stat_activity`. Default `"echo"`.
    pub application_name: String,
    /// Whether enqueueing a job wakes idle workers with `NOTIFY echo_jobs` (see the crate
    /// docs). Workers poll anyway; without it they find new jobs at their next poll. Default
    /// `true`.
    pub notify_on_enqueue: bool,
    /// At most one `NOTIFY` per this window and process: the first enqueue after a quiet
    /// period notifies at once, later ones within the window are coalesced into one
    /// notification at its end. Default 5 ms.
    pub notify_debounce: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            pool_size: 20,
            max_overflow: 10,
            acquire_timeout: Duration::from_secs(30),
            max_lifetime: Some(Duration::from_secs(3_600)),
            idle_timeout: Some(Duration::from_secs(600)),
            test_before_acquire: true,
            application_name: "echo".to_owned(),
            notify_on_enqueue: true,
            notify_debounce: Duration::from_millis(5),
        }
    }
}

impl PgConfig {
    /// The pool's maximum: `pool_size + max_overflow` (saturating).
    pub fn max_connections(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow)
    }

    /// Checks the settings; the error names the offending one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.pool_size == 0 {
            return Err(ValidationError::new(
                "postgres pool_size",
                "must be at least 1",
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(ValidationError::new(
                "postgres acquire_timeout",
                "must be greater than zero",
            ));
        }
        if self.max_lifetime.is_some_and(|d| d.is_zero()) {
            return Err(ValidationError::new(
                "postgres max_lifetime",
                "must be greater than zero (or unset)",
            ));
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ValidationError::new(
                "postgres idle_timeout",
                "must be greater than zero (or unset)",
            ));
        }
        if self.application_name.len() > 63 || self.application_name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "postgres application_name",
                "must be at most 63 printable characters",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_map_onto_sqlx() {
        let c = PgConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.max_connections(), 30);
        let bad = PgConfig {
            pool_size: 0,
            ..PgConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "postgres pool_size");
        let bad = PgConfig {
            idle_timeout: Some(Duration::ZERO),
            ..PgConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
