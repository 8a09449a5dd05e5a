use std::time::Duration;

use async_trait::async_trait;
use echo_core::model::{Job, JobId, JobLease, JobStatus, Timestamp};
use echo_core::store::sql::{ColumnReader, to_i64, to_json};
use echo_core::store::{JobQueue, QueueStats, StoreError, lease_expiry};
use rusqlite::{Transaction, params};

use crate::SqliteStore;
use crate::db::{execute, query_all, query_opt};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows::{self, Cols, opt_micros};

pub(crate) fn insert_job(tx: &Transaction<'_>, job: &Job) -> Result<(), StoreError> {
    execute(
        tx,
        q::JOB_INSERT,
        params![
            job.id.as_uuid().as_bytes(),
            job.kind,
            to_json("job payload", &job.payload)?,
            job.status.as_str(),
            job.attempts,
            job.max_attempts,
            job.run_at.unix_micros(),
            job.lease_owner,
            opt_micros(job.lease_expires_at),
            to_i64("lease token", job.lease_token)?,
            job.last_error,
            job.request_id,
            job.created_at.unix_micros(),
            job.updated_at.unix_micros(),
        ],
    )
    .db()?;
    Ok(())
}

/// A claim candidate: enough to decide between claiming and failing it, and to page on.
struct Candidate {
    id: [u8; 16],
    status: JobStatus,
    attempts: u32,
    max_attempts: u32,
    run_at: i64,
}

fn candidate(row: &rusqlite::Row<'_>) -> Result<Candidate, StoreError> {
    let mut c = Cols::new(row);
    Ok(Candidate {
        id: c.blob("jobs.id")?,
        status: c.parse("jobs.status")?,
        attempts: c.u32("jobs.attempts")?,
        max_attempts: c.u32("jobs.max_attempts")?,
        run_at: c.i64("jobs.run_at")?,
    })
}

/// Claims a candidate, or fails it when its lease expired on the final attempt.
fn claim_candidate(
    tx: &Transaction<'_>,
    c: &Candidate,
    worker: &str,
    expires: Timestamp,
    now_us: i64,
) -> Result<Option<Job>, StoreError> {
    if c.status == JobStatus::Running && c.attempts >= c.max_attempts {
        execute(tx, q::JOB_FAIL_EXPIRED, params![c.id, now_us]).db()?;
        return Ok(None);
    }
    query_opt(
        tx,
        q::JOB_CLAIM,
        params![c.id, worker, expires.unix_micros(), now_us],
        rows::record::<Job>,
    )
}

/// Runs a statement guarded by `lease_token = ? AND status = 'running'`; no row means the
/// caller no longer holds the lease.
fn held(changed: usize) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::LeaseLost)
    } else {
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        let job = job.clone();
        self.db.write(move |tx| insert_job(tx, &job)).await
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
        let worker = worker.to_owned();
        self.db
            .write(move |tx| {
                let now_us = now.unix_micros();
                let mut claimed = Vec::new();
                // Candidates are read a page at a time after the last one seen, so failing an
                // exhausted job never costs a claim slot and a just-claimed job is never seen
                // twice (even with a zero lease).
                let mut after = (i64::MIN, Vec::<u8>::new());
                loop {
                    let want = limit - claimed.len() as u32;
                    let page = query_all(
                        tx,
                        q::JOB_CLAIM_CANDIDATES,
                        params![now_us, after.0, after.1, want],
                        candidate,
                    )?;
                    let exhausted = page.len() < want as usize;
                    for c in &page {
                        claimed.extend(claim_candidate(tx, c, &worker, expires, now_us)?);
                    }
                    match page.last() {
                        Some(last) if !exhausted && claimed.len() < limit as usize => {
                            after = (last.run_at, last.id.to_vec());
                        }
                        _ => break,
                    }
                }
                Ok(claimed)
            })
            .await
    }

    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        let expires = lease_expiry(now, lease)?;
        let worker = worker.to_owned();
        self.db
            .write(move |tx| {
                let now_us = now.unix_micros();
                let Some(c) = query_opt(
                    tx,
                    q::JOB_CLAIM_ONE_CANDIDATE,
                    params![id.as_uuid().as_bytes(), now_us],
                    candidate,
                )?
                else {
                    return Ok(None);
                };
                claim_candidate(tx, &c, &worker, expires, now_us)
            })
            .await
    }

    async fn heartbeat(&self, lease: JobLease, until: Timestamp) -> Result<(), StoreError> {
        let token = to_i64("lease token", lease.token)?;
        self.db
            .write(move |tx| {
                held(
                    execute(
                        tx,
                        q::JOB_HEARTBEAT,
                        params![
                            lease.job_id.as_uuid().as_bytes(),
                            token,
                            until.unix_micros()
                        ],
                    )
                    .db()?,
                )
            })
            .await
    }

    async fn complete(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let token = to_i64("lease token", lease.token)?;
        self.db
            .write(move |tx| {
                held(
                    execute(
                        tx,
                        q::JOB_COMPLETE,
                        params![lease.job_id.as_uuid().as_bytes(), token, now.unix_micros()],
                    )
                    .db()?,
                )
            })
            .await
    }

    async fn fail(
        &self,
        lease: JobLease,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<JobStatus, StoreError> {
        let token = to_i64("lease token", lease.token)?;
        let error = error.to_owned();
        self.db
            .write(move |tx| {
                query_opt(
                    tx,
                    q::JOB_FAIL,
                    params![
                        lease.job_id.as_uuid().as_bytes(),
                        token,
                        error,
                        opt_micros(retry_at),
                        now.unix_micros()
                    ],
                    |row| Cols::new(row).parse::<JobStatus>("jobs.status"),
                )?
                .ok_or(StoreError::LeaseLost)
            })
            .await
    }

    async fn release(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError> {
        let token = to_i64("lease token", lease.token)?;
        self.db
            .write(move |tx| {
                held(
                    execute(
                        tx,
                        q::JOB_RELEASE,
                        params![lease.job_id.as_uuid().as_bytes(), token, now.unix_micros()],
                    )
                    .db()?,
                )
            })
            .await
    }

    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        self.db
            .read(move |tx| {
                query_opt(
                    tx,
                    q::JOB_BY_ID,
                    [id.as_uuid().as_bytes()],
                    rows::record::<Job>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("job"))
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        self.db
            .read(move |tx| {
                query_opt(
                    tx,
                    q::JOB_STATS,
                    [now.unix_micros()],
                    rows::record::<QueueStats>,
                )
            })
            .await
            .map(Option::unwrap_or_default)
    }

    async fn prune_jobs(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                let deleted =
                    execute(tx, q::JOB_PRUNE, params![before.unix_micros(), limit]).db()?;
                Ok(deleted as u64)
            })
            .await
    }
}
