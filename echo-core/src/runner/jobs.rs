//! Queue jobs that run experiments, and their execution under a heartbeated lease.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{ExperimentOutcome, ExperimentRunner, ProgressFn, RunError};
use crate::model::{ExperimentId, Job, JobLease, JobStatus, Timestamp, UserId};
use crate::store::{DynStore, StoreError};

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

impl RunExperimentPayload {
    /// A queued job for this payload, due now, with three attempts.
    pub fn into_job(self, now: Timestamp) -> Job {
        let payload = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        Job::new(RUN_EXPERIMENT, payload, now, 3, now)
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
}

/// Executes claimed jobs: dispatches on the kind, heartbeats the lease while the work runs,
/// and settles the job (complete, retry with backoff, or fail) when it ends.
#[derive(Debug, Clone)]
pub struct JobExecutor {
    store: Arc<DynStore>,
    runner: Arc<ExperimentRunner>,
    lease: Duration,
}

impl JobExecutor {
    /// An executor whose claims last `lease` (heartbeats renew them every third of it).
    pub fn new(store: Arc<DynStore>, runner: Arc<ExperimentRunner>, lease: Duration) -> Self {
        Self {
            store,
            runner,
            lease,
        }
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
    /// unrun iterations is refunded and the job completes. A graceful shutdown that should hand
    /// the job to another worker instead must [`release`](crate::store::JobQueue::release) it
    /// without calling this.
    pub async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: Option<ProgressFn>,
    ) -> Result<(JobStatus, Option<ExperimentOutcome>), JobError> {
        let lease = job.lease();
        let work_cancel = cancel.child_token();
        let work = self.dispatch(job, work_cancel.clone(), progress);
        let heartbeat = self.heartbeat(lease, work_cancel.clone());
        futures::pin_mut!(work, heartbeat);
        let result = tokio::select! {
            result = &mut work => result,
            lost = &mut heartbeat => {
                // The lease is gone: stop the work and let it wind down (its iteration writes
                // are idempotent), but settle nothing — the job belongs to someone else now.
                work_cancel.cancel();
                let _ = work.await;
                return Err(lost.into());
            }
        };
        let now = Timestamp::now();
        match result {
            Ok(outcome) => {
                self.store.complete(lease, now).await?;
                Ok((JobStatus::Succeeded, outcome))
            }
            Err(e) => {
                let retry_at = retryable(&e).then(|| now + backoff(job.attempts));
                tracing::warn!(job_id = %job.id, attempt = job.attempts, error = %e, "job failed");
                let status = self
                    .store
                    .fail(lease, &e.to_string(), retry_at, now)
                    .await?;
                Ok((status, None))
            }
        }
    }

    async fn dispatch(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: Option<ProgressFn>,
    ) -> Result<Option<ExperimentOutcome>, JobError> {
        match job.kind.as_str() {
            RUN_EXPERIMENT => {
                let p: RunExperimentPayload = serde_json::from_value(job.payload.clone())?;
                let outcome = self
                    .runner
                    .run(p.user_id, p.experiment_id, cancel, progress)
                    .await?;
                Ok(Some(outcome))
            }
            other => Err(JobError::UnknownKind(other.to_owned())),
        }
    }

    /// Renews the lease until it is lost (returns the error) or the work is cancelled.
    async fn heartbeat(&self, lease: JobLease, cancel: CancellationToken) -> StoreError {
        let every = (self.lease / 3).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return std::future::pending().await,
                () = tokio::time::sleep(every) => {}
            }
            let until = Timestamp::now()
                + time::Duration::try_from(self.lease).unwrap_or(time::Duration::MINUTE);
            match self.store.heartbeat(lease, until).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost) => return StoreError::LeaseLost,
                // A failed heartbeat is retried on the next tick; the lease has two more
                // ticks of slack before it expires.
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            }
        }
    }
}

fn retryable(e: &JobError) -> bool {
    match e {
        JobError::Run(RunError::Store(s)) | JobError::Store(s) => s.is_retryable(),
        _ => false,
    }
}

/// attempt⁴ seconds plus 15 s (River's curve, shifted so a first retry is not immediate).
fn backoff(attempt: u32) -> time::Duration {
    let a = i64::from(attempt.min(20));
    time::Duration::seconds(15 + a.pow(4))
}
