//! Submit, re-run, cancel and delete experiments.

use std::sync::Arc;

use super::ServiceError;
use crate::model::{
    Brand, Experiment, ExperimentId, ExperimentStatus, Iterations, JobId, Precision, Prompt,
    ProviderConfig, ProviderKind, QuotaDebit, Recurrence, Timestamp, UserId,
};
use crate::runner::{CronSchedule, RunExperimentPayload};
use crate::store::{DynStore, ExperimentStore, UserStore};

/// What an owner asks for: an experiment without its bookkeeping (id, owner, status, times).
///
/// Defaults: [`Iterations::DEFAULT`] (50) iterations on the `simulated` provider (model `sim-1`, temperature 0.7), no
/// competitors, no schedule, no precision of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDraft {
    /// The prompt sent to every provider.
    pub prompt: Prompt,
    /// The brand being measured.
    pub target: Brand,
    /// Brands measured beside it (at most [`Experiment::MAX_COMPETITORS`]).
    pub competitors: Vec<Brand>,
    /// Samples per provider.
    pub iterations: Iterations,
    /// The providers and models asked; empty means the simulated provider.
    pub providers: Vec<ProviderConfig>,
    /// When set, the experiment also runs on this schedule.
    pub schedule: Option<CronSchedule>,
    /// Adaptive sampling's target (see [`Experiment::precision`]); `None` defers to the
    /// runner's configuration.
    pub precision: Option<Precision>,
}

impl ExperimentDraft {
    /// A draft measuring `target` in answers to `prompt`, with the defaults above.
    pub fn new(prompt: Prompt, target: Brand) -> Self {
        Self {
            prompt,
            target,
            competitors: Vec::new(),
            iterations: Iterations::DEFAULT,
            providers: Vec::new(),
            schedule: None,
            precision: None,
        }
    }

    /// Adds a competitor.
    pub fn competitor(mut self, brand: Brand) -> Self {
        self.competitors.push(brand);
        self
    }

    /// Sets the samples per provider; a [`ValidationError`](crate::model::ValidationError)
    /// outside 1 to [`Iterations::MAX`].
    pub fn iterations(mut self, n: u32) -> Result<Self, crate::model::ValidationError> {
        self.iterations = Iterations::new(n)?;
        Ok(self)
    }

    /// Adds a provider and model (temperature 0.7).
    pub fn provider(mut self, provider: ProviderKind, model: impl Into<String>) -> Self {
        self.providers.push(ProviderConfig {
            provider,
            model: model.into(),
            temperature: 0.7,
        });
        self
    }

    /// Stops each batch run once the target's visibility is known to ± `half_width`; a
    /// [`ValidationError`](crate::model::ValidationError) outside [`Precision::MIN`] to
    /// [`Precision::MAX`].
    pub fn precision(mut self, half_width: f64) -> Result<Self, crate::model::ValidationError> {
        self.precision = Some(Precision::new(half_width)?);
        Ok(self)
    }

    /// Runs the experiment on `schedule` as well.
    pub fn schedule(mut self, schedule: CronSchedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// The experiment this draft describes, owned by `owner`, queued at `now`, validated.
    pub fn into_experiment(
        self,
        owner: UserId,
        now: Timestamp,
    ) -> Result<Experiment, crate::model::ValidationError> {
        let providers = if self.providers.is_empty() {
            vec![ProviderConfig {
                provider: ProviderKind::Simulated,
                model: "sim-1".into(),
                temperature: 0.7,
            }]
        } else {
            self.providers
        };
        let experiment = Experiment {
            id: ExperimentId::new(),
            user_id: owner,
            prompt: self.prompt,
            target: self.target,
            competitors: self.competitors,
            iterations: self.iterations,
            providers,
            status: ExperimentStatus::Queued,
            recurrence: self.schedule.map(|s| Recurrence {
                next_run_at: s.next_after(now),
                schedule: s.as_str().to_owned(),
            }),
            prompt_set: None,
            precision: self.precision,
            created_at: now,
            updated_at: now,
        };
        experiment.validate()?;
        Ok(experiment)
    }
}

/// How a submission is stamped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// The instant it happens; `None`: the clock's now.
    pub now: Option<Timestamp>,
    /// The id of the request that asked for it, carried into the worker's log lines.
    pub request_id: Option<String>,
}

impl SubmitOptions {
    fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(Timestamp::now)
    }
}

/// A run that was stored and queued: the quota was debited and the job enqueued in the same
/// transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The experiment as stored (status `queued`).
    pub experiment: Experiment,
    /// The queued job that runs it; a worker, or
    /// [`JobExecutor::run_now`](crate::runner::JobExecutor::run_now), executes it.
    pub job_id: JobId,
    /// Prompts taken from the owner's monthly quota (iterations × providers).
    pub prompts_debited: u32,
}

/// Submits, re-runs, cancels and deletes experiments, for their owner only: another user's
/// experiment is [`StoreError::NotFound`](crate::store::StoreError::NotFound), as a missing one.
#[derive(Debug, Clone)]
pub struct ExperimentService {
    users: Arc<dyn UserStore>,
    experiments: Arc<dyn ExperimentStore>,
}

impl ExperimentService {
    /// A service over the two store parts it uses.
    pub fn new(users: Arc<dyn UserStore>, experiments: Arc<dyn ExperimentStore>) -> Self {
        Self { users, experiments }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone(), store.clone())
    }

    /// Stores a new experiment for `owner` and queues its first run, debiting the owner's
    /// monthly quota by [`Experiment::prompts_per_run`], all in one transaction.
    ///
    /// Errors: [`ServiceError::Invalid`] for a draft that breaks a model rule;
    /// [`ServiceError::ConsentRequired`] when the owner has not given data-processing consent;
    /// [`ServiceError::EmailUnverified`] while the owner's email awaits verification;
    /// [`StoreError::QuotaExceeded`](crate::store::StoreError::QuotaExceeded) over the quota
    /// (an inactive owner has none); `NotFound` for an unknown owner. Nothing is stored then.
    pub async fn submit(
        &self,
        owner: UserId,
        draft: ExperimentDraft,
    ) -> Result<Submitted, ServiceError> {
        self.submit_with(owner, draft, SubmitOptions::default())
            .await
    }

    /// [`ExperimentService::submit`] with an explicit time and request id.
    pub async fn submit_with(
        &self,
        owner: UserId,
        draft: ExperimentDraft,
        options: SubmitOptions,
    ) -> Result<Submitted, ServiceError> {
        let now = options.now();
        // `into_experiment` has validated it.
        let experiment = draft.into_experiment(owner, now)?;
        self.store_and_queue(experiment, options).await
    }

    /// Stores an experiment the caller built itself (its owner is `experiment.user_id`) and
    /// queues its first run, as [`ExperimentService::submit`] does. The experiment is
    /// validated and stored with status `queued`.
    pub async fn submit_experiment(
        &self,
        mut experiment: Experiment,
        options: SubmitOptions,
    ) -> Result<Submitted, ServiceError> {
        experiment.validate()?;
        experiment.status = ExperimentStatus::Queued;
        self.store_and_queue(experiment, options).await
    }

    /// Debits, stores and queues a validated, `queued` experiment in one transaction.
    async fn store_and_queue(
        &self,
        experiment: Experiment,
        options: SubmitOptions,
    ) -> Result<Submitted, ServiceError> {
        let owner = self.users.get_user(experiment.user_id).await?;
        super::require_may_run(&owner)?;
        let debit = QuotaDebit::for_run(&owner, &experiment);
        let job = run_job(
            experiment.user_id,
            experiment.id,
            experiment.created_at,
            &options,
        );
        self.experiments
            .create_experiment(&experiment, debit, &job)
            .await?;
        tracing::info!(event = "experiment_created", user_id = %experiment.user_id, experiment_id = %experiment.id, job_id = %job.id, prompts = debit.amount, "experiment created");
        Ok(Submitted {
            experiment,
            job_id: job.id,
            prompts_debited: debit.amount,
        })
    }

    /// Queues another run of the owner's experiment, debiting the quota again.
    ///
    /// Errors: [`ServiceError::State`] while a run is queued or running, or once cancelled
    /// ([`ExperimentStatus::can_rerun`]); otherwise as [`ExperimentService::submit`].
    pub async fn rerun(&self, owner: UserId, id: ExperimentId) -> Result<Submitted, ServiceError> {
        self.rerun_with(owner, id, SubmitOptions::default()).await
    }

    /// [`ExperimentService::rerun`] with an explicit time and request id.
    pub async fn rerun_with(
        &self,
        owner: UserId,
        id: ExperimentId,
        options: SubmitOptions,
    ) -> Result<Submitted, ServiceError> {
        let mut experiment = self.experiments.get_experiment(owner, id).await?;
        if !experiment.status.can_rerun() {
            return Err(ServiceError::State {
                status: experiment.status,
                action: "a run can be requested once it has finished, and never after a cancel",
            });
        }
        let user = self.users.get_user(owner).await?;
        super::require_may_run(&user)?;
        let debit = QuotaDebit::for_run(&user, &experiment);
        let now = options.now();
        let job = run_job(owner, id, now, &options);
        self.experiments
            .request_run(owner, id, debit, &job, now)
            .await?;
        tracing::info!(event = "experiment_run_requested", user_id = %owner, experiment_id = %id, job_id = %job.id, "run requested");
        experiment.status = ExperimentStatus::Queued;
        experiment.updated_at = now;
        Ok(Submitted {
            experiment,
            job_id: job.id,
            prompts_debited: debit.amount,
        })
    }

    /// Cancels the owner's experiment: a queued or running execution stops (its worker keeps
    /// the answers so far and refunds the iterations that never ran) and a recurrence ends.
    /// Cancelling a cancelled experiment again is a no-op. Returns the experiment as it now
    /// stands.
    ///
    /// Errors: [`ServiceError::State`] when it has finished and does not recur: there is
    /// nothing to cancel.
    pub async fn cancel(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, ServiceError> {
        let mut experiment = self.experiments.get_experiment(owner, id).await?;
        let recurring = experiment
            .recurrence
            .as_ref()
            .is_some_and(|r| r.next_run_at.is_some());
        if experiment.status != ExperimentStatus::Cancelled
            && !experiment.status.is_active()
            && !recurring
        {
            return Err(ServiceError::State {
                status: experiment.status,
                action: "it has finished and does not recur, so there is nothing to cancel",
            });
        }
        let now = Timestamp::now();
        self.experiments
            .set_experiment_status(owner, id, ExperimentStatus::Cancelled, now)
            .await?;
        tracing::info!(event = "experiment_cancelled", user_id = %owner, experiment_id = %id, "experiment cancelled");
        experiment.status = ExperimentStatus::Cancelled;
        experiment.updated_at = now;
        Ok(experiment)
    }

    /// Deletes the owner's experiment with its runs and answers.
    ///
    /// Errors: [`ServiceError::State`] while a run is queued or running: cancel it first.
    pub async fn delete(&self, owner: UserId, id: ExperimentId) -> Result<(), ServiceError> {
        let experiment = self.experiments.get_experiment(owner, id).await?;
        if experiment.status.is_in_flight() {
            return Err(ServiceError::State {
                status: experiment.status,
                action: "cancel it first",
            });
        }
        self.experiments.delete_experiment(owner, id).await?;
        tracing::info!(event = "experiment_deleted", user_id = %owner, experiment_id = %id, "experiment deleted");
        Ok(())
    }
}

fn run_job(
    owner: UserId,
    experiment: ExperimentId,
    now: Timestamp,
    options: &SubmitOptions,
) -> crate::model::Job {
    let mut job = RunExperimentPayload {
        user_id: owner,
        experiment_id: experiment,
    }
    .into_job(now);
    job.request_id.clone_from(&options.request_id);
    job
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{BrandName, ConsentChange, Email, PasswordHash, PricingTier, Prompt, User};
    use crate::service::Accounts;
    use crate::service::test_support::user;
    use crate::store::memory::MemoryStore;

    fn draft() -> ExperimentDraft {
        ExperimentDraft::new(
            Prompt::parse("Best CRM for startups?").unwrap(),
            Brand::new(BrandName::parse("HubSpot").unwrap()),
        )
    }

    async fn withdraw(store: &Arc<DynStore>, user: UserId) {
        let change = ConsentChange {
            data_processing: Some(false),
            ..ConsentChange::default()
        };
        store
            .update_consents(user, &change, Timestamp::now())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_drafts_precision_is_validated_and_submitted_with_the_experiment() {
        assert_eq!(draft().precision(0.0).unwrap_err().field, "precision");
        assert_eq!(draft().precision(0.75).unwrap_err().field, "precision");
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let owner = user(&store, true).await;
        let submitted = ExperimentService::from_store(&store)
            .submit(owner.id, draft().precision(0.05).unwrap())
            .await
            .unwrap();
        let stored = store
            .get_experiment(owner.id, submitted.experiment.id)
            .await
            .unwrap();
        assert_eq!(stored.precision.map(Precision::get), Some(0.05));
        assert_eq!(
            draft()
                .into_experiment(owner.id, Timestamp::now())
                .unwrap()
                .precision,
            None
        );
    }

    #[tokio::test]
    async fn submit_without_consent_is_refused_and_stores_nothing() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let service = ExperimentService::from_store(&store);
        let never = user(&store, false).await;
        let withdrawn = user(&store, true).await;
        withdraw(&store, withdrawn.id).await;
        for owner in [never.id, withdrawn.id] {
            let refused = service.submit(owner, draft()).await;
            assert!(
                matches!(refused, Err(ServiceError::ConsentRequired)),
                "{refused:?}"
            );
            let listed = store
                .list_experiments(owner, &crate::store::ExperimentQuery::default())
                .await
                .unwrap();
            assert!(listed.items.is_empty(), "nothing stored");
            assert_eq!(store.get_user(owner).await.unwrap().quota.prompts_used, 0);
        }
        assert_eq!(store.queue_stats(Timestamp::now()).await.unwrap().due, 0);
    }

    #[tokio::test]
    async fn rerun_after_consent_is_withdrawn_is_refused() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let service = ExperimentService::from_store(&store);
        let owner = user(&store, true).await;
        let submitted = service.submit(owner.id, draft()).await.unwrap();
        let id = submitted.experiment.id;
        store
            .set_experiment_status(owner.id, id, ExperimentStatus::Completed, Timestamp::now())
            .await
            .unwrap();
        withdraw(&store, owner.id).await;
        let used = store.get_user(owner.id).await.unwrap().quota.prompts_used;

        let refused = service.rerun(owner.id, id).await;
        assert!(
            matches!(refused, Err(ServiceError::ConsentRequired)),
            "{refused:?}"
        );
        assert_eq!(
            store.get_experiment(owner.id, id).await.unwrap().status,
            ExperimentStatus::Completed,
            "not queued again"
        );
        assert_eq!(
            store.get_user(owner.id).await.unwrap().quota.prompts_used,
            used,
            "no debit"
        );
    }

    #[tokio::test]
    async fn the_local_account_consents_but_a_registered_one_keeps_its_choice() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let accounts = Accounts::from_store(&store);
        let service = ExperimentService::from_store(&store);

        let local = accounts
            .local_user(&Email::parse("ada@example.com").unwrap())
            .await
            .unwrap();
        assert!(local.consents.allows_processing());
        service.submit(local.id, draft()).await.unwrap();

        // A local account from before consent was enforced is given it.
        let mut old = User::new(
            Email::parse("old@example.com").unwrap(),
            PasswordHash::unusable(),
            PricingTier::Enterprise,
            Timestamp::now(),
        );
        old.consents = crate::model::Consents::default();
        store.create_user(&old).await.unwrap();
        let old = accounts.local_user(&old.email).await.unwrap();
        assert!(old.consents.allows_processing());
        assert!(
            store
                .get_user(old.id)
                .await
                .unwrap()
                .consents
                .allows_processing()
        );

        // A registered user (who can log in) who withdrew is not overruled.
        let registered = user(&store, true).await;
        withdraw(&store, registered.id).await;
        let same = accounts.local_user(&registered.email).await.unwrap();
        assert!(!same.consents.allows_processing());
        assert!(matches!(
            service.submit(same.id, draft()).await,
            Err(ServiceError::ConsentRequired)
        ));
    }
}
