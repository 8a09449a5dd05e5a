//! Mapping sqlx's and PostgreSQL's errors onto [`StoreError`]'s meanings, keeping the source.

use echo_core::model::ValidationError;
use echo_core::store::StoreError;
use echo_core::store::sql::{self, UniqueKey};

/// The parent a foreign key points at, keyed by constraint name: a violation means it does
/// not exist.
const PARENTS: &[(&str, &str)] = &[
    ("brand_profiles_user_id_fkey", "user"),
    ("prompt_sets_user_id_fkey", "user"),
    ("api_keys_user_id_fkey", "user"),
    ("sessions_user_id_fkey", "user"),
    ("email_verification_tokens_user_id_fkey", "user"),
    ("experiments_user_id_fkey", "user"),
    ("batch_runs_experiment_id_fkey", "experiment"),
    ("iterations_batch_run_id_fkey", "batch run"),
];

/// Problems of this backend that PostgreSQL itself does not report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgStoreError {
    /// Applying the embedded migrations failed.
    #[error("schema migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Another process held the migration lock for too long.
    #[error("timed out waiting for the migration lock held by another process")]
    MigrationLockTimeout,
}

/// Whether `name` is PostgreSQL's default name for `key`'s constraint: `{table}_pkey` for a
/// primary key, `{table}_{column}_key` for a `UNIQUE` column.
fn is_constraint_of(key: &UniqueKey, name: &str) -> bool {
    match name
        .strip_prefix(key.table)
        .and_then(|rest| rest.strip_prefix('_'))
    {
        Some("pkey") => key.primary,
        Some(rest) => !key.primary && rest.strip_suffix("_key") == Some(key.column),
        None => false,
    }
}

/// SQLSTATE classes and codes that mean "try again": the transaction lost a race or the
/// server is (momentarily) unable to serve.
fn is_transient(code: &str) -> bool {
    matches!(
        code,
        // serialization_failure, deadlock_detected
        "40001" | "40P01"
        // lock_not_available, query_canceled (statement or lock timeout)
        | "55P03" | "57014"
        // admin_shutdown, crash_shutdown, cannot_connect_now
        | "57P01" | "57P02" | "57P03"
        // too_many_connections, configuration_limit_exceeded
        | "53300" | "53400"
    ) || code.starts_with("08") // connection_exception
}

/// The generic mapping (see the crate docs): unique violation → Conflict, foreign-key
/// violation → NotFound of the parent, transient failures → Unavailable, else Backend.
pub(crate) fn map(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                "23505" => {
                    let constraint = db.constraint();
                    StoreError::conflict(sql::conflict_message(|key| {
                        constraint.is_some_and(|name| is_constraint_of(key, name))
                    }))
                }
                "23503" => {
                    let parent = db
                        .constraint()
                        .and_then(|c| PARENTS.iter().find(|(name, _)| *name == c))
                        .map(|(_, parent)| *parent);
                    match parent {
                        Some(parent) => StoreError::not_found(parent),
                        // A delete blocked by a reference, or an unknown constraint: a bug.
                        None => StoreError::backend(e),
                    }
                }
                c if is_transient(c) => StoreError::unavailable(e),
                _ => StoreError::backend(e),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreError::unavailable(e),
        sqlx::Error::ColumnDecode { index, .. } => {
            // The column holds a value of a type this build does not expect (e.g. a schema
            // changed by a newer version).
            let reason = format!("column {index} has an unexpected type or value");
            StoreError::Invalid(ValidationError::new("stored row", reason))
        }
        _ => StoreError::backend(e),
    }
}

/// Adds the store's error mapping to sqlx results.
pub(crate) trait SqlResultExt<T> {
    /// Maps with [`map`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> SqlResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map)
    }
}

pub(crate) use echo_core::store::sql::invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for code in ["40001", "40P01", "08006", "08001", "57P01", "53300"] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01"] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn conflict_messages_follow_constraint_names() {
        let message = |name: &str| sql::conflict_message(|key| is_constraint_of(key, name));
        assert_eq!(message("users_email_key"), "email is already registered");
        assert_eq!(message("users_pkey"), "user id already exists");
        assert_eq!(
            message("api_keys_public_id_key"),
            "API key id already exists"
        );
        assert_eq!(
            message("audit_checkpoints_pkey"),
            "an audit checkpoint with this sequence number already exists"
        );
        assert_eq!(message("users_id_key"), "record already exists");
        assert_eq!(message("jobs_kind_key"), "record already exists");
    }

    #[test]
    fn pool_errors_are_unavailable() {
        assert!(map(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!map(sqlx::Error::RowNotFound).is_retryable());
    }
}
