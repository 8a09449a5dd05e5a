//! A test store: `MemoryStore` plus call counters and outage switches. Everything but the
//! API-key and session methods, `get_user`, `claim` and `queue_stats` is delegated unchanged.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::model::*;
use crate::store::memory::MemoryStore;
use crate::store::*;

#[derive(Debug, Default)]
pub(crate) struct TestStore {
    inner: MemoryStore,
    /// Key lookups: `find_api_key` and `find_api_key_for_auth`.
    pub(crate) finds: AtomicUsize,
    pub(crate) user_reads: AtomicUsize,
    /// Session lookups: `find_session_for_auth`.
    pub(crate) session_finds: AtomicUsize,
    pub(crate) touches: Mutex<Vec<Vec<(ApiKeyId, Timestamp)>>>,
    pub(crate) down: AtomicBool,
    /// Fails `claim` and `queue_stats`, as a job queue whose database is down would.
    pub(crate) queue_down: AtomicBool,
    /// Transient failures of delegated methods, by name: each call fails (retryably) while
    /// its method's count lasts.
    pub(crate) transient: Mutex<std::collections::HashMap<&'static str, usize>>,
}

impl TestStore {
    fn injected(&self, method: &'static str) -> Result<(), StoreError> {
        let mut transient = self
            .transient
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match transient.get_mut(method) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(StoreError::unavailable(std::io::Error::other(
                    "injected transient failure",
                )))
            }
            _ => Ok(()),
        }
    }

    fn outage(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "test outage",
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for TestStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.outage()?;
        self.inner.create_api_key(key).await
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.outage()?;
        self.inner.find_api_key(public_id).await
    }

    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.outage()?;
        self.inner.find_api_key_for_auth(public_id).await
    }

    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.outage()?;
        self.inner.list_api_keys(owner).await
    }

    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.outage()?;
        self.inner.revoke_api_key(owner, id, at).await
    }

    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.outage()?;
        self.inner.set_api_key_expiry(owner, id, expires_at).await
    }

    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        self.outage()?;
        self.touches.lock().unwrap().push(uses.to_vec());
        self.inner.touch_api_keys(uses).await
    }
}

#[async_trait]
impl SessionStore for TestStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.outage()?;
        self.inner.create_session(session).await
    }

    async fn find_session_for_auth(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionAuth>, StoreError> {
        self.session_finds.fetch_add(1, Ordering::SeqCst);
        self.outage()?;
        self.inner.find_session_for_auth(id).await
    }

    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.outage()?;
        self.inner.revoke_session(owner, id, at).await
    }

    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError> {
        self.outage()?;
        self.inner.revoke_user_sessions(owner, at).await
    }

    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.outage()?;
        self.inner.prune_sessions(before, limit).await
    }
}

macro_rules! delegate {
    ($trait:ident { $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $trait for TestStore {
            $(async fn $name(&self, $($arg: $ty),*) -> $ret {
                self.injected(stringify!($name))?;
                self.inner.$name($($arg),*).await
            })*
        }
    };
}

#[async_trait]
impl UserStore for TestStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.create_user(user).await
    }
    async fn get_user(&self, id: UserId) -> Result<User, StoreError> {
        self.user_reads.fetch_add(1, Ordering::SeqCst);
        self.outage()?;
        self.inner.get_user(id).await
    }
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.inner.find_user_by_email(email).await
    }
    async fn request_deletion(
        &self,
        id: UserId,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.request_deletion(id, at, purge_after).await
    }
    async fn cancel_deletion(&self, id: UserId, at: Timestamp) -> Result<bool, StoreError> {
        self.inner.cancel_deletion(id, at).await
    }
    async fn update_consents(
        &self,
        id: UserId,
        change: &ConsentChange,
        at: Timestamp,
    ) -> Result<Consents, StoreError> {
        self.inner.update_consents(id, change, at).await
    }
    async fn set_password_hash(
        &self,
        id: UserId,
        expected: &PasswordHash,
        new: &PasswordHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.set_password_hash(id, expected, new, at).await
    }
    async fn set_tier(
        &self,
        id: UserId,
        tier: PricingTier,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.set_tier(id, tier, at).await
    }
    async fn set_admin(&self, id: UserId, is_admin: bool, at: Timestamp) -> Result<(), StoreError> {
        self.inner.set_admin(id, is_admin, at).await
    }
    async fn put_email_verification_token(
        &self,
        token: &crate::model::EmailVerificationToken,
    ) -> Result<(), StoreError> {
        self.inner.put_email_verification_token(token).await
    }
    async fn redeem_email_verification_token(
        &self,
        token_hash: &crate::model::SecretDigest,
        now: Timestamp,
    ) -> Result<crate::model::EmailVerificationRedemption, StoreError> {
        self.inner
            .redeem_email_verification_token(token_hash, now)
            .await
    }
    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        self.inner.delete_user(id).await
    }
    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.inner.users_due_for_deletion(now, limit).await
    }
    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError> {
        self.inner.refund_quota(user, amount).await
    }
    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.reset_due_quotas(now).await
    }
    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError> {
        self.inner.get_brand_profile(owner).await
    }
    async fn put_brand_profile(&self, profile: &BrandProfile) -> Result<(), StoreError> {
        self.inner.put_brand_profile(profile).await
    }
}

delegate!(ExperimentStore {
    create_experiment(experiment: &Experiment, debit: QuotaDebit, job: &Job) -> Result<(), StoreError>;
    request_run(owner: UserId, id: ExperimentId, debit: QuotaDebit, job: &Job, now: Timestamp) -> Result<(), StoreError>;
    get_experiment(owner: UserId, id: ExperimentId) -> Result<Experiment, StoreError>;
    list_experiments(owner: UserId, query: &ExperimentQuery) -> Result<Page<Experiment, ExperimentCursor>, StoreError>;
    set_experiment_status(owner: UserId, id: ExperimentId, status: ExperimentStatus, now: Timestamp) -> Result<(), StoreError>;
    delete_experiment(owner: UserId, id: ExperimentId) -> Result<(), StoreError>;
    due_recurring(now: Timestamp, limit: u32) -> Result<Vec<Experiment>, StoreError>;
    claim_schedule(id: ExperimentId, expected: Timestamp, next: Option<Timestamp>, debit: QuotaDebit, job: &Job) -> Result<ScheduleClaim, StoreError>;
});

delegate!(RunStore {
    create_batch_run(run: &BatchRun) -> Result<(), StoreError>;
    get_batch_run(owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError>;
    list_batch_runs(owner: UserId, experiment: ExperimentId) -> Result<Vec<BatchRun>, StoreError>;
    update_batch_run(id: BatchRunId, update: &BatchRunUpdate) -> Result<(), StoreError>;
    record_iterations(iterations: &[Iteration]) -> Result<RecordOutcome, StoreError>;
    list_iterations(owner: UserId, run: BatchRunId, from_index: u32, limit: u32) -> Result<Vec<Iteration>, StoreError>;
    list_iterations_without_sources(owner: UserId, run: BatchRunId, from_index: u32, limit: u32) -> Result<Vec<Iteration>, StoreError>;
    recorded_indexes(run: BatchRunId) -> Result<Vec<u32>, StoreError>;
    dashboard(owner: UserId, trend_since: Timestamp) -> Result<DashboardStats, StoreError>;
    recent_completed_runs(owner: UserId, limit: u32) -> Result<Vec<BatchRun>, StoreError>;
    recent_trend_runs(owner: UserId, limit: u32) -> Result<Vec<TrendRun>, StoreError>;
    anonymize_iterations(tier: PricingTier, created_before: Timestamp, limit: u32, now: Timestamp) -> Result<u64, StoreError>;
    count_anonymizable(tier: PricingTier, created_before: Timestamp) -> Result<u64, StoreError>;
});

delegate!(AuditStore {
    append_audit(event: &NewAuditEvent) -> Result<AuditEvent, StoreError>;
    list_audit(query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError>;
    audit_range(from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;
    pseudonymize_actor(user: UserId, pseudonym: &str, now: Timestamp) -> Result<u64, StoreError>;
    audit_erasures(from_seq: u64, limit: u32) -> Result<Vec<AuditErasure>, StoreError>;
    put_audit_checkpoint(checkpoint: &AuditCheckpoint) -> Result<(), StoreError>;
    latest_audit_checkpoint() -> Result<Option<AuditCheckpoint>, StoreError>;
    audit_checkpoints(from_seq: u64, limit: u32) -> Result<Vec<AuditCheckpoint>, StoreError>;
    delete_audit_through(seq: u64) -> Result<u64, StoreError>;
    audit_bounds() -> Result<Option<(u64, u64)>, StoreError>;
});

impl TestStore {
    fn queue_outage(&self) -> Result<(), StoreError> {
        if self.queue_down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "test queue outage",
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for TestStore {
    async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        self.inner.enqueue(job).await
    }
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<Job>, StoreError> {
        self.queue_outage()?;
        self.inner.claim(worker, limit, lease, now).await
    }
    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.claim_job(id, worker, lease, now).await
    }
    async fn heartbeat(&self, lease: JobLease, until: Timestamp) -> Result<(), StoreError> {
        self.inner.heartbeat(lease, until).await
    }
    async fn complete(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        self.inner.complete(lease, now).await
    }
    async fn fail(
        &self,
        lease: JobLease,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<JobStatus, StoreError> {
        self.inner.fail(lease, error, retry_at, now).await
    }
    async fn release(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        self.inner.release(lease, now).await
    }
    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        self.inner.get_job(id).await
    }
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        self.queue_outage()?;
        self.inner.queue_stats(now).await
    }
    async fn prune_jobs(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.prune_jobs(before, limit).await
    }
}

delegate!(PromptSetStore {
    create_prompt_set(owner: UserId, first: &PromptSetVersion) -> Result<(), StoreError>;
    add_prompt_set_version(owner: UserId, next: &PromptSetVersion) -> Result<(), StoreError>;
    get_prompt_set(owner: UserId, id: PromptSetId) -> Result<PromptSet, StoreError>;
    get_prompt_set_version(owner: UserId, id: PromptSetId, version: u32) -> Result<PromptSetVersion, StoreError>;
    list_prompt_sets(owner: UserId) -> Result<Vec<PromptSet>, StoreError>;
    delete_prompt_set(owner: UserId, id: PromptSetId) -> Result<(), StoreError>;
});
#[async_trait]
impl AlertStore for TestStore {
    async fn record_alerts(&self, alerts: &[Alert]) -> Result<u32, StoreError> {
        self.inner.record_alerts(alerts).await
    }
    async fn list_alerts(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, StoreError> {
        self.inner.list_alerts(owner, query).await
    }
}
#[async_trait]
impl WebhookStore for TestStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        self.inner.create_webhook(endpoint, max_per_user).await
    }
    async fn list_webhooks(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.inner.list_webhooks(owner).await
    }
    async fn get_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, StoreError> {
        self.inner.get_webhook(owner, id).await
    }
    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<(), StoreError> {
        self.inner.delete_webhook(owner, id).await
    }
    async fn enqueue_deliveries(
        &self,
        deliveries: &[(WebhookDelivery, Job)],
    ) -> Result<(), StoreError> {
        self.inner.enqueue_deliveries(deliveries).await
    }
    async fn get_delivery(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, StoreError> {
        self.inner.get_delivery(owner, id).await
    }
    async fn record_delivery_attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<WebhookDelivery, StoreError> {
        self.inner.record_delivery_attempt(owner, id, attempt).await
    }
    async fn list_deliveries(
        &self,
        owner: UserId,
        endpoint: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, StoreError> {
        self.inner.list_deliveries(owner, endpoint, query).await
    }
}
