//! The embedded migrations and how they are applied while servers are up.

use std::time::{Duration, Instant};

use echo_core::store::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::{PgStoreError, SqlResultExt};

/// Every file of `migrations/`, embedded at build time.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Our own migration lock (an arbitrary constant: "echomigr"), taken before sqlx's.
const LOCK_KEY: i64 = 0x6563_686f_6d69_6772;

/// How long `migrate` waits for another process's migration to finish.
const LOCK_WAIT: Duration = Duration::from_secs(15 * 60);

/// Indexes built CONCURRENTLY. A build that failed (or whose process died) leaves an INVALID
/// index behind while its migration stays unapplied; `IF NOT EXISTS` would then skip the retry
/// and keep the broken index, so invalid ones are dropped before migrating.
const CONCURRENT_INDEXES: &[&str] = &[
    "experiments_user_status_created_idx",
    "experiments_user_created_idx",
    "batch_runs_experiment_provider_status_idx",
    "batch_runs_dashboard_idx",
    "batch_runs_trend_idx",
    "iterations_analysis_idx",
    "api_keys_active_public_id_idx",
    "users_tier_quota_reset_idx",
    "experiments_due_recurring_idx",
    "iterations_anonymize_idx",
    "users_scheduled_deletion_idx",
    "jobs_payload_user_idx",
];

/// The number of embedded migrations (the schema version this build expects).
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies pending migrations on a connection of its own (closed afterwards, which also
/// releases its session locks whatever happens). Returns how many were applied.
pub(crate) async fn migrate(options: &PgConnectOptions) -> Result<usize, StoreError> {
    let mut conn = options.connect().await.db()?;
    let result = migrate_on(&mut conn).await;
    // Closing ends the session, releasing the advisory lock even when migrating failed.
    if let Err(e) = conn.close().await {
        tracing::debug!(
            error = &e as &dyn std::error::Error,
            "closing the migration connection"
        );
    }
    result
}

async fn migrate_on(conn: &mut PgConnection) -> Result<usize, StoreError> {
    lock(conn).await?;
    let before = applied(conn).await?;
    drop_invalid_indexes(conn).await?;
    // `run_direct` rather than `run`: `run`'s future is not `Send` for a `&mut PgConnection`
    // ("implementation of Acquire is not general enough"), so it could not be spawned.
    MIGRATOR
        .run_direct(None, conn, false)
        .await
        .map_err(|e| StoreError::backend(PgStoreError::Migrate(e)))?;
    let after = applied(conn).await?;
    let count = after.saturating_sub(before);
    if count > 0 {
        tracing::info!(applied = count, "applied PostgreSQL schema migrations");
    }
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// Takes the migration lock by polling `pg_try_advisory_lock`.
///
/// Not the blocking `pg_advisory_lock`: a session blocked in it holds a snapshot, and
/// `CREATE INDEX CONCURRENTLY`, run by the lock holder, waits for every older snapshot to end;
/// the two would wait for each other until the deadlock detector cancelled one. A polling
/// waiter holds no snapshot between tries. sqlx's own lock, taken next by the migrator, is
/// then never contended.
async fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .db()?;
        if got {
            return Ok(());
        }
        if start.elapsed() > LOCK_WAIT {
            return Err(StoreError::unavailable(PgStoreError::MigrationLockTimeout));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The embedded migrations the database has not applied, as `0007_name` (the file name
/// without `.sql`), in order. Reads `_sqlx_migrations` only.
pub(crate) async fn pending(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let done: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await
            .db()?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !done.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect())
}

pub(crate) async fn applied(conn: &mut PgConnection) -> Result<i64, StoreError> {
    // The table does not exist before the first migration (and a query naming it would not
    // even parse), so look it up first.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .db()?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .db()
}

async fn drop_invalid_indexes(conn: &mut PgConnection) -> Result<(), StoreError> {
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index AS i \
         JOIN pg_class AS c ON c.oid = i.indexrelid \
         WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace \
         AND c.relname = ANY($1)",
    )
    .bind(CONCURRENT_INDEXES)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for name in invalid {
        // The name comes from the constant list above, never from input.
        tracing::warn!(index = %name, "dropping an invalid index left by a failed build");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""
        )))
        .execute(&mut *conn)
        .await
        .db()?;
    }
    Ok(())
}
