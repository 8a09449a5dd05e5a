//! [`JobQueue`] for the in-memory store. A lease is a token bumped on every claim, so a worker
//! whose lease expired and was re-claimed cannot complete or fail the job.

use std::time::Duration;

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::model::{Job, JobId, JobLease, JobStatus, Timestamp};
use crate::store::{JobQueue, QueueStats, StoreError, lease_expiry};

impl State {
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
