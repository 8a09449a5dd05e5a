//! # Echo's PostgreSQL store
//!
//! [`PgStore`] implements every storage trait of `echo-core` ([`echo_core::store::Store`]) on
//! one PostgreSQL database that several servers and workers share: the production,
//! multi-machine backend. It passes the same conformance suite as the embedded SQLite store.
//!
//! ## Quick start
//! ```no_run
//! use std::sync::Arc;
//! use echo_core::store::DynStore;
//! use echo_store_postgres::{PgConfig, PgStore};
//!
//! # async fn run() -> Result<(), echo_core::store::StoreError> {
//! let store = PgStore::connect("postgres://echo@db.internal/echo", PgConfig::default()).await?;
//! store.migrate().await?; // idempotent; safe while other servers run
//! let store: Arc<DynStore> = Arc::new(store);
//! # Ok(()) }
//! ```
//!
//! ## Configuration and the pool
//! [`PgConfig`] is typed; library code never reads the environment. The pool is sqlx's:
//! `pool_size` connections are kept open (sqlx `min_connections`), up to `max_overflow` more are
//! opened under load (sqlx `max_connections = pool_size + max_overflow`) and closed again after
//! `idle_timeout`. A call waits at most `acquire_timeout` (default 30 s) for a connection and
//! then fails with `StoreError::Unavailable`; connections are recycled after `max_lifetime`
//! (1 h) and pinged before use (`test_before_acquire`). [`PgStore::pool_stats`] reports the
//! pool's size, idle and in-use connections, and how often and how long callers waited for a
//! connection (a latency histogram), for a `/metrics` endpoint.
//!
//! ## Migrations
//! The schema lives in `migrations/`, embedded at build time and applied by
//! [`PgStore::migrate`] with sqlx's migrator (tracked in `_sqlx_migrations`). It is idempotent
//! and safe to run from every server at start-up while others serve: migrations are applied by
//! one process at a time under an advisory lock. Migrations are expand-only, so a database
//! migrated by a newer build is accepted (its unknown, newer versions are left alone: the old
//! binary keeps serving during a rolling deploy), while an edited released migration (checksum
//! mismatch) or an unknown version older than this build's newest is refused. The indexes that large tables need are built by `CREATE INDEX CONCURRENTLY`, one per
//! migration file marked `-- no-transaction` (the statement cannot run in a transaction), so
//! adding them never blocks writes; an invalid index left by a failed concurrent build is
//! dropped and rebuilt on the next run. A migration that adds a new table (such as
//! `0011_sessions.sql`) builds its indexes in the same transaction: the table is empty, so
//! there is nothing to block. One that alters a populated table (such as
//! `0015_audit_erasures_checkpoints.sql`, adding a nullable column, a catalog-only change) sets
//! a short `lock_timeout`, so it fails and is retried on the next run rather than queue behind
//! a long reader while holding up every writer.
//!
//! ## Consistency
//! Every method runs in one transaction at PostgreSQL's default isolation (READ COMMITTED),
//! made race-free where it matters by row locks and conditional writes rather than by retries:
//! - quota debits are one conditional `UPDATE … WHERE prompts_used + n <= limit`: concurrent
//!   debits queue on the user's row and re-check against the committed count, so they never
//!   overspend; the debit, the experiment and its job commit together or not at all;
//! - iteration writes are `INSERT … ON CONFLICT (batch_run_id, idx) DO NOTHING RETURNING`, and
//!   the run's counters grow by exactly the rows returned, in the same statement;
//! - audit appends lock the one-row chain head (`SELECT … FOR UPDATE`), so concurrent appends
//!   from any number of servers form one chain without gaps;
//! - a schedule is claimed by a compare-and-set on `next_run_at`: of racing schedulers exactly
//!   one wins;
//! - the retention pass (`anonymize_iterations`) is one statement that locks its batch
//!   `FOR UPDATE SKIP LOCKED`: passes on several servers take disjoint rows, and a row another
//!   pass committed meanwhile fails the re-checked condition, so none is counted twice.
//!
//! ## The audit log is append-only
//! A statement-level trigger (migration `0016_audit_events_append_only.sql`) refuses every
//! `UPDATE`, `DELETE` and `TRUNCATE` of `audit_events` unless the transaction ran
//! `SET LOCAL echo.audit_maintenance = 'on'`, which only the two sanctioned rewrites do:
//! `pseudonymize_actor` (GDPR erasure) and `delete_audit_through` (archiving). A stray
//! statement from a migration, a support session or a bug fails with SQLSTATE 42501 instead of
//! rewriting history. The setting is a guard rail, not a security boundary: any session of the
//! application's role may set it. A deployment that wants a boundary can give the application
//! a role without `UPDATE`, `DELETE` and `TRUNCATE` on `audit_events` and run erasure and
//! archiving as a separate maintenance role. That needs two roles and grants set up outside the
//! migrations, which the store cannot assume of every deployment (many run as the one role that
//! owns the schema), so the trigger is the portable default. The chain head lives in its own
//! one-row table, so appends continue the chain after the oldest events, the head included,
//! are archived and deleted.
//!
//! Errors keep their source: a unique violation is `Conflict` with a user-safe message, a
//! foreign-key violation `NotFound` of the missing parent, serialization failures, deadlocks,
//! lost connections and pool time-outs `Unavailable` (retryable), anything else `Backend`.
//!
//! ## The job queue
//! [`JobQueue::claim`](echo_core::store::JobQueue::claim) is one statement that takes due jobs
//! with `FOR UPDATE SKIP LOCKED`: concurrent workers on any machine skip each other's rows
//! instead of queueing behind them, and a claim reads about `limit` index entries however long
//! the backlog. Each claim increments the job's `lease_token`; heartbeat, complete, fail and
//! release only act while the token still matches, so a worker whose lease expired and was
//! re-claimed (a "zombie") can no longer settle the job. Effects that live in this database can
//! be committed exactly once by making them in the completing transaction:
//! [`PgStore::begin`] then [`PgStore::complete_in`].
//!
//! ### Waking workers
//! Enqueues wake idle workers without a polling delay through `LISTEN`/`NOTIFY` on the channel
//! `echo_jobs`: a worker awaits [`PgStore::job_notifications`] with a timeout as its polling
//! fallback, then claims. [`PgJobSignal`] wraps it as `echo-core`'s
//! [`JobSignal`](echo_core::runner::JobSignal), so a
//! [`WorkerPool`](echo_core::runner::WorkerPool) wakes on enqueues (and reconnects, polling
//! meanwhile, when the listening connection fails). A transaction that carries a `NOTIFY` takes a cluster-wide lock while
//! it commits, which serialises commits under heavy write load; so enqueueing transactions
//! never notify. After they commit they poke a per-process notifier that sends one `pg_notify`
//! in its own short transaction, at most once per `notify_debounce` (5 ms): the first enqueue
//! after a quiet period at once, the following ones coalesced. Notifications carry no payload
//! (a woken worker just claims), may be missed while a listener reconnects (the wait then
//! returns early so the worker claims), and can be turned off (`notify_on_enqueue`).
//! Finished jobs are deleted by `prune_jobs`; run it periodically, since dead rows slow the
//! claim's index scans.
//!
//! ## Bulk loading
//! [`PgStore::import_experiments`], [`PgStore::import_batch_runs`],
//! [`PgStore::import_api_keys`] and [`PgStore::enqueue_many`] write many rows per statement
//! (arrays bound once and expanded by `unnest`), for imports, restores and benchmark seeding.
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
mod signal;
mod users;
mod webhooks;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use echo_core::store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

pub use config::PgConfig;
pub use db::{ACQUIRE_BUCKETS_SECONDS, PoolStats};
pub use migrations::schema_version;
pub use signal::PgJobSignal;

use crate::db::{Db, Notifier};
use crate::error::SqlResultExt;

/// The channel enqueues are announced on.
pub const JOBS_CHANNEL: &str = "echo_jobs";

/// Echo's storage on a shared PostgreSQL database. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: PgConfig,
    notifier: Option<Arc<Notifier>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(n) = &self.notifier {
            n.close();
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = self.inner.db.pool.connect_options();
        f.debug_struct("PgStore")
            .field("host", &options.get_host())
            .field("database", &options.get_database())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL) with a pool built from
    /// `config`. Does not migrate: call [`PgStore::migrate`]. Needs a tokio runtime.
    ///
    /// Errors: [`StoreError::Invalid`] for a bad `config` or URL; [`StoreError::Unavailable`]
    /// when the server cannot be reached; [`StoreError::Backend`] when it refuses the
    /// connection (authentication, unknown database).
    pub async fn connect(url: &str, config: PgConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(echo_core::model::ValidationError::new(
                "postgres url",
                format!("is not a valid connection URL: {e}"),
            ))
        })?;
        let options = options.application_name(&config.application_name);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections())
            .min_connections(config.pool_size)
            .acquire_timeout(config.acquire_timeout)
            .max_lifetime(config.max_lifetime)
            .idle_timeout(config.idle_timeout)
            .test_before_acquire(config.test_before_acquire)
            .connect_with(options)
            .await
            .db()?;
        let db = Db::new(pool);
        let notifier = config
            .notify_on_enqueue
            .then(|| Notifier::start(db.clone(), config.notify_debounce));
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config,
                notifier,
            }),
        })
    }

    /// Applies pending migrations (see the crate docs) and returns how many were applied.
    /// Idempotent, and safe to call from several processes at once and while other servers
    /// use the database.
    ///
    /// Errors: [`StoreError::Backend`] when a migration fails or the database was migrated by
    /// a newer build; [`StoreError::Unavailable`] when the server is unreachable or another
    /// process held the migration lock for 15 minutes.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        migrations::migrate(&self.inner.db.pool.connect_options()).await
    }

    /// How many migrations the database has applied: readiness compares it with
    /// [`schema_version`] (a server older than the schema is fine, a newer one is not ready).
    pub async fn applied_migrations(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool().acquire().await.db()?;
        migrations::applied(&mut conn).await
    }

    /// The embedded migrations this database has not applied (`0007_name`, in order),
    /// without applying any: `echoai migrate --check` and readiness use it. Empty when the
    /// schema is current or newer.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool().acquire().await.db()?;
        migrations::pending(&mut conn).await
    }

    /// The pool's current size and cumulative acquire statistics, for metrics.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.db.stats(self.inner.config.max_connections())
    }

    /// The settings this store was connected with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    /// The underlying sqlx pool, for SQL the traits do not cover (administration, reports,
    /// tests). Connections taken here bypass [`PgStore::pool_stats`]' acquire timing.
    pub fn pool(&self) -> &PgPool {
        &self.inner.db.pool
    }

    /// A transaction on a pooled connection (timed like every store call), for callers that
    /// commit their own writes together with queue operations: [`PgStore::enqueue_in`] and
    /// [`PgStore::complete_in`]. Dropping it without committing rolls it back.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.inner.db.begin().await
    }

    /// Closes the pool: waits for checked-out connections to be returned, then closes all.
    pub async fn close(&self) {
        self.inner.db.pool.close().await;
    }

    /// Subscribes to enqueue notifications on a dedicated connection (outside the pool, so a
    /// waiting worker does not hold one of its connections). See [`JobNotifications`].
    pub async fn job_notifications(&self) -> Result<JobNotifications, StoreError> {
        let options = (*self.inner.db.pool.connect_options()).clone();
        // A pool of one only to let PgListener reconnect by itself after a lost connection.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.inner.config.acquire_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool).await.db()?;
        listener.listen(JOBS_CHANNEL).await.db()?;
        Ok(JobNotifications { listener })
    }

    /// Tells the notifier that jobs were committed (after the commit, never inside it).
    pub(crate) fn jobs_committed(&self) {
        if let Some(n) = &self.inner.notifier {
            n.poke();
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }
}

/// Why [`JobNotifications::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Jobs were enqueued (one or more notifications, coalesced).
    Notified,
    /// The timeout passed without a notification: poll anyway.
    TimedOut,
    /// The listening connection was lost and re-established; notifications sent meanwhile
    /// were missed, so claim now.
    Reconnected,
}

/// A worker's subscription to enqueue notifications (`LISTEN echo_jobs`).
///
/// The intended loop: claim until the queue yields nothing, then `wait(poll_interval)`, then
/// claim again whatever the [`Wakeup`]: notifications only shorten the wait, the timeout is the
/// fallback that finds jobs whose `run_at` has come, whose lease expired, or whose notification
/// was lost.
pub struct JobNotifications {
    listener: PgListener,
}

impl fmt::Debug for JobNotifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobNotifications")
            .field("channel", &JOBS_CHANNEL)
            .finish_non_exhaustive()
    }
}

impl JobNotifications {
    /// Waits for an enqueue notification, at most `timeout`. Notifications that arrived
    /// while the worker was busy are drained into one wake-up.
    ///
    /// Errors: [`StoreError::Unavailable`] when the connection cannot be re-established (the
    /// caller should keep polling and retry later).
    pub async fn wait(&mut self, timeout: Duration) -> Result<Wakeup, StoreError> {
        let wakeup = match tokio::time::timeout(timeout, self.listener.try_recv()).await {
            Err(_) => return Ok(Wakeup::TimedOut),
            Ok(Ok(Some(_))) => Wakeup::Notified,
            Ok(Ok(None)) => Wakeup::Reconnected,
            Ok(Err(e)) => return Err(error::map(e)),
        };
        // Drain what has already arrived: a zero timeout still polls once, which reads a
        // notification waiting in the socket but never waits for one.
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::ZERO, self.listener.try_recv()).await
        {}
        Ok(wakeup)
    }
}
