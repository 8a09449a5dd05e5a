//! What the SQL backends share (feature `sql`): a driver-neutral column reader, the record
//! decoders written once over it, the column lists they decode, the user-safe messages of
//! unique-key violations, and the helpers for the quota debit and keyed writes.
//!
//! A backend implements [`ColumnReader`] for its row type: only the primitive reads (an
//! integer, a float, a boolean, text, bytes, a UUID, an instant), each mapping its driver's
//! representation and reporting a wrong type or an out-of-range value as
//! [`StoreError::Invalid`] naming the field. Every record is then decoded by its
//! [`FromColumns`] implementation here, from the columns listed by [`sql_columns!`](crate::sql_columns)
//! in that order. The SQL itself (placeholders, casts, dialect functions) stays in each backend.
//!
//! ```
//! use echo_core::model::User;
//! use echo_core::sql_columns;
//! use echo_core::store::sql::FromColumns;
//!
//! const USER_BY_ID: &str = concat!("SELECT ", sql_columns!(user), " FROM users WHERE id = ?1");
//! assert!(USER_BY_ID.starts_with("SELECT id, email, "));
//! // A backend then decodes each row with `User::from_columns(&mut its_reader)`.
//! # fn _decoder<'r>(c: &mut impl echo_core::store::sql::ColumnReader<'r>)
//! #     -> Result<User, echo_core::store::StoreError> { User::from_columns(c) }
//! ```

mod audit_list;
mod columns;
mod records;

use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use audit_list::{SqlArg, audit_list, seq_bound};
pub use columns::{CONFLICT_FALLBACK, UNIQUE_KEYS, UniqueKey, conflict_message};
pub use records::{SourceRow, attach_sources, trend_point};

use crate::model::{QuotaDebit, Timestamp, ValidationError};
use crate::store::StoreError;

/// Reads a row's columns in order, each read naming its field (`"users.email"`) for error
/// messages.
///
/// Implementors provide the primitive reads: each takes the next column, returns `None` for
/// SQL `NULL`, and reports a value of the wrong type or out of range as
/// [`StoreError::Invalid`] (see [`invalid`]); they never panic. The other methods are built on
/// them and should not need overriding, except [`ColumnReader::opt_json`] where the driver has
/// a JSON type of its own.
pub trait ColumnReader<'r> {
    /// An integer column.
    fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, StoreError>;

    /// A floating-point column.
    fn opt_f64(&mut self, field: &'static str) -> Result<Option<f64>, StoreError>;

    /// A boolean column (however the database stores it).
    fn opt_bool(&mut self, field: &'static str) -> Result<Option<bool>, StoreError>;

    /// A text column, borrowed from the row.
    fn opt_str(&mut self, field: &'static str) -> Result<Option<&'r str>, StoreError>;

    /// A binary column, borrowed from the row.
    fn opt_bytes(&mut self, field: &'static str) -> Result<Option<&'r [u8]>, StoreError>;

    /// A UUID column (however the database stores it).
    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>, StoreError>;

    /// An instant column (however the database stores it).
    fn opt_ts(&mut self, field: &'static str) -> Result<Option<Timestamp>, StoreError>;

    /// A JSON value, parsed into `T`; by default from a text column.
    fn opt_json<T: DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_str(field)?
            .map(|s| serde_json::from_str(s).map_err(|e| invalid_json(field, &e)))
            .transpose()
    }

    /// A non-null integer.
    fn i64(&mut self, field: &'static str) -> Result<i64, StoreError> {
        self.opt_i64(field)?.ok_or_else(|| null(field))
    }

    /// A non-null integer that fits a `u32`.
    fn u32(&mut self, field: &'static str) -> Result<u32, StoreError> {
        let i = self.i64(field)?;
        u32::try_from(i).map_err(|_| invalid(field, format!("is out of range ({i})")))
    }

    /// An integer that fits a `u64` (counters kept in a signed 64-bit column).
    fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, StoreError> {
        self.opt_i64(field)?
            .map(|i| u64::try_from(i).map_err(|_| invalid(field, format!("is out of range ({i})"))))
            .transpose()
    }

    /// A non-null integer that fits a `u64`.
    fn u64(&mut self, field: &'static str) -> Result<u64, StoreError> {
        self.opt_u64(field)?.ok_or_else(|| null(field))
    }

    /// A non-null boolean.
    fn bool(&mut self, field: &'static str) -> Result<bool, StoreError> {
        self.opt_bool(field)?.ok_or_else(|| null(field))
    }

    /// Text, owned.
    fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(field)?.map(str::to_owned))
    }

    /// Non-null text, borrowed from the row.
    fn str(&mut self, field: &'static str) -> Result<&'r str, StoreError> {
        self.opt_str(field)?.ok_or_else(|| null(field))
    }

    /// Non-null text, owned.
    fn text(&mut self, field: &'static str) -> Result<String, StoreError> {
        self.opt_text(field)?.ok_or_else(|| null(field))
    }

    /// Non-null bytes, borrowed from the row.
    fn bytes(&mut self, field: &'static str) -> Result<&'r [u8], StoreError> {
        self.opt_bytes(field)?.ok_or_else(|| null(field))
    }

    /// Exactly `N` bytes.
    fn opt_blob<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<[u8; N]>, StoreError> {
        self.opt_bytes(field)?
            .map(|bytes| {
                <[u8; N]>::try_from(bytes)
                    .map_err(|_| invalid(field, format!("must be {N} bytes (got {})", bytes.len())))
            })
            .transpose()
    }

    /// Exactly `N` non-null bytes.
    fn blob<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], StoreError> {
        self.opt_blob(field)?.ok_or_else(|| null(field))
    }

    /// An id ([`UserId`](crate::model::UserId), …) stored as a UUID.
    fn opt_id<T: From<Uuid>>(&mut self, field: &'static str) -> Result<Option<T>, StoreError> {
        Ok(self.opt_uuid(field)?.map(T::from))
    }

    /// A non-null id.
    fn id<T: From<Uuid>>(&mut self, field: &'static str) -> Result<T, StoreError> {
        self.opt_id(field)?.ok_or_else(|| null(field))
    }

    /// A non-null instant.
    fn ts(&mut self, field: &'static str) -> Result<Timestamp, StoreError> {
        self.opt_ts(field)?.ok_or_else(|| null(field))
    }

    /// Non-null text parsed by the type's own validation (enums, validated newtypes), from the
    /// borrowed text.
    fn parse<T>(&mut self, field: &'static str) -> Result<T, StoreError>
    where
        T: FromStr<Err = ValidationError>,
    {
        Ok(self.str(field)?.parse()?)
    }

    /// A non-null JSON value parsed into `T`.
    fn json<T: DeserializeOwned>(&mut self, field: &'static str) -> Result<T, StoreError> {
        self.opt_json(field)?.ok_or_else(|| null(field))
    }
}

/// A record decoded from the columns of one row, in the order its [`sql_columns!`](crate::sql_columns)
/// list gives (joined lookups: the record's columns, then the owner's, as each type documents).
pub trait FromColumns: Sized {
    /// Reads the record's columns from `c`, validating every value.
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError>;
}

/// [`StoreError::Invalid`] for `field`.
pub fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(ValidationError::new(field, reason))
}

/// [`StoreError::Invalid`]: `field` is `NULL` where a value is required.
pub fn null(field: &'static str) -> StoreError {
    invalid(field, "is unexpectedly NULL")
}

/// [`StoreError::Invalid`]: `field` holds JSON that does not parse into its type.
pub fn invalid_json(field: &'static str, e: &serde_json::Error) -> StoreError {
    invalid(field, format!("is not valid: {e}"))
}

/// A value could not be encoded as JSON (the source of a [`StoreError::Backend`]).
#[derive(Debug, thiserror::Error)]
#[error("could not encode {what} as JSON")]
pub struct EncodeJsonError {
    what: &'static str,
    #[source]
    source: serde_json::Error,
}

/// JSON text of a value about to be stored; `what` names it in the error.
pub fn to_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|source| StoreError::backend(EncodeJsonError { what, source }))
}

/// JSON text of an optional value about to be stored (`None` stays SQL `NULL`).
pub fn opt_to_json<T: Serialize + ?Sized>(
    what: &'static str,
    value: Option<&T>,
) -> Result<Option<String>, StoreError> {
    value.map(|v| to_json(what, v)).transpose()
}

/// An unsigned counter in a signed 64-bit column; [`StoreError::Invalid`] beyond `i64::MAX`.
pub fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| invalid(field, format!("is too large to store ({value})")))
}

/// [`StoreError::NotFound`] of `entity` when a keyed write changed no row.
pub fn found(changed: u64, entity: &'static str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::not_found(entity))
    } else {
        Ok(())
    }
}

/// Why a conditional debit (`prompts_used + amount <= limit`, in SQL) changed no row, given the
/// user's `prompts_used` read after it: [`StoreError::NotFound`] for an unknown user,
/// [`StoreError::QuotaExceeded`] with the figures otherwise.
pub fn debit_refused(debit: QuotaDebit, used: Option<u32>) -> StoreError {
    match used {
        None => StoreError::not_found("user"),
        Some(used) => StoreError::quota_exceeded(debit, used),
    }
}
