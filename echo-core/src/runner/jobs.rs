//! Queue jobs that run experiments, and their execution under a heartbeated lease.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ExperimentOutcome, ExperimentRunner, ProgressFn, RunError, RunOptions};
use crate::model::{
    ExperimentId, ExperimentStatus, Job, JobPayload, JobStatus, Timestamp, UserId,
    WebhookDeliveryId,
};
use crate::service::AlertService;
use crate::store::{DynStore, StoreError, lease_expiry};
use crate::webhook::{AttemptOutcome, DynWebhookTransport, WebhookDeliverer};

/// The job kind that runs an experiment.
pub const RUN_EXPERIMENT: &str = "run_experiment";

/// Payload of a [`RUN_EXPERIMENT`] job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunExperimentPayload {
    /// The experiment's owner (every store read is scoped to it).
    pub user_id: UserId,
    /// The experiment to run.
    pub experiment_id: ExperimentId,
}

impl JobPayload for RunExperimentPayload {
    const KIND: &'static str = RUN_EXPERIMENT;
}

impl RunExperimentPayload {
    /// A queued job for this payload, due now, with three attempts.
    pub fn into_job(self, now: Timestamp) -> Job {
        // Built by hand so it cannot fail; `payload_is_its_serde_form` pins it to serde's.
        let payload = serde_json::Value::Object(serde_json::Map::from_iter([
            ("user_id".to_owned(), self.user_id.to_string().into()),
            (
                "experiment_id".to_owned(),
                self.experiment_id.to_string().into(),
            ),
        ]));
        Job::encoded(RUN_EXPERIMENT, payload, now, 3, now)
    }
}

/// The job kind that makes one attempt at a webhook delivery.
pub const DELIVER_WEBHOOK: &str = "deliver_webhook";

/// Attempts a webhook delivery gets: with the queue's backoff (15 s + attempt⁴ s) the last one
/// comes about 4.3 hours after the first.
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 10;

/// Payload of a [`DELIVER_WEBHOOK`] job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhookPayload {
    /// The endpoint's owner (deleting the account deletes the job with it).
    pub user_id: UserId,
    /// The delivery to attempt.
    pub delivery_id: WebhookDeliveryId,
}

impl JobPayload for DeliverWebhookPayload {
    const KIND: &'static str = DELIVER_WEBHOOK;
}

impl DeliverWebhookPayload {
    /// A queued job for this payload, due at `now`, with [`WEBHOOK_MAX_ATTEMPTS`] attempts.
    pub fn into_job(self, now: Timestamp) -> Job {
        // Built by hand so it cannot fail; `payloads_are_their_serde_form` pins it to serde's.
        let payload = serde_json::Value::Object(serde_json::Map::from_iter([
            ("user_id".to_owned(), self.user_id.to_string().into()),
            (
                "delivery_id".to_owned(),
                self.delivery_id.to_string().into(),
            ),
        ]));
        Job::encoded(DELIVER_WEBHOOK, payload, now, WEBHOOK_MAX_ATTEMPTS, now)
    }
}

/// Why a job could not be executed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The kind is not one this executor knows.
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    /// The payload does not match the kind.
    #[error("malformed job payload: {0}")]
    BadPayload(#[from] serde_json::Error),
    /// The run failed to execute.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Storage failed while settling the job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook attempt failed; `retry_at` is when the next attempt is due (the time the
    /// delivery log shows), `None` when none follows.
    #[error("webhook delivery failed: {reason}")]
    Webhook {
        /// Why (a timeout, a status, a refused address).
        reason: String,
        /// When to try again.
        retry_at: Option<Timestamp>,
    },
    /// A webhook job reached a worker without a transport to send it
    /// ([`JobExecutor::with_webhook_transport`]).
    #[error("no webhook transport is configured")]
    NoWebhookTransport,
}

/// How one execution of a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The work finished and the job completed.
    Succeeded,
    /// The owner cancelled the experiment: its runs ended `cancelled`, the unrun iterations
    /// were refunded and the job completed.
    Cancelled,
    /// The attempt failed and the job is queued again for a later retry (with backoff).
    Retrying,
    /// The job failed for good: a permanent error, or its last attempt failed.
    Failed,
    /// The work was stopped (a worker shutting down) and the job given back, queued and due at
    /// once, without counting the attempt.
    Released,
    /// Another worker took the job over after this one's lease expired; nothing was settled.
    LeaseLost,
    /// The job could not be settled (a store error while completing, failing or releasing
    /// it, or the worker's task died): it stays leased until the lease expires, then it is
    /// claimed again.
    Abandoned,
}

impl JobOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: &'static [JobOutcome] = &[
        JobOutcome::Succeeded,
        JobOutcome::Cancelled,
        JobOutcome::Retrying,
        JobOutcome::Failed,
        JobOutcome::Released,
        JobOutcome::LeaseLost,
        JobOutcome::Abandoned,
    ];

    /// A stable snake_case name, for metric labels and logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Retrying => "retrying",
            JobOutcome::Failed => "failed",
            JobOutcome::Released => "released",
            JobOutcome::LeaseLost => "lease_lost",
            JobOutcome::Abandoned => "abandoned",
        }
    }

    /// The job's queue status after this outcome; `None` when this worker no longer knows it
    /// (lease lost, abandoned).
    pub const fn status(&self) -> Option<JobStatus> {
        match self {
            JobOutcome::Succeeded | JobOutcome::Cancelled => Some(JobStatus::Succeeded),
            JobOutcome::Retrying | JobOutcome::Released => Some(JobStatus::Queued),
            JobOutcome::Failed => Some(JobStatus::Failed),
            JobOutcome::LeaseLost | JobOutcome::Abandoned => None,
        }
    }

    fn after_fail(status: JobStatus) -> Self {
        if status == JobStatus::Queued {
            JobOutcome::Retrying
        } else {
            JobOutcome::Failed
        }
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How [`JobExecutor::execute_with`] may end a job early, and what it reports.
///
/// - `cancel` is a **user** cancellation: the batch runs end `cancelled`, the quota of unrun
///   iterations is refunded and the job completes ([`JobOutcome::Cancelled`]). The executor
///   also fires it by itself when the experiment's owner cancels it (see
///   [`JobExecutor::execute_with`]).
/// - `stop` hands the job to another worker: the work is abandoned (answers already received
///   are written first), the batch runs stay resumable, nothing is refunded, and the job is
///   [released](crate::store::JobQueue::release) ([`JobOutcome::Released`]). For graceful
///   shutdown.
/// - `hard_time_limit` bounds one attempt: when it passes, the work is stopped the same way
///   but the attempt **fails**, retried with backoff while attempts remain. On the last attempt
///   the batch runs end `failed` and the unrun iterations are refunded instead, so nothing is
///   left running for good. It is meant to sit above the runner's soft limit,
///   [`RunnerConfig::run_timeout`](super::RunnerConfig::run_timeout), which fails one batch
///   run cleanly and lets the job complete.
#[derive(Clone, Default)]
pub struct ExecuteOptions {
    /// User cancellation.
    pub cancel: CancellationToken,
    /// Stop and release.
    pub stop: CancellationToken,
    /// Longest one attempt may run; `None`: unbounded.
    pub hard_time_limit: Option<Duration>,
    /// The lease the job was claimed with, renewed every third of it; `None`: the executor's
    /// ([`JobExecutor::lease`]).
    pub lease: Option<Duration>,
    /// Receives the runner's progress events.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteOptions")
            .field("cancel", &self.cancel.is_cancelled())
            .field("stop", &self.stop.is_cancelled())
            .field("hard_time_limit", &self.hard_time_limit)
            .field("lease", &self.lease)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What [`JobExecutor::execute_with`] did with a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// How it ended.
    pub outcome: JobOutcome,
    /// The runner's outcome, when the work ran to an end (succeeded or cancelled).
    pub run: Option<ExperimentOutcome>,
    /// Why the attempt failed, was stopped or lost its lease.
    pub error: Option<String>,
}

impl Execution {
    fn new(outcome: JobOutcome, run: Option<ExperimentOutcome>, error: Option<String>) -> Self {
        Self {
            outcome,
            run,
            error,
        }
    }
}

/// Executes claimed jobs: dispatches on the kind, heartbeats the lease while the work runs,
/// and settles the job (complete, retry with backoff, fail, or release) when it ends.
#[derive(Debug, Clone)]
pub struct JobExecutor {
    store: Arc<DynStore>,
    runner: Arc<ExperimentRunner>,
    lease: Duration,
    alerts: AlertService,
    webhooks: Option<WebhookDeliverer>,
}

impl JobExecutor {
    /// An executor whose claims last `lease` (heartbeats renew them every third of it).
    ///
    /// After each completed run of a **recurring** experiment it evaluates the alerts
    /// ([`AlertService::evaluate`]): stored, not mailed, unless
    /// [`JobExecutor::with_alert_mailer`] gave it a mailer.
    pub fn new(store: Arc<DynStore>, runner: Arc<ExperimentRunner>, lease: Duration) -> Self {
        Self {
            alerts: AlertService::from_store(&store),
            webhooks: None,
            store,
            runner,
            lease,
        }
    }

    /// Delivers [`DELIVER_WEBHOOK`] jobs through `transport`. Without one such jobs fail (and
    /// are retried, so a worker that has one may take them).
    pub fn with_webhook_transport(mut self, transport: Arc<DynWebhookTransport>) -> Self {
        self.webhooks = Some(WebhookDeliverer::new(self.store.clone(), transport));
        self
    }

    /// Mails the alerts it raises to the experiment's owner through `mailer`.
    pub fn with_alert_mailer(mut self, mailer: Arc<crate::mail::DynMailer>) -> Self {
        self.alerts = self.alerts.with_mailer(mailer);
        self
    }

    /// The lease length claims should use.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Runs a job this worker claimed and settles it. Returns the job's new status, or
    /// [`StoreError::LeaseLost`] when another worker took the job over (the work was stopped
    /// and nothing was settled).
    ///
    /// Cancelling `cancel` is a user cancellation: the batch runs end `cancelled`, the quota of
    /// unrun iterations is refunded and the job completes. To hand a job back to the queue
    /// instead (graceful shutdown), use [`JobExecutor::execute_with`] and its `stop` token.
    pub async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: Option<ProgressFn>,
    ) -> Result<(JobStatus, Option<ExperimentOutcome>), JobError> {
        let options = ExecuteOptions {
            cancel,
            progress,
            ..ExecuteOptions::default()
        };
        let execution = self.execute_with(job, options).await?;
        match execution.outcome.status() {
            Some(status) => Ok((status, execution.run)),
            None => Err(StoreError::LeaseLost.into()),
        }
    }

    /// Claims the queued job `job_id` for `worker` and executes it here, now, settling it as a
    /// worker would: the way to run a job that [`ExperimentService::submit`] queued in the
    /// same process, without a [`WorkerPool`](super::WorkerPool).
    ///
    /// Returns `Ok(None)` when the job is not claimable (another worker holds it, it is not
    /// due yet, or it already finished); otherwise the [`Execution`].
    ///
    /// [`ExperimentService::submit`]: crate::service::ExperimentService::submit
    pub async fn run_now(
        &self,
        job_id: crate::model::JobId,
        worker: &str,
        options: ExecuteOptions,
    ) -> Result<Option<Execution>, JobError> {
        let lease = options.lease.unwrap_or(self.lease);
        let Some(job) = self
            .store
            .claim_job(job_id, worker, lease, Timestamp::now())
            .await?
        else {
            return Ok(None);
        };
        self.execute_with(&job, options).await.map(Some)
    }

    /// Runs a job this worker claimed under `options` (see [`ExecuteOptions`]) and settles it.
    ///
    /// While a [`RUN_EXPERIMENT`] job runs, every heartbeat (a third of the lease) also reads
    /// the experiment's status; once its owner has set it to `cancelled`, the work is cancelled
    /// as if `options.cancel` had fired, so it stops within one heartbeat interval and the
    /// unrun iterations are refunded.
    ///
    /// A lost lease stops the work the way `stop` does (another worker resumes it) and is
    /// reported as [`JobOutcome::LeaseLost`], as is a settle call refused for a lost lease.
    ///
    /// Errors: [`JobError::Store`] when the job could not be settled (it stays leased until
    /// the lease expires, then it is claimed again).
    pub async fn execute_with(
        &self,
        job: &Job,
        options: ExecuteOptions,
    ) -> Result<Execution, JobError> {
        let lease = job.lease();
        let lease_length = options.lease.unwrap_or(self.lease);
        let last_attempt = job.attempts >= job.max_attempts;
        let hard_deadline = options
            .hard_time_limit
            .and_then(|d| tokio::time::Instant::now().checked_add(d));
        let cancel = options.cancel.child_token();
        let stop = options.stop.child_token();
        let run_options = RunOptions {
            cancel: cancel.clone(),
            stop: stop.clone(),
            // On the last attempt the runner itself fails the runs at the limit (refunding
            // what never ran); earlier attempts stop and leave them for the retry.
            deadline: hard_deadline.filter(|_| last_attempt),
            progress: options.progress,
        };
        let work = self.dispatch(job, run_options);
        let keep_alive = self.keep_alive(job, lease_length, cancel.clone());
        let hard_timer = super::sleep_until(hard_deadline.filter(|_| !last_attempt));
        futures::pin_mut!(work, keep_alive, hard_timer);
        let mut lost = false;
        let mut hard_hit = false;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                () = &mut keep_alive, if !lost => {
                    // The job belongs to someone else now: stop the work (its iteration writes
                    // are idempotent, so what it flushes is safe) and settle nothing.
                    lost = true;
                    stop.cancel();
                }
                () = &mut hard_timer, if !hard_hit => {
                    hard_hit = true;
                    stop.cancel();
                }
            }
        };
        if lost {
            tracing::warn!(job_id = %job.id, "lease lost: another worker took the job over");
            return Ok(Execution::new(
                JobOutcome::LeaseLost,
                None,
                Some("lease lost".to_owned()),
            ));
        }
        let now = Timestamp::now();
        let hard_limit_message = || {
            format!(
                "hard time limit of {}s exceeded",
                options.hard_time_limit.map_or(0, |d| d.as_secs())
            )
        };
        let settled = match result {
            Ok(run) => {
                let timed_out = last_attempt
                    && hard_deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
                    && run
                        .as_ref()
                        .is_some_and(|r| r.status == ExperimentStatus::Failed);
                if timed_out {
                    // The runner failed the runs at the limit; the job fails with them.
                    let message = hard_limit_message();
                    tracing::warn!(job_id = %job.id, attempt = job.attempts, "{message}");
                    self.store
                        .fail(lease, &message, None, now)
                        .await
                        .map(|status| {
                            Execution::new(JobOutcome::after_fail(status), run, Some(message))
                        })
                } else {
                    let outcome = if run
                        .as_ref()
                        .is_some_and(|r| r.status == ExperimentStatus::Cancelled)
                    {
                        JobOutcome::Cancelled
                    } else {
                        JobOutcome::Succeeded
                    };
                    self.store
                        .complete(lease, now)
                        .await
                        .map(|()| Execution::new(outcome, run, None))
                }
            }
            Err(JobError::Run(RunError::Stopped)) if hard_hit => {
                let message = hard_limit_message();
                tracing::warn!(job_id = %job.id, attempt = job.attempts, "{message}");
                let retry_at = now + backoff(job.attempts);
                self.store
                    .fail(lease, &message, Some(retry_at), now)
                    .await
                    .map(|status| {
                        Execution::new(JobOutcome::after_fail(status), None, Some(message))
                    })
            }
            Err(JobError::Run(RunError::Stopped)) => {
                tracing::info!(job_id = %job.id, "stopped: releasing the job to the queue");
                self.store.release(lease, now).await.map(|()| {
                    Execution::new(JobOutcome::Released, None, Some("stopped".to_owned()))
                })
            }
            Err(e) => {
                let retry_at = match &e {
                    JobError::Webhook { retry_at, .. } => *retry_at,
                    _ => retryable(&e).then(|| now + backoff(job.attempts)),
                };
                tracing::warn!(job_id = %job.id, attempt = job.attempts, error = %e, "job failed");
                let message = e.to_string();
                self.store
                    .fail(lease, &message, retry_at, now)
                    .await
                    .map(|status| {
                        Execution::new(JobOutcome::after_fail(status), None, Some(message))
                    })
            }
        };
        match settled {
            Ok(execution) => Ok(execution),
            Err(StoreError::LeaseLost) => Ok(Execution::new(
                JobOutcome::LeaseLost,
                None,
                Some("lease lost before the job was settled".to_owned()),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn dispatch(
        &self,
        job: &Job,
        options: RunOptions,
    ) -> Result<Option<ExperimentOutcome>, JobError> {
        match job.kind.as_str() {
            RUN_EXPERIMENT => {
                let p: RunExperimentPayload = serde_json::from_value(job.payload.clone())?;
                let outcome = self
                    .runner
                    .run_with(p.user_id, p.experiment_id, options)
                    .await?;
                if outcome.status == ExperimentStatus::Completed {
                    // The run is done and stored whatever happens here: a failed evaluation is
                    // logged, not a failed job (the next run compares again).
                    match self
                        .alerts
                        .evaluate(p.user_id, p.experiment_id, Timestamp::now())
                        .await
                    {
                        Ok(alerts) if !alerts.is_empty() => {
                            tracing::info!(job_id = %job.id, experiment_id = %p.experiment_id, alerts = alerts.len(), "alerts raised");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, experiment_id = %p.experiment_id, error = %e, "alert evaluation failed");
                        }
                    }
                }
                Ok(Some(outcome))
            }
            DELIVER_WEBHOOK => {
                let p: DeliverWebhookPayload = serde_json::from_value(job.payload.clone())?;
                let deliverer = self.webhooks.as_ref().ok_or(JobError::NoWebhookTransport)?;
                let retry_at = (job.attempts < job.max_attempts)
                    .then(|| Timestamp::now() + backoff(job.attempts));
                match deliverer
                    .attempt(p.user_id, p.delivery_id, retry_at)
                    .await?
                {
                    AttemptOutcome::Retry { reason } => Err(JobError::Webhook { reason, retry_at }),
                    AttemptOutcome::GaveUp { reason } => Err(JobError::Webhook {
                        reason,
                        retry_at: None,
                    }),
                    _ => Ok(None),
                }
            }
            other => Err(JobError::UnknownKind(other.to_owned())),
        }
    }

    /// Renews the lease every third of `length` until it is lost (then returns), and watches
    /// for the owner's cancellation of a [`RUN_EXPERIMENT`] job, firing `cancel` when it comes.
    /// Runs until dropped, including while cancelled work winds down, so the lease holds to
    /// the end.
    async fn keep_alive(&self, job: &Job, length: Duration, cancel: CancellationToken) {
        let lease = job.lease();
        let watched = (job.kind == RUN_EXPERIMENT)
            .then(|| serde_json::from_value::<RunExperimentPayload>(job.payload.clone()).ok())
            .flatten();
        let every = (length / 3).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            let now = Timestamp::now();
            let until = lease_expiry(now, length).unwrap_or(now);
            match self.store.heartbeat(lease, until).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost) => return,
                // A failed heartbeat is retried on the next tick; the lease has two more
                // ticks of slack before it expires.
                Err(e) => tracing::warn!(job_id = %job.id, error = %e, "heartbeat failed"),
            }
            if let Some(p) = &watched
                && !cancel.is_cancelled()
            {
                match self.store.get_experiment(p.user_id, p.experiment_id).await {
                    Ok(e) if e.status == ExperimentStatus::Cancelled => {
                        tracing::info!(job_id = %job.id, experiment_id = %p.experiment_id, "experiment cancelled by its owner: stopping the run");
                        cancel.cancel();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "could not read the experiment's status");
                    }
                }
            }
        }
    }
}

fn retryable(e: &JobError) -> bool {
    match e {
        JobError::Run(RunError::Store(s)) | JobError::Store(s) => s.is_retryable(),
        JobError::NoWebhookTransport => true,
        _ => false,
    }
}

/// attempt⁴ seconds plus 15 s (River's curve, shifted so a first retry is not immediate).
fn backoff(attempt: u32) -> time::Duration {
    let a = i64::from(attempt.min(20));
    time::Duration::seconds(15 + a.pow(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_payload_is_its_serde_form() {
        let payload = DeliverWebhookPayload {
            user_id: UserId::new(),
            delivery_id: WebhookDeliveryId::new(),
        };
        let now = Timestamp::now();
        let by_hand = payload.into_job(now);
        let by_serde = Job::new(&payload, now, WEBHOOK_MAX_ATTEMPTS, now).unwrap();
        assert_eq!(by_hand.kind, by_serde.kind);
        assert_eq!(by_hand.payload, by_serde.payload);
        assert_eq!(by_hand.max_attempts, WEBHOOK_MAX_ATTEMPTS);
        assert_eq!(
            serde_json::from_value::<DeliverWebhookPayload>(by_hand.payload).unwrap(),
            payload
        );
    }

    #[test]
    fn payload_is_its_serde_form() {
        let payload = RunExperimentPayload {
            user_id: UserId::new(),
            experiment_id: ExperimentId::new(),
        };
        let now = Timestamp::now();
        let by_hand = payload.into_job(now);
        let by_serde = Job::new(&payload, now, 3, now).unwrap();
        assert_eq!(by_hand.kind, by_serde.kind);
        assert_eq!(by_hand.payload, by_serde.payload);
        assert_eq!(
            serde_json::from_value::<RunExperimentPayload>(by_hand.payload).unwrap(),
            payload
        );
    }
}
