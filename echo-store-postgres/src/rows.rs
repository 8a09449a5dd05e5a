//! sqlx rows as [`ColumnReader`]s: the record decoders themselves are echo-core's
//! ([`FromColumns`]), shared with the SQLite store.

use echo_core::model::Timestamp;
use echo_core::store::StoreError;
use echo_core::store::sql::{ColumnReader, FromColumns, invalid, invalid_json};
use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::{Decode, Row, Type, TypeInfo};
use time::OffsetDateTime;
use uuid::Uuid;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` as PostgreSQL sends it: microseconds since 2000-01-01 UTC.
///
/// sqlx's own `OffsetDateTime` decoding adds the value to its epoch unchecked, which panics on
/// `infinity` or an instant outside `time`'s range; this keeps the raw count so the conversion
/// can fail as [`StoreError::Invalid`] instead.
struct RawTimestamp(i64);

impl Type<Postgres> for RawTimestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for RawTimestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => Ok(Self(<i64 as Decode<'r, Postgres>>::decode(value)?)),
            // Only the simple query protocol sends text, and rows are never read through it;
            // parsing text cannot overflow, so sqlx's decoder is safe there.
            PgValueFormat::Text => {
                let dt = <OffsetDateTime as Decode<'r, Postgres>>::decode(value)?;
                let micros = dt.unix_timestamp_nanos() / 1_000 - i128::from(PG_EPOCH_UNIX_MICROS);
                Ok(Self(i64::try_from(micros)?))
            }
        }
    }
}

/// A `json`/`jsonb` value's text, borrowed from the row, parsed later into the target type so
/// that a malformed or invalid value is reported with its field name.
struct RawJson<'r>(&'r [u8]);

impl Type<Postgres> for RawJson<'_> {
    fn type_info() -> PgTypeInfo {
        <serde_json::Value as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <serde_json::Value as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for RawJson<'r> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let jsonb = value.format() == PgValueFormat::Binary
            && sqlx::ValueRef::type_info(&value)
                .name()
                .eq_ignore_ascii_case("jsonb");
        let bytes = value.as_bytes()?;
        match (jsonb, bytes.split_first()) {
            // Binary jsonb is a version byte (1) followed by the JSON text.
            (true, Some((1, text))) => Ok(Self(text)),
            (true, _) => Err("unsupported jsonb format version".into()),
            (false, _) => Ok(Self(bytes)),
        }
    }
}

/// Reads a row's columns in order, naming each for error messages.
pub(crate) struct Cols<'a> {
    row: &'a PgRow,
    at: usize,
}

impl<'a> Cols<'a> {
    pub(crate) fn new(row: &'a PgRow) -> Self {
        Self { row, at: 0 }
    }

    fn next<T>(&mut self, field: &'static str) -> Result<T, StoreError>
    where
        T: Decode<'a, Postgres> + Type<Postgres>,
    {
        let at = self.at;
        self.at += 1;
        self.row
            .try_get::<T, _>(at)
            .map_err(|e| invalid(field, format!("cannot be decoded: {e}")))
    }
}

impl<'a> ColumnReader<'a> for Cols<'a> {
    fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, StoreError> {
        self.next(field)
    }

    fn opt_f64(&mut self, field: &'static str) -> Result<Option<f64>, StoreError> {
        self.next(field)
    }

    fn opt_bool(&mut self, field: &'static str) -> Result<Option<bool>, StoreError> {
        self.next(field)
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, StoreError> {
        self.next(field)
    }

    fn opt_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, StoreError> {
        self.next(field)
    }

    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>, StoreError> {
        self.next(field)
    }

    fn opt_ts(&mut self, field: &'static str) -> Result<Option<Timestamp>, StoreError> {
        self.next::<Option<RawTimestamp>>(field)?
            .map(|RawTimestamp(pg_micros)| {
                pg_micros
                    .checked_add(PG_EPOCH_UNIX_MICROS)
                    .and_then(Timestamp::from_unix_micros)
                    .ok_or_else(|| invalid(field, "is not a representable instant"))
            })
            .transpose()
    }

    /// `json` and `jsonb` columns, parsed from the bytes the server sent.
    fn opt_json<T: DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.next::<Option<RawJson<'a>>>(field)?
            .map(|RawJson(text)| serde_json::from_slice(text).map_err(|e| invalid_json(field, &e)))
            .transpose()
    }
}

/// A row decoded into its record by echo-core's decoder.
pub(crate) fn record<T: FromColumns>(row: &PgRow) -> Result<T, StoreError> {
    T::from_columns(&mut Cols::new(row))
}

/// The instant as sqlx binds it.
pub(crate) fn dt(t: Timestamp) -> OffsetDateTime {
    t.as_datetime()
}

pub(crate) fn opt_dt(t: Option<Timestamp>) -> Option<OffsetDateTime> {
    t.map(dt)
}
