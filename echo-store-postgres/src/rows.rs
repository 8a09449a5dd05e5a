//! Row ↔ record conversion. Decoding validates everything on the way back: a value this build
//! does not understand (unknown enum text, malformed JSON, an out-of-range number or instant)
//! is [`StoreError::Invalid`], never a panic or a silent default.

use std::str::FromStr;

use echo_core::model::{
    ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, BatchRun, BatchRunMetrics,
    BrandProfile, Consents, Experiment, Iteration, Iterations, Job, NewAuditEvent, PasswordHash,
    QuotaUsage, Recurrence, SecretDigest, SessionRecord, Timestamp, User, ValidationError,
};
use echo_core::store::{ApiKeyAuth, SessionAuth, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::{Decode, Row, Type, TypeInfo};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{PgStoreError, invalid};

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

    pub(crate) fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, StoreError> {
        self.next(field)
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, StoreError> {
        self.opt_i64(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, StoreError> {
        let i = self.i64(field)?;
        u32::try_from(i).map_err(|_| invalid(field, format!("is out of range ({i})")))
    }

    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, StoreError> {
        self.opt_i64(field)?
            .map(|i| u64::try_from(i).map_err(|_| invalid(field, format!("is out of range ({i})"))))
            .transpose()
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, StoreError> {
        self.opt_u64(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, StoreError> {
        self.next::<Option<bool>>(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn opt_f64(&mut self, field: &'static str) -> Result<Option<f64>, StoreError> {
        self.next(field)
    }

    pub(crate) fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, StoreError> {
        self.next(field)
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, StoreError> {
        self.opt_text(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn bytes<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], StoreError> {
        let bytes: Vec<u8> = self
            .next::<Option<Vec<u8>>>(field)?
            .ok_or_else(|| null(field))?;
        let len = bytes.len();
        <[u8; N]>::try_from(bytes)
            .map_err(|_| invalid(field, format!("must be {N} bytes (got {len})")))
    }

    /// A `bytea` of any length.
    pub(crate) fn byte_vec(&mut self, field: &'static str) -> Result<Vec<u8>, StoreError> {
        self.next::<Option<Vec<u8>>>(field)?
            .ok_or_else(|| null(field))
    }

    pub(crate) fn id<T: From<Uuid>>(&mut self, field: &'static str) -> Result<T, StoreError> {
        self.opt_id(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn opt_id<T: From<Uuid>>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.next::<Option<Uuid>>(field)?.map(T::from))
    }

    pub(crate) fn opt_ts(&mut self, field: &'static str) -> Result<Option<Timestamp>, StoreError> {
        self.next::<Option<RawTimestamp>>(field)?
            .map(|RawTimestamp(pg_micros)| {
                pg_micros
                    .checked_add(PG_EPOCH_UNIX_MICROS)
                    .and_then(Timestamp::from_unix_micros)
                    .ok_or_else(|| invalid(field, "is not a representable instant"))
            })
            .transpose()
    }

    pub(crate) fn ts(&mut self, field: &'static str) -> Result<Timestamp, StoreError> {
        self.opt_ts(field)?.ok_or_else(|| null(field))
    }

    /// Text parsed by the type's own validation (enums, validated newtypes).
    pub(crate) fn parse<T>(&mut self, field: &'static str) -> Result<T, StoreError>
    where
        T: FromStr<Err = ValidationError>,
    {
        Ok(self.text(field)?.parse()?)
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.next::<Option<RawJson<'a>>>(field)?
            .map(|RawJson(text)| {
                serde_json::from_slice(text)
                    .map_err(|e| invalid(field, format!("is not valid: {e}")))
            })
            .transpose()
    }

    pub(crate) fn json<T: DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<T, StoreError> {
        self.opt_json(field)?.ok_or_else(|| null(field))
    }
}

fn null(field: &'static str) -> StoreError {
    invalid(field, "is unexpectedly NULL")
}

/// JSON text of a value about to be stored (bound as text and cast to jsonb in SQL, which also
/// works inside arrays for the bulk statements).
pub(crate) fn to_json<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend(PgStoreError::Json(what, e)))
}

/// An unsigned counter in PostgreSQL's signed 64-bit `bigint`.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| invalid(field, format!("is too large to store ({value})")))
}

/// The instant as sqlx binds it.
pub(crate) fn dt(t: Timestamp) -> OffsetDateTime {
    t.as_datetime()
}

pub(crate) fn opt_dt(t: Option<Timestamp>) -> Option<OffsetDateTime> {
    t.map(dt)
}

pub(crate) fn user(row: &PgRow) -> Result<User, StoreError> {
    let mut c = Cols::new(row);
    Ok(User {
        id: c.id("users.id")?,
        email: c.parse("users.email")?,
        password_hash: PasswordHash::new(c.text("users.password_hash")?)?,
        tier: c.parse("users.pricing_tier")?,
        quota: QuotaUsage {
            prompts_used: c.u32("users.prompts_used")?,
            resets_at: c.ts("users.quota_reset_at")?,
        },
        is_active: c.bool("users.is_active")?,
        is_admin: c.bool("users.is_admin")?,
        consents: Consents {
            privacy_policy_version: c.opt_text("users.privacy_policy_version")?,
            privacy_policy_accepted_at: c.opt_ts("users.privacy_policy_accepted_at")?,
            data_processing_consent_at: c.opt_ts("users.data_processing_consent_at")?,
            marketing_consent_at: c.opt_ts("users.marketing_consent_at")?,
        },
        scheduled_deletion_at: c.opt_ts("users.scheduled_deletion_at")?,
        created_at: c.ts("users.created_at")?,
        updated_at: c.ts("users.updated_at")?,
    })
}

pub(crate) fn brand_profile(row: &PgRow) -> Result<BrandProfile, StoreError> {
    let mut c = Cols::new(row);
    Ok(BrandProfile {
        user_id: c.id("brand_profiles.user_id")?,
        brand: c.json("brand_profiles.brand")?,
        domain: c.opt_text("brand_profiles.domain")?,
        default_competitors: c.json("brand_profiles.default_competitors")?,
        updated_at: c.ts("brand_profiles.updated_at")?,
    })
}

pub(crate) fn api_key(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    api_key_cols(&mut Cols::new(row))
}

/// A key (`queries::API_KEY_AUTH_BY_PUBLIC_ID`): its columns, then the owner's status.
pub(crate) fn api_key_auth(row: &PgRow) -> Result<ApiKeyAuth, StoreError> {
    let mut c = Cols::new(row);
    Ok(ApiKeyAuth {
        key: api_key_cols(&mut c)?,
        owner_active: c.bool("users.is_active")?,
        owner_tier: c.parse("users.pricing_tier")?,
    })
}

fn api_key_cols(c: &mut Cols<'_>) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: c.id("api_keys.id")?,
        user_id: c.id("api_keys.user_id")?,
        name: c.parse("api_keys.name")?,
        public_id: c.text("api_keys.public_id")?,
        secret_hash: SecretDigest(c.bytes("api_keys.secret_hash")?),
        is_active: c.bool("api_keys.is_active")?,
        created_at: c.ts("api_keys.created_at")?,
        last_used_at: c.opt_ts("api_keys.last_used_at")?,
        expires_at: c.opt_ts("api_keys.expires_at")?,
        revoked_at: c.opt_ts("api_keys.revoked_at")?,
    })
}

/// A session (`queries::SESSION_AUTH_BY_ID`): its columns, then the owner's flags.
pub(crate) fn session_auth(row: &PgRow) -> Result<SessionAuth, StoreError> {
    let mut c = Cols::new(row);
    Ok(SessionAuth {
        session: SessionRecord {
            id: c.id("sessions.id")?,
            user_id: c.id("sessions.user_id")?,
            secret_hash: SecretDigest(c.bytes("sessions.secret_hash")?),
            created_at: c.ts("sessions.created_at")?,
            expires_at: c.ts("sessions.expires_at")?,
            revoked_at: c.opt_ts("sessions.revoked_at")?,
        },
        owner_active: c.bool("users.is_active")?,
        owner_is_admin: c.bool("users.is_admin")?,
        owner_tier: c.parse("users.pricing_tier")?,
    })
}

pub(crate) fn experiment(row: &PgRow) -> Result<Experiment, StoreError> {
    let mut c = Cols::new(row);
    let id = c.id("experiments.id")?;
    let user_id = c.id("experiments.user_id")?;
    let prompt = c.parse("experiments.prompt")?;
    let target = c.json("experiments.target")?;
    let competitors = c.json("experiments.competitors")?;
    let iterations = Iterations::new(c.u32("experiments.iterations")?)?;
    let providers = c.json("experiments.providers")?;
    let status = c.parse("experiments.status")?;
    let schedule = c.opt_text("experiments.schedule")?;
    let next_run_at = c.opt_ts("experiments.next_run_at")?;
    Ok(Experiment {
        id,
        user_id,
        prompt,
        target,
        competitors,
        iterations,
        providers,
        status,
        recurrence: schedule.map(|schedule| Recurrence {
            schedule,
            next_run_at,
        }),
        created_at: c.ts("experiments.created_at")?,
        updated_at: c.ts("experiments.updated_at")?,
    })
}

pub(crate) fn batch_run(row: &PgRow) -> Result<BatchRun, StoreError> {
    let mut c = Cols::new(row);
    Ok(BatchRun {
        id: c.id("batch_runs.id")?,
        experiment_id: c.id("batch_runs.experiment_id")?,
        provider: c.parse("batch_runs.provider")?,
        model: c.text("batch_runs.model")?,
        status: c.parse("batch_runs.status")?,
        iterations_planned: c.u32("batch_runs.iterations_planned")?,
        iterations_recorded: c.u32("batch_runs.iterations_recorded")?,
        iterations_succeeded: c.u32("batch_runs.iterations_succeeded")?,
        input_tokens: c.u64("batch_runs.input_tokens")?,
        output_tokens: c.u64("batch_runs.output_tokens")?,
        cost_micros_usd: c.u64("batch_runs.cost_micros_usd")?,
        metrics: c
            .opt_json("batch_runs.metrics")?
            .and_then(BatchRunMetrics::from_json),
        visibility_rate: c.opt_f64("batch_runs.visibility_rate")?,
        error: c.opt_text("batch_runs.error")?,
        created_at: c.ts("batch_runs.created_at")?,
        started_at: c.opt_ts("batch_runs.started_at")?,
        completed_at: c.opt_ts("batch_runs.completed_at")?,
    })
}

pub(crate) fn iteration(row: &PgRow) -> Result<Iteration, StoreError> {
    let mut c = Cols::new(row);
    Ok(Iteration {
        id: c.id("iterations.id")?,
        batch_run_id: c.id("iterations.batch_run_id")?,
        index: c.u32("iterations.idx")?,
        raw_response: c.opt_text("iterations.raw_response")?,
        mentions: c.opt_json("iterations.mentions")?,
        is_success: c.bool("iterations.is_success")?,
        error: c.opt_text("iterations.error")?,
        latency_ms: c.u32("iterations.latency_ms")?,
        input_tokens: c.u32("iterations.input_tokens")?,
        output_tokens: c.u32("iterations.output_tokens")?,
        created_at: c.ts("iterations.created_at")?,
        is_anonymized: c.bool("iterations.is_anonymized")?,
        anonymized_at: c.opt_ts("iterations.anonymized_at")?,
    })
}

pub(crate) fn job(row: &PgRow) -> Result<Job, StoreError> {
    let mut c = Cols::new(row);
    Ok(Job {
        id: c.id("jobs.id")?,
        kind: c.text("jobs.kind")?,
        payload: c.json("jobs.payload")?,
        status: c.parse("jobs.status")?,
        attempts: c.u32("jobs.attempts")?,
        max_attempts: c.u32("jobs.max_attempts")?,
        run_at: c.ts("jobs.run_at")?,
        lease_owner: c.opt_text("jobs.lease_owner")?,
        lease_expires_at: c.opt_ts("jobs.lease_expires_at")?,
        lease_token: c.u64("jobs.lease_token")?,
        last_error: c.opt_text("jobs.last_error")?,
        request_id: c.opt_text("jobs.request_id")?,
        created_at: c.ts("jobs.created_at")?,
        updated_at: c.ts("jobs.updated_at")?,
    })
}

pub(crate) fn audit_event(row: &PgRow) -> Result<AuditEvent, StoreError> {
    let mut c = Cols::new(row);
    Ok(AuditEvent {
        seq: c.u64("audit_events.seq")?,
        event: NewAuditEvent {
            actor_user_id: c.opt_id("audit_events.actor_user_id")?,
            action: c.text("audit_events.action")?,
            resource_type: c.text("audit_events.resource_type")?,
            resource_id: c.opt_text("audit_events.resource_id")?,
            ip: c.opt_text("audit_events.ip")?,
            user_agent: c.opt_text("audit_events.user_agent")?,
            request_id: c.opt_text("audit_events.request_id")?,
            details: c.json("audit_events.details")?,
            created_at: c.ts("audit_events.created_at")?,
        },
        prev_hash: c.bytes("audit_events.prev_hash")?,
        hash: c.bytes("audit_events.hash")?,
        actor_pseudonym: c.opt_text("audit_events.actor_pseudonym")?,
    })
}

pub(crate) fn audit_erasure(row: &PgRow) -> Result<AuditErasure, StoreError> {
    let mut c = Cols::new(row);
    Ok(AuditErasure {
        seq: c.u64("audit_erasures.seq")?,
        erased_at: c.ts("audit_erasures.erased_at")?,
        pseudonym: c.text("audit_erasures.pseudonym")?,
    })
}

pub(crate) fn audit_checkpoint(row: &PgRow) -> Result<AuditCheckpoint, StoreError> {
    let mut c = Cols::new(row);
    Ok(AuditCheckpoint {
        seq: c.u64("audit_checkpoints.seq")?,
        head_hash: c.bytes("audit_checkpoints.head_hash")?,
        created_at: c.ts("audit_checkpoints.created_at")?,
        signature: c.byte_vec("audit_checkpoints.signature")?,
    })
}
