//! [`Echo`], the front door for programs that embed the library: one value that submits
//! experiments and runs them in-process, settling their jobs as a worker would.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{Email, ExperimentId, User, UserId};
use crate::provider::DynProvider;
use crate::runner::{
    ExecuteOptions, ExperimentOutcome, ExperimentRunner, JobError, JobExecutor, JobOutcome,
    RunnerConfig,
};
use crate::service::{Accounts, ExperimentDraft, ExperimentService, ServiceError, Submitted};
use crate::store::DynStore;

/// Why [`Echo::run`] did not produce an outcome.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EchoError {
    /// The experiment was refused (invalid, over quota, wrong state) or the store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The job could not be executed or settled.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Another worker sharing the store claimed the job first; it runs there.
    #[error("job was claimed by another worker sharing this store")]
    ClaimedElsewhere,
    /// The execution ended without a result: it failed (the job is retried while attempts
    /// remain) or lost its lease.
    #[error("the run did not finish ({outcome}): {}", error.as_deref().unwrap_or("no detail"))]
    NotFinished {
        /// How the job's execution ended.
        outcome: JobOutcome,
        /// Why, when known.
        error: Option<String>,
    },
}

/// An embedded Echo: a store, the providers, and the services over them.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::Echo;
/// use echo_core::model::{Brand, BrandName, Email, Prompt};
/// use echo_core::service::ExperimentDraft;
/// use echo_core::store::memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let echo = Echo::builder(Arc::new(MemoryStore::new())).simulated(42).build();
/// let me = echo.local_user("ada@example.com").await?;
/// let draft = ExperimentDraft::new(
///     Prompt::parse("Best CRM for startups?")?,
///     Brand::new(BrandName::parse("HubSpot")?),
/// )
/// .iterations(30)?;
/// let outcome = echo.run(me.id, draft).await?;
/// let metrics = outcome.batch_runs[0].metrics.as_ref().ok_or("a completed run has metrics")?;
/// assert_eq!(metrics.metrics.n, 30);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Echo {
    store: Arc<DynStore>,
    experiments: ExperimentService,
    accounts: Accounts,
    executor: JobExecutor,
    worker: String,
}

/// Builds an [`Echo`]; see [`Echo::builder`].
#[derive(Debug)]
pub struct EchoBuilder {
    store: Arc<DynStore>,
    config: RunnerConfig,
    providers: Vec<Arc<DynProvider>>,
    simulated_seed: Option<u64>,
    lease: Duration,
}

impl EchoBuilder {
    /// Registers a provider client (one per [`ProviderKind`](crate::model::ProviderKind); a
    /// later one of the same kind replaces it).
    pub fn provider(mut self, client: Arc<DynProvider>) -> Self {
        self.providers.push(client);
        self
    }

    /// Registers the seeded [simulated](crate::provider::simulated) provider, configured per
    /// experiment from its own brands: same seed, same answers.
    pub fn simulated(mut self, seed: u64) -> Self {
        self.simulated_seed = Some(seed);
        self
    }

    /// The runner's concurrency, rate limits, time limits and adaptive precision.
    pub fn runner_config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// How long an in-process run holds its job's lease between heartbeats (default 60 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The embedded Echo.
    pub fn build(self) -> Echo {
        let mut runner = ExperimentRunner::new(self.store.clone(), self.config);
        if let Some(seed) = self.simulated_seed {
            runner = runner.with_simulated_per_experiment(seed);
        }
        let runner = self
            .providers
            .into_iter()
            .fold(runner, ExperimentRunner::with_provider);
        Echo {
            experiments: ExperimentService::from_store(&self.store),
            accounts: Accounts::from_store(&self.store),
            executor: JobExecutor::new(self.store.clone(), Arc::new(runner), self.lease),
            worker: format!("echo-embedded-{}", std::process::id()),
            store: self.store,
        }
    }
}

impl Echo {
    /// Starts building an Echo over `store` (any backend: in memory, SQLite, PostgreSQL, your
    /// own), with no providers yet.
    pub fn builder(store: Arc<DynStore>) -> EchoBuilder {
        EchoBuilder {
            store,
            config: RunnerConfig::default(),
            providers: Vec::new(),
            simulated_seed: None,
            lease: Duration::from_secs(60),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynStore> {
        &self.store
    }

    /// Submit, re-run, cancel and delete experiments.
    pub fn experiments(&self) -> &ExperimentService {
        &self.experiments
    }

    /// The executor, for a [`WorkerPool`](crate::runner::WorkerPool) of your own.
    pub fn executor(&self) -> &JobExecutor {
        &self.executor
    }

    /// The local account with this email, created on first use (see
    /// [`Accounts::local_user`]).
    pub async fn local_user(&self, email: &str) -> Result<User, ServiceError> {
        self.accounts.local_user(&Email::parse(email)?).await
    }

    /// Submits `draft` for `owner` (debiting the quota, queuing the job) and executes it here
    /// until it ends. The outcome's batch runs carry their typed metrics.
    pub async fn run(
        &self,
        owner: UserId,
        draft: ExperimentDraft,
    ) -> Result<ExperimentOutcome, EchoError> {
        let submitted = self.experiments.submit(owner, draft).await?;
        self.execute(submitted, ExecuteOptions::default()).await
    }

    /// Requests another run of the owner's experiment and executes it here.
    pub async fn rerun(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<ExperimentOutcome, EchoError> {
        let submitted = self.experiments.rerun(owner, id).await?;
        self.execute(submitted, ExecuteOptions::default()).await
    }

    /// Executes a submitted run here under `options` (cancellation, progress events, time
    /// limit), settling its job.
    pub async fn execute(
        &self,
        submitted: Submitted,
        options: ExecuteOptions,
    ) -> Result<ExperimentOutcome, EchoError> {
        let execution = self
            .executor
            .run_now(submitted.job_id, &self.worker, options)
            .await?
            .ok_or(EchoError::ClaimedElsewhere)?;
        match (execution.outcome, execution.run) {
            (JobOutcome::Succeeded | JobOutcome::Cancelled, Some(outcome)) => Ok(outcome),
            (outcome, _) => Err(EchoError::NotFinished {
                outcome,
                error: execution.error,
            }),
        }
    }
}
