//! Connecting and migrating: idempotent, concurrent-safe, self-repairing, and refusing a
//! database migrated by a newer build.

use echo_core::conformance::fixtures;
use echo_core::store::{StoreError, UserStore};
use echo_store_postgres::{PgConfig, PgStore, schema_version};
use sqlx::{Connection, PgConnection};

/// Every index of the public schema with its validity and definition.
async fn indexes(conn: &mut PgConnection) -> Vec<(String, bool, String)> {
    sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid, pg_get_indexdef(i.indexrelid) \
         FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid \
         WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn applied(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The backlog indexes, with the shape each must have.
const BACKLOG: &[(&str, &[&str])] = &[
    (
        "experiments_user_status_created_idx",
        &["(user_id, status, created_at DESC, id DESC)"],
    ),
    (
        "experiments_user_created_idx",
        &["(user_id, created_at DESC, id DESC)"],
    ),
    (
        "batch_runs_experiment_provider_status_idx",
        &[
            "(experiment_id, provider, status) INCLUDE (",
            "completed_at",
        ],
    ),
    (
        "batch_runs_dashboard_idx",
        &["(user_id, provider, status) INCLUDE (visibility_rate"],
    ),
    (
        "batch_runs_trend_idx",
        &["(user_id, completed_at) INCLUDE (visibility_rate) WHERE (status = 'completed'"],
    ),
    (
        "iterations_analysis_idx",
        &["(batch_run_id, is_success) WHERE (mentions IS NOT NULL)"],
    ),
    (
        "api_keys_active_public_id_idx",
        &["(public_id, is_active)", "WHERE is_active"],
    ),
    (
        "users_tier_quota_reset_idx",
        &["(pricing_tier, quota_reset_at)"],
    ),
    (
        "experiments_due_recurring_idx",
        &["(next_run_at, id) WHERE ((schedule IS NOT NULL) AND (status <> 'cancelled'"],
    ),
    (
        "iterations_anonymize_idx",
        &["(created_at) INCLUDE (batch_run_id) WHERE (NOT is_anonymized)"],
    ),
    (
        "users_scheduled_deletion_idx",
        &["(scheduled_deletion_at, id) WHERE (scheduled_deletion_at IS NOT NULL)"],
    ),
    (
        "jobs_payload_user_idx",
        &["(((payload ->> 'user_id'::text))) WHERE ((payload ->> 'user_id'::text) IS NOT NULL)"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_idempotent_and_keeps_data() {
    let Some(db) = crate::fresh_database().await else {
        return;
    };
    let store = PgStore::connect(&db.url, crate::test_config())
        .await
        .unwrap();
    let first = store.migrate().await.unwrap();
    assert_eq!(
        first as i64,
        schema_version(),
        "all migrations on a new database"
    );
    let user = fixtures::user();
    store.create_user(&user).await.unwrap();

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let before = indexes(&mut conn).await;
    assert_eq!(store.migrate().await.unwrap(), 0, "nothing left to apply");
    assert_eq!(indexes(&mut conn).await, before, "schema unchanged");
    assert_eq!(applied(&mut conn).await, schema_version());
    assert_eq!(store.get_user(user.id).await.unwrap(), user);

    for (name, valid, _) in &before {
        assert!(valid, "index {name} is valid");
    }
    for (name, shape) in BACKLOG {
        let def = before
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, d)| d.clone())
            .unwrap_or_else(|| panic!("index {name} exists"));
        for fragment in *shape {
            assert!(def.contains(fragment), "{name}: {def} lacks {fragment:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_each_once() {
    let Some(db) = crate::fresh_database().await else {
        return;
    };
    let a = PgStore::connect(&db.url, crate::test_config())
        .await
        .unwrap();
    let b = PgStore::connect(&db.url, crate::test_config())
        .await
        .unwrap();
    // Servers are up while migrations run: one of them keeps querying meanwhile.
    let busy = {
        let a = a.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let _ = sqlx::query("SELECT 1").execute(a.pool()).await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let ta = tokio::spawn(async move { a.migrate().await });
    let tb = tokio::spawn(async move { b.migrate().await });
    let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    busy.await.unwrap();
    assert_eq!(
        (ra + rb) as i64,
        schema_version(),
        "each migration applied once ({ra} + {rb})"
    );
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    assert_eq!(applied(&mut conn).await, schema_version());
    assert!(indexes(&mut conn).await.iter().all(|(_, valid, _)| *valid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_index_from_a_failed_build_is_rebuilt() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let mut conn = crate::raw(&store).await;
    // What an interrupted CREATE INDEX CONCURRENTLY leaves: an invalid index, its migration
    // not recorded. Version 10 (0010_experiments_due_recurring_idx.sql) builds this index;
    // later migrations stay applied, as they would when an operator re-runs a failed upgrade.
    let due_recurring_migration: i64 = 10;
    sqlx::query(
        "UPDATE pg_index SET indisvalid = false \
         WHERE indexrelid = 'experiments_due_recurring_idx'::regclass",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(due_recurring_migration)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), 1);
    let valid: bool = sqlx::query_scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'experiments_due_recurring_idx'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(valid, "rebuilt valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let mut conn = crate::raw(&store).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let err = store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    let source = std::error::Error::source(&err).unwrap();
    assert!(
        format!("{source:?}").contains("99999"),
        "the error names the unknown version: {source:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_url_and_unreachable_server() {
    let bad = PgConfig {
        pool_size: 0,
        ..PgConfig::default()
    };
    let err = PgStore::connect("postgres://localhost/x", bad)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let err = PgStore::connect("postgres://localhost:notaport/x", PgConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let quick = PgConfig {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..crate::test_config()
    };
    // Port 1 on loopback: nothing listens there.
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/postgres", quick)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "unreachable is Unavailable: {err:?}");
}

/// Released migrations are append-only: `migrations.sha256` records each file's hash.
#[test]
fn released_migrations_match_their_recorded_checksums() {
    let checked = echo_core::conformance::migrations::check_crate(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i64::try_from(checked).unwrap(), schema_version());
}

#[tokio::test]
async fn pending_migrations_are_listed_without_applying_them() {
    let Some(db) = crate::fresh_database().await else {
        return;
    };
    let store = PgStore::connect(&db.url, crate::test_config())
        .await
        .unwrap();
    let all = store.pending_migrations().await.unwrap();
    assert_eq!(i64::try_from(all.len()).unwrap(), schema_version());
    assert_eq!(all[0], "0001_init");
    // Listing applied nothing.
    assert_eq!(store.applied_migrations().await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    // A database one migration behind this build lists exactly that one.
    let mut conn = crate::raw(&store).await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let pending = store.pending_migrations().await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        pending[0].starts_with(&format!("{:04}_", schema_version())),
        "{pending:?}"
    );
}
