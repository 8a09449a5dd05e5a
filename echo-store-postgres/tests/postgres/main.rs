//! Integration tests of the PostgreSQL store: the shared conformance suite, query plans,
//! migrations, multi-process queue and scheduler races, the audit log's append-only trigger,
//! backend-specific behaviour, and echo-core's worker pool and scheduler running on PostgreSQL.
//!
//! # Finding the server
//! The server is `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), used as
//! an administrative connection: each test creates its own database `echo_test_<pid>_<n>_<rand>`
//! there, migrates it and works in it, so tests run in parallel without sharing state.
//! Databases left by earlier test processes that are no longer alive are dropped (best effort)
//! the first time a process creates one.
//!
//! Without `DATABASE_URL`, or with a server that does not answer, the tests print a banner
//! saying they were skipped and why, and pass (the conformance scenarios then exercise
//! echo-core's in-memory store, so they still run something); but when `CI=true`, a missing
//! `DATABASE_URL` or an unreachable server fails every test instead.

// Test code reports failures by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod behaviour;
mod conformance;
mod explain;
mod migrations;
mod multiprocess;
mod pool;

use std::io::Write;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use echo_store_postgres::{PgConfig, PgStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// Pool settings for tests: small, since up to two tests run at once against a server with
/// `max_connections = 100`, and several conformance scenarios open 50 concurrent calls.
pub fn test_config() -> PgConfig {
    PgConfig {
        pool_size: 1,
        max_overflow: 9,
        ..PgConfig::default()
    }
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Writes past libtest's output capture, so the message shows even for passing tests.
fn shout(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The administrative URL, or `None` (after a one-time banner) when the tests must skip.
/// Panics under CI, where skipping would hide a broken setup.
pub fn admin_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if under_ci() {
                panic!("CI=true but DATABASE_URL is not set: the PostgreSQL tests cannot run");
            }
            static BANNER: OnceLock<()> = OnceLock::new();
            BANNER.get_or_init(|| {
                shout(
                    "\n**************************************************************\n\
                     * SKIPPED: echo-store-postgres tests need a PostgreSQL server. *\n\
                     * Set DATABASE_URL, e.g.                                       *\n\
                     *   postgres://postgres@127.0.0.1:5432/postgres                *\n\
                     * (CI=true makes this a failure instead of a skip.)            *\n\
                     **************************************************************",
                );
            });
            None
        }
    }
}

/// Connects to the admin database. An unreachable server fails under CI and skips (with a
/// banner) elsewhere.
async fn admin_connection(url: &str) -> Option<PgConnection> {
    match PgConnection::connect(url).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            let hint = "start it with \
                        `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`";
            if under_ci() {
                panic!(
                    "CI=true and DATABASE_URL is set, but the server is unreachable ({e}); {hint}"
                );
            }
            static BANNER: OnceLock<()> = OnceLock::new();
            BANNER.get_or_init(|| {
                shout(&format!(
                    "\n*** SKIPPED: echo-store-postgres tests: DATABASE_URL is set but the server \
                     is unreachable ({e}); {hint} ***"
                ));
            });
            None
        }
    }
}

/// A new database's URL and name.
#[derive(Debug)]
pub struct TestDb {
    /// URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
}

/// Creates an empty database (not migrated). `None` when skipping.
pub async fn fresh_database() -> Option<TestDb> {
    let admin = admin_url()?;
    let mut conn = admin_connection(&admin).await?;
    static CLEANED: OnceLock<()> = OnceLock::new();
    if CLEANED.set(()).is_ok() {
        drop_dead_test_databases(&mut conn).await;
    }
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "echo_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    conn.close().await.ok();
    let options = PgConnectOptions::from_str(&admin)
        .expect("DATABASE_URL parses")
        .database(&name);
    Some(TestDb {
        url: options.to_url_lossy().to_string(),
        name,
    })
}

/// Drops test databases whose creating process has exited (the pid is in the name).
async fn drop_dead_test_databases(conn: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'echo\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A new, migrated, empty store in its own database. `None` when skipping.
pub async fn fresh_store() -> Option<PgStore> {
    let db = fresh_database().await?;
    let store = PgStore::connect(&db.url, test_config())
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate the test database");
    Some(store)
}

/// A plain connection to the store's database, for raw SQL the traits cannot express.
pub async fn raw(store: &PgStore) -> PgConnection {
    store
        .pool()
        .connect_options()
        .connect()
        .await
        .expect("raw connection")
}
