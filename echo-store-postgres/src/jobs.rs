use std::time::Duration;

use async_trait::async_trait;
use echo_core::model::{Job, JobId, JobLease, JobStatus, Timestamp};
use echo_core::store::sql::{ColumnReader, to_i64, to_json};
use echo_core::store::{JobQueue, QueueStats, StoreError, lease_expiry};
use sqlx::PgConnection;

use crate::PgStore;
use crate::api_keys::BULK_CHUNK;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::queries as q;
use crate::rows::{self, Cols, dt, opt_dt};

pub(crate) async fn insert_jobs(conn: &mut PgConnection, jobs: &[Job]) -> Result<(), StoreError> {
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut expires = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut requests = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    for j in jobs {
        ids.push(*j.id.as_uuid());
        kinds.push(j.kind.as_str());
        payloads.push(to_json("job payload", &j.payload)?);
        statuses.push(j.status.as_str());
        attempts.push(i64::from(j.attempts));
        max_attempts.push(i64::from(j.max_attempts));
        run_at.push(dt(j.run_at));
        owners.push(j.lease_owner.as_deref());
        expires.push(opt_dt(j.lease_expires_at));
        tokens.push(to_i64("lease token", j.lease_token)?);
        errors.push(j.last_error.as_deref());
        requests.push(j.request_id.as_deref());
        created.push(dt(j.created_at));
        updated.push(dt(j.updated_at));
    }
    execute(
        conn,
        sqlx::query(q::JOBS_INSERT)
            .bind(ids)
            .bind(kinds)
            .bind(payloads)
            .bind(statuses)
            .bind(attempts)
            .bind(max_attempts)
            .bind(run_at)
            .bind(owners)
            .bind(expires)
            .bind(tokens)
            .bind(errors)
            .bind(requests)
            .bind(created)
            .bind(updated),
    )
    .await?;
    Ok(())
}

/// A write guarded by `lease_token = $2 AND status = 'running'` that changed no row: the caller
/// no longer holds the lease.
fn held(changed: u64) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::LeaseLost)
    } else {
        Ok(())
    }
}

fn lease_token(lease: JobLease) -> Result<i64, StoreError> {
    // A token beyond bigint was never issued, so it cannot be held.
    i64::try_from(lease.token).map_err(|_| StoreError::LeaseLost)
}

async fn complete_on(
    conn: &mut PgConnection,
    lease: JobLease,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = execute(
        conn,
        sqlx::query(q::JOB_COMPLETE)
            .bind(*lease.job_id.as_uuid())
            .bind(lease_token(lease)?)
            .bind(dt(now)),
    )
    .await?;
    held(changed)
}

impl PgStore {
    /// Completes many jobs in one statement (each fenced by its own token, as
    /// [`JobQueue::complete`]), for workers that finish jobs in batches: one commit instead of
    /// one per job. Returns the leases that were no longer held (nothing was done for those).
    pub async fn complete_many(
        &self,
        leases: &[JobLease],
        now: Timestamp,
    ) -> Result<Vec<JobLease>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<_> = leases.iter().map(|l| *l.job_id.as_uuid()).collect();
        let tokens: Vec<i64> = leases
            .iter()
            .map(|l| i64::try_from(l.token).unwrap_or(-1))
            .collect();
        let mut conn = self.db().conn().await?;
        let done: Vec<JobId> = fetch_all(
            &mut conn,
            sqlx::query(q::JOBS_COMPLETE_MANY)
                .bind(ids)
                .bind(tokens)
                .bind(dt(now)),
            |row| Cols::new(row).id("jobs.id"),
        )
        .await?;
        let done: std::collections::HashSet<JobId> = done.into_iter().collect();
        Ok(leases
            .iter()
            .filter(|l| !done.contains(&l.job_id))
            .copied()
            .collect())
    }

    /// Enqueues many jobs in one transaction of multi-row statements (for bulk work and
    /// benchmarks), waking workers once. All or nothing: [`StoreError::Conflict`] when an id is
    /// taken.
    pub async fn enqueue_many(&self, jobs: &[Job]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.db().begin().await?;
        for chunk in jobs.chunks(BULK_CHUNK) {
            insert_jobs(&mut tx, chunk).await?;
        }
        commit(tx).await?;
        self.jobs_committed();
        Ok(())
    }

    /// Enqueues `job` inside the caller's transaction (from [`PgStore::begin`]), so the job
    /// exists exactly when the caller's own writes commit. Call
    /// [`PgStore::notify_job_workers`] after committing to wake workers at once.
    pub async fn enqueue_in(&self, conn: &mut PgConnection, job: &Job) -> Result<(), StoreError> {
        insert_jobs(conn, std::slice::from_ref(job)).await
    }

    /// Wakes idle workers after the caller committed jobs enqueued with
    /// [`PgStore::enqueue_in`] (debounced like every enqueue; see the crate docs).
    pub fn notify_job_workers(&self) {
        self.jobs_committed();
    }

    /// Completes the job inside the caller's transaction, fenced by the lease's token like
    /// [`JobQueue::complete`]: a worker that writes its results in the same transaction commits
    /// them exactly once, because a zombie attempt (lease expired and re-claimed) gets
    /// [`StoreError::LeaseLost`] here and must roll back. The check holds the job's row lock
    /// until the transaction ends, so no re-claim can slip in before the commit.
    pub async fn complete_in(
        &self,
        conn: &mut PgConnection,
        lease: JobLease,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        complete_on(conn, lease, now).await
    }
}

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        insert_jobs(&mut conn, std::slice::from_ref(job)).await?;
        drop(conn);
        self.jobs_committed();
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.db().conn().await?;
        let mut jobs = fetch_all(
            &mut conn,
            sqlx::query(q::JOBS_CLAIM)
                .bind(dt(now))
                .bind(i64::from(limit))
                .bind(worker)
                .bind(dt(expires)),
            rows::record::<Job>,
        )
        .await?;
        // RETURNING follows no order; hand jobs out in claim order.
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let expires = lease_expiry(now, lease)?;
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::JOB_CLAIM_ONE)
                .bind(dt(now))
                .bind(worker)
                .bind(dt(expires))
                .bind(*id.as_uuid()),
            rows::record::<Job>,
        )
        .await
    }

    async fn heartbeat(&self, lease: JobLease, until: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::JOB_HEARTBEAT)
                .bind(*lease.job_id.as_uuid())
                .bind(lease_token(lease)?)
                .bind(dt(until)),
        )
        .await?;
        held(changed)
    }

    async fn complete(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        complete_on(&mut conn, lease, now).await
    }

    async fn fail(
        &self,
        lease: JobLease,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<JobStatus, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::JOB_FAIL)
                .bind(*lease.job_id.as_uuid())
                .bind(lease_token(lease)?)
                .bind(error)
                .bind(opt_dt(retry_at))
                .bind(dt(now)),
            |row| Cols::new(row).parse::<JobStatus>("jobs.status"),
        )
        .await?
        .ok_or(StoreError::LeaseLost)
    }

    async fn release(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::JOB_RELEASE)
                .bind(*lease.job_id.as_uuid())
                .bind(lease_token(lease)?)
                .bind(dt(now)),
        )
        .await?;
        drop(conn);
        held(changed)?;
        self.jobs_committed();
        Ok(())
    }

    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::JOB_BY_ID).bind(*id.as_uuid()),
            rows::record::<Job>,
        )
        .await?
        .ok_or(StoreError::not_found("job"))
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::JOB_STATS).bind(dt(now)),
            rows::record::<QueueStats>,
        )
        .await
        .map(Option::unwrap_or_default)
    }

    async fn prune_jobs(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::JOB_PRUNE)
                .bind(dt(before))
                .bind(i64::from(limit)),
        )
        .await
    }
}
