//! The storage error type shared by every store trait and backend.

use std::time::Duration;

use crate::model::{QuotaDebit, ValidationError};

/// A boxed error source from a backend, kept as a source chain (never flattened to a string).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store call.
///
/// Backends map their native errors onto these meanings (a unique-constraint violation becomes
/// [`StoreError::Conflict`], a busy or unreachable database [`StoreError::Unavailable`]) and keep
/// the native error as the `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist, or belongs to another tenant (the two are indistinguishable
    /// to the caller by design).
    #[error("{entity} not found")]
    NotFound {
        /// Kind of record (`"experiment"`).
        entity: &'static str,
    },

    /// The write collides with existing data (duplicate email, duplicate key id…).
    #[error("conflict: {message}")]
    Conflict {
        /// What collided, safe to show to the user.
        message: String,
    },

    /// A quota debit would exceed the limit; nothing was written.
    #[error("monthly quota exceeded: {used} used + {requested} requested > {limit} allowed")]
    QuotaExceeded {
        /// Prompts already used this period.
        used: u32,
        /// Prompts the operation needed.
        requested: u32,
        /// The limit.
        limit: u32,
    },

    /// The input, or data read back from storage, failed validation.
    #[error("invalid data: {0}")]
    Invalid(#[from] ValidationError),

    /// A job lease is no longer held by the caller (expired and re-claimed, or finished): the
    /// caller must stop working on the job and must not commit its results.
    #[error("job lease lost")]
    LeaseLost,

    /// The backend is temporarily unable to serve (busy, pool exhausted, connection lost). Safe
    /// to retry, after `retry_after` when given.
    #[error("storage temporarily unavailable")]
    Unavailable {
        /// Suggested wait before retrying.
        retry_after: Option<Duration>,
        /// The backend's error.
        #[source]
        source: BoxError,
    },

    /// Any other backend failure: a bug, corruption or misconfiguration. Not retryable.
    #[error("storage backend error")]
    Backend {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub const fn not_found(entity: &'static str) -> Self {
        StoreError::NotFound { entity }
    }

    /// Shorthand for [`StoreError::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError::Conflict {
            message: message.into(),
        }
    }

    /// [`StoreError::QuotaExceeded`]: `debit` does not fit a quota of which `used` is taken.
    pub const fn quota_exceeded(debit: QuotaDebit, used: u32) -> Self {
        StoreError::QuotaExceeded {
            used,
            requested: debit.amount,
            limit: debit.limit,
        }
    }

    /// Wraps a backend error as [`StoreError::Backend`].
    pub fn backend(source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }

    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            retry_after: None,
            source: source.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
