use std::collections::BTreeMap;

use async_trait::async_trait;
use echo_core::model::{
    BatchRun, BatchRunId, BatchRunUpdate, ExperimentId, ExperimentStatus, Iteration,
    IterationSource, PricingTier, RecordOutcome, Timestamp, UserId,
};
use echo_core::store::sql::{self, ColumnReader, found, opt_to_json, to_i64};
use echo_core::store::{DashboardStats, RunGroup, RunStore, StoreError, TrendPoint, TrendRun};
use rusqlite::params;

use crate::SqliteStore;
use crate::db::{execute, query_all, query_bool, query_opt};
use crate::error::{SqlResultExt, invalid};
use crate::queries as q;
use crate::rows::{self, Cols, opt_micros};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What newly inserted iterations add to their run's counters.
#[derive(Default)]
struct Counts {
    recorded: i64,
    succeeded: i64,
    input_tokens: i64,
    output_tokens: i64,
}

/// A day of [`q::DASHBOARD_TREND`].
fn trend_point(row: &rusqlite::Row<'_>) -> Result<TrendPoint, StoreError> {
    let mut c = Cols::new(row);
    let day = c.i64("day")?;
    let start = day
        .checked_mul(MICROS_PER_DAY)
        .and_then(Timestamp::from_unix_micros)
        .ok_or_else(|| invalid("batch_runs.completed_at", "is out of range"))?;
    sql::trend_point(start, &mut c)
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), StoreError> {
        let metrics = opt_to_json("metrics", run.metrics.as_ref())?;
        let r = run.clone();
        self.db
            .write(move |tx| {
                let inserted = execute(
                    tx,
                    q::BATCH_RUN_INSERT,
                    params![
                        r.id.as_uuid().as_bytes(),
                        r.experiment_id.as_uuid().as_bytes(),
                        r.provider.as_str(),
                        r.model,
                        r.status.as_str(),
                        r.iterations_planned,
                        r.iterations_recorded,
                        r.iterations_succeeded,
                        to_i64("input tokens", r.input_tokens)?,
                        to_i64("output tokens", r.output_tokens)?,
                        to_i64("cost", r.cost_micros_usd)?,
                        metrics,
                        r.visibility_rate,
                        r.error,
                        r.created_at.unix_micros(),
                        opt_micros(r.started_at),
                        opt_micros(r.completed_at),
                    ],
                )
                .db()?;
                found(inserted as u64, "experiment")
            })
            .await
    }

    async fn get_batch_run(&self, owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError> {
        self.db
            .read(move |tx| {
                query_opt(
                    tx,
                    q::BATCH_RUN_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                    rows::record::<BatchRun>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("batch run"))
    }

    async fn list_batch_runs(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<Vec<BatchRun>, StoreError> {
        self.db
            .read(move |tx| {
                let exp = experiment.as_uuid().as_bytes();
                if !query_bool(
                    tx,
                    q::EXPERIMENT_OWNED,
                    params![exp, owner.as_uuid().as_bytes()],
                )? {
                    return Err(StoreError::not_found("experiment"));
                }
                query_all(
                    tx,
                    q::BATCH_RUNS_BY_EXPERIMENT,
                    [exp],
                    rows::record::<BatchRun>,
                )
            })
            .await
    }

    async fn update_batch_run(
        &self,
        id: BatchRunId,
        update: &BatchRunUpdate,
    ) -> Result<(), StoreError> {
        let metrics = opt_to_json("metrics", update.metrics.as_ref())?;
        let cost = to_i64("cost", update.cost_micros_usd)?;
        let u = update.clone();
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::BATCH_RUN_UPDATE,
                    params![
                        id.as_uuid().as_bytes(),
                        u.status.as_str(),
                        metrics,
                        u.visibility_rate,
                        cost,
                        u.error,
                        opt_micros(u.started_at),
                        opt_micros(u.completed_at),
                    ],
                )
                .db()?;
                found(changed as u64, "batch run")
            })
            .await
    }

    async fn record_iterations(
        &self,
        iterations: &[Iteration],
    ) -> Result<RecordOutcome, StoreError> {
        if iterations.is_empty() {
            return Ok(RecordOutcome::default());
        }
        // Encode before taking the write lock, to hold it as briefly as possible.
        let mentions = iterations
            .iter()
            .map(|it| opt_to_json("mentions", it.mentions.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let spans = iterations
            .iter()
            .map(|it| {
                it.sources
                    .iter()
                    .map(|src| sql::to_json("spans", &src.spans))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let iterations = iterations.to_vec();
        self.db
            .write(move |tx| {
                let mut outcome = RecordOutcome::default();
                let mut counts: BTreeMap<BatchRunId, Counts> = BTreeMap::new();
                let mut insert = tx.prepare_cached(q::ITERATION_INSERT).db()?;
                // The inserted iterations' sources, written after the loop in multi-row
                // statements: one execution per source was most of a cited batch's write time.
                let mut sources: Vec<(&Iteration, &IterationSource, &String)> = Vec::new();
                for ((it, mentions), spans) in iterations.iter().zip(&mentions).zip(&spans) {
                    let inserted = insert
                        .execute(params![
                            it.id.as_uuid().as_bytes(),
                            it.batch_run_id.as_uuid().as_bytes(),
                            it.index,
                            it.raw_response,
                            mentions,
                            it.is_success,
                            it.error,
                            it.latency_ms,
                            it.input_tokens,
                            it.output_tokens,
                            it.created_at.unix_micros(),
                            it.is_anonymized,
                            opt_micros(it.anonymized_at),
                        ])
                        .db_parent("batch run")?;
                    if inserted == 0 {
                        outcome.duplicates += 1;
                        continue;
                    }
                    outcome.inserted += 1;
                    sources.extend(it.sources.iter().zip(spans).map(|(src, sp)| (it, src, sp)));
                    let c = counts.entry(it.batch_run_id).or_default();
                    c.recorded += 1;
                    c.succeeded += i64::from(it.is_success);
                    c.input_tokens += i64::from(it.input_tokens);
                    c.output_tokens += i64::from(it.output_tokens);
                }
                drop(insert);
                for chunk in sources.chunks(q::SOURCE_ROWS_PER_INSERT) {
                    let mut insert_sources = tx
                        .prepare_cached(&q::iteration_sources_insert(chunk.len()))
                        .db()?;
                    let ids: Vec<_> = chunk.iter().map(|(it, _, _)| *it.id.as_uuid()).collect();
                    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 6);
                    for ((_, src, spans), id) in chunk.iter().zip(&ids) {
                        values.extend([
                            id.as_bytes() as &dyn rusqlite::ToSql,
                            &src.position,
                            &src.url,
                            &src.domain,
                            &src.title,
                            *spans,
                        ]);
                    }
                    insert_sources
                        .execute(rusqlite::params_from_iter(values))
                        .db()?;
                }
                let mut add = tx.prepare_cached(q::BATCH_RUN_ADD_COUNTS).db()?;
                for (run, c) in &counts {
                    add.execute(params![
                        run.as_uuid().as_bytes(),
                        c.recorded,
                        c.succeeded,
                        c.input_tokens,
                        c.output_tokens
                    ])
                    .db()?;
                }
                Ok(outcome)
            })
            .await
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
        self.db
            .read(move |tx| {
                query_all(
                    tx,
                    q::ITERATION_INDEXES,
                    [run.as_uuid().as_bytes()],
                    |row| Cols::new(row).u32("iterations.idx"),
                )
            })
            .await
    }

    async fn dashboard(
        &self,
        owner: UserId,
        trend_since: Timestamp,
    ) -> Result<DashboardStats, StoreError> {
        let (by_status, groups, trend) = self
            .db
            .read(move |tx| {
                let user = owner.as_uuid().as_bytes();
                let since = trend_since.unix_micros();
                let by_status = query_all(tx, q::DASHBOARD_EXPERIMENTS_BY_STATUS, [user], |row| {
                    let mut c = Cols::new(row);
                    Ok((
                        c.parse::<ExperimentStatus>("experiments.status")?,
                        c.u64("count")?,
                    ))
                })?;
                let groups = query_all(tx, q::DASHBOARD_RUNS, [user], rows::record::<RunGroup>)?;
                let trend = query_all(
                    tx,
                    q::DASHBOARD_TREND,
                    params![user, since, since.div_euclid(MICROS_PER_DAY)],
                    trend_point,
                )?;
                Ok((by_status, groups, trend))
            })
            .await?;

        Ok(DashboardStats::from_parts(by_status, groups, trend))
    }

    async fn recent_completed_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<BatchRun>, StoreError> {
        self.db
            .read(move |tx| {
                query_all(
                    tx,
                    q::RECENT_COMPLETED_RUNS,
                    params![owner.as_uuid().as_bytes(), limit],
                    rows::record::<BatchRun>,
                )
            })
            .await
    }

    async fn recent_trend_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<TrendRun>, StoreError> {
        self.db
            .read(move |tx| {
                query_all(
                    tx,
                    q::RECENT_TREND_RUNS,
                    params![owner.as_uuid().as_bytes(), limit],
                    rows::record::<TrendRun>,
                )
            })
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
        let (tier, before) = (tier.as_str(), created_before.unix_micros());
        loop {
            // The batch is found in a read snapshot, without the write lock: a pass's last call
            // reads every row it passes over (other tiers' retained rows) to find nothing, and
            // writers must not wait for that.
            let batch = self
                .db
                .read_single(move |conn| {
                    query_all(
                        conn,
                        q::ITERATIONS_ANONYMIZABLE,
                        params![tier, before, limit],
                        |row| Cols::new(row).i64("iterations.rowid"),
                    )
                })
                .await?;
            if batch.is_empty() {
                return Ok(0);
            }
            // One short write transaction: each row is re-checked, so a row another pass took
            // since the read is neither changed nor counted again.
            let changed = self
                .db
                .write(move |tx| {
                    let mut update = tx.prepare_cached(q::ITERATION_ANONYMIZE).db()?;
                    let mut forget = tx
                        .prepare_cached(q::ITERATION_SOURCES_DELETE_BY_ROWID)
                        .db()?;
                    let mut changed = 0u64;
                    for rowid in &batch {
                        let done = update
                            .execute(params![rowid, now.unix_micros(), tier, before])
                            .db()?;
                        if done > 0 {
                            forget.execute([rowid]).db()?;
                        }
                        changed += done as u64;
                    }
                    Ok(changed)
                })
                .await?;
            // Zero means concurrent passes took the whole batch first: they made progress, so
            // read again rather than report a pass done that may not be.
            if changed > 0 {
                return Ok(changed);
            }
        }
    }

    async fn count_anonymizable(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::ITERATIONS_ANONYMIZABLE_COUNT,
                    params![tier.as_str(), created_before.unix_micros()],
                    |row| Cols::new(row).u64("count"),
                )
            })
            .await
            .map(Option::unwrap_or_default)
    }
}

impl SqliteStore {
    /// A page of the run's iterations, with their sources or without reading them.
    async fn iterations_page(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
        with_sources: bool,
    ) -> Result<Vec<Iteration>, StoreError> {
        self.db
            .read(move |tx| {
                let run = run.as_uuid().as_bytes();
                if !query_bool(
                    tx,
                    q::BATCH_RUN_OWNED,
                    params![run, owner.as_uuid().as_bytes()],
                )? {
                    return Err(StoreError::not_found("batch run"));
                }
                let mut page = query_all(
                    tx,
                    q::ITERATIONS_PAGE,
                    params![run, from_index, limit],
                    rows::record::<Iteration>,
                )?;
                if !with_sources {
                    return Ok(page);
                }
                if let (Some(first), Some(last)) = (page.first(), page.last()) {
                    let sources = query_all(
                        tx,
                        q::ITERATION_SOURCES_PAGE,
                        params![run, first.index, last.index],
                        rows::record::<sql::SourceRow>,
                    )?;
                    sql::attach_sources(&mut page, sources);
                }
                Ok(page)
            })
            .await
    }
}
