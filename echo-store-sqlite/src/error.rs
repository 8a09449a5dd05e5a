//! Mapping SQLite's errors onto [`StoreError`]'s meanings, keeping the source.

use echo_core::store::{StoreError, sql};
use rusqlite::ffi;

/// Problems of this backend that SQLite itself does not report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteStoreError {
    /// The file was migrated by a newer binary; writing to it could corrupt it.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); \
         upgrade Echo"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// WAL mode could not be enabled (e.g. an in-memory path, where every pooled connection
    /// would see a different database).
    #[error("could not enable WAL journal mode (got {0:?}); use a file path")]
    NoWal(String),
    /// A blocking task was cancelled or panicked.
    #[error("blocking database task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The generic mapping: busy or locked → [`StoreError::Unavailable`], unique violation →
/// [`StoreError::Conflict`], anything else → [`StoreError::Backend`].
pub(crate) fn map(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, msg) = &e {
        match err.code {
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => {
                return StoreError::unavailable(e);
            }
            ffi::ErrorCode::ConstraintViolation
                if matches!(
                    err.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                return StoreError::conflict(conflict_message(msg.as_deref()));
            }
            _ => {}
        }
    }
    StoreError::backend(e)
}

fn conflict_message(msg: Option<&str>) -> &'static str {
    // SQLite reports "UNIQUE constraint failed: table.col[, table.col…]".
    let column = msg
        .and_then(|m| m.rsplit_once(": "))
        .and_then(|(_, cols)| cols.split_once('.'));
    sql::conflict_message(|key| column == Some((key.table, key.column)))
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error()
        .is_some_and(|err| err.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// Adds the store's error mapping to rusqlite results.
pub(crate) trait SqlResultExt<T> {
    /// Maps with [`map`].
    fn db(self) -> Result<T, StoreError>;
    /// As [`SqlResultExt::db`], but a foreign-key violation means `parent` does not exist.
    fn db_parent(self, parent: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map)
    }

    fn db_parent(self, parent: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::not_found(parent)
            } else {
                map(e)
            }
        })
    }
}

pub(crate) use echo_core::store::sql::invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_are_user_safe() {
        assert_eq!(
            conflict_message(Some("UNIQUE constraint failed: users.email")),
            "email is already registered"
        );
        assert_eq!(
            conflict_message(Some("UNIQUE constraint failed: t.a, t.b")),
            "record already exists"
        );
        assert_eq!(conflict_message(None), "record already exists");
    }
}
