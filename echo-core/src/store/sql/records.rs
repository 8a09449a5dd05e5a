//! The record decoders. Decoding validates everything on the way back: a value this build
//! does not understand (unknown enum text, malformed JSON, an out-of-range number or instant)
//! is [`StoreError::Invalid`], never a panic or a silent default.

use std::collections::HashMap;

use super::{ColumnReader, FromColumns};
use crate::model::{
    ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, BatchRun, BatchRunMetrics,
    BrandProfile, Consents, Experiment, Iteration, IterationId, IterationSource, Iterations, Job,
    NewAuditEvent, PasswordHash, Precision, QuotaUsage, Recurrence, SecretDigest, SessionRecord,
    Timestamp, User,
};
use crate::store::{
    ApiKeyAuth, QueueStats, RunGroup, SessionAuth, StoreError, TrendBrand, TrendPoint, TrendRun,
};

impl FromColumns for User {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
            consents: Consents::from_columns(c)?,
            scheduled_deletion_at: c.opt_ts("users.scheduled_deletion_at")?,
            created_at: c.ts("users.created_at")?,
            updated_at: c.ts("users.updated_at")?,
            email_verification_required: c.bool("users.email_verification_required")?,
            email_verified_at: c.opt_ts("users.email_verified_at")?,
        })
    }
}

/// The four consent columns, in `sql_columns!(user)` order: the user decoder reads them
/// through this, and so does a store's consent update.
impl FromColumns for Consents {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(Consents {
            privacy_policy_version: c.opt_text("users.privacy_policy_version")?,
            privacy_policy_accepted_at: c.opt_ts("users.privacy_policy_accepted_at")?,
            data_processing_consent_at: c.opt_ts("users.data_processing_consent_at")?,
            marketing_consent_at: c.opt_ts("users.marketing_consent_at")?,
        })
    }
}

impl FromColumns for BrandProfile {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(BrandProfile {
            user_id: c.id("brand_profiles.user_id")?,
            brand: c.json("brand_profiles.brand")?,
            domain: c.opt_text("brand_profiles.domain")?,
            default_competitors: c.json("brand_profiles.default_competitors")?,
            updated_at: c.ts("brand_profiles.updated_at")?,
        })
    }
}

impl FromColumns for ApiKeyRecord {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
}

/// The key's columns (`api_key`), then the owner's `is_active` and `pricing_tier`.
impl FromColumns for ApiKeyAuth {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(ApiKeyAuth {
            key: ApiKeyRecord::from_columns(c)?,
            owner_active: c.bool("users.is_active")?,
            owner_tier: c.parse("users.pricing_tier")?,
        })
    }
}

/// The session's columns (`session`), then the owner's `is_active`, `is_admin` and
/// `pricing_tier`.
impl FromColumns for SessionAuth {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
}

impl FromColumns for Experiment {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
            prompt_set: c.opt_json("experiments.prompt_set")?,
            precision: c
                .opt_f64("experiments.precision")?
                .map(Precision::new)
                .transpose()?,
        })
    }
}

impl FromColumns for BatchRun {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
}

/// `id, experiment_id, provider, completed_at`, then the `brands` array of the run's metrics
/// JSON as text (SQL `NULL` without metrics): backends extract it in the query, so the rest
/// of the document never leaves the database.
impl FromColumns for TrendRun {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(TrendRun {
            id: c.id("batch_runs.id")?,
            experiment_id: c.id("batch_runs.experiment_id")?,
            provider: c.parse("batch_runs.provider")?,
            completed_at: c.ts("batch_runs.completed_at")?,
            brands: c
                .opt_str("batch_runs.metrics")?
                .map(|json| TrendBrand::decode_stored(json.as_bytes()))
                .unwrap_or_default(),
        })
    }
}

impl FromColumns for Iteration {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
            // Kept in their own table: each backend reads them for the page it returns.
            sources: Vec::new(),
        })
    }
}

/// One stored source and the iteration it belongs to, as decoded from the
/// `iteration_source` columns; [`attach_sources`] puts them on their iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// The iteration that cited it.
    pub iteration_id: IterationId,
    /// The source.
    pub source: IterationSource,
}

impl FromColumns for SourceRow {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(SourceRow {
            iteration_id: c.id("iteration_sources.iteration_id")?,
            source: IterationSource {
                position: c.u32("iteration_sources.position")?,
                url: c.text("iteration_sources.url")?,
                domain: c.text("iteration_sources.domain")?,
                title: c.opt_text("iteration_sources.title")?,
                spans: c.json("iteration_sources.spans")?,
            },
        })
    }
}

/// Puts each source row on its iteration in `page`, in the order the rows come (backends
/// read them by position). Rows of iterations not in the page are ignored.
pub fn attach_sources(page: &mut [Iteration], rows: Vec<SourceRow>) {
    let index: HashMap<IterationId, usize> =
        page.iter().enumerate().map(|(i, it)| (it.id, i)).collect();
    for row in rows {
        if let Some(it) = index.get(&row.iteration_id).and_then(|&i| page.get_mut(i)) {
            it.sources.push(row.source);
        }
    }
}

impl FromColumns for Job {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
}

impl FromColumns for AuditEvent {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
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
}

/// `seq, erased_at, pseudonym`.
impl FromColumns for AuditErasure {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(AuditErasure {
            seq: c.u64("audit_erasures.seq")?,
            erased_at: c.ts("audit_erasures.erased_at")?,
            pseudonym: c.text("audit_erasures.pseudonym")?,
        })
    }
}

impl FromColumns for AuditCheckpoint {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(AuditCheckpoint {
            seq: c.u64("audit_checkpoints.seq")?,
            head_hash: c.blob("audit_checkpoints.head_hash")?,
            created_at: c.ts("audit_checkpoints.created_at")?,
            signature: c.bytes("audit_checkpoints.signature")?.to_vec(),
        })
    }
}

/// A dashboard group: `provider, status`, then the sums of `iterations_recorded` and
/// `iterations_succeeded`, the count of runs with a visibility figure and the sum of those
/// figures (`NULL` read as 0).
impl FromColumns for RunGroup {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(RunGroup {
            provider: c.parse("batch_runs.provider")?,
            status: c.parse("batch_runs.status")?,
            recorded: c.u64("iterations recorded")?,
            succeeded: c.u64("iterations succeeded")?,
            with_figure: c.u64("runs with visibility")?,
            visibility_sum: c.opt_f64("visibility sum")?.unwrap_or(0.0),
        })
    }
}

/// The counts of due, scheduled, running and failed jobs.
impl FromColumns for QueueStats {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(QueueStats {
            due: c.u64("due jobs")?,
            scheduled: c.u64("scheduled jobs")?,
            running: c.u64("running jobs")?,
            failed: c.u64("failed jobs")?,
        })
    }
}

/// A day of the dashboard trend starting at `day` (each backend reads the day its own way),
/// from the columns after it: the runs completed, how many had a visibility figure and the sum
/// of those figures (`NULL` read as 0).
pub fn trend_point<'r>(
    day: Timestamp,
    c: &mut impl ColumnReader<'r>,
) -> Result<TrendPoint, StoreError> {
    let runs = c.u64("completed runs")?;
    let with_figure = c.u64("runs with visibility")?;
    let sum = c.opt_f64("visibility sum")?.unwrap_or(0.0);
    Ok(TrendPoint {
        day,
        completed_runs: runs,
        mean_visibility: (with_figure > 0).then(|| sum / with_figure as f64),
    })
}

impl FromColumns for crate::model::PromptSet {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(crate::model::PromptSet {
            id: c.id("prompt_sets.id")?,
            user_id: c.id("prompt_sets.user_id")?,
            name: c.parse("prompt_sets.name")?,
            latest_version: c.u32("prompt_sets.latest_version")?,
            created_at: c.ts("prompt_sets.created_at")?,
            updated_at: c.ts("prompt_sets.updated_at")?,
        })
    }
}

/// Validated on the way back too: a version that no longer passes is `Invalid`, not served.
impl FromColumns for crate::model::PromptSetVersion {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        let v = crate::model::PromptSetVersion {
            set_id: c.id("prompt_set_versions.set_id")?,
            version: c.u32("prompt_set_versions.version")?,
            name: c.parse("prompt_set_versions.name")?,
            prompts: c.json("prompt_set_versions.prompts")?,
            created_at: c.ts("prompt_set_versions.created_at")?,
        };
        v.validate()?;
        Ok(v)
    }
}
impl FromColumns for crate::model::Alert {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(crate::model::Alert {
            id: c.id("alerts.id")?,
            user_id: c.id("alerts.user_id")?,
            experiment_id: c.id("alerts.experiment_id")?,
            batch_run_id: c.id("alerts.batch_run_id")?,
            previous_run_id: c.id("alerts.previous_run_id")?,
            finding: c.json("alerts.finding")?,
            created_at: c.ts("alerts.created_at")?,
        })
    }
}

impl FromColumns for crate::model::WebhookEndpoint {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        // Columns are read in `sql_columns!(webhook)` order.
        let id = c.id("webhooks.id")?;
        let user_id = c.id("webhooks.user_id")?;
        let url = crate::model::WebhookUrl::from_stored(c.str("webhooks.url")?)
            .ok_or_else(|| super::invalid("webhooks.url", "is not a URL"))?;
        let description = c.text("webhooks.description")?;
        let secret = crate::webhook::WebhookSecret::from_stored(c.str("webhooks.secret")?)
            .ok_or_else(|| super::invalid("webhooks.secret", "is not a webhook secret"))?;
        Ok(crate::model::WebhookEndpoint {
            id,
            user_id,
            url,
            description,
            secret,
            created_at: c.ts("webhooks.created_at")?,
        })
    }
}

impl FromColumns for crate::model::WebhookDelivery {
    fn from_columns<'r>(c: &mut impl ColumnReader<'r>) -> Result<Self, StoreError> {
        Ok(crate::model::WebhookDelivery {
            id: c.id("webhook_deliveries.id")?,
            user_id: c.id("webhook_deliveries.user_id")?,
            endpoint_id: c.id("webhook_deliveries.endpoint_id")?,
            event: c.parse("webhook_deliveries.event")?,
            body: c.text("webhook_deliveries.body")?,
            status: c.parse("webhook_deliveries.status")?,
            attempts: c.u32("webhook_deliveries.attempts")?,
            response_status: c
                .opt_i64("webhook_deliveries.response_status")?
                .map(|s| {
                    u16::try_from(s).map_err(|_| {
                        super::invalid("webhook_deliveries.response_status", "is out of range")
                    })
                })
                .transpose()?,
            last_error: c.opt_text("webhook_deliveries.last_error")?,
            last_attempt_at: c.opt_ts("webhook_deliveries.last_attempt_at")?,
            next_attempt_at: c.opt_ts("webhook_deliveries.next_attempt_at")?,
            created_at: c.ts("webhook_deliveries.created_at")?,
        })
    }
}
