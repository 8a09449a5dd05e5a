//! Queue jobs.

use serde::{Deserialize, Serialize};

use super::{JobId, JobStatus, Timestamp};

/// A unit of background work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Identity.
    pub id: JobId,
    /// What to do (`run_experiment`, `retention`…); workers dispatch on it.
    pub kind: String,
    /// Kind-specific arguments.
    pub payload: serde_json::Value,
    /// Queue state.
    pub status: JobStatus,
    /// Claims so far, including the current one.
    pub attempts: u32,
    /// Claims allowed before the job fails for good.
    pub max_attempts: u32,
    /// Not claimable before this instant.
    pub run_at: Timestamp,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// The lease ends here unless heartbeated; after it the job may be re-claimed.
    pub lease_expires_at: Option<Timestamp>,
    /// Fencing token: increases on every claim, so a worker whose lease was taken over can no
    /// longer heartbeat, complete or fail the job.
    pub lease_token: u64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// Request id of the request that enqueued it, carried into the worker's logs.
    pub request_id: Option<String>,
    /// Enqueue time.
    pub created_at: Timestamp,
    /// Last state change.
    pub updated_at: Timestamp,
}

/// The typed arguments of one kind of job; [`Job::new`] builds a job only from one.
///
/// A worker dispatches on [`JobPayload::KIND`] and decodes the payload back into the same type,
/// so a job built from a typed payload is one its executor can read. Echo's own kind is
/// [`RunExperimentPayload`](crate::runner::RunExperimentPayload).
///
/// The payload should name its owner in a top-level `"user_id"` field when it has one:
/// deleting the account deletes such jobs with it ([`UserStore::delete_user`]).
///
/// [`UserStore::delete_user`]: crate::store::UserStore::delete_user
pub trait JobPayload: Serialize {
    /// The kind workers dispatch on (`run_experiment`).
    const KIND: &'static str;
}

impl Job {
    /// A queued job carrying `payload`, due at `run_at`, with `max_attempts` claims (at least
    /// one). Fails only when the payload cannot be serialized to JSON (a map with non-string
    /// keys, a custom `Serialize` that errors).
    pub fn new<P: JobPayload>(
        payload: &P,
        run_at: Timestamp,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::encoded(
            P::KIND,
            serde_json::to_value(payload)?,
            run_at,
            max_attempts,
            now,
        ))
    }

    /// A job whose payload is already encoded, for typed payloads whose encoding cannot fail.
    pub(crate) fn encoded(
        kind: &str,
        payload: serde_json::Value,
        run_at: Timestamp,
        max_attempts: u32,
        now: Timestamp,
    ) -> Self {
        Self {
            id: JobId::new(),
            kind: kind.to_owned(),
            payload,
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: max_attempts.max(1),
            run_at,
            lease_owner: None,
            lease_expires_at: None,
            lease_token: 0,
            last_error: None,
            request_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The lease a worker holds after claiming this job.
    pub fn lease(&self) -> JobLease {
        JobLease {
            job_id: self.id,
            token: self.lease_token,
        }
    }
}

/// Proof of a claim: the job and the fencing token it was claimed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    /// The job.
    pub job_id: JobId,
    /// The claim's fencing token.
    pub token: u64,
}
