//! Executing experiments: the [`ExperimentRunner`] sends an experiment's prompt to each
//! provider, stores every answer as it finishes, and computes metrics at the end.
//!
//! Limits nest: a global concurrency limit shared by every run of this runner, and per provider
//! a concurrency limit and a GCRA rate limit (the `governor` crate), so one slow or strict
//! provider never starves the others. Iterations are written idempotently by index, so a run
//! that is resumed after a crash skips what it already stored and never double counts.
//!
//! Around the runner, the background machinery a server runs until shutdown:
//! - [`JobExecutor`] executes one claimed queue job under a heartbeated lease and settles it
//!   (complete, retry with backoff, fail, or release). [`ExecuteOptions`] tells apart the
//!   owner's **cancellation** (runs end `cancelled`, unrun iterations refunded), a **stop**
//!   (work abandoned resumably, job released to another worker) and the **hard time limit**
//!   (attempt fails and is retried); the soft limit is [`RunnerConfig::run_timeout`]. While a
//!   run executes, each heartbeat also checks whether the owner cancelled the experiment.
//! - [`WorkerPool`] claims jobs in batches and runs each in its own task, scaling between a
//!   minimum and a maximum concurrency with the queue's depth, waking on a [`JobSignal`]
//!   ([`PollingSignal`] by default; PostgreSQL's LISTEN/NOTIFY in `echo-store-postgres`), and
//!   shuts down gracefully: jobs get a grace period, then are stopped and released.
//!   [`WorkerPool::stats`] and [`JobEvent`]s feed metrics.
//! - [`Scheduler`] enqueues recurring experiments as their [`CronSchedule`] comes due (once per
//!   due occurrence however many schedulers run, and once after downtime however many slots
//!   were missed), resets monthly quotas and prunes finished jobs.
//!
//! ```no_run
//! use std::sync::Arc;
//! use echo_core::runner::*;
//! use echo_core::store::{memory::MemoryStore, DynStore};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn serve() -> Result<(), echo_core::store::StoreError> {
//! let store: Arc<DynStore> = Arc::new(MemoryStore::new());
//! let runner = Arc::new(ExperimentRunner::new(store.clone(), RunnerConfig::default()));
//! let executor = Arc::new(JobExecutor::new(store.clone(), runner, std::time::Duration::from_secs(30)));
//! let pool = WorkerPool::new(store.clone(), executor, WorkerPoolConfig::default());
//! let scheduler = Scheduler::new(store.clone(), SchedulerConfig::default());
//! let shutdown = CancellationToken::new(); // cancelled on SIGTERM
//! let (pooled, ()) = tokio::join!(pool.run(shutdown.clone()), scheduler.run(shutdown.clone()));
//! pooled
//! # }
//! ```

mod batch;
mod cron;
mod jobs;
mod pool;
mod report;
mod scheduler;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::model::{
    BatchRun, BatchRunStatus, ExperimentId, ExperimentStatus, ProviderKind, Timestamp, UserId,
};
use crate::provider::{DynProvider, PriceTable};
use crate::store::{DynStore, StoreError};

pub use batch::BatchOutcome;
pub use cron::CronSchedule;
pub use jobs::{
    DELIVER_WEBHOOK, DeliverWebhookPayload, ExecuteOptions, Execution, JobError, JobExecutor,
    JobOutcome, RUN_EXPERIMENT, RunExperimentPayload, WEBHOOK_MAX_ATTEMPTS,
};
pub use pool::{
    DynJobSignal, JobEvent, JobObserver, JobSignal, PollingSignal, PoolSnapshot, WorkerPool,
    WorkerPoolConfig,
};
pub use scheduler::{Scheduler, SchedulerConfig, TickReport};

/// A sustained request rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests allowed at once after an idle period.
    pub burst: NonZeroU32,
}

/// Runner settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// Provider calls in flight across all runs of this runner.
    pub global_concurrency: usize,
    /// Provider calls in flight per provider.
    pub provider_concurrency: usize,
    /// Per-provider rate limits; providers without an entry are not rate limited.
    pub rate_limits: HashMap<ProviderKind, RateLimit>,
    /// Wall-clock limit of one batch run; when it passes the run fails and the quota of the
    /// iterations that never ran is refunded.
    pub run_timeout: Option<Duration>,
    /// Iterations buffered before a store write: larger batches write faster, smaller ones
    /// lose less on a crash.
    pub write_batch: usize,
    /// Output token cap sent with every request.
    pub max_tokens: Option<u32>,
    /// System prompt sent with every request.
    pub system_prompt: Option<String>,
    /// Adaptive sampling: stop a batch run once the Wilson 95% interval of the target's
    /// visibility has a half-width of at most this (e.g. `0.05` for ±5 points), or at the
    /// experiment's iteration count, whichever comes first; the quota of the iterations not
    /// needed is refunded. `None` always runs every iteration. An experiment's own
    /// [`Experiment::precision`](crate::model::Experiment::precision) overrides it.
    pub precision: Option<f64>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            global_concurrency: 64,
            provider_concurrency: 16,
            rate_limits: HashMap::new(),
            run_timeout: Some(Duration::from_secs(30 * 60)),
            write_batch: 64,
            max_tokens: Some(1_024),
            system_prompt: None,
            precision: None,
        }
    }
}

/// What the runner reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// A batch run starts (or resumes with `already_recorded` iterations stored).
    RunStarted {
        /// The run.
        batch_run_id: crate::model::BatchRunId,
        /// Its provider.
        provider: ProviderKind,
        /// Iterations planned.
        planned: u32,
        /// Iterations already stored by an earlier attempt.
        already_recorded: u32,
    },
    /// One iteration finished and was buffered for writing.
    IterationFinished {
        /// The run.
        batch_run_id: crate::model::BatchRunId,
        /// Its provider.
        provider: ProviderKind,
        /// Whether the provider answered.
        success: bool,
    },
    /// A batch run ended.
    RunFinished {
        /// The run.
        batch_run_id: crate::model::BatchRunId,
        /// Its provider.
        provider: ProviderKind,
        /// Its final status.
        status: BatchRunStatus,
    },
}

/// Receives [`ProgressEvent`]s; must be cheap (it is called on the runner's hot path).
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// Why a run could not be executed at all. Failures of individual calls are recorded on the
/// iterations and batch runs instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The experiment names a provider this runner has no client for.
    #[error("no provider configured for {0}")]
    ProviderNotConfigured(ProviderKind),
    /// The experiment's brands cannot be indexed for extraction.
    #[error(transparent)]
    Matcher(#[from] crate::analysis::MatcherError),
    /// [`RunOptions::stop`] was cancelled: the work was abandoned, keeping what it recorded
    /// (buffered iterations are written first) and leaving the batch runs `running`, so a later
    /// execution resumes them. Nothing was refunded for them and the experiment's status was
    /// not finalised.
    #[error("the run was stopped before it finished; a later execution resumes it")]
    Stopped,
}

/// How an execution may end early; the argument of [`ExperimentRunner::run_with`].
///
/// The three ways differ in what they leave behind:
/// - `cancel` is the owner's cancellation: the batch runs end `cancelled`, their stored answers
///   get metrics, and the quota of the iterations that never ran is refunded.
/// - `stop` abandons the work for someone else to finish (a worker shutting down, a lease
///   lost): stored answers are kept, the batch runs stay resumable, nothing is refunded, and
///   [`ExperimentRunner::run_with`] returns [`RunError::Stopped`].
/// - `deadline` is a hard time limit: when it passes, the batch runs end `failed` and the
///   unrun iterations are refunded, like [`RunnerConfig::run_timeout`] (the soft limit, which
///   counts per batch run from its start).
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The owner's cancellation.
    pub cancel: CancellationToken,
    /// Abandon the work, keeping it resumable.
    pub stop: CancellationToken,
    /// Fail whatever is still running at this instant.
    pub deadline: Option<tokio::time::Instant>,
    /// Receives progress events.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("cancel", &self.cancel.is_cancelled())
            .field("stop", &self.stop.is_cancelled())
            .field("deadline", &self.deadline)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The result of [`ExperimentRunner::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentOutcome {
    /// The experiment's final status.
    pub status: ExperimentStatus,
    /// The batch runs of this execution, as stored at the end.
    pub batch_runs: Vec<BatchRun>,
    /// Prompts given back to the owner's quota (iterations that never ran).
    pub refunded: u32,
}

#[derive(Debug, Clone)]
struct ProviderSlot {
    client: Arc<DynProvider>,
    concurrency: Arc<Semaphore>,
    rate: Option<Arc<DefaultDirectRateLimiter>>,
}

/// Executes experiments against providers and a store.
///
/// The runner does the work and nothing else: it does not touch the queue, so a job that
/// queued the run stays `queued` after [`ExperimentRunner::run`]. To execute a queued job and
/// settle it, use [`JobExecutor`] (or [`crate::Echo`], which does both).
///
/// ```
/// use std::sync::Arc;
/// use echo_core::model::*;
/// use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
/// use echo_core::runner::{ExperimentRunner, RunExperimentPayload, RunnerConfig};
/// use echo_core::store::{memory::MemoryStore, DynStore};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let now = Timestamp::now();
/// let user = User::new(Email::parse("ada@example.com")?,
///     PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")?, PricingTier::Pro, now);
/// store.create_user(&user).await?;
/// let target = Brand::new(BrandName::parse("HubSpot")?);
/// let experiment = Experiment {
///     id: ExperimentId::new(), user_id: user.id,
///     prompt: Prompt::parse("Best CRM for startups?")?,
///     target: target.clone(), competitors: vec![],
///     iterations: Iterations::new(20)?,
///     providers: vec![ProviderConfig { provider: ProviderKind::Simulated, model: "sim".into(), temperature: 0.7 }],
///     status: ExperimentStatus::Queued, recurrence: None, prompt_set: None, precision: None, created_at: now,
///     updated_at: now,
/// };
/// let debit = QuotaDebit::for_run(&user, &experiment);
/// let job = RunExperimentPayload { user_id: user.id, experiment_id: experiment.id }.into_job(now);
/// store.create_experiment(&experiment, debit, &job).await?;
///
/// let sim = SimulatedProvider::new(SimulatedConfig::for_brands(1, &target, &[]));
/// let runner = ExperimentRunner::new(store.clone(), RunnerConfig::default())
///     .with_provider(Arc::new(sim));
/// let outcome = runner.run(user.id, experiment.id, CancellationToken::new(), None).await?;
/// assert_eq!(outcome.status, ExperimentStatus::Completed);
/// assert_eq!(outcome.batch_runs[0].iterations_recorded, 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ExperimentRunner {
    store: Arc<DynStore>,
    providers: HashMap<ProviderKind, ProviderSlot>,
    prices: PriceTable,
    config: RunnerConfig,
    global: Arc<Semaphore>,
    simulated_seed: Option<u64>,
    simulated_latency: Duration,
    redactor: Option<Arc<crate::privacy::Redactor>>,
}

impl ExperimentRunner {
    /// A runner with no providers yet; add them with [`ExperimentRunner::with_provider`].
    pub fn new(store: Arc<DynStore>, config: RunnerConfig) -> Self {
        Self {
            store,
            providers: HashMap::new(),
            prices: PriceTable::with_defaults(),
            global: Arc::new(Semaphore::new(config.global_concurrency.max(1))),
            config,
            simulated_seed: None,
            simulated_latency: Duration::ZERO,
            redactor: None,
        }
    }

    /// Redacts personal data (emails, phone numbers, IBANs, card numbers, IP addresses) from
    /// every answer before it is stored. Brand extraction runs on the original answer, so
    /// mentions, ranks and visibility are unchanged; mention offsets refer to the original
    /// text, and the position-adjusted word count (computed from the stored text) sees each
    /// placeholder as one word.
    pub fn with_redaction(mut self, redactor: Arc<crate::privacy::Redactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Registers the [simulated](crate::provider::simulated) provider for every experiment,
    /// seeded with `seed` and configured per experiment from that experiment's own brands
    /// ([`SimulatedConfig::for_brands`](crate::provider::simulated::SimulatedConfig::for_brands)).
    ///
    /// A server runs many experiments with one runner, and a simulator that only knows one
    /// fixed brand list would mention none of the others' brands. The concurrency and rate
    /// limits of the simulated slot are shared by all experiments, as for any provider.
    pub fn with_simulated_per_experiment(mut self, seed: u64) -> Self {
        use crate::provider::simulated::{SimulatedConfig, SimulatedProvider};
        // Replaced per experiment by `slot_for`; registered so the slot's limits exist.
        let placeholder = SimulatedConfig {
            seed,
            brands: Vec::new(),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            failure_rate: 0.0,
            rate_limit_rate: 0.0,
            own_domain_citation_rate: crate::provider::simulated::DEFAULT_OWN_DOMAIN_CITATION_RATE,
        };
        self = self.with_provider(Arc::new(SimulatedProvider::new(placeholder)));
        self.simulated_seed = Some(seed);
        self
    }

    /// Delays every simulated call by `latency`, so a simulated run takes time like a real one:
    /// staging rehearsals need runs that are still in flight when a worker or the database is
    /// stopped. Default zero.
    pub fn with_simulated_latency(mut self, latency: Duration) -> Self {
        self.simulated_latency = latency;
        self
    }

    /// The slot that executes `experiment`'s runs on `kind`: the registered one, with the
    /// simulated client re-seeded for the experiment's brands when
    /// [`ExperimentRunner::with_simulated_per_experiment`] is on.
    fn slot_for(
        &self,
        kind: ProviderKind,
        experiment: &crate::model::Experiment,
    ) -> Option<ProviderSlot> {
        use crate::provider::simulated::{SimulatedConfig, SimulatedProvider};
        let slot = self.providers.get(&kind)?;
        match (kind, self.simulated_seed) {
            (ProviderKind::Simulated, Some(seed)) => {
                let config = SimulatedConfig {
                    latency: self.simulated_latency,
                    ..SimulatedConfig::for_brands(seed, &experiment.target, &experiment.competitors)
                };
                Some(ProviderSlot {
                    client: Arc::new(SimulatedProvider::new(config)),
                    ..slot.clone()
                })
            }
            _ => Some(slot.clone()),
        }
    }

    /// Registers the client for its [`ProviderKind`] (replacing any earlier one).
    pub fn with_provider(mut self, client: Arc<DynProvider>) -> Self {
        let kind = client.kind();
        let rate = self.config.rate_limits.get(&kind).map(|r| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(r.per_second).allow_burst(r.burst),
            ))
        });
        self.providers.insert(
            kind,
            ProviderSlot {
                client,
                concurrency: Arc::new(Semaphore::new(self.config.provider_concurrency.max(1))),
                rate,
            },
        );
        self
    }

    /// Replaces the price table used for cost accounting.
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Runs (or resumes) the owner's experiment to the end, cancellation or time-out:
    /// [`ExperimentRunner::run_with`] with only a cancellation token and progress.
    pub async fn run(
        &self,
        owner: UserId,
        experiment_id: ExperimentId,
        cancel: CancellationToken,
        progress: Option<ProgressFn>,
    ) -> Result<ExperimentOutcome, RunError> {
        let options = RunOptions {
            cancel,
            progress,
            ..RunOptions::default()
        };
        self.run_with(owner, experiment_id, options).await
    }

    /// Runs (or resumes) the owner's experiment until it ends or `options` end it early (see
    /// [`RunOptions`]).
    ///
    /// Batch runs left unfinished by an earlier attempt (pending or running) are resumed,
    /// skipping the iterations they stored; otherwise one new batch run per provider is created.
    /// Quota for iterations that never ran is refunded when a run fails or is cancelled.
    ///
    /// An experiment that is already `completed` or `failed` with no unfinished batch run was
    /// finished by an earlier execution (a worker that died before settling its job): nothing
    /// runs again and the outcome has no batch runs. A re-run must first set it `queued`
    /// ([`request_run`](crate::store::ExperimentStore::request_run) does).
    ///
    /// An experiment its owner already cancelled is not started and its status is left as it
    /// is: when no earlier attempt began this execution, the whole run's quota
    /// ([`Experiment::prompts_per_run`](crate::model::Experiment::prompts_per_run)) is refunded
    /// and no batch run is created; otherwise the unfinished batch runs end `cancelled` and only
    /// their unrun iterations are refunded. A cancellation that lands while the runs finish is
    /// kept too: the final status write never replaces `cancelled`.
    pub async fn run_with(
        &self,
        owner: UserId,
        experiment_id: ExperimentId,
        options: RunOptions,
    ) -> Result<ExperimentOutcome, RunError> {
        let experiment = self.store.get_experiment(owner, experiment_id).await?;
        let already_cancelled = experiment.status == ExperimentStatus::Cancelled;
        let unfinished: Vec<BatchRun> = self
            .store
            .list_batch_runs(owner, experiment_id)
            .await?
            .into_iter()
            .filter(|r| matches!(r.status, BatchRunStatus::Pending | BatchRunStatus::Running))
            .collect();
        if already_cancelled && unfinished.is_empty() {
            // Nothing of this execution ran: everything debited for it goes back.
            let refunded = experiment.prompts_per_run();
            if refunded > 0 {
                self.store.refund_quota(owner, refunded).await?;
            }
            tracing::info!(experiment_id = %experiment_id, refunded, "experiment was cancelled before it started");
            return Ok(ExperimentOutcome {
                status: ExperimentStatus::Cancelled,
                batch_runs: Vec::new(),
                refunded,
            });
        }
        if unfinished.is_empty()
            && matches!(
                experiment.status,
                ExperimentStatus::Completed | ExperimentStatus::Failed
            )
        {
            // An earlier execution of this job finished every run, and its worker died before
            // settling the job. Running again would repeat (and pay for) the whole experiment
            // without a debit; a real re-run goes through `request_run`, which queues it first.
            tracing::info!(experiment_id = %experiment_id, status = %experiment.status, "experiment already finished: nothing to run");
            return Ok(ExperimentOutcome {
                status: experiment.status,
                batch_runs: Vec::new(),
                refunded: 0,
            });
        }
        for p in &experiment.providers {
            if !self.providers.contains_key(&p.provider) {
                return Err(RunError::ProviderNotConfigured(p.provider));
            }
        }
        if options.stop.is_cancelled() {
            return Err(RunError::Stopped);
        }
        let cancel = if already_cancelled {
            // An earlier attempt began these runs: an already-cancelled token ends each at once
            // through the usual path, so stored answers get metrics and only unrun ones are
            // refunded.
            let token = CancellationToken::new();
            token.cancel();
            token
        } else {
            self.store
                .set_experiment_status(
                    owner,
                    experiment_id,
                    ExperimentStatus::Running,
                    Timestamp::now(),
                )
                .await?;
            options.cancel.clone()
        };

        let runs = if unfinished.is_empty() {
            let mut created = Vec::with_capacity(experiment.providers.len());
            for p in &experiment.providers {
                let run = BatchRun::new(
                    experiment.id,
                    p.provider,
                    p.model.clone(),
                    experiment.iterations.get(),
                    Timestamp::now(),
                );
                self.store.create_batch_run(&run).await?;
                created.push(run);
            }
            created
        } else {
            unfinished
        };

        let experiment = &experiment;
        let executions = runs.iter().map(|run| {
            let config = experiment
                .providers
                .iter()
                .find(|p| p.provider == run.provider)
                .cloned();
            let slot = self.slot_for(run.provider, experiment);
            let cancel = cancel.clone();
            let stop = options.stop.clone();
            let progress = options.progress.clone();
            async move {
                match (config, slot) {
                    (Some(config), Some(slot)) => {
                        batch::execute(
                            batch::BatchContext {
                                store: &self.store,
                                slot: &slot,
                                global: &self.global,
                                config: &self.config,
                                prices: &self.prices,
                                experiment,
                                provider_config: &config,
                                cancel,
                                stop,
                                deadline: options.deadline,
                                progress,
                                redactor: self.redactor.as_deref(),
                            },
                            run.clone(),
                        )
                        .await
                    }
                    _ => Err(RunError::ProviderNotConfigured(run.provider)),
                }
            }
        });
        let results = futures::future::join_all(executions).await;

        let mut refunded = 0u32;
        let mut statuses = Vec::new();
        let mut failure: Option<RunError> = None;
        for result in results {
            match result {
                Ok(outcome) => {
                    refunded = refunded.saturating_add(outcome.refunded);
                    statuses.push(outcome.status);
                }
                // A real error says more than a stop, which every run of a stopped
                // execution reports.
                Err(e) if failure.is_none() || matches!(failure, Some(RunError::Stopped)) => {
                    failure = Some(e);
                }
                Err(_) => {}
            }
        }
        // Runs that ended are refunded even when another failed: a later execution only resumes
        // unfinished runs, so these refunds are never repeated.
        if refunded > 0 {
            self.store.refund_quota(owner, refunded).await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let status = if cancel.is_cancelled() || statuses.contains(&BatchRunStatus::Cancelled) {
            ExperimentStatus::Cancelled
        } else if statuses.iter().all(|s| *s == BatchRunStatus::Completed) {
            ExperimentStatus::Completed
        } else {
            ExperimentStatus::Failed
        };
        // The owner may have cancelled while the runs finished; that decision stands.
        let current = self
            .store
            .get_experiment(owner, experiment_id)
            .await?
            .status;
        let status = if current == ExperimentStatus::Cancelled {
            ExperimentStatus::Cancelled
        } else {
            self.store
                .set_experiment_status(owner, experiment_id, status, Timestamp::now())
                .await?;
            status
        };
        let ids: Vec<_> = runs.iter().map(|r| r.id).collect();
        let batch_runs = self
            .store
            .list_batch_runs(owner, experiment_id)
            .await?
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect();
        Ok(ExperimentOutcome {
            status,
            batch_runs,
            refunded,
        })
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
