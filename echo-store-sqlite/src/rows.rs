//! rusqlite rows as [`ColumnReader`]s: the record decoders themselves are echo-core's
//! ([`FromColumns`]), shared with the PostgreSQL store.

use echo_core::audit::{ChainFields, chain_hash_fields};
use echo_core::model::{AuditLink, Timestamp};
use echo_core::store::StoreError;
use echo_core::store::sql::{ColumnReader, FromColumns, invalid};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use crate::error::SqlResultExt;

/// Reads a row's columns in order, naming each for error messages.
pub(crate) struct Cols<'a, 'stmt> {
    row: &'a Row<'stmt>,
    at: usize,
}

impl<'a, 'stmt> Cols<'a, 'stmt> {
    pub(crate) fn new(row: &'a Row<'stmt>) -> Self {
        Self { row, at: 0 }
    }

    fn next(&mut self) -> Result<ValueRef<'a>, StoreError> {
        let value = self.row.get_ref(self.at).db()?;
        self.at += 1;
        Ok(value)
    }
}

impl<'a> ColumnReader<'a> for Cols<'a, '_> {
    fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            other => Err(wrong_type(field, "an integer", other)),
        }
    }

    fn opt_f64(&mut self, field: &'static str) -> Result<Option<f64>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(f) => Ok(Some(f)),
            // Integral values survive as integers in columns without a REAL affinity.
            ValueRef::Integer(i) => Ok(Some(i as f64)),
            other => Err(wrong_type(field, "a number", other)),
        }
    }

    fn opt_bool(&mut self, field: &'static str) -> Result<Option<bool>, StoreError> {
        self.opt_i64(field)?
            .map(|i| match i {
                0 => Ok(false),
                1 => Ok(true),
                i => Err(invalid(field, format!("is not a boolean ({i})"))),
            })
            .transpose()
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| invalid(field, "is not valid UTF-8")),
            other => Err(wrong_type(field, "text", other)),
        }
    }

    fn opt_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Ok(Some(bytes)),
            other => Err(wrong_type(field, "a blob", other)),
        }
    }

    /// UUIDs are stored as their 16 bytes.
    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.opt_blob(field)?.map(Uuid::from_bytes))
    }

    /// Instants are stored as microseconds since the Unix epoch.
    fn opt_ts(&mut self, field: &'static str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_i64(field)?
            .map(|micros| {
                Timestamp::from_unix_micros(micros)
                    .ok_or_else(|| invalid(field, format!("is not a valid instant ({micros})")))
            })
            .transpose()
    }
}

fn wrong_type(field: &'static str, expected: &str, found: ValueRef<'_>) -> StoreError {
    invalid(
        field,
        format!("must be {expected}, found {}", found.data_type()),
    )
}

/// A row decoded into its record by echo-core's decoder.
pub(crate) fn record<T: FromColumns>(row: &Row<'_>) -> Result<T, StoreError> {
    T::from_columns(&mut Cols::new(row))
}

pub(crate) fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.unix_micros())
}

/// The chain link of a `sql_columns!(audit)` row, hashed from the row's bytes in place: the
/// details are the JSON text `append_audit` stored (`serde_json::to_string` of the value, the
/// canonical form `chain_hash` prints), so nothing is parsed or allocated per row.
pub(crate) fn audit_link(row: &Row<'_>) -> Result<AuditLink, StoreError> {
    let mut c = Cols::new(row);
    let seq = c.u64("audit_events.seq")?;
    let actor = c.opt_blob::<16>("audit_events.actor_user_id")?;
    let action = c.str("audit_events.action")?;
    let resource_type = c.str("audit_events.resource_type")?;
    let resource_id = c.opt_str("audit_events.resource_id")?;
    let ip = c.opt_str("audit_events.ip")?;
    let user_agent = c.opt_str("audit_events.user_agent")?;
    let request_id = c.opt_str("audit_events.request_id")?;
    let details_json = c.str("audit_events.details")?;
    let created_at = c.ts("audit_events.created_at")?;
    let prev_hash = c.blob::<32>("audit_events.prev_hash")?;
    let hash = c.blob::<32>("audit_events.hash")?;
    let pseudonym = c.opt_str("audit_events.actor_pseudonym")?;
    let fields = ChainFields {
        actor_user_id: actor.as_ref(),
        action,
        resource_type,
        resource_id,
        ip,
        user_agent,
        request_id,
        details_json,
        created_at_micros: created_at.unix_micros(),
    };
    Ok(AuditLink {
        seq,
        prev_hash,
        hash,
        recomputed: chain_hash_fields(&prev_hash, seq, &fields),
        erased_shape: pseudonym.is_some()
            && actor.is_none()
            && ip.is_none()
            && user_agent.is_none(),
    })
}
