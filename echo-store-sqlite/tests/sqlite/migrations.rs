//! Opening, re-opening and migrating.

use echo_core::audit::{GENESIS_HASH, chain_hash};
use echo_core::conformance::fixtures;
use echo_core::model::{AuditEvent, User};
use echo_core::store::{AuditStore, SessionStore, StoreError, UserStore};
use echo_store_sqlite::queries as q;
use echo_store_sqlite::{MIGRATIONS, SCHEMA_VERSION, SqliteConfig, SqliteStore};

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

/// A database file as a build with the first `version` migrations left it.
fn file_at_version(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql).unwrap();
    }
    conn.execute_batch(&format!("PRAGMA user_version = {version}"))
        .unwrap();
    conn
}

/// Stores `user` with raw SQL, in the users columns of versions 1 to 3 (version 4 added the
/// email-verification columns, which `user` must leave at their defaults).
fn insert_user(conn: &rusqlite::Connection, u: &User) {
    assert!(!u.email_verification_required && u.email_verified_at.is_none());
    let c = &u.consents;
    let micros = |t: Option<echo_core::model::Timestamp>| t.map(|t| t.unix_micros());
    conn.execute(
        "INSERT INTO users (id, email, password_hash, pricing_tier, prompts_used, \
         quota_reset_at, is_active, is_admin, privacy_policy_version, \
         privacy_policy_accepted_at, data_processing_consent_at, marketing_consent_at, \
         scheduled_deletion_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        rusqlite::params![
            u.id.as_uuid().as_bytes(),
            u.email.as_str(),
            u.password_hash.expose(),
            u.tier.as_str(),
            u.quota.prompts_used,
            u.quota.resets_at.unix_micros(),
            u.is_active,
            u.is_admin,
            c.privacy_policy_version,
            micros(c.privacy_policy_accepted_at),
            micros(c.data_processing_consent_at),
            micros(c.marketing_consent_at),
            micros(u.scheduled_deletion_at),
            u.created_at.unix_micros(),
            u.updated_at.unix_micros(),
        ],
    )
    .unwrap();
}

/// A file written before sessions existed (schema version 1, with data) gains the sessions
/// table on open and keeps its data.
#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let user = fixtures::user();
    let conn = file_at_version(&path, 1);
    insert_user(&conn, &user);
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

/// A version 2 file with an audit log gains the retention indexes and the audit tables on open;
/// the chain head is seeded from the log, so the next append continues the chain, and the old
/// events read back unerased.
#[tokio::test]
async fn a_version_2_file_keeps_its_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let conn = file_at_version(&path, 2);
    let mut prev = GENESIS_HASH;
    let mut old = Vec::new();
    for seq in 1..=3u64 {
        let event = fixtures::audit_event("login", fixtures::at(seq as i64));
        let hash = chain_hash(&prev, seq, &event);
        conn.execute(
            q::AUDIT_INSERT,
            rusqlite::params![
                seq as i64,
                Option::<Vec<u8>>::None,
                event.action,
                event.resource_type,
                event.resource_id,
                event.ip,
                event.user_agent,
                event.request_id,
                event.details.to_string(),
                event.created_at.unix_micros(),
                prev,
                hash,
            ],
        )
        .unwrap();
        old.push(AuditEvent {
            seq,
            event,
            actor_pseudonym: None,
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    drop(conn);

    let store = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    assert_eq!(store.audit_range(1, 10).await.unwrap(), old);
    let next = store
        .append_audit(&fixtures::audit_event("login", fixtures::at(9)))
        .await
        .unwrap();
    assert_eq!((next.seq, next.prev_hash), (4, prev), "the chain continues");
    assert_eq!(store.audit_bounds().await.unwrap(), Some((1, 4)));

    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    let objects = schema_objects(&conn);
    for name in [
        "iterations_anonymize_idx",
        "users_scheduled_deletion_idx",
        "jobs_payload_user_idx",
        "audit_chain_head",
        "audit_erasures",
        "audit_checkpoints",
    ] {
        assert!(
            objects.iter().any(|(_, n)| n == name),
            "{name} exists: {objects:?}"
        );
    }
}

/// An empty version 2 file starts its chain at the genesis hash.
#[tokio::test]
async fn a_version_2_file_without_audit_events_starts_at_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    drop(file_at_version(&path, 2));
    let store = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    let first = store
        .append_audit(&fixtures::audit_event("login", fixtures::at(0)))
        .await
        .unwrap();
    assert_eq!((first.seq, first.prev_hash), (1, GENESIS_HASH));
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

/// Released migrations are append-only: `migrations.sha256` records each file's hash.
#[test]
fn released_migrations_match_their_recorded_checksums() {
    let checked = echo_core::conformance::migrations::check_crate(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked, echo_store_sqlite::MIGRATION_NAMES.len());
}

#[tokio::test]
async fn pending_migrations_are_listed_without_changing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pending.db");
    let all = echo_store_sqlite::pending_migrations(&path).await.unwrap();
    assert_eq!(all, echo_store_sqlite::MIGRATION_NAMES);
    assert!(!path.exists(), "checking must not create the file");

    // A file an older build left at version 1.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
    }
    let pending = echo_store_sqlite::pending_migrations(&path).await.unwrap();
    assert_eq!(pending, &echo_store_sqlite::MIGRATION_NAMES[1..]);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "checking must not migrate");

    let store = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        i64::from(SCHEMA_VERSION)
    );
    assert!(
        echo_store_sqlite::pending_migrations(&path)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A version 3 file (before email verification) gains the verification columns and token
/// table on open; its accounts need no verification, so they keep working as before.
#[tokio::test]
async fn a_version_3_file_gains_email_verification_and_keeps_its_accounts_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.db");
    let user = fixtures::user();
    let conn = file_at_version(&path, 3);
    insert_user(&conn, &user);
    drop(conn);

    let store = SqliteStore::open(&path, SqliteConfig::default())
        .await
        .unwrap();
    let got = store.get_user(user.id).await.unwrap();
    assert_eq!(got, user);
    assert!(!got.email_verification_pending());
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    let objects = schema_objects(&conn);
    for name in [
        "email_verification_tokens",
        "email_verification_tokens_hash_key",
    ] {
        assert!(
            objects.iter().any(|(_, n)| n == name),
            "{name} exists: {objects:?}"
        );
    }
}
