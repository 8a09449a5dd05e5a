use async_trait::async_trait;
use echo_core::model::{
    Experiment, ExperimentId, ExperimentStatus, Job, QuotaDebit, Timestamp, UserId,
};
use echo_core::store::sql::{ColumnReader, found, opt_to_json, to_json};
use echo_core::store::{
    ExperimentCursor, ExperimentQuery, ExperimentStore, Page, ScheduleClaim, StoreError,
};
use sqlx::PgConnection;

use crate::PgStore;
use crate::api_keys::BULK_CHUNK;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::jobs::insert_jobs;
use crate::queries as q;
use crate::rows::{self, Cols, dt, opt_dt};
use crate::users::debit_quota;

async fn insert_experiments(
    conn: &mut PgConnection,
    experiments: &[Experiment],
) -> Result<u64, StoreError> {
    let n = experiments.len();
    let mut ids = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut prompts = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    let mut competitors = Vec::with_capacity(n);
    let mut iterations = Vec::with_capacity(n);
    let mut providers = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut schedules = Vec::with_capacity(n);
    let mut next_runs = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut prompt_sets = Vec::with_capacity(n);
    let mut precisions = Vec::with_capacity(n);
    for e in experiments {
        let recurrence = e.recurrence.as_ref();
        ids.push(*e.id.as_uuid());
        users.push(*e.user_id.as_uuid());
        prompts.push(e.prompt.as_str());
        targets.push(to_json("target brand", &e.target)?);
        competitors.push(to_json("competitors", &e.competitors)?);
        iterations.push(i64::from(e.iterations.get()));
        providers.push(to_json("providers", &e.providers)?);
        statuses.push(e.status.as_str());
        schedules.push(recurrence.map(|r| r.schedule.as_str()));
        next_runs.push(opt_dt(recurrence.and_then(|r| r.next_run_at)));
        created.push(dt(e.created_at));
        updated.push(dt(e.updated_at));
        prompt_sets.push(opt_to_json("prompt set", e.prompt_set.as_ref())?);
        precisions.push(e.precision.map(|p| p.get()));
    }
    execute(
        conn,
        sqlx::query(q::EXPERIMENTS_INSERT)
            .bind(ids)
            .bind(users)
            .bind(prompts)
            .bind(targets)
            .bind(competitors)
            .bind(iterations)
            .bind(providers)
            .bind(statuses)
            .bind(schedules)
            .bind(next_runs)
            .bind(created)
            .bind(updated)
            .bind(prompt_sets)
            .bind(precisions),
    )
    .await
}

impl PgStore {
    /// Bulk-loads experiments as they are (status, recurrence and timestamps included) in one
    /// transaction of multi-row statements: for imports, restores and benchmark seeding.
    /// Unlike [`ExperimentStore::create_experiment`] it debits no quota and enqueues no job.
    ///
    /// All or nothing: [`StoreError::NotFound`] when an owner does not exist,
    /// [`StoreError::Conflict`] when an id is taken.
    pub async fn import_experiments(&self, experiments: &[Experiment]) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        for chunk in experiments.chunks(BULK_CHUNK) {
            insert_experiments(&mut tx, chunk).await?;
        }
        commit(tx).await
    }
}

#[async_trait]
impl ExperimentStore for PgStore {
    async fn create_experiment(
        &self,
        experiment: &Experiment,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<(), StoreError> {
        debit.check_owner(experiment.user_id)?;
        let mut tx = self.db().begin().await?;
        // The debit first: it locks the owner's row, so concurrent creations by one user queue
        // here and each sees the committed count; an unknown owner is NotFound from it.
        debit_quota(&mut tx, debit).await?;
        insert_experiments(&mut tx, std::slice::from_ref(experiment)).await?;
        insert_jobs(&mut tx, std::slice::from_ref(job)).await?;
        commit(tx).await?;
        self.jobs_committed();
        Ok(())
    }

    async fn request_run(
        &self,
        owner: UserId,
        id: ExperimentId,
        debit: QuotaDebit,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        let status: ExperimentStatus = fetch_opt(
            &mut tx,
            sqlx::query(q::EXPERIMENT_STATUS_FOR_UPDATE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            |row| Cols::new(row).parse("experiments.status"),
        )
        .await?
        .ok_or(StoreError::not_found("experiment"))?;
        if !status.can_rerun() {
            return Err(StoreError::conflict(format!("experiment is {status}")));
        }
        insert_jobs(&mut tx, std::slice::from_ref(job)).await?;
        debit.check_owner(owner)?;
        debit_quota(&mut tx, debit).await?;
        execute(
            &mut tx,
            sqlx::query(q::EXPERIMENT_SET_STATUS)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(ExperimentStatus::Queued.as_str())
                .bind(dt(now)),
        )
        .await?;
        commit(tx).await?;
        self.jobs_committed();
        Ok(())
    }

    async fn get_experiment(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::EXPERIMENT_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            rows::record::<Experiment>,
        )
        .await?
        .ok_or(StoreError::not_found("experiment"))
    }

    async fn list_experiments(
        &self,
        owner: UserId,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment, ExperimentCursor>, StoreError> {
        let limit = query.limit.get() as usize;
        // One extra row tells whether another page follows.
        let fetch = i64::from(query.limit.get()) + 1;
        let user = *owner.as_uuid();
        let status = query.status.map(|s| s.as_str());
        let after = query.after.map(|c| (dt(c.created_at), *c.id.as_uuid()));
        let sql = match (status, after) {
            (None, None) => sqlx::query(q::EXPERIMENTS_PAGE).bind(user).bind(fetch),
            (None, Some((at, id))) => sqlx::query(q::EXPERIMENTS_PAGE_AFTER)
                .bind(user)
                .bind(fetch)
                .bind(at)
                .bind(id),
            (Some(status), None) => sqlx::query(q::EXPERIMENTS_PAGE_BY_STATUS)
                .bind(user)
                .bind(fetch)
                .bind(status),
            (Some(status), Some((at, id))) => sqlx::query(q::EXPERIMENTS_PAGE_BY_STATUS_AFTER)
                .bind(user)
                .bind(fetch)
                .bind(status)
                .bind(at)
                .bind(id),
        };
        let mut conn = self.db().conn().await?;
        let items = fetch_all(&mut conn, sql, rows::record::<Experiment>).await?;
        Ok(Page::from_overfetch(items, limit, ExperimentCursor::after))
    }

    async fn set_experiment_status(
        &self,
        owner: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::EXPERIMENT_SET_STATUS)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(status.as_str())
                .bind(dt(now)),
        )
        .await?;
        found(changed, "experiment")
    }

    async fn delete_experiment(&self, owner: UserId, id: ExperimentId) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::EXPERIMENT_DELETE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
        )
        .await?;
        found(changed, "experiment")
    }

    async fn due_recurring(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Experiment>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::EXPERIMENTS_DUE_RECURRING)
                .bind(dt(now))
                .bind(i64::from(limit)),
            rows::record::<Experiment>,
        )
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
        let mut tx = self.db().begin().await?;
        let owner = fetch_opt(
            &mut tx,
            sqlx::query(q::EXPERIMENT_ADVANCE_SCHEDULE)
                .bind(*id.as_uuid())
                .bind(dt(expected))
                .bind(opt_dt(next))
                .bind(dt(job.created_at)),
            |row| Cols::new(row).id::<UserId>("experiments.user_id"),
        )
        .await?;
        let Some(owner) = owner else {
            return Ok(ScheduleClaim::Lost);
        };
        debit.check_owner(owner)?;
        let claim = match debit_quota(&mut tx, debit).await {
            Ok(()) => {
                insert_jobs(&mut tx, std::slice::from_ref(job)).await?;
                execute(
                    &mut tx,
                    sqlx::query(q::EXPERIMENT_MARK_QUEUED).bind(*id.as_uuid()),
                )
                .await?;
                ScheduleClaim::Enqueued
            }
            Err(StoreError::QuotaExceeded { .. }) => {
                // A colliding job id is an error whatever the quota says.
                let taken: bool = fetch_opt(
                    &mut tx,
                    sqlx::query(q::JOB_EXISTS).bind(*job.id.as_uuid()),
                    |row| Cols::new(row).bool("job exists"),
                )
                .await?
                .unwrap_or(false);
                if taken {
                    return Err(StoreError::conflict("a job with this id already exists"));
                }
                ScheduleClaim::SkippedOverQuota
            }
            Err(e) => return Err(e),
        };
        commit(tx).await?;
        if claim == ScheduleClaim::Enqueued {
            self.jobs_committed();
        }
        Ok(claim)
    }
}
