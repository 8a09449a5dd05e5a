//! The connection pool and the helpers every store method runs through: each call is one
//! transaction (explicit, or a single statement's implicit one) on a pooled connection, on
//! tokio's blocking pool.

use echo_core::store::StoreError;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Params, Row, Transaction, TransactionBehavior};

use crate::error::{SqlResultExt, SqliteStoreError};

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool<SqliteConnectionManager>,
    busy_timeout: std::time::Duration,
}

impl Db {
    pub(crate) fn new(
        pool: Pool<SqliteConnectionManager>,
        busy_timeout: std::time::Duration,
    ) -> Self {
        Self { pool, busy_timeout }
    }

    /// Runs `f` in a deferred transaction: a consistent snapshot for multi-statement reads,
    /// which never blocks or is blocked by writers in WAL mode.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(TransactionBehavior::Deferred, f).await
    }

    /// Runs `f`, which must run **exactly one** read statement, on a pooled connection in
    /// autocommit mode. A single statement is atomic on its own in SQLite (it runs in an
    /// implicit read transaction), so the explicit `BEGIN`/`COMMIT` of [`Db::read`] would only
    /// add two round trips through the library: this is the path of hot point lookups.
    pub(crate) async fn read_single<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || {
            let conn = pool.get().map_err(StoreError::unavailable)?;
            f(&conn)
        })
        .await
    }

    /// Runs `f`, which must run **one indexed point lookup** (a key or session by its id), on
    /// the calling thread when a pooled connection is idle, and like [`Db::read_single`]
    /// otherwise.
    ///
    /// The hop to tokio's blocking pool costs 15–25 µs on a small machine, several times the
    /// lookup itself, and it sits on every authenticated request. Running inline is safe
    /// because it cannot wait: `try_get` takes an idle connection or none, in WAL mode a
    /// reader never waits for the writer, and the busy timeout is zero for the inline attempt,
    /// so the rare `SQLITE_BUSY` (e.g. WAL recovery) falls back to the blocking pool instead
    /// of stalling an async worker. What remains is a B-tree probe of a few microseconds
    /// (page-cache reads; a cold page is one read from the OS cache).
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(conn) = self.pool.try_get() {
            let inline = conn
                .busy_timeout(std::time::Duration::ZERO)
                .db()
                .and_then(|()| f(&conn));
            // `sqlite3_busy_timeout` only stores a value on an open connection and cannot
            // fail, so the connection goes back to the pool with its usual timeout.
            let _ = conn.busy_timeout(self.busy_timeout);
            match inline {
                // Busy: retry where waiting is allowed.
                Err(StoreError::Unavailable { .. }) => {}
                result => return result,
            }
        }
        self.read_single(f).await
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction. Taking the write lock up front means the
    /// busy timeout applies while waiting for it; a deferred transaction that reads and then
    /// writes can instead fail with `SQLITE_BUSY` at once when another writer got there first.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(TransactionBehavior::Immediate, f).await
    }

    /// Runs `f` like [`Db::write`], but on the calling thread through
    /// `tokio::task::block_in_place` when that is a multi-threaded runtime's worker: the
    /// runtime hands the worker's other tasks to another thread, and the caller skips the
    /// round trip through the blocking pool (two thread wake-ups, about 30 µs on a small VM,
    /// a third of an audit append). For short writes on a request's path, like the
    /// audit append that every audited request makes. Elsewhere (a current-thread runtime,
    /// where `block_in_place` is not allowed) it is [`Db::write`].
    pub(crate) async fn write_in_place<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            let pool = self.pool.clone();
            tokio::task::block_in_place(move || transact(&pool, TransactionBehavior::Immediate, f))
        } else {
            self.write(f).await
        }
    }

    async fn run<T, F>(&self, behavior: TransactionBehavior, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || transact(&pool, behavior, f)).await
    }
}

/// `f` in one transaction on a pooled connection, committed if it succeeds.
fn transact<T, F>(
    pool: &Pool<SqliteConnectionManager>,
    behavior: TransactionBehavior,
    f: F,
) -> Result<T, StoreError>
where
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
{
    let mut conn = pool.get().map_err(StoreError::unavailable)?;
    let tx = conn.transaction_with_behavior(behavior).db()?;
    // On error the transaction is dropped, which rolls it back.
    let out = f(&tx)?;
    tx.commit().db()?;
    Ok(out)
}

/// Runs blocking SQLite work off the async runtime's worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::backend(SqliteStoreError::Task(e)))?
}

/// Every row of a query, decoded. Takes a connection (a transaction derefs to one) so that
/// single-statement reads can run in autocommit mode.
pub(crate) fn query_all<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    decode: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The first row of a query, decoded, if there is one.
pub(crate) fn query_opt<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    decode: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    match rows.next().db()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Runs a statement, returning how many rows it changed. The error is left unmapped so the
/// caller can say what a foreign-key violation means.
pub(crate) fn execute<P: Params>(
    tx: &Transaction<'_>,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// A single-value query (`SELECT EXISTS …`, `SELECT count(*) …`).
pub(crate) fn query_bool<P: Params>(
    tx: &Transaction<'_>,
    sql: &str,
    params: P,
) -> Result<bool, StoreError> {
    tx.prepare_cached(sql)
        .db()?
        .query_row(params, |row| row.get::<_, bool>(0))
        .db()
}
