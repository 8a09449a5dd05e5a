use async_trait::async_trait;
use echo_core::model::{
    BatchRun, BatchRunId, BatchRunUpdate, ExperimentId, ExperimentStatus, Iteration, PricingTier,
    RecordOutcome, Timestamp, UserId,
};
use echo_core::store::sql::{self, ColumnReader, found, opt_to_json, to_i64};
use echo_core::store::{DashboardStats, RunGroup, RunStore, StoreError, TrendPoint, TrendRun};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::api_keys::BULK_CHUNK;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::error::invalid;
use crate::queries as q;
use crate::rows::{self, Cols, dt, opt_dt};

/// A day of [`q::DASHBOARD_TREND`].
fn trend_point(row: &PgRow) -> Result<TrendPoint, StoreError> {
    let mut c = Cols::new(row);
    let day = c.ts("trend day")?;
    sql::trend_point(day, &mut c)
}

/// Inserts runs, returning how many were inserted (fewer when an experiment is missing).
async fn insert_batch_runs(conn: &mut PgConnection, runs: &[BatchRun]) -> Result<u64, StoreError> {
    let n = runs.len();
    let mut ids = Vec::with_capacity(n);
    let mut experiments = Vec::with_capacity(n);
    let mut providers = Vec::with_capacity(n);
    let mut models = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut planned = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut succeeded = Vec::with_capacity(n);
    let mut input = Vec::with_capacity(n);
    let mut output = Vec::with_capacity(n);
    let mut cost = Vec::with_capacity(n);
    let mut metrics = Vec::with_capacity(n);
    let mut visibility = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut completed = Vec::with_capacity(n);
    for r in runs {
        ids.push(*r.id.as_uuid());
        experiments.push(*r.experiment_id.as_uuid());
        providers.push(r.provider.as_str());
        models.push(r.model.as_str());
        statuses.push(r.status.as_str());
        planned.push(i64::from(r.iterations_planned));
        recorded.push(i64::from(r.iterations_recorded));
        succeeded.push(i64::from(r.iterations_succeeded));
        input.push(to_i64("input tokens", r.input_tokens)?);
        output.push(to_i64("output tokens", r.output_tokens)?);
        cost.push(to_i64("cost", r.cost_micros_usd)?);
        metrics.push(opt_to_json("metrics", r.metrics.as_ref())?);
        visibility.push(r.visibility_rate);
        errors.push(r.error.as_deref());
        created.push(dt(r.created_at));
        started.push(opt_dt(r.started_at));
        completed.push(opt_dt(r.completed_at));
    }
    execute(
        conn,
        sqlx::query(q::BATCH_RUNS_INSERT)
            .bind(ids)
            .bind(experiments)
            .bind(providers)
            .bind(models)
            .bind(statuses)
            .bind(planned)
            .bind(recorded)
            .bind(succeeded)
            .bind(input)
            .bind(output)
            .bind(cost)
            .bind(metrics)
            .bind(visibility)
            .bind(errors)
            .bind(created)
            .bind(started)
            .bind(completed),
    )
    .await
}

impl PgStore {
    /// Bulk-loads batch runs as they are (counters included, so they must match any
    /// iterations loaded afterwards with `record_iterations`, which add to them), in one
    /// transaction: for imports and benchmark seeding.
    ///
    /// All or nothing: [`StoreError::NotFound`] when an experiment does not exist,
    /// [`StoreError::Conflict`] when an id is taken.
    pub async fn import_batch_runs(&self, runs: &[BatchRun]) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        for chunk in runs.chunks(BULK_CHUNK) {
            if insert_batch_runs(&mut tx, chunk).await? != chunk.len() as u64 {
                return Err(StoreError::not_found("experiment"));
            }
        }
        commit(tx).await
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let inserted = insert_batch_runs(&mut conn, std::slice::from_ref(run)).await?;
        found(inserted, "experiment")
    }

    async fn get_batch_run(&self, owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::BATCH_RUN_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            rows::record::<BatchRun>,
        )
        .await?
        .ok_or(StoreError::not_found("batch run"))
    }

    async fn list_batch_runs(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<Vec<BatchRun>, StoreError> {
        // One snapshot for the ownership check and the listing.
        let mut tx = self.db().begin_snapshot().await?;
        let exp = *experiment.as_uuid();
        let owned = fetch_opt(
            &mut tx,
            sqlx::query(q::EXPERIMENT_OWNED)
                .bind(exp)
                .bind(*owner.as_uuid()),
            |row| Cols::new(row).bool("experiment owned"),
        )
        .await?
        .unwrap_or(false);
        if !owned {
            return Err(StoreError::not_found("experiment"));
        }
        let runs = fetch_all(
            &mut tx,
            sqlx::query(q::BATCH_RUNS_BY_EXPERIMENT).bind(exp),
            rows::record::<BatchRun>,
        )
        .await?;
        commit(tx).await?;
        Ok(runs)
    }

    async fn update_batch_run(&self, id: BatchRunId, u: &BatchRunUpdate) -> Result<(), StoreError> {
        let metrics = opt_to_json("metrics", u.metrics.as_ref())?;
        let cost = to_i64("cost", u.cost_micros_usd)?;
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::BATCH_RUN_UPDATE)
                .bind(*id.as_uuid())
                .bind(u.status.as_str())
                .bind(metrics)
                .bind(u.visibility_rate)
                .bind(cost)
                .bind(u.error.as_deref())
                .bind(opt_dt(u.started_at))
                .bind(opt_dt(u.completed_at)),
        )
        .await?;
        found(changed, "batch run")
    }

    async fn record_iterations(
        &self,
        iterations: &[Iteration],
    ) -> Result<RecordOutcome, StoreError> {
        if iterations.is_empty() {
            return Ok(RecordOutcome::default());
        }
        let n = iterations.len();
        let mut ids = Vec::with_capacity(n);
        let mut runs = Vec::with_capacity(n);
        let mut indexes = Vec::with_capacity(n);
        let mut answers = Vec::with_capacity(n);
        let mut mentions = Vec::with_capacity(n);
        let mut successes = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut latencies = Vec::with_capacity(n);
        let mut input = Vec::with_capacity(n);
        let mut output = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut anonymized = Vec::with_capacity(n);
        let mut anonymized_at = Vec::with_capacity(n);
        let sources = iterations.iter().map(|it| it.sources.len()).sum();
        let mut src_iterations = Vec::with_capacity(sources);
        let mut src_positions = Vec::with_capacity(sources);
        let mut src_urls = Vec::with_capacity(sources);
        let mut src_domains = Vec::with_capacity(sources);
        let mut src_titles = Vec::with_capacity(sources);
        let mut src_spans = Vec::with_capacity(sources);
        for it in iterations {
            for src in &it.sources {
                src_iterations.push(*it.id.as_uuid());
                src_positions.push(i64::from(src.position));
                src_urls.push(src.url.as_str());
                src_domains.push(src.domain.as_str());
                src_titles.push(src.title.as_deref());
                src_spans.push(sql::to_json("spans", &src.spans)?);
            }
            ids.push(*it.id.as_uuid());
            runs.push(*it.batch_run_id.as_uuid());
            indexes.push(i64::from(it.index));
            answers.push(it.raw_response.as_deref());
            mentions.push(opt_to_json("mentions", it.mentions.as_ref())?);
            successes.push(it.is_success);
            errors.push(it.error.as_deref());
            latencies.push(i64::from(it.latency_ms));
            input.push(i64::from(it.input_tokens));
            output.push(i64::from(it.output_tokens));
            created.push(dt(it.created_at));
            anonymized.push(it.is_anonymized);
            anonymized_at.push(opt_dt(it.anonymized_at));
        }
        let mut conn = self.db().conn().await?;
        // One statement, hence one implicit transaction: rows and counters commit together.
        let inserted = fetch_opt(
            &mut conn,
            sqlx::query(q::ITERATIONS_RECORD)
                .bind(ids)
                .bind(runs)
                .bind(indexes)
                .bind(answers)
                .bind(mentions)
                .bind(successes)
                .bind(errors)
                .bind(latencies)
                .bind(input)
                .bind(output)
                .bind(created)
                .bind(anonymized)
                .bind(anonymized_at)
                .bind(src_iterations)
                .bind(src_positions)
                .bind(src_urls)
                .bind(src_domains)
                .bind(src_titles)
                .bind(src_spans),
            |row| Cols::new(row).u32("iterations inserted"),
        )
        .await?
        .unwrap_or(0);
        let total = u32::try_from(n).map_err(|_| invalid("iterations", "too many in one call"))?;
        Ok(RecordOutcome {
            inserted,
            duplicates: total.saturating_sub(inserted),
        })
    }

    async fn list_iterations(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError> {
        self.iterations_page(owner, run, from_index, limit, true)
            .await
    }

    async fn list_iterations_without_sources(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError> {
        self.iterations_page(owner, run, from_index, limit, false)
            .await
    }

    async fn recorded_indexes(&self, run: BatchRunId) -> Result<Vec<u32>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::ITERATION_INDEXES).bind(*run.as_uuid()),
            |row| Cols::new(row).u32("iterations.idx"),
        )
        .await
    }

    async fn dashboard(
        &self,
        owner: UserId,
        trend_since: Timestamp,
    ) -> Result<DashboardStats, StoreError> {
        let user = *owner.as_uuid();
        // One snapshot, so the three figures agree with each other.
        let mut tx = self.db().begin_snapshot().await?;
        let by_status = fetch_all(
            &mut tx,
            sqlx::query(q::DASHBOARD_EXPERIMENTS_BY_STATUS).bind(user),
            |row| {
                let mut c = Cols::new(row);
                Ok((
                    c.parse::<ExperimentStatus>("experiments.status")?,
                    c.u64("count")?,
                ))
            },
        )
        .await?;
        let groups = fetch_all(
            &mut tx,
            sqlx::query(q::DASHBOARD_RUNS).bind(user),
            rows::record::<RunGroup>,
        )
        .await?;
        let trend = fetch_all(
            &mut tx,
            sqlx::query(q::DASHBOARD_TREND)
                .bind(user)
                .bind(dt(trend_since)),
            trend_point,
        )
        .await?;
        commit(tx).await?;

        Ok(DashboardStats::from_parts(by_status, groups, trend))
    }

    async fn recent_completed_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<BatchRun>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::RECENT_COMPLETED_RUNS)
                .bind(*owner.as_uuid())
                .bind(i64::from(limit)),
            rows::record::<BatchRun>,
        )
        .await
    }

    async fn recent_trend_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<TrendRun>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::RECENT_TREND_RUNS)
                .bind(*owner.as_uuid())
                .bind(i64::from(limit)),
            rows::record::<TrendRun>,
        )
        .await
    }

    async fn anonymize_iterations(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
        limit: u32,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        // One statement is its own transaction: the batch's row locks last only as long as it.
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::ITERATIONS_ANONYMIZE)
                .bind(tier.as_str())
                .bind(dt(created_before))
                .bind(i64::from(limit))
                .bind(dt(now)),
            |row| Cols::new(row).u64("iterations anonymized"),
        )
        .await
        .map(Option::unwrap_or_default)
    }

    async fn count_anonymizable(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::ITERATIONS_ANONYMIZABLE_COUNT)
                .bind(tier.as_str())
                .bind(dt(created_before)),
            |row| Cols::new(row).u64("count"),
        )
        .await
        .map(Option::unwrap_or_default)
    }
}

impl PgStore {
    /// A page of the run's iterations, with their sources or without reading them.
    async fn iterations_page(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
        with_sources: bool,
    ) -> Result<Vec<Iteration>, StoreError> {
        let mut tx = self.db().begin_snapshot().await?;
        let run = *run.as_uuid();
        let owned = fetch_opt(
            &mut tx,
            sqlx::query(q::BATCH_RUN_OWNED)
                .bind(run)
                .bind(*owner.as_uuid()),
            |row| Cols::new(row).bool("batch run owned"),
        )
        .await?
        .unwrap_or(false);
        if !owned {
            return Err(StoreError::not_found("batch run"));
        }
        let mut rows = fetch_all(
            &mut tx,
            sqlx::query(q::ITERATIONS_PAGE)
                .bind(run)
                .bind(i64::from(from_index))
                .bind(i64::from(limit)),
            rows::record::<Iteration>,
        )
        .await?;
        if !with_sources {
            commit(tx).await?;
            return Ok(rows);
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let sources = fetch_all(
                &mut tx,
                sqlx::query(q::ITERATION_SOURCES_PAGE)
                    .bind(run)
                    .bind(i64::from(first.index))
                    .bind(i64::from(last.index)),
                rows::record::<sql::SourceRow>,
            )
            .await?;
            sql::attach_sources(&mut rows, sources);
        }
        commit(tx).await?;
        Ok(rows)
    }
}
