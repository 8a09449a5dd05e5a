//! Opening, re-opening and migrating.

use echo_core::conformance::fixtures;
use echo_core::store::{SessionStore, StoreError, UserStore};
use echo_store_sqlite::{SCHEMA_VERSION, SqliteConfig, SqliteStore};

fn schema_objects(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(conn: &rusqlite::Connection) -> u32 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn reopening_is_idempotent_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let user = fixtures::user();
    {
        let store = SqliteStore::open(&path, SqliteConfig::default())
            .await
            .unwrap();
        store.create_user(&user).await.unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let before = schema_objects(&conn);
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    drop(conn);

    for _ in 0..2 {
        let store = SqliteStore::open(&path, SqliteConfig::default())
            .await
            .unwrap();
        assert_eq!(store.get_user(user.id).await.unwrap(), user);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    assert_eq!(schema_objects(&conn), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_openers_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let opens: Vec<_> = (0..4)
        .map(|_| tokio::spawn(SqliteStore::open(path.clone(), SqliteConfig::default())))
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
}

#[tokio::test]
async fn journal_mode_is_wal_and_schema_is_current() {
    let store = crate::temp_store().await;
    let conn = crate::raw(&store);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
}

/// A file written before sessions existed (schema version 1, with data) gains the sessions
/// table on open and keeps its data.
#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let user = fixtures::user();
    {
        let store = SqliteStore::open(&path, SqliteConfig::default())
            .await
            .unwrap();
        store.create_user(&user).await.unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE sessions; PRAGMA user_version = 1;")
        .unwrap();
    assert!(
        !schema_objects(&conn)
            .iter()
            .any(|(_, name)| name.starts_with("sessions")),
        "what version 1 looked like"
    );
    drop(conn);

    let store = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap(), user);
    let session = fixtures::session(user.id, fixtures::at(0));
    store.create_session(&session).await.unwrap();
    assert_eq!(
        store
            .find_session_for_auth(session.id)
            .await
            .unwrap()
            .map(|a| a.session),
        Some(session)
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    let objects = schema_objects(&conn);
    for name in [
        "sessions",
        "sessions_user_idx",
        "sessions_expires_idx",
        "sessions_revoked_idx",
    ] {
        assert!(
            objects.iter().any(|(_, n)| n == name),
            "{name} exists: {objects:?}"
        );
    }
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    drop(
        SqliteStore::open(&path, SqliteConfig::default())
            .await
            .unwrap(),
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("newer"), "{source}");
}

#[tokio::test]
async fn bad_config_and_memory_path_are_refused() {
    let config = SqliteConfig {
        pool_size: 0,
        ..SqliteConfig::default()
    };
    let err = SqliteStore::open_temporary(config).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    let err = SqliteStore::open(":memory:", SqliteConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
}
