use async_trait::async_trait;
use echo_core::model::{
    Experiment, ExperimentId, ExperimentStatus, Job, Precision, QuotaDebit, Timestamp, UserId,
};
use echo_core::store::sql::{ColumnReader, found, opt_to_json, to_json};
use echo_core::store::{
    ExperimentCursor, ExperimentQuery, ExperimentStore, Page, ScheduleClaim, StoreError,
};
use rusqlite::{Transaction, params};

use crate::SqliteStore;
use crate::db::{execute, query_all, query_bool, query_opt};
use crate::error::SqlResultExt;
use crate::jobs::insert_job;
use crate::queries as q;
use crate::rows::{self, Cols, opt_micros};
use crate::users::debit_quota;

fn insert_experiment(tx: &Transaction<'_>, e: &Experiment) -> Result<(), StoreError> {
    let recurrence = e.recurrence.as_ref();
    execute(
        tx,
        q::EXPERIMENT_INSERT,
        params![
            e.id.as_uuid().as_bytes(),
            e.user_id.as_uuid().as_bytes(),
            e.prompt.as_str(),
            to_json("target brand", &e.target)?,
            to_json("competitors", &e.competitors)?,
            e.iterations.get(),
            to_json("providers", &e.providers)?,
            e.status.as_str(),
            recurrence.map(|r| r.schedule.as_str()),
            opt_micros(recurrence.and_then(|r| r.next_run_at)),
            e.created_at.unix_micros(),
            e.updated_at.unix_micros(),
            opt_to_json("prompt set", e.prompt_set.as_ref())?,
            e.precision.map(Precision::get),
        ],
    )
    .db_parent("user")?;
    Ok(())
}

impl SqliteStore {
    /// Bulk-loads experiments as they are (status, recurrence and timestamps included) in one
    /// transaction: for imports, restores and benchmark seeding. Unlike
    /// [`ExperimentStore::create_experiment`] it debits no quota and enqueues no job.
    ///
    /// All or nothing: [`StoreError::NotFound`] when an owner does not exist,
    /// [`StoreError::Conflict`] when an id is taken. The whole batch is one write transaction,
    /// so the write-ahead log grows by about the batch's size until the next checkpoint; split
    /// very large imports into calls of a few hundred thousand rows.
    pub async fn import_experiments(&self, experiments: &[Experiment]) -> Result<(), StoreError> {
        let experiments = experiments.to_vec();
        self.db
            .write(move |tx| {
                for e in &experiments {
                    insert_experiment(tx, e)?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl ExperimentStore for SqliteStore {
    async fn create_experiment(
        &self,
        experiment: &Experiment,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<(), StoreError> {
        debit.check_owner(experiment.user_id)?;
        let (e, job) = (experiment.clone(), job.clone());
        self.db
            .write(move |tx| {
                // Inserts first so that a missing owner reads NotFound rather than a quota error.
                insert_experiment(tx, &e)?;
                insert_job(tx, &job)?;
                debit_quota(tx, debit)
            })
            .await
    }

    async fn request_run(
        &self,
        owner: UserId,
        id: ExperimentId,
        debit: QuotaDebit,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let job = job.clone();
        self.db
            .write(move |tx| {
                let owner_b = owner.as_uuid().as_bytes();
                let status: ExperimentStatus = query_opt(
                    tx,
                    q::EXPERIMENT_STATUS,
                    params![id.as_uuid().as_bytes(), owner_b],
                    |row| Cols::new(row).parse("experiments.status"),
                )?
                .ok_or(StoreError::not_found("experiment"))?;
                if !status.can_rerun() {
                    return Err(StoreError::conflict(format!("experiment is {status}")));
                }
                insert_job(tx, &job)?;
                debit.check_owner(owner)?;
                debit_quota(tx, debit)?;
                execute(
                    tx,
                    q::EXPERIMENT_SET_STATUS,
                    params![
                        id.as_uuid().as_bytes(),
                        owner_b,
                        ExperimentStatus::Queued.as_str(),
                        now.unix_micros()
                    ],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn get_experiment(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, StoreError> {
        self.db
            .read(move |tx| {
                query_opt(
                    tx,
                    q::EXPERIMENT_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                    rows::record::<Experiment>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("experiment"))
    }

    async fn list_experiments(
        &self,
        owner: UserId,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment, ExperimentCursor>, StoreError> {
        let query = query.clone();
        let limit = query.limit.get() as usize;
        let items = self
            .db
            .read(move |tx| {
                let user = owner.as_uuid().as_bytes();
                // One extra row tells whether another page follows.
                let fetch = query.limit.get() + 1;
                let status = query.status.map(|s| s.as_str());
                let after = query
                    .after
                    .map(|c| (c.created_at.unix_micros(), *c.id.as_uuid().as_bytes()));
                match (status, after) {
                    (None, None) => query_all(
                        tx,
                        q::EXPERIMENTS_PAGE,
                        params![user, fetch],
                        rows::record::<Experiment>,
                    ),
                    (None, Some((at, id))) => query_all(
                        tx,
                        q::EXPERIMENTS_PAGE_AFTER,
                        params![user, fetch, at, id],
                        rows::record::<Experiment>,
                    ),
                    (Some(status), None) => query_all(
                        tx,
                        q::EXPERIMENTS_PAGE_BY_STATUS,
                        params![user, fetch, status],
                        rows::record::<Experiment>,
                    ),
                    (Some(status), Some((at, id))) => query_all(
                        tx,
                        q::EXPERIMENTS_PAGE_BY_STATUS_AFTER,
                        params![user, fetch, status, at, id],
                        rows::record::<Experiment>,
                    ),
                }
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, ExperimentCursor::after))
    }

    async fn set_experiment_status(
        &self,
        owner: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::EXPERIMENT_SET_STATUS,
                    params![
                        id.as_uuid().as_bytes(),
                        owner.as_uuid().as_bytes(),
                        status.as_str(),
                        now.unix_micros()
                    ],
                )
                .db()?;
                found(changed as u64, "experiment")
            })
            .await
    }

    async fn delete_experiment(&self, owner: UserId, id: ExperimentId) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::EXPERIMENT_DELETE,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                )
                .db()?;
                found(changed as u64, "experiment")
            })
            .await
    }

    async fn due_recurring(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Experiment>, StoreError> {
        self.db
            .read(move |tx| {
                query_all(
                    tx,
                    q::EXPERIMENTS_DUE_RECURRING,
                    params![now.unix_micros(), limit],
                    rows::record::<Experiment>,
                )
            })
            .await
    }

    async fn claim_schedule(
        &self,
        id: ExperimentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<ScheduleClaim, StoreError> {
        let job = job.clone();
        self.db
            .write(move |tx| {
                let id_b = id.as_uuid().as_bytes();
                // The compare-and-set on `next_run_at` is what makes exactly one racer win.
                let owner = query_opt(
                    tx,
                    q::EXPERIMENT_ADVANCE_SCHEDULE,
                    params![
                        id_b,
                        expected.unix_micros(),
                        opt_micros(next),
                        job.created_at.unix_micros()
                    ],
                    |row| Cols::new(row).id::<UserId>("experiments.user_id"),
                )?;
                let Some(owner) = owner else {
                    return Ok(ScheduleClaim::Lost);
                };
                debit.check_owner(owner)?;
                match debit_quota(tx, debit) {
                    Ok(()) => {
                        insert_job(tx, &job)?;
                        execute(tx, q::EXPERIMENT_MARK_QUEUED, [id_b]).db()?;
                        Ok(ScheduleClaim::Enqueued)
                    }
                    Err(StoreError::QuotaExceeded { .. }) => {
                        // A colliding job id is an error whatever the quota says.
                        if query_bool(tx, q::JOB_EXISTS, [job.id.as_uuid().as_bytes()])? {
                            return Err(StoreError::conflict("a job with this id already exists"));
                        }
                        Ok(ScheduleClaim::SkippedOverQuota)
                    }
                    Err(e) => Err(e),
                }
            })
            .await
    }
}
