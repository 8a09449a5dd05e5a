//! An in-memory [`Store`](super::Store) with the full semantics of a real backend.
//!
//! Every call takes one lock over the whole state and checks everything before it changes
//! anything, which gives each call the all-or-nothing behaviour of a serializable transaction.
//! It is meant for doctests, unit tests and embedders' own tests, and it is the first target of
//! the conformance suite; nothing is persisted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    ApiKeyAuth, ApiKeyStore, AuditQuery, AuditStore, DashboardStats, ExperimentCursor,
    ExperimentQuery, ExperimentStore, JobQueue, Page, QueueStats, RunGroup, RunStore,
    ScheduleClaim, SessionAuth, SessionStore, StoreError, TrendPoint, UserStore, lease_expiry,
};
use crate::audit::{GENESIS_HASH, chain_hash};
use crate::model::{
    ApiKeyId, ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, BatchRun, BatchRunId,
    BatchRunStatus, BatchRunUpdate, BrandProfile, Email, Experiment, ExperimentId,
    ExperimentStatus, Iteration, IterationId, Job, JobId, JobLease, JobStatus, NewAuditEvent,
    PricingTier, ProviderKind, QuotaDebit, RecordOutcome, SessionId, SessionRecord, Timestamp,
    User, UserId, ValidationError,
};

/// The in-memory store. Cheap to create; share it as `Arc<DynStore>`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    user_by_email: HashMap<String, UserId>,
    profiles: HashMap<UserId, BrandProfile>,
    api_keys: HashMap<ApiKeyId, ApiKeyRecord>,
    key_by_public_id: HashMap<String, ApiKeyId>,
    sessions: HashMap<SessionId, SessionRecord>,
    experiments: HashMap<ExperimentId, Experiment>,
    runs: HashMap<BatchRunId, BatchRun>,
    iterations: BTreeMap<(BatchRunId, u32), Iteration>,
    /// Where each stored iteration id lives: ids are unique across runs, as a primary key is.
    iteration_slots: HashMap<IterationId, (BatchRunId, u32)>,
    /// Ascending by `seq`; the oldest may have been deleted after archiving.
    audit: Vec<AuditEvent>,
    /// The last appended `(seq, hash)`, kept apart from `audit` so the chain survives the
    /// deletion of its head event. `None` before the first append.
    audit_head: Option<(u64, [u8; 32])>,
    audit_erasures: BTreeMap<u64, AuditErasure>,
    audit_checkpoints: BTreeMap<u64, AuditCheckpoint>,
    jobs: HashMap<JobId, Job>,
}

#[derive(Debug, thiserror::Error)]
#[error("in-memory store lock poisoned by a panicking caller")]
struct Poisoned;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::backend(Poisoned))
    }
}

impl State {
    /// The owner's key `id`; NotFound for another user's or an unknown key.
    fn owned_key_mut(
        &mut self,
        owner: UserId,
        id: ApiKeyId,
    ) -> Result<&mut ApiKeyRecord, StoreError> {
        self.api_keys
            .get_mut(&id)
            .filter(|k| k.user_id == owner)
            .ok_or(StoreError::not_found("API key"))
    }

    fn owned_experiment(&self, owner: UserId, id: ExperimentId) -> Result<&Experiment, StoreError> {
        self.experiments
            .get(&id)
            .filter(|e| e.user_id == owner)
            .ok_or(StoreError::not_found("experiment"))
    }

    fn owned_run(&self, owner: UserId, id: BatchRunId) -> Result<&BatchRun, StoreError> {
        self.runs
            .get(&id)
            .filter(|r| {
                self.experiments
                    .get(&r.experiment_id)
                    .is_some_and(|e| e.user_id == owner)
            })
            .ok_or(StoreError::not_found("batch run"))
    }

    /// Checks a debit without applying it, so callers can validate every step first.
    fn check_debit(&self, debit: QuotaDebit, owner: UserId) -> Result<(), StoreError> {
        if debit.user_id != owner {
            return Err(
                ValidationError::new("quota debit", "must be for the experiment's owner").into(),
            );
        }
        let user = self
            .users
            .get(&owner)
            .ok_or(StoreError::not_found("user"))?;
        let used = user.quota.prompts_used;
        if u64::from(used) + u64::from(debit.amount) > u64::from(debit.limit) {
            return Err(StoreError::QuotaExceeded {
                used,
                requested: debit.amount,
                limit: debit.limit,
            });
        }
        Ok(())
    }

    fn apply_debit(&mut self, debit: QuotaDebit) {
        if let Some(user) = self.users.get_mut(&debit.user_id) {
            user.quota.prompts_used = user.quota.prompts_used.saturating_add(debit.amount);
        }
    }

    fn check_new_job(&self, job: &Job) -> Result<(), StoreError> {
        if self.jobs.contains_key(&job.id) {
            return Err(StoreError::conflict("a job with this id already exists"));
        }
        Ok(())
    }

    fn held_job(&mut self, lease: JobLease) -> Result<&mut Job, StoreError> {
        self.jobs
            .get_mut(&lease.job_id)
            .filter(|j| j.status == JobStatus::Running && j.lease_token == lease.token)
            .ok_or(StoreError::LeaseLost)
    }

    /// Claims a claimable job, or fails it when its lease expired on the last attempt.
    fn claim_one(
        &mut self,
        id: JobId,
        worker: &str,
        expires: Timestamp,
        now: Timestamp,
    ) -> Option<Job> {
        let job = self.jobs.get_mut(&id)?;
        if job.status == JobStatus::Running && job.attempts >= job.max_attempts {
            job.status = JobStatus::Failed;
            job.last_error = Some("lease expired on the final attempt".to_owned());
            job.updated_at = now;
            clear_lease(job);
            return None;
        }
        job.status = JobStatus::Running;
        job.attempts += 1;
        job.lease_token += 1;
        job.lease_owner = Some(worker.to_owned());
        job.lease_expires_at = Some(expires);
        job.updated_at = now;
        Some(job.clone())
    }

    /// The tier of the owner of `run`'s experiment, if all three exist.
    fn run_owner_tier(&self, run: BatchRunId) -> Option<PricingTier> {
        let experiment = self.experiments.get(&self.runs.get(&run)?.experiment_id)?;
        Some(self.users.get(&experiment.user_id)?.tier)
    }

    /// Keys of the iterations `anonymize_iterations` may change, newest first (the order of
    /// the SQL backends).
    fn anonymizable(&self, tier: PricingTier, created_before: Timestamp) -> Vec<(BatchRunId, u32)> {
        let mut found: Vec<(Timestamp, IterationId, (BatchRunId, u32))> = self
            .iterations
            .iter()
            .filter(|(_, it)| !it.is_anonymized && it.created_at < created_before)
            .filter(|(_, it)| self.run_owner_tier(it.batch_run_id) == Some(tier))
            .map(|(key, it)| (it.created_at, it.id, *key))
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().map(|(_, _, key)| key).collect()
    }

    fn remove_experiment_cascade(&mut self, id: ExperimentId) {
        self.experiments.remove(&id);
        let runs: Vec<BatchRunId> = self
            .runs
            .values()
            .filter(|r| r.experiment_id == id)
            .map(|r| r.id)
            .collect();
        for run in runs {
            self.runs.remove(&run);
            self.iterations.retain(|(r, _), _| *r != run);
            self.iteration_slots.retain(|_, (r, _)| *r != run);
        }
    }
}

/// Whether a job's payload names the user whose id's canonical text is `user`, the way
/// `delete_user` documents: a top-level `"user_id"` equal to it.
fn payload_names_user(job: &Job, user: &str) -> bool {
    job.payload
        .get("user_id")
        .and_then(serde_json::Value::as_str)
        == Some(user)
}

fn is_claimable(job: &Job, now: Timestamp) -> bool {
    match job.status {
        JobStatus::Queued => job.run_at <= now,
        JobStatus::Running => job.lease_expires_at.is_some_and(|t| t <= now),
        _ => false,
    }
}

fn clear_lease(job: &mut Job) {
    job.lease_owner = None;
    job.lease_expires_at = None;
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.user_by_email.contains_key(user.email.as_str()) {
            return Err(StoreError::conflict("email is already registered"));
        }
        if s.users.contains_key(&user.id) {
            return Err(StoreError::conflict("user id already exists"));
        }
        s.user_by_email
            .insert(user.email.as_str().to_owned(), user.id);
        s.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<User, StoreError> {
        self.state()?
            .users
            .get(&id)
            .cloned()
            .ok_or(StoreError::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let s = self.state()?;
        Ok(s.user_by_email
            .get(email.as_str())
            .and_then(|id| s.users.get(id))
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let old_email = match s.users.get(&user.id) {
            Some(old) => old.email.clone(),
            None => return Err(StoreError::not_found("user")),
        };
        if old_email != user.email {
            if s.user_by_email.contains_key(user.email.as_str()) {
                return Err(StoreError::conflict("email is already registered"));
            }
            s.user_by_email.remove(old_email.as_str());
            s.user_by_email
                .insert(user.email.as_str().to_owned(), user.id);
        }
        if let Some(stored) = s.users.get_mut(&user.id) {
            let (quota, created_at) = (stored.quota, stored.created_at);
            *stored = user.clone();
            stored.quota = quota;
            stored.created_at = created_at;
        }
        Ok(())
    }

    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let user = s.users.remove(&id).ok_or(StoreError::not_found("user"))?;
        s.user_by_email.remove(user.email.as_str());
        s.profiles.remove(&id);
        let keys: Vec<ApiKeyRecord> = s
            .api_keys
            .values()
            .filter(|k| k.user_id == id)
            .cloned()
            .collect();
        for key in keys {
            s.api_keys.remove(&key.id);
            s.key_by_public_id.remove(&key.public_id);
        }
        s.sessions.retain(|_, session| session.user_id != id);
        let experiments: Vec<ExperimentId> = s
            .experiments
            .values()
            .filter(|e| e.user_id == id)
            .map(|e| e.id)
            .collect();
        for experiment in experiments {
            s.remove_experiment_cascade(experiment);
        }
        let name = id.to_string();
        s.jobs.retain(|_, job| !payload_names_user(job, &name));
        Ok(())
    }

    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let s = self.state()?;
        let mut due: Vec<(Timestamp, UserId)> = s
            .users
            .values()
            .filter(|u| !u.is_active)
            .filter_map(|u| Some((u.scheduled_deletion_at.filter(|at| *at <= now)?, u.id)))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }

    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let user = s
            .users
            .get_mut(&user)
            .ok_or(StoreError::not_found("user"))?;
        user.quota.prompts_used = user.quota.prompts_used.saturating_sub(amount);
        Ok(())
    }

    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut reset = 0;
        for user in s.users.values_mut().filter(|u| u.quota.resets_at <= now) {
            user.quota.resets_at = user.quota.next_reset_after(now);
            user.quota.prompts_used = 0;
            reset += 1;
        }
        Ok(reset)
    }

    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError> {
        self.state()?
            .profiles
            .get(&owner)
            .cloned()
            .ok_or(StoreError::not_found("brand profile"))
    }

    async fn put_brand_profile(&self, profile: &BrandProfile) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&profile.user_id) {
            return Err(StoreError::not_found("user"));
        }
        s.profiles.insert(profile.user_id, profile.clone());
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&key.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.key_by_public_id.contains_key(&key.public_id) || s.api_keys.contains_key(&key.id) {
            return Err(StoreError::conflict("API key id already exists"));
        }
        s.key_by_public_id.insert(key.public_id.clone(), key.id);
        s.api_keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let s = self.state()?;
        Ok(s.key_by_public_id
            .get(public_id)
            .and_then(|id| s.api_keys.get(id))
            .cloned())
    }

    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        let s = self.state()?;
        // An inner join, as in the SQL stores (keys are deleted with their owner anyway).
        Ok(s.key_by_public_id
            .get(public_id)
            .and_then(|id| s.api_keys.get(id))
            .and_then(|key| {
                let owner = s.users.get(&key.user_id)?;
                Some(ApiKeyAuth {
                    key: key.clone(),
                    owner_active: owner.is_active,
                    owner_tier: owner.tier,
                })
            }))
    }

    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let s = self.state()?;
        let mut keys: Vec<ApiKeyRecord> = s
            .api_keys
            .values()
            .filter(|k| k.user_id == owner)
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let key = s.owned_key_mut(owner, id)?;
        key.is_active = false;
        key.revoked_at.get_or_insert(at);
        Ok(())
    }

    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.state()?.owned_key_mut(owner, id)?.expires_at = expires_at;
        Ok(())
    }

    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for (id, at) in uses {
            if let Some(key) = s.api_keys.get_mut(id)
                && key.last_used_at.is_none_or(|prev| prev < *at)
            {
                key.last_used_at = Some(*at);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&session.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.sessions.contains_key(&session.id) {
            return Err(StoreError::conflict("session id already exists"));
        }
        s.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn find_session_for_auth(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionAuth>, StoreError> {
        let s = self.state()?;
        // An inner join, as in the SQL stores (sessions are deleted with their owner anyway).
        Ok(s.sessions.get(&id).and_then(|session| {
            let owner = s.users.get(&session.user_id)?;
            Some(SessionAuth {
                session: session.clone(),
                owner_active: owner.is_active,
                owner_is_admin: owner.is_admin,
                owner_tier: owner.tier,
            })
        }))
    }

    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let session = s
            .sessions
            .get_mut(&id)
            .filter(|session| session.user_id == owner)
            .ok_or(StoreError::not_found("session"))?;
        session.revoked_at.get_or_insert(at);
        Ok(())
    }

    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut revoked = 0;
        for session in s
            .sessions
            .values_mut()
            .filter(|session| session.user_id == owner && session.revoked_at.is_none())
        {
            session.revoked_at = Some(at);
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let prunable: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|session| {
                session.expires_at < before || session.revoked_at.is_some_and(|at| at < before)
            })
            .map(|session| session.id)
            .take(limit as usize)
            .collect();
        for id in &prunable {
            s.sessions.remove(id);
        }
        Ok(prunable.len() as u64)
    }
}

#[async_trait]
impl ExperimentStore for MemoryStore {
    async fn create_experiment(
        &self,
        experiment: &Experiment,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if debit.user_id != experiment.user_id {
            return Err(
                ValidationError::new("quota debit", "must be for the experiment's owner").into(),
            );
        }
        if !s.users.contains_key(&experiment.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.experiments.contains_key(&experiment.id) {
            return Err(StoreError::conflict("experiment id already exists"));
        }
        s.check_new_job(job)?;
        s.check_debit(debit, experiment.user_id)?;
        s.apply_debit(debit);
        s.experiments.insert(experiment.id, experiment.clone());
        s.jobs.insert(job.id, job.clone());
        Ok(())
    }

    async fn request_run(
        &self,
        owner: UserId,
        id: ExperimentId,
        debit: QuotaDebit,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let status = s.owned_experiment(owner, id)?.status;
        if !status.can_rerun() {
            return Err(StoreError::conflict(format!("experiment is {status}")));
        }
        s.check_new_job(job)?;
        s.check_debit(debit, owner)?;
        s.apply_debit(debit);
        if let Some(e) = s.experiments.get_mut(&id) {
            e.status = ExperimentStatus::Queued;
            e.updated_at = now;
        }
        s.jobs.insert(job.id, job.clone());
        Ok(())
    }

    async fn get_experiment(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, StoreError> {
        self.state()?.owned_experiment(owner, id).cloned()
    }

    async fn list_experiments(
        &self,
        owner: UserId,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment, ExperimentCursor>, StoreError> {
        let s = self.state()?;
        let mut rows: Vec<&Experiment> = s
            .experiments
            .values()
            .filter(|e| e.user_id == owner)
            .filter(|e| query.status.is_none_or(|st| e.status == st))
            .filter(|e| {
                query
                    .after
                    .is_none_or(|c| (e.created_at, e.id) < (c.created_at, c.id))
            })
            .collect();
        rows.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
        let limit = query.limit.get() as usize;
        let items = rows.into_iter().take(limit + 1).cloned().collect();
        Ok(Page::from_overfetch(items, limit, ExperimentCursor::after))
    }

    async fn set_experiment_status(
        &self,
        owner: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.owned_experiment(owner, id)?;
        if let Some(e) = s.experiments.get_mut(&id) {
            e.status = status;
            e.updated_at = now;
        }
        Ok(())
    }

    async fn delete_experiment(&self, owner: UserId, id: ExperimentId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.owned_experiment(owner, id)?;
        s.remove_experiment_cascade(id);
        Ok(())
    }

    async fn due_recurring(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Experiment>, StoreError> {
        let s = self.state()?;
        let mut due: Vec<(Timestamp, &Experiment)> = s
            .experiments
            .values()
            .filter(|e| e.status != ExperimentStatus::Cancelled)
            .filter_map(|e| {
                let next = e.recurrence.as_ref()?.next_run_at?;
                (next <= now).then_some((next, e))
            })
            .collect();
        due.sort_by_key(|(next, e)| (*next, e.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn claim_schedule(
        &self,
        id: ExperimentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<ScheduleClaim, StoreError> {
        let mut s = self.state()?;
        let Some(experiment) = s.experiments.get(&id) else {
            return Ok(ScheduleClaim::Lost);
        };
        let still_due = experiment.status != ExperimentStatus::Cancelled
            && experiment
                .recurrence
                .as_ref()
                .is_some_and(|r| r.next_run_at == Some(expected));
        if !still_due {
            return Ok(ScheduleClaim::Lost);
        }
        let owner = experiment.user_id;
        s.check_new_job(job)?;
        let outcome = match s.check_debit(debit, owner) {
            Ok(()) => ScheduleClaim::Enqueued,
            Err(StoreError::QuotaExceeded { .. }) => ScheduleClaim::SkippedOverQuota,
            Err(e) => return Err(e),
        };
        if outcome == ScheduleClaim::Enqueued {
            s.apply_debit(debit);
            s.jobs.insert(job.id, job.clone());
        }
        if let Some(e) = s.experiments.get_mut(&id) {
            if let Some(r) = e.recurrence.as_mut() {
                r.next_run_at = next;
            }
            if outcome == ScheduleClaim::Enqueued {
                e.status = ExperimentStatus::Queued;
            }
            e.updated_at = job.created_at;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.experiments.contains_key(&run.experiment_id) {
            return Err(StoreError::not_found("experiment"));
        }
        if s.runs.contains_key(&run.id) {
            return Err(StoreError::conflict("batch run id already exists"));
        }
        s.runs.insert(run.id, run.clone());
        Ok(())
    }

    async fn get_batch_run(&self, owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError> {
        self.state()?.owned_run(owner, id).cloned()
    }

    async fn list_batch_runs(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<Vec<BatchRun>, StoreError> {
        let s = self.state()?;
        s.owned_experiment(owner, experiment)?;
        let mut runs: Vec<BatchRun> = s
            .runs
            .values()
            .filter(|r| r.experiment_id == experiment)
            .cloned()
            .collect();
        runs.sort_by_key(|r| (r.created_at, r.id));
        Ok(runs)
    }

    async fn update_batch_run(
        &self,
        id: BatchRunId,
        update: &BatchRunUpdate,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let run = s
            .runs
            .get_mut(&id)
            .ok_or(StoreError::not_found("batch run"))?;
        run.status = update.status;
        run.metrics.clone_from(&update.metrics);
        run.visibility_rate = update.visibility_rate;
        run.cost_micros_usd = update.cost_micros_usd;
        run.error.clone_from(&update.error);
        run.started_at = update.started_at;
        run.completed_at = update.completed_at;
        Ok(())
    }

    async fn record_iterations(
        &self,
        iterations: &[Iteration],
    ) -> Result<RecordOutcome, StoreError> {
        let mut s = self.state()?;
        if iterations
            .iter()
            .any(|it| !s.runs.contains_key(&it.batch_run_id))
        {
            return Err(StoreError::not_found("batch run"));
        }
        let mut claimed: HashMap<IterationId, (BatchRunId, u32)> = HashMap::new();
        for it in iterations {
            let key = (it.batch_run_id, it.index);
            if s.iterations.contains_key(&key) {
                continue;
            }
            let slot = claimed.entry(it.id).or_insert(key);
            if *slot != key || s.iteration_slots.get(&it.id).is_some_and(|k| *k != key) {
                return Err(StoreError::conflict("iteration id already exists"));
            }
        }
        let mut outcome = RecordOutcome::default();
        for it in iterations {
            let key = (it.batch_run_id, it.index);
            if s.iterations.contains_key(&key) {
                outcome.duplicates += 1;
                continue;
            }
            s.iterations.insert(key, it.clone());
            s.iteration_slots.insert(it.id, key);
            if let Some(run) = s.runs.get_mut(&it.batch_run_id) {
                run.iterations_recorded += 1;
                run.iterations_succeeded += u32::from(it.is_success);
                run.input_tokens += u64::from(it.input_tokens);
                run.output_tokens += u64::from(it.output_tokens);
            }
            outcome.inserted += 1;
        }
        Ok(outcome)
    }

    async fn list_iterations(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError> {
        let s = self.state()?;
        s.owned_run(owner, run)?;
        Ok(s.iterations
            .range((run, from_index)..=(run, u32::MAX))
            .take(limit as usize)
            .map(|(_, it)| it.clone())
            .collect())
    }

    async fn recorded_indexes(&self, run: BatchRunId) -> Result<Vec<u32>, StoreError> {
        let s = self.state()?;
        Ok(s.iterations
            .range((run, 0)..=(run, u32::MAX))
            .map(|((_, index), _)| *index)
            .collect())
    }

    async fn dashboard(
        &self,
        owner: UserId,
        trend_since: Timestamp,
    ) -> Result<DashboardStats, StoreError> {
        let s = self.state()?;
        let mut by_status: BTreeMap<ExperimentStatus, u64> = BTreeMap::new();
        for e in s.experiments.values().filter(|e| e.user_id == owner) {
            *by_status.entry(e.status).or_default() += 1;
        }
        let mut groups: BTreeMap<(ProviderKind, BatchRunStatus), RunGroup> = BTreeMap::new();
        let mut days: BTreeMap<Timestamp, (u64, u64, f64)> = BTreeMap::new();
        let owned_runs = s.runs.values().filter(|r| {
            s.experiments
                .get(&r.experiment_id)
                .is_some_and(|e| e.user_id == owner)
        });
        for run in owned_runs {
            let g = groups
                .entry((run.provider, run.status))
                .or_insert(RunGroup {
                    provider: run.provider,
                    status: run.status,
                    recorded: 0,
                    succeeded: 0,
                    with_figure: 0,
                    visibility_sum: 0.0,
                });
            g.recorded += u64::from(run.iterations_recorded);
            g.succeeded += u64::from(run.iterations_succeeded);
            if let Some(v) = run.visibility_rate {
                g.with_figure += 1;
                g.visibility_sum += v;
            }
            if run.status != BatchRunStatus::Completed {
                continue;
            }
            if let Some(done) = run.completed_at.filter(|t| *t >= trend_since) {
                let d = days.entry(done.start_of_day()).or_default();
                d.0 += 1;
                if let Some(v) = run.visibility_rate {
                    d.1 += 1;
                    d.2 += v;
                }
            }
        }
        let trend = days
            .into_iter()
            .map(|(day, (runs, with_figure, sum))| TrendPoint {
                day,
                completed_runs: runs,
                mean_visibility: (with_figure > 0).then(|| sum / with_figure as f64),
            })
            .collect();
        Ok(DashboardStats::from_parts(
            by_status,
            groups.into_values(),
            trend,
        ))
    }

    async fn anonymize_iterations(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
        limit: u32,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let batch: Vec<(BatchRunId, u32)> = s
            .anonymizable(tier, created_before)
            .into_iter()
            .take(limit as usize)
            .collect();
        for key in &batch {
            if let Some(it) = s.iterations.get_mut(key) {
                it.raw_response = None;
                it.is_anonymized = true;
                it.anonymized_at = Some(now);
            }
        }
        Ok(batch.len() as u64)
    }

    async fn count_anonymizable(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(self.state()?.anonymizable(tier, created_before).len() as u64)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let mut s = self.state()?;
        let (prev_seq, prev_hash) = s.audit_head.unwrap_or((0, GENESIS_HASH));
        let seq = prev_seq + 1;
        let stored = AuditEvent {
            seq,
            event: event.clone(),
            actor_pseudonym: None,
            prev_hash,
            hash: chain_hash(&prev_hash, seq, event),
        };
        s.audit_head = Some((seq, stored.hash));
        s.audit.push(stored.clone());
        Ok(stored)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError> {
        let s = self.state()?;
        let limit = query.limit.get() as usize;
        let matches = |a: &&AuditEvent| {
            let e = &a.event;
            query.before_seq.is_none_or(|b| a.seq < b)
                && query
                    .actor_user_id
                    .is_none_or(|u| e.actor_user_id == Some(u))
                && query.action.as_ref().is_none_or(|x| &e.action == x)
                && query
                    .resource_type
                    .as_ref()
                    .is_none_or(|x| &e.resource_type == x)
                && query
                    .resource_id
                    .as_ref()
                    .is_none_or(|x| e.resource_id.as_ref() == Some(x))
                && query.from.is_none_or(|t| e.created_at >= t)
                && query.to.is_none_or(|t| e.created_at < t)
        };
        let items: Vec<AuditEvent> = s
            .audit
            .iter()
            .rev()
            .filter(matches)
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, limit, |a| a.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let s = self.state()?;
        Ok(s.audit
            .iter()
            .filter(|a| a.seq >= from_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn pseudonymize_actor(
        &self,
        user: UserId,
        pseudonym: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut guard = self.state()?;
        let s = &mut *guard;
        let mut erased = 0;
        for e in s
            .audit
            .iter_mut()
            .filter(|e| e.event.actor_user_id == Some(user))
        {
            e.event.actor_user_id = None;
            e.event.ip = None;
            e.event.user_agent = None;
            e.actor_pseudonym = Some(pseudonym.to_owned());
            s.audit_erasures.insert(
                e.seq,
                AuditErasure {
                    seq: e.seq,
                    erased_at: now,
                    pseudonym: pseudonym.to_owned(),
                },
            );
            erased += 1;
        }
        Ok(erased)
    }

    async fn audit_erasures(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditErasure>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_erasures
            .range(from_seq..)
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.audit_checkpoints.contains_key(&checkpoint.seq) {
            return Err(StoreError::conflict(
                "an audit checkpoint with this sequence number already exists",
            ));
        }
        s.audit_checkpoints
            .insert(checkpoint.seq, checkpoint.clone());
        Ok(())
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_checkpoints.values().next_back().cloned())
    }

    async fn audit_checkpoints(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_checkpoints
            .range(from_seq..)
            .take(limit as usize)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn delete_audit_through(&self, seq: u64) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        // `audit` is ascending, so the deleted events are a prefix.
        let end = s.audit.partition_point(|e| e.seq <= seq);
        s.audit.drain(..end);
        Ok(end as u64)
    }

    async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let s = self.state()?;
        Ok(s.audit
            .first()
            .zip(s.audit.last())
            .map(|(a, b)| (a.seq, b.seq)))
    }
}

#[async_trait]
impl JobQueue for MemoryStore {
    async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.check_new_job(job)?;
        s.jobs.insert(job.id, job.clone());
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<Job>, StoreError> {
        let expires = lease_expiry(now, lease)?;
        let mut s = self.state()?;
        let mut candidates: Vec<(Timestamp, JobId)> = s
            .jobs
            .values()
            .filter(|j| is_claimable(j, now))
            .map(|j| (j.run_at, j.id))
            .collect();
        candidates.sort();
        let mut claimed = Vec::new();
        for (_, id) in candidates {
            if claimed.len() >= limit as usize {
                break;
            }
            claimed.extend(s.claim_one(id, worker, expires, now));
        }
        Ok(claimed)
    }

    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let expires = lease_expiry(now, lease)?;
        let mut s = self.state()?;
        let claimable = s.jobs.get(&id).is_some_and(|j| is_claimable(j, now));
        Ok(if claimable {
            s.claim_one(id, worker, expires, now)
        } else {
            None
        })
    }

    async fn heartbeat(&self, lease: JobLease, until: Timestamp) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.held_job(lease)?.lease_expires_at = Some(until);
        Ok(())
    }

    async fn complete(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let job = s.held_job(lease)?;
        job.status = JobStatus::Succeeded;
        job.updated_at = now;
        clear_lease(job);
        Ok(())
    }

    async fn fail(
        &self,
        lease: JobLease,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<JobStatus, StoreError> {
        let mut s = self.state()?;
        let job = s.held_job(lease)?;
        job.last_error = Some(error.to_owned());
        job.updated_at = now;
        clear_lease(job);
        match retry_at {
            Some(at) if job.attempts < job.max_attempts => {
                job.status = JobStatus::Queued;
                job.run_at = at;
            }
            _ => job.status = JobStatus::Failed,
        }
        Ok(job.status)
    }

    async fn release(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let job = s.held_job(lease)?;
        job.status = JobStatus::Queued;
        job.run_at = now;
        job.attempts = job.attempts.saturating_sub(1);
        job.updated_at = now;
        clear_lease(job);
        Ok(())
    }

    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        self.state()?
            .jobs
            .get(&id)
            .cloned()
            .ok_or(StoreError::not_found("job"))
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        let s = self.state()?;
        let mut stats = QueueStats::default();
        for job in s.jobs.values() {
            match job.status {
                JobStatus::Queued if job.run_at <= now => stats.due += 1,
                JobStatus::Queued => stats.scheduled += 1,
                JobStatus::Running => stats.running += 1,
                JobStatus::Failed => stats.failed += 1,
                JobStatus::Succeeded | JobStatus::Cancelled => {}
            }
        }
        Ok(stats)
    }

    async fn prune_jobs(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut old: Vec<(Timestamp, JobId)> = s
            .jobs
            .values()
            .filter(|j| j.status.is_final() && j.updated_at < before)
            .map(|j| (j.updated_at, j.id))
            .collect();
        old.sort();
        old.truncate(limit as usize);
        for (_, id) in &old {
            s.jobs.remove(id);
        }
        Ok(old.len() as u64)
    }
}
