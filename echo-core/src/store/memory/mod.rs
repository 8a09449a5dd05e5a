//! An in-memory [`Store`](super::Store) with the full semantics of a real backend.
//!
//! Every call takes one lock over the whole state and checks everything before it changes
//! anything, which gives each call the all-or-nothing behaviour of a serializable transaction.
//! It is meant for doctests, unit tests and embedders' own tests, and it is the first target of
//! the conformance suite; nothing is persisted.

mod alerts;
mod audit;
mod experiments;
mod jobs;
mod keys;
mod prompt_sets;
mod runs;
mod sessions;
mod users;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::StoreError;
use crate::model::{
    Alert, AlertId, ApiKeyId, ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, BatchRun,
    BatchRunId, BrandProfile, EmailVerificationToken, Experiment, ExperimentId, Iteration,
    IterationId, Job, JobId, PromptSet, PromptSetId, PromptSetVersion, SessionId, SessionRecord,
    User, UserId, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookId,
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
    /// Pending email-verification tokens by digest (at most one per user).
    verification_tokens: HashMap<[u8; 32], EmailVerificationToken>,
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
    prompt_sets: HashMap<PromptSetId, PromptSet>,
    prompt_set_versions: BTreeMap<(PromptSetId, u32), PromptSetVersion>,
    /// By id, so a reverse walk lists newest first.
    alerts: BTreeMap<AlertId, Alert>,
    webhooks: BTreeMap<WebhookId, WebhookEndpoint>,
    /// By id, so a reverse walk lists newest first.
    deliveries: BTreeMap<WebhookDeliveryId, WebhookDelivery>,
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
    fn owned_experiment(&self, owner: UserId, id: ExperimentId) -> Result<&Experiment, StoreError> {
        self.experiments
            .get(&id)
            .filter(|e| e.user_id == owner)
            .ok_or(StoreError::not_found("experiment"))
    }

    fn check_new_job(&self, job: &Job) -> Result<(), StoreError> {
        if self.jobs.contains_key(&job.id) {
            return Err(StoreError::conflict("a job with this id already exists"));
        }
        Ok(())
    }

    fn remove_prompt_set(&mut self, id: PromptSetId) {
        self.prompt_sets.remove(&id);
        self.prompt_set_versions.retain(|(set, _), _| *set != id);
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
        self.alerts.retain(|_, a| a.experiment_id != id);
    }
}
