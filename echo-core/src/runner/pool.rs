//! The worker pool: claims queue jobs in batches and executes each in its own task, scaling
//! between a minimum and a maximum concurrency with the queue's depth, and hands unfinished
//! jobs back on shutdown.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::jobs::{ExecuteOptions, JobExecutor, JobOutcome};
use crate::model::{Job, JobId, Timestamp, ValidationError};
use crate::rng::SplitMix64;
use crate::store::{JobQueue, StoreError, lease_expiry};

/// A wake-up source for idle workers: "a job may be due".
///
/// Implementations must return when a job may have become claimable (an enqueue was announced)
/// or after `timeout`, whichever comes first, and may return early for no reason (a spurious
/// wake-up costs one claim). They must be **cancel safe**: the pool drops a pending wait when
/// one of its jobs finishes first. The timeout is the fallback that finds jobs no
/// notification announces (a `run_at` that came, an expired lease), so a signal never needs to
/// be reliable. Errors are the implementation's to handle (log, reconnect, sleep out the
/// timeout).
#[async_trait]
pub trait JobSignal: Send + Sync + fmt::Debug + 'static {
    /// Waits for a wake-up, at most `timeout`.
    async fn wait(&self, timeout: Duration);
}

/// The trait object the pool holds: `Arc<DynJobSignal>`.
pub type DynJobSignal = dyn JobSignal;

/// The default [`JobSignal`]: no notifications, just sleeps for the timeout (polling).
#[derive(Debug, Clone, Copy, Default)]
pub struct PollingSignal;

#[async_trait]
impl JobSignal for PollingSignal {
    async fn wait(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

/// Worker pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPoolConfig {
    /// The name leases are taken under (shown as the job's `lease_owner`); unique per process.
    /// Default: `worker-<pid>-<random>`.
    pub worker_id: String,
    /// Jobs run at once however short the queue; at least 1 (a smaller value is raised to 1),
    /// so jobs whose lease expired, which the queue's depth does not count, are still found.
    pub min_concurrency: usize,
    /// Jobs run at once at most; at least `min_concurrency` (a smaller value is raised).
    /// Default: [`std::thread::available_parallelism`]. A job mostly waits on providers, so
    /// more than the CPU count is reasonable; the runner's global and per-provider limits
    /// bound the calls either way.
    pub max_concurrency: usize,
    /// Lease length of a claim; heartbeats renew it every third. A crashed worker's jobs are
    /// claimed again this long after its last heartbeat. Default 30 s.
    pub lease: Duration,
    /// Longest idle wait before claiming again when no [`JobSignal`] fires. Default 1 s.
    pub poll_interval: Duration,
    /// How long jobs in flight may finish after shutdown begins before they are stopped and
    /// released for another worker. Default 30 s.
    pub shutdown_grace: Duration,
    /// Longest one attempt of a job may run: past it the job is stopped and fails, retried
    /// with backoff while attempts remain (see
    /// [`ExecuteOptions::hard_time_limit`](super::ExecuteOptions::hard_time_limit)). Keep it
    /// above the runner's soft limit,
    /// [`RunnerConfig::run_timeout`](super::RunnerConfig::run_timeout), which ends one batch
    /// run cleanly. Default 2 h; `None`: unbounded.
    pub hard_time_limit: Option<Duration>,
}

impl Default for WorkerPoolConfig {
    fn default() -> Self {
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        Self {
            // The random tail of a v7 id tells apart workers that share a pid (containers).
            worker_id: format!(
                "worker-{}-{}",
                std::process::id(),
                suffix.get(24..).unwrap_or_default()
            ),
            min_concurrency: 1,
            max_concurrency: std::thread::available_parallelism().map_or(4, |n| n.get()),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            hard_time_limit: Some(Duration::from_secs(2 * 60 * 60)),
        }
    }
}

/// One job execution as the pool reports it to its observer, for metrics and business logs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// The job.
    pub job_id: JobId,
    /// Its kind (`run_experiment`).
    pub kind: String,
    /// How the execution ended.
    pub outcome: JobOutcome,
    /// The attempt this was (1 for the first claim).
    pub attempt: u32,
    /// Wall-clock time from the start of the execution to its settlement.
    pub duration: Duration,
    /// The request id of the request that enqueued the job.
    pub request_id: Option<String>,
    /// Why it failed, was stopped or lost its lease.
    pub error: Option<String>,
}

/// Receives a [`JobEvent`] after each execution; called on the job's task, so keep it cheap.
pub type JobObserver = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// A point-in-time view of a pool's counters: cheap (atomic loads), for a `/metrics` endpoint.
/// Counters are cumulative since the pool was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Jobs executing now.
    pub in_flight: usize,
    /// The concurrency the pool last aimed for (between its minimum and maximum).
    pub target_concurrency: usize,
    /// Jobs claimed.
    pub claimed: u64,
    /// Executions that completed their job ([`JobOutcome::Succeeded`]).
    pub succeeded: u64,
    /// Executions the owner's cancellation ended ([`JobOutcome::Cancelled`]).
    pub cancelled: u64,
    /// Failed attempts queued for a retry ([`JobOutcome::Retrying`]).
    pub retrying: u64,
    /// Jobs failed for good ([`JobOutcome::Failed`]).
    pub failed: u64,
    /// Jobs handed back on shutdown ([`JobOutcome::Released`]).
    pub released: u64,
    /// Jobs another worker took over ([`JobOutcome::LeaseLost`]).
    pub lease_lost: u64,
    /// Jobs left unsettled by a store error or a dead task ([`JobOutcome::Abandoned`]).
    pub abandoned: u64,
    /// Failed claim rounds (queue statistics or claim), each followed by a backoff.
    pub claim_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    in_flight: AtomicUsize,
    target: AtomicUsize,
    claimed: AtomicU64,
    outcomes: [AtomicU64; JobOutcome::ALL.len()],
    claim_errors: AtomicU64,
}

impl Counters {
    fn count(&self, outcome: JobOutcome) {
        if let Some(i) = JobOutcome::ALL.iter().position(|o| *o == outcome)
            && let Some(c) = self.outcomes.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn outcome(&self, outcome: JobOutcome) -> u64 {
        JobOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.outcomes.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Decrements the in-flight count when a job's task ends, however it ends (settled, aborted,
/// panicked).
struct InFlight(Arc<Counters>);

impl InFlight {
    fn enter(counters: &Arc<Counters>) -> Self {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long jobs get to wind down after the grace period (write what they received, release
/// their lease) before their tasks are aborted; an aborted job's lease simply expires.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Longest pause between claim rounds after store errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The concurrency to aim for: enough for the jobs running plus those due, within
/// `[min, max]`. Every worker sees the whole queue's depth, so several workers each scale up
/// and split the backlog between them through their claims.
pub(crate) fn target_concurrency(min: usize, max: usize, in_flight: usize, due: u64) -> usize {
    let due = usize::try_from(due).unwrap_or(usize::MAX);
    in_flight.saturating_add(due).clamp(min, max.max(min))
}

/// Claims queue jobs and executes them with a [`JobExecutor`], each in its own task.
///
/// - **Claiming.** Each round reads the queue's depth (`queue_stats().due`), sets the target
///   concurrency to the jobs in flight plus those due, within `[min_concurrency,
///   max_concurrency]`, and claims the free slots in one [`claim`](crate::store::JobQueue::claim).
///   A full batch is followed by another round at once; otherwise the pool waits for a job to
///   finish, for its [`JobSignal`], or for `poll_interval`. A store error backs off (doubling
///   from `poll_interval` to 30 s, with jitter) and never ends the loop.
/// - **Execution.** Each job runs inside a tracing span `job` with `job_id`, `kind`,
///   `attempt` and the `request_id` of the request that enqueued it, so the worker's log lines
///   carry it. The executor heartbeats the lease, watches for the owner's cancellation, and
///   settles the job.
/// - **Time limits.** `hard_time_limit` bounds each attempt (stopped and failed, retried with
///   backoff); the runner's `run_timeout` is the soft limit inside it.
/// - **Shutdown.** When the token passed to [`WorkerPool::run`] is cancelled the pool stops
///   claiming at once, lets jobs in flight finish within `shutdown_grace`, then stops the rest
///   **without** settling them as cancelled: each keeps the answers it received and is
///   [released](crate::store::JobQueue::release), queued and due, so another worker resumes it
///   at once.
/// - **Crashes.** A worker that dies settles nothing; its jobs are claimed again once their
///   leases expire, and resume where their stored iterations end.
pub struct WorkerPool {
    store: Arc<dyn JobQueue>,
    executor: Arc<JobExecutor>,
    config: WorkerPoolConfig,
    signal: Arc<DynJobSignal>,
    observer: Option<JobObserver>,
    counters: Arc<Counters>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("config", &self.config)
            .field("signal", &self.signal)
            .field("observer", &self.observer.is_some())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// A pool that polls (see [`WorkerPool::with_signal`]). `min_concurrency` is raised to 1
    /// and `max_concurrency` to `min_concurrency` when smaller.
    pub fn new(
        store: Arc<dyn JobQueue>,
        executor: Arc<JobExecutor>,
        config: WorkerPoolConfig,
    ) -> Self {
        let mut config = config;
        config.min_concurrency = config.min_concurrency.max(1);
        config.max_concurrency = config.max_concurrency.max(config.min_concurrency);
        let counters = Arc::new(Counters::default());
        counters
            .target
            .store(config.min_concurrency, Ordering::Relaxed);
        Self {
            store,
            executor,
            config,
            signal: Arc::new(PollingSignal),
            observer: None,
            counters,
        }
    }

    /// Wakes idle claiming with `signal` (e.g. PostgreSQL's LISTEN/NOTIFY) instead of polling
    /// alone.
    pub fn with_signal(mut self, signal: Arc<DynJobSignal>) -> Self {
        self.signal = signal;
        self
    }

    /// Calls `observer` after every execution.
    pub fn with_observer(mut self, observer: JobObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The settings in force (after the adjustments of [`WorkerPool::new`]).
    pub fn config(&self) -> &WorkerPoolConfig {
        &self.config
    }

    /// The pool's counters now.
    pub fn stats(&self) -> PoolSnapshot {
        let c = &self.counters;
        PoolSnapshot {
            in_flight: c.in_flight.load(Ordering::Relaxed),
            target_concurrency: c.target.load(Ordering::Relaxed),
            claimed: c.claimed.load(Ordering::Relaxed),
            succeeded: c.outcome(JobOutcome::Succeeded),
            cancelled: c.outcome(JobOutcome::Cancelled),
            retrying: c.outcome(JobOutcome::Retrying),
            failed: c.outcome(JobOutcome::Failed),
            released: c.outcome(JobOutcome::Released),
            lease_lost: c.outcome(JobOutcome::LeaseLost),
            abandoned: c.outcome(JobOutcome::Abandoned),
            claim_errors: c.claim_errors.load(Ordering::Relaxed),
        }
    }

    /// Claims and executes jobs until `shutdown` is cancelled, then shuts down gracefully (see
    /// [`WorkerPool`]) and returns once every job it started is settled, released or, after a
    /// further 10 s, abandoned to lease expiry.
    ///
    /// Dropping the future instead (or killing the process) abandons the jobs in flight
    /// without settling them: their leases expire and other workers claim them again.
    ///
    /// Errors: [`StoreError::Invalid`] before anything is claimed when `lease` or
    /// `poll_interval` is zero or the lease is too long to represent. Store errors while
    /// running are logged and retried, never returned.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), StoreError> {
        self.validate()?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new(self.config.poll_interval);
        tracing::info!(
            worker_id = %self.config.worker_id,
            min = self.config.min_concurrency,
            max = self.config.max_concurrency,
            "worker pool started"
        );
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            while let Some(done) = tasks.try_join_next() {
                self.reap(done);
            }
            let (wait, errored) = match self.claim_round(&mut tasks, &stop, &shutdown).await {
                Ok(true) => {
                    backoff.reset();
                    continue;
                }
                Ok(false) => {
                    backoff.reset();
                    (self.config.poll_interval, false)
                }
                Err(e) => {
                    self.counters.claim_errors.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis(), "claiming jobs failed");
                    (wait, true)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => self.reap(done),
                // After an error the store is probably down: sit out the backoff, whatever
                // the signal says.
                () = self.signal.wait(wait), if !errored => {}
                () = tokio::time::sleep(wait), if errored => {}
            }
        }
        self.shut_down(tasks, stop).await;
        Ok(())
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.config.lease.is_zero() {
            return Err(ValidationError::new("lease", "must be positive").into());
        }
        if self.config.poll_interval.is_zero() {
            return Err(ValidationError::new("poll_interval", "must be positive").into());
        }
        lease_expiry(Timestamp::now(), self.config.lease)?;
        Ok(())
    }

    /// One claim round; `Ok(true)` when it filled every free slot (more may be due).
    async fn claim_round(
        &self,
        tasks: &mut JoinSet<()>,
        stop: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let in_flight = tasks.len();
        let due = self.store.queue_stats(now).await?.due;
        let target = target_concurrency(
            self.config.min_concurrency,
            self.config.max_concurrency,
            in_flight,
            due,
        );
        self.counters.target.store(target, Ordering::Relaxed);
        let free = target.saturating_sub(in_flight);
        if free == 0 {
            return Ok(false);
        }
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        // Never cancelled half-way: a claim that committed must reach the code below, or its
        // jobs would sit leased to nobody until the lease expires.
        let jobs = self
            .store
            .claim(&self.config.worker_id, limit, self.config.lease, now)
            .await?;
        let claimed = jobs.len();
        self.counters
            .claimed
            .fetch_add(claimed as u64, Ordering::Relaxed);
        if shutdown.is_cancelled() {
            // Shutdown began during the claim: give the jobs straight back.
            for job in jobs {
                self.release_unstarted(&job).await;
            }
            return Ok(false);
        }
        for job in jobs {
            self.spawn(tasks, job, stop.child_token());
        }
        Ok(claimed > 0 && claimed == free)
    }

    async fn release_unstarted(&self, job: &Job) {
        let outcome = match self.store.release(job.lease(), Timestamp::now()).await {
            Ok(()) => JobOutcome::Released,
            Err(StoreError::LeaseLost) => JobOutcome::LeaseLost,
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not release a job claimed during shutdown");
                JobOutcome::Abandoned
            }
        };
        self.counters.count(outcome);
        if let Some(observer) = &self.observer {
            observer(event(job, outcome, Duration::ZERO, None));
        }
    }

    fn spawn(&self, tasks: &mut JoinSet<()>, job: Job, stop: CancellationToken) {
        let executor = self.executor.clone();
        let counters = self.counters.clone();
        let observer = self.observer.clone();
        let options = ExecuteOptions {
            stop,
            hard_time_limit: self.config.hard_time_limit,
            lease: Some(self.config.lease),
            ..ExecuteOptions::default()
        };
        let span = tracing::info_span!(
            "job",
            job_id = %job.id,
            kind = %job.kind,
            attempt = job.attempts,
            request_id = job.request_id.as_deref(),
        );
        let in_flight = InFlight::enter(&counters);
        tasks.spawn(
            async move {
                let _in_flight = in_flight;
                let started = Instant::now();
                tracing::info!("job started");
                let (outcome, error) = match executor.execute_with(&job, options).await {
                    Ok(execution) => (execution.outcome, execution.error),
                    Err(e) => {
                        tracing::error!(error = %e, "job could not be settled; its lease will expire");
                        (JobOutcome::Abandoned, Some(e.to_string()))
                    }
                };
                let duration = started.elapsed();
                counters.count(outcome);
                tracing::info!(
                    outcome = outcome.as_str(),
                    duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                    "job finished"
                );
                if let Some(observer) = observer {
                    observer(event(&job, outcome, duration, error));
                }
            }
            .instrument(span),
        );
    }

    fn reap(&self, done: Result<(), JoinError>) {
        if let Err(e) = done {
            // The task never reported: count it here. Its job's lease expires.
            self.counters.count(JobOutcome::Abandoned);
            if e.is_panic() {
                tracing::error!(error = %e, "a job task panicked");
            } else {
                tracing::warn!(error = %e, "a job task was aborted");
            }
        }
    }

    async fn shut_down(&self, mut tasks: JoinSet<()>, stop: CancellationToken) {
        if tasks.is_empty() {
            tracing::info!("worker pool stopped");
            return;
        }
        tracing::info!(
            in_flight = tasks.len(),
            grace_ms = self.config.shutdown_grace.as_millis(),
            "shutting down: letting jobs in flight finish"
        );
        if self.drain(&mut tasks, self.config.shutdown_grace).await {
            tracing::info!("worker pool stopped");
            return;
        }
        tracing::warn!(
            remaining = tasks.len(),
            "grace period over: stopping and releasing the remaining jobs"
        );
        stop.cancel();
        if !self.drain(&mut tasks, STOP_WAIT).await {
            tracing::error!(
                remaining = tasks.len(),
                "jobs did not wind down: abandoning them to lease expiry"
            );
            tasks.abort_all();
            while let Some(done) = tasks.join_next().await {
                self.reap(done);
            }
        }
        tracing::info!("worker pool stopped");
    }

    /// Reaps tasks until none is left (`true`) or `limit` passes (`false`).
    async fn drain(&self, tasks: &mut JoinSet<()>, limit: Duration) -> bool {
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => self.reap(done),
                    None => return true,
                },
                () = &mut deadline => return false,
            }
        }
    }
}

fn event(job: &Job, outcome: JobOutcome, duration: Duration, error: Option<String>) -> JobEvent {
    JobEvent {
        job_id: job.id,
        kind: job.kind.clone(),
        outcome,
        attempt: job.attempts,
        duration,
        request_id: job.request_id.clone(),
        error,
    }
}

/// Exponential backoff with "equal jitter": half the step fixed, half random, so workers that
/// failed together do not retry together.
#[derive(Debug)]
struct Backoff {
    base: Duration,
    step: Duration,
    rng: SplitMix64,
}

impl Backoff {
    fn new(base: Duration) -> Self {
        let base = base.clamp(Duration::from_millis(10), MAX_BACKOFF);
        Self {
            base,
            step: base,
            rng: SplitMix64::from_entropy(),
        }
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(MAX_BACKOFF);
        step / 2 + step.mul_f64(self.rng.next_f64() / 2.0)
    }

    fn reset(&mut self) {
        self.step = self.base;
    }
}

#[cfg(test)]
mod tests;
