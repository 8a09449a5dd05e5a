//! [`RunStore`] for the in-memory store: batch runs, their iterations, the dashboard, and
//! retention's anonymization.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::model::{
    BatchRun, BatchRunId, BatchRunStatus, BatchRunUpdate, ExperimentId, ExperimentStatus,
    Iteration, IterationId, PricingTier, ProviderKind, RecordOutcome, Timestamp, UserId,
};
use crate::store::{DashboardStats, RunGroup, RunStore, StoreError, TrendPoint};

impl State {
    fn owned_run(&self, owner: UserId, id: BatchRunId) -> Result<&BatchRun, StoreError> {
        self.runs
            .get(&id)
            .filter(|r| {
                self.experiments
                    .get(&r.experiment_id)
                    .is_some_and(|e| e.user_id == owner)
            })
            .ok_or(StoreError::not_found("batch run"))
    }

    /// The tier of the owner of `run`'s experiment, if all three exist.
    fn run_owner_tier(&self, run: BatchRunId) -> Option<PricingTier> {
        let experiment = self.experiments.get(&self.runs.get(&run)?.experiment_id)?;
        Some(self.users.get(&experiment.user_id)?.tier)
    }

    /// Keys of the iterations `anonymize_iterations` may change, newest first (the order of
    /// the SQL backends).
    fn anonymizable(&self, tier: PricingTier, created_before: Timestamp) -> Vec<(BatchRunId, u32)> {
        let mut found: Vec<(Timestamp, IterationId, (BatchRunId, u32))> = self
            .iterations
            .iter()
            .filter(|(_, it)| !it.is_anonymized && it.created_at < created_before)
            .filter(|(_, it)| self.run_owner_tier(it.batch_run_id) == Some(tier))
            .map(|(key, it)| (it.created_at, it.id, *key))
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().map(|(_, _, key)| key).collect()
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.experiments.contains_key(&run.experiment_id) {
            return Err(StoreError::not_found("experiment"));
        }
        if s.runs.contains_key(&run.id) {
            return Err(StoreError::conflict("batch run id already exists"));
        }
        s.runs.insert(run.id, run.clone());
        Ok(())
    }

    async fn get_batch_run(&self, owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError> {
        self.state()?.owned_run(owner, id).cloned()
    }

    async fn list_batch_runs(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<Vec<BatchRun>, StoreError> {
        let s = self.state()?;
        s.owned_experiment(owner, experiment)?;
        let mut runs: Vec<BatchRun> = s
            .runs
            .values()
            .filter(|r| r.experiment_id == experiment)
            .cloned()
            .collect();
        runs.sort_by_key(|r| (r.created_at, r.id));
        Ok(runs)
    }

    async fn update_batch_run(
        &self,
        id: BatchRunId,
        update: &BatchRunUpdate,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let run = s
            .runs
            .get_mut(&id)
            .ok_or(StoreError::not_found("batch run"))?;
        run.status = update.status;
        run.metrics.clone_from(&update.metrics);
        run.visibility_rate = update.visibility_rate;
        run.cost_micros_usd = update.cost_micros_usd;
        run.error.clone_from(&update.error);
        run.started_at = update.started_at;
        run.completed_at = update.completed_at;
        Ok(())
    }

    async fn record_iterations(
        &self,
        iterations: &[Iteration],
    ) -> Result<RecordOutcome, StoreError> {
        let mut s = self.state()?;
        if iterations
            .iter()
            .any(|it| !s.runs.contains_key(&it.batch_run_id))
        {
            return Err(StoreError::not_found("batch run"));
        }
        let mut claimed: HashMap<IterationId, (BatchRunId, u32)> = HashMap::new();
        for it in iterations {
            let key = (it.batch_run_id, it.index);
            if s.iterations.contains_key(&key) {
                continue;
            }
            let slot = claimed.entry(it.id).or_insert(key);
            if *slot != key || s.iteration_slots.get(&it.id).is_some_and(|k| *k != key) {
                return Err(StoreError::conflict("iteration id already exists"));
            }
        }
        let mut outcome = RecordOutcome::default();
        for it in iterations {
            let key = (it.batch_run_id, it.index);
            if s.iterations.contains_key(&key) {
                outcome.duplicates += 1;
                continue;
            }
            s.iterations.insert(key, it.clone());
            s.iteration_slots.insert(it.id, key);
            if let Some(run) = s.runs.get_mut(&it.batch_run_id) {
                run.iterations_recorded += 1;
                run.iterations_succeeded += u32::from(it.is_success);
                run.input_tokens += u64::from(it.input_tokens);
                run.output_tokens += u64::from(it.output_tokens);
            }
            outcome.inserted += 1;
        }
        Ok(outcome)
    }

    async fn list_iterations(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError> {
        let s = self.state()?;
        s.owned_run(owner, run)?;
        Ok(s.iterations
            .range((run, from_index)..=(run, u32::MAX))
            .take(limit as usize)
            .map(|(_, it)| it.clone())
            .collect())
    }

    async fn recorded_indexes(&self, run: BatchRunId) -> Result<Vec<u32>, StoreError> {
        let s = self.state()?;
        Ok(s.iterations
            .range((run, 0)..=(run, u32::MAX))
            .map(|((_, index), _)| *index)
            .collect())
    }

    async fn dashboard(
        &self,
        owner: UserId,
        trend_since: Timestamp,
    ) -> Result<DashboardStats, StoreError> {
        let s = self.state()?;
        let mut by_status: BTreeMap<ExperimentStatus, u64> = BTreeMap::new();
        for e in s.experiments.values().filter(|e| e.user_id == owner) {
            *by_status.entry(e.status).or_default() += 1;
        }
        let mut groups: BTreeMap<(ProviderKind, BatchRunStatus), RunGroup> = BTreeMap::new();
        let mut days: BTreeMap<Timestamp, (u64, u64, f64)> = BTreeMap::new();
        let owned_runs = s.runs.values().filter(|r| {
            s.experiments
                .get(&r.experiment_id)
                .is_some_and(|e| e.user_id == owner)
        });
        for run in owned_runs {
            let g = groups
                .entry((run.provider, run.status))
                .or_insert(RunGroup {
                    provider: run.provider,
                    status: run.status,
                    recorded: 0,
                    succeeded: 0,
                    with_figure: 0,
                    visibility_sum: 0.0,
                });
            g.recorded += u64::from(run.iterations_recorded);
            g.succeeded += u64::from(run.iterations_succeeded);
            if let Some(v) = run.visibility_rate {
                g.with_figure += 1;
                g.visibility_sum += v;
            }
            if run.status != BatchRunStatus::Completed {
                continue;
            }
            if let Some(done) = run.completed_at.filter(|t| *t >= trend_since) {
                let d = days.entry(done.start_of_day()).or_default();
                d.0 += 1;
                if let Some(v) = run.visibility_rate {
                    d.1 += 1;
                    d.2 += v;
                }
            }
        }
        let trend = days
            .into_iter()
            .map(|(day, (runs, with_figure, sum))| TrendPoint {
                day,
                completed_runs: runs,
                mean_visibility: (with_figure > 0).then(|| sum / with_figure as f64),
            })
            .collect();
        Ok(DashboardStats::from_parts(
            by_status,
            groups.into_values(),
            trend,
        ))
    }

    async fn recent_completed_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<BatchRun>, StoreError> {
        let s = self.state()?;
        let mut runs: Vec<BatchRun> = s
            .runs
            .values()
            .filter(|r| {
                r.status == BatchRunStatus::Completed
                    && r.completed_at.is_some()
                    && s.experiments
                        .get(&r.experiment_id)
                        .is_some_and(|e| e.user_id == owner)
            })
            .cloned()
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.completed_at));
        runs.truncate(limit as usize);
        Ok(runs)
    }

    async fn anonymize_iterations(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
        limit: u32,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let batch: Vec<(BatchRunId, u32)> = s
            .anonymizable(tier, created_before)
            .into_iter()
            .take(limit as usize)
            .collect();
        for key in &batch {
            if let Some(it) = s.iterations.get_mut(key) {
                it.raw_response = None;
                it.sources.clear();
                it.is_anonymized = true;
                it.anonymized_at = Some(now);
            }
        }
        Ok(batch.len() as u64)
    }

    async fn count_anonymizable(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(self.state()?.anonymizable(tier, created_before).len() as u64)
    }
}
