//! Row ↔ record conversion. Decoding validates everything on the way back: a value this build
//! does not understand (unknown enum text, malformed JSON, wrong storage class) is
//! [`StoreError::Invalid`], never a panic or a silent default.

use std::str::FromStr;

use echo_core::audit::{ChainFields, chain_hash_fields};
use echo_core::model::{
    ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, AuditLink, BatchRun, BatchRunMetrics,
    BrandProfile, Consents, Experiment, Iteration, Iterations, Job, NewAuditEvent, PasswordHash,
    QuotaUsage, Recurrence, SecretDigest, SessionRecord, Timestamp, User, ValidationError,
};
use echo_core::store::{ApiKeyAuth, SessionAuth, StoreError};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{SqlResultExt, SqliteStoreError, invalid};

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

    pub(crate) fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            other => Err(wrong_type(field, "an integer", other)),
        }
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
        match self.i64(field)? {
            0 => Ok(false),
            1 => Ok(true),
            i => Err(invalid(field, format!("is not a boolean ({i})"))),
        }
    }

    pub(crate) fn opt_f64(&mut self, field: &'static str) -> Result<Option<f64>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(f) => Ok(Some(f)),
            // Integral values survive as integers in columns without a REAL affinity.
            ValueRef::Integer(i) => Ok(Some(i as f64)),
            other => Err(wrong_type(field, "a number", other)),
        }
    }

    pub(crate) fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(field)?.map(str::to_owned))
    }

    /// Text borrowed from the row, for values used in place (hashed, compared).
    pub(crate) fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| invalid(field, "is not valid UTF-8")),
            other => Err(wrong_type(field, "text", other)),
        }
    }

    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, StoreError> {
        self.opt_str(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, StoreError> {
        self.opt_text(field)?.ok_or_else(|| null(field))
    }

    pub(crate) fn opt_blob<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<[u8; N]>, StoreError> {
        match self.next()? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => <[u8; N]>::try_from(bytes)
                .map(Some)
                .map_err(|_| invalid(field, format!("must be {N} bytes (got {})", bytes.len()))),
            other => Err(wrong_type(field, "a blob", other)),
        }
    }

    pub(crate) fn blob<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], StoreError> {
        self.opt_blob(field)?.ok_or_else(|| null(field))
    }

    /// A blob of any length.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, StoreError> {
        match self.next()? {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            ValueRef::Null => Err(null(field)),
            other => Err(wrong_type(field, "a blob", other)),
        }
    }

    pub(crate) fn id<T: From<Uuid>>(&mut self, field: &'static str) -> Result<T, StoreError> {
        Ok(T::from(Uuid::from_bytes(self.blob(field)?)))
    }

    pub(crate) fn opt_id<T: From<Uuid>>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.opt_blob(field)?.map(|b| T::from(Uuid::from_bytes(b))))
    }

    pub(crate) fn opt_ts(&mut self, field: &'static str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_i64(field)?
            .map(|micros| {
                Timestamp::from_unix_micros(micros)
                    .ok_or_else(|| invalid(field, format!("is not a valid instant ({micros})")))
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
        // Parsed from the borrowed text: no intermediate `String`.
        match self.next()? {
            ValueRef::Text(bytes) => Ok(std::str::from_utf8(bytes)
                .map_err(|_| invalid(field, "is not valid UTF-8"))?
                .parse()?),
            ValueRef::Null => Err(null(field)),
            other => Err(wrong_type(field, "text", other)),
        }
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(field)?
            .map(|s| {
                serde_json::from_str(&s).map_err(|e| invalid(field, format!("is not valid: {e}")))
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

fn wrong_type(field: &'static str, expected: &str, found: ValueRef<'_>) -> StoreError {
    invalid(
        field,
        format!("must be {expected}, found {}", found.data_type()),
    )
}

/// JSON text of a value about to be stored.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend(SqliteStoreError::Json(what, e)))
}

/// An unsigned counter in SQLite's signed 64-bit integer.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| invalid(field, format!("is too large to store ({value})")))
}

pub(crate) fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.unix_micros())
}

pub(crate) fn user(row: &Row<'_>) -> Result<User, StoreError> {
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

pub(crate) fn brand_profile(row: &Row<'_>) -> Result<BrandProfile, StoreError> {
    let mut c = Cols::new(row);
    Ok(BrandProfile {
        user_id: c.id("brand_profiles.user_id")?,
        brand: c.json("brand_profiles.brand")?,
        domain: c.opt_text("brand_profiles.domain")?,
        default_competitors: c.json("brand_profiles.default_competitors")?,
        updated_at: c.ts("brand_profiles.updated_at")?,
    })
}

pub(crate) fn api_key(row: &Row<'_>) -> Result<ApiKeyRecord, StoreError> {
    api_key_cols(&mut Cols::new(row))
}

/// A key (`queries::API_KEY_AUTH_BY_PUBLIC_ID`): its columns, then the owner's status.
pub(crate) fn api_key_auth(row: &Row<'_>) -> Result<ApiKeyAuth, StoreError> {
    let mut c = Cols::new(row);
    Ok(ApiKeyAuth {
        key: api_key_cols(&mut c)?,
        owner_active: c.bool("users.is_active")?,
        owner_tier: c.parse("users.pricing_tier")?,
    })
}

fn api_key_cols(c: &mut Cols<'_, '_>) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: c.id("api_keys.id")?,
        user_id: c.id("api_keys.user_id")?,
        name: c.parse("api_keys.name")?,
        public_id: c.text("api_keys.public_id")?,
        secret_hash: SecretDigest(c.blob("api_keys.secret_hash")?),
        is_active: c.bool("api_keys.is_active")?,
        created_at: c.ts("api_keys.created_at")?,
        last_used_at: c.opt_ts("api_keys.last_used_at")?,
        expires_at: c.opt_ts("api_keys.expires_at")?,
        revoked_at: c.opt_ts("api_keys.revoked_at")?,
    })
}

/// A session (`queries::SESSION_AUTH_BY_ID`): its columns, then the owner's flags.
pub(crate) fn session_auth(row: &Row<'_>) -> Result<SessionAuth, StoreError> {
    let mut c = Cols::new(row);
    Ok(SessionAuth {
        session: SessionRecord {
            id: c.id("sessions.id")?,
            user_id: c.id("sessions.user_id")?,
            secret_hash: SecretDigest(c.blob("sessions.secret_hash")?),
            created_at: c.ts("sessions.created_at")?,
            expires_at: c.ts("sessions.expires_at")?,
            revoked_at: c.opt_ts("sessions.revoked_at")?,
        },
        owner_active: c.bool("users.is_active")?,
        owner_is_admin: c.bool("users.is_admin")?,
        owner_tier: c.parse("users.pricing_tier")?,
    })
}

pub(crate) fn experiment(row: &Row<'_>) -> Result<Experiment, StoreError> {
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

pub(crate) fn batch_run(row: &Row<'_>) -> Result<BatchRun, StoreError> {
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

pub(crate) fn iteration(row: &Row<'_>) -> Result<Iteration, StoreError> {
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

pub(crate) fn job(row: &Row<'_>) -> Result<Job, StoreError> {
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

pub(crate) fn audit_event(row: &Row<'_>) -> Result<AuditEvent, StoreError> {
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
        prev_hash: c.blob("audit_events.prev_hash")?,
        hash: c.blob("audit_events.hash")?,
        actor_pseudonym: c.opt_text("audit_events.actor_pseudonym")?,
    })
}

/// The chain link of an `audit_columns!()` row, hashed from the row's bytes in place: the
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

pub(crate) fn audit_erasure(row: &Row<'_>) -> Result<AuditErasure, StoreError> {
    let mut c = Cols::new(row);
    Ok(AuditErasure {
        seq: c.u64("audit_erasures.seq")?,
        erased_at: c.ts("audit_erasures.erased_at")?,
        pseudonym: c.text("audit_erasures.pseudonym")?,
    })
}

pub(crate) fn audit_checkpoint(row: &Row<'_>) -> Result<AuditCheckpoint, StoreError> {
    let mut c = Cols::new(row);
    Ok(AuditCheckpoint {
        seq: c.u64("audit_checkpoints.seq")?,
        head_hash: c.blob("audit_checkpoints.head_hash")?,
        created_at: c.ts("audit_checkpoints.created_at")?,
        signature: c.bytes("audit_checkpoints.signature")?,
    })
}
