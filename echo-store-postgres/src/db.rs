//! The connection pool behind a timed `acquire`, its statistics, and the debounced job
//! notifier.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use echo_core::store::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Transaction};
use tokio::sync::Notify;

use crate::error::{SqlResultExt, map};
use crate::queries as q;

/// Upper bounds (seconds) of the acquire-latency histogram's buckets; a last, unbounded bucket
/// follows. Chosen around what matters: a warm pool answers in microseconds, a pool that opens
/// a connection in milliseconds, an exhausted one in up to `acquire_timeout`.
pub const ACQUIRE_BUCKETS_SECONDS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// A snapshot of the pool, for `/metrics`. Counters are cumulative since the store was
/// connected; gauges are as of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// Connections open now (idle or in use).
    pub size: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Connections checked out by store calls (`size - idle`).
    pub in_use: u32,
    /// The most connections the pool opens (`pool_size + max_overflow`).
    pub max_connections: u32,
    /// Connections acquired (successful or not).
    pub acquires: u64,
    /// Acquires that found no idle connection, so waited for one to be opened or returned.
    pub waits: u64,
    /// Acquires that gave up after `acquire_timeout` (reported as `StoreError::Unavailable`).
    pub timeouts: u64,
    /// Acquire latency: cumulative counts per bucket of [`ACQUIRE_BUCKETS_SECONDS`] (Prometheus
    /// `le` semantics), then the count of all acquires (`+Inf`).
    pub acquire_buckets: Vec<u64>,
    /// Sum of all acquire latencies, in seconds (with `acquires`, the mean).
    pub acquire_seconds_sum: f64,
}

/// Lock-free counters updated on every acquire.
#[derive(Debug, Default)]
pub(crate) struct AcquireStats {
    acquires: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
    nanos_sum: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last is the unbounded bucket.
    buckets: [AtomicU64; 11],
}

impl AcquireStats {
    fn record(&self, waited: bool, elapsed: Duration, timed_out: bool) {
        self.acquires.fetch_add(1, Ordering::Relaxed);
        if waited {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        if timed_out {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos_sum.fetch_add(nanos, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = ACQUIRE_BUCKETS_SECONDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(ACQUIRE_BUCKETS_SECONDS.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the store's methods run through: the pool and the acquire statistics.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) pool: PgPool,
    stats: Arc<AcquireStats>,
}

impl Db {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            stats: Arc::default(),
        }
    }

    /// A pooled connection, timing the wait.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        let waited = self.pool.num_idle() == 0;
        let start = Instant::now();
        let result = self.pool.acquire().await;
        let timed_out = matches!(result, Err(sqlx::Error::PoolTimedOut));
        self.stats.record(waited, start.elapsed(), timed_out);
        result.db()
    }

    /// A transaction (READ COMMITTED, the server default) on a pooled connection. Dropping it
    /// without `commit` rolls it back.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let conn = self.conn().await?;
        Transaction::begin(conn, None).await.db()
    }

    /// A read-only REPEATABLE READ transaction: one snapshot for reads made of several
    /// statements (the dashboard), which never blocks writers.
    pub(crate) async fn begin_snapshot(
        &self,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let conn = self.conn().await?;
        Transaction::begin(
            conn,
            Some(sqlx::SqlStr::from_static(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )),
        )
        .await
        .db()
    }

    pub(crate) fn stats(&self, max_connections: u32) -> PoolStats {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        let s = &self.stats;
        let mut cumulative = 0;
        let acquire_buckets = s
            .buckets
            .iter()
            .map(|b| {
                cumulative += b.load(Ordering::Relaxed);
                cumulative
            })
            .collect();
        PoolStats {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            max_connections,
            acquires: s.acquires.load(Ordering::Relaxed),
            waits: s.waits.load(Ordering::Relaxed),
            timeouts: s.timeouts.load(Ordering::Relaxed),
            acquire_buckets,
            acquire_seconds_sum: s.nanos_sum.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Runs a query and decodes every row.
pub(crate) async fn fetch_all<'q, T>(
    conn: &mut sqlx::PgConnection,
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    decode: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = query.fetch_all(conn).await.db()?;
    rows.iter().map(decode).collect()
}

/// Runs a query and decodes its first row, if any.
pub(crate) async fn fetch_opt<'q, T>(
    conn: &mut sqlx::PgConnection,
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    decode: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let row = query.fetch_optional(conn).await.db()?;
    row.as_ref().map(decode).transpose()
}

/// Rows a statement changed.
pub(crate) async fn execute<'q>(
    conn: &mut sqlx::PgConnection,
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
) -> Result<u64, StoreError> {
    Ok(query.execute(conn).await.db()?.rows_affected())
}

/// Commits, mapping the error (a commit can fail, e.g. on a serialization failure).
pub(crate) async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), StoreError> {
    tx.commit().await.map_err(map)
}

/// Wakes idle workers after enqueues without a `NOTIFY` per job.
///
/// A transaction with a pending `NOTIFY` takes a cluster-wide lock while it commits, which
/// serialises commits under write load. So enqueueing transactions never notify: after they
/// commit they poke this notifier, whose task sends `pg_notify` in a transaction of its own at
/// most once per debounce window: the first poke after a quiet period at once (lowest latency),
/// pokes within the window coalesced into one notification at its end (none lost).
#[derive(Debug)]
pub(crate) struct Notifier {
    poke: Notify,
    closed: AtomicBool,
}

impl Notifier {
    /// Starts the notifier task (on the current tokio runtime).
    pub(crate) fn start(db: Db, debounce: Duration) -> Arc<Self> {
        let notifier = Arc::new(Self {
            poke: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let shared = Arc::clone(&notifier);
        tokio::spawn(async move {
            loop {
                shared.poke.notified().await;
                if shared.closed.load(Ordering::Acquire) {
                    break;
                }
                let sent = match db.conn().await {
                    Ok(mut conn) => execute(&mut conn, sqlx::query(q::JOBS_NOTIFY)).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    // Workers poll as well, so a lost wake-up only delays a job.
                    tracing::warn!(error = &e as &dyn std::error::Error, "job NOTIFY failed");
                }
                tokio::time::sleep(debounce).await;
            }
        });
        notifier
    }

    /// Records that jobs were committed; cheap and never blocks.
    pub(crate) fn poke(&self) {
        // `notify_one` stores a permit when the task is busy, so a poke during a send or the
        // debounce sleep yields exactly one more notification afterwards.
        self.poke.notify_one();
    }

    /// Stops the task (when the last clone of the store is dropped).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.poke.notify_one();
    }
}
