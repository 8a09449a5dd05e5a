//! The scheduler: enqueues the runs of recurring experiments as they come due, resets monthly
//! quotas and prunes finished jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cron::CronSchedule;
use super::jobs::RunExperimentPayload;
use crate::model::{Experiment, QuotaDebit, Timestamp, User, UserId};
use crate::store::{DynStore, ScheduleClaim, StoreError};

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Time between ticks. A due run is enqueued at most this late. Default 10 s.
    pub interval: Duration,
    /// Due experiments read per query; a tick keeps reading while pages come back full.
    /// Default 100.
    pub batch: u32,
    /// Finished jobs (succeeded, failed, cancelled) last updated longer ago than this are
    /// deleted, up to 1,000 per tick. Default 7 days.
    pub prune_after: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            batch: 100,
            prune_after: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Runs enqueued (quota debited, schedule advanced).
    pub enqueued: u32,
    /// Occurrences skipped because the owner was over quota (schedule advanced, no job).
    pub skipped_over_quota: u32,
    /// Occurrences skipped because the owner's account is inactive (schedule advanced, no
    /// job, no debit).
    pub skipped_inactive: u32,
    /// Occurrences skipped because the owner has not given, or has withdrawn, data-processing
    /// consent (schedule advanced, no job, no debit).
    pub skipped_no_consent: u32,
    /// Occurrences skipped because the owner registered while email verification was required
    /// and has not verified their address yet (schedule advanced, no job, no debit).
    pub skipped_unverified: u32,
    /// Occurrences another scheduler claimed first (or that stopped being due); nothing done.
    pub lost: u32,
    /// Recurrences this tick ended: the expression has no further occurrence or is invalid.
    pub ended: u32,
    /// Experiments whose claim failed with a store error; they stay due for the next tick.
    pub errors: u32,
    /// Users whose monthly quota was reset.
    pub quotas_reset: u64,
    /// Finished jobs deleted.
    pub jobs_pruned: u64,
}

impl TickReport {
    /// Whether the tick changed nothing.
    pub fn is_quiet(&self) -> bool {
        *self == Self::default()
    }
}

/// Pages of due experiments read in one tick at most, so a store that keeps answering with the
/// same due rows (a clock far behind other schedulers') cannot hold a tick forever.
const MAX_PAGES: u32 = 100;

/// Finished jobs deleted per tick at most, so pruning never holds the queue's table for long.
const PRUNE_LIMIT: u32 = 1_000;

/// Enqueues the runs of recurring experiments.
///
/// Each tick resets the monthly quotas that are due, then for every due recurring experiment
/// computes its next occurrence — the first **strictly after now**, so a schedule missed while
/// the service was down runs once, not once per missed slot — and claims the occurrence with
/// [`claim_schedule`](crate::store::ExperimentStore::claim_schedule): in one transaction the
/// schedule advances, the owner's quota is debited (`prompts_per_run`, against the tier's
/// [default monthly quota](crate::model::PricingTier::default_monthly_quota)) and a
/// [`RUN_EXPERIMENT`](super::RUN_EXPERIMENT) job is enqueued. Schedulers may run on every
/// server at once: the claim is a compare-and-set on `next_run_at`, so each occurrence is
/// enqueued exactly once. Finally it prunes old finished jobs.
///
/// A stored expression that no longer parses ends the recurrence (`next_run_at = None`) with a
/// warning; the occurrence that was due still runs.
#[derive(Debug)]
pub struct Scheduler {
    store: Arc<DynStore>,
    config: SchedulerConfig,
}

impl Scheduler {
    /// A scheduler over `store`.
    pub fn new(store: Arc<DynStore>, config: SchedulerConfig) -> Self {
        Self { store, config }
    }

    /// The settings in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// One pass at `now` (see [`Scheduler`]).
    ///
    /// Errors: a failed quota reset or due-experiment read ends the tick (enqueueing against
    /// stale quota counters would skip runs wrongly); a failed claim is counted in
    /// [`TickReport::errors`] and a failed prune logged, and the tick goes on.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, StoreError> {
        let mut report = TickReport {
            quotas_reset: self.store.reset_due_quotas(now).await?,
            ..TickReport::default()
        };
        let batch = self.config.batch.max(1);
        let mut owners: HashMap<UserId, User> = HashMap::new();
        for _ in 0..MAX_PAGES {
            let due = self.store.due_recurring(now, batch).await?;
            let mut progressed = false;
            for experiment in &due {
                match self.claim(experiment, now, &mut owners).await {
                    Ok((claim, ended)) => {
                        progressed = true;
                        report.ended += u32::from(ended && claim != Claim::Lost);
                        match claim {
                            Claim::Enqueued => report.enqueued += 1,
                            Claim::SkippedOverQuota => report.skipped_over_quota += 1,
                            Claim::SkippedInactive => report.skipped_inactive += 1,
                            Claim::SkippedNoConsent => report.skipped_no_consent += 1,
                            Claim::SkippedUnverified => report.skipped_unverified += 1,
                            Claim::Lost => report.lost += 1,
                        }
                    }
                    Err(e) => {
                        report.errors += 1;
                        tracing::warn!(experiment_id = %experiment.id, error = %e, "could not enqueue a scheduled run");
                    }
                }
            }
            // Claimed occurrences are no longer due, so the next page holds new ones; a page
            // of failures would come back unchanged.
            if due.len() < batch as usize || !progressed {
                break;
            }
        }
        report.jobs_pruned = self.prune(now).await;
        Ok(report)
    }

    /// Claims one due occurrence; the flag says whether its recurrence ends with it.
    async fn claim(
        &self,
        experiment: &Experiment,
        now: Timestamp,
        owners: &mut HashMap<UserId, User>,
    ) -> Result<(Claim, bool), StoreError> {
        let Some((schedule, expected)) = experiment
            .recurrence
            .as_ref()
            .and_then(|r| Some((r.schedule.as_str(), r.next_run_at?)))
        else {
            return Ok((Claim::Lost, false));
        };
        let next = match CronSchedule::parse(schedule) {
            Ok(schedule) => schedule.next_after(now),
            Err(e) => {
                tracing::warn!(
                    experiment_id = %experiment.id,
                    schedule,
                    error = %e,
                    "stored cron expression is invalid: ending the recurrence after this run"
                );
                None
            }
        };
        let owner = match owners.get(&experiment.user_id) {
            Some(owner) => owner,
            None => {
                let user = self.store.get_user(experiment.user_id).await?;
                owners.entry(experiment.user_id).or_insert(user)
            }
        };
        // An inactive owner's schedule still advances (so it does not stay due and crowd out
        // the others), through a debit that cannot succeed: no job, no charge. So does the
        // schedule of an owner without consent or with an unverified email, by the services'
        // own rules.
        let may_run = crate::service::require_may_run(owner);
        let mut debit = QuotaDebit::for_run(owner, experiment);
        if may_run.is_err() {
            debit.limit = 0;
        }
        let job = RunExperimentPayload {
            user_id: experiment.user_id,
            experiment_id: experiment.id,
        }
        .into_job(now);
        let claim = match self
            .store
            .claim_schedule(experiment.id, expected, next, debit, &job)
            .await?
        {
            ScheduleClaim::Enqueued => Claim::Enqueued,
            ScheduleClaim::SkippedOverQuota if !owner.is_active => Claim::SkippedInactive,
            ScheduleClaim::SkippedOverQuota
                if matches!(may_run, Err(crate::service::ServiceError::ConsentRequired)) =>
            {
                Claim::SkippedNoConsent
            }
            ScheduleClaim::SkippedOverQuota
                if matches!(may_run, Err(crate::service::ServiceError::EmailUnverified)) =>
            {
                Claim::SkippedUnverified
            }
            ScheduleClaim::SkippedOverQuota => Claim::SkippedOverQuota,
            ScheduleClaim::Lost => Claim::Lost,
        };
        match claim {
            Claim::Enqueued => {
                tracing::info!(experiment_id = %experiment.id, job_id = %job.id, next_run_at = ?next, "scheduled run enqueued");
            }
            Claim::SkippedOverQuota => {
                tracing::info!(experiment_id = %experiment.id, user_id = %experiment.user_id, "scheduled run skipped: owner over quota");
            }
            Claim::SkippedNoConsent => {
                tracing::info!(experiment_id = %experiment.id, user_id = %experiment.user_id, "scheduled run skipped: owner has not given data-processing consent");
            }
            Claim::SkippedUnverified => {
                tracing::info!(experiment_id = %experiment.id, user_id = %experiment.user_id, "scheduled run skipped: owner has not verified their email");
            }
            Claim::SkippedInactive | Claim::Lost => {}
        }
        Ok((claim, next.is_none()))
    }

    async fn prune(&self, now: Timestamp) -> u64 {
        let before = time::Duration::try_from(self.config.prune_after)
            .ok()
            .and_then(|d| now.checked_add(-d));
        let Some(before) = before else {
            return 0;
        };
        match self.store.prune_jobs(before, PRUNE_LIMIT).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "pruning finished jobs failed");
                0
            }
        }
    }

    /// Ticks every `interval` until `shutdown` is cancelled; errors are logged and the next
    /// tick tries again. A tick in progress is abandoned on shutdown, which is safe: each store
    /// call it makes is atomic.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut interval =
            tokio::time::interval(self.config.interval.max(Duration::from_millis(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => break,
                result = self.tick(Timestamp::now()) => result,
            };
            match result {
                Ok(report) if report.is_quiet() => {}
                Ok(report) => tracing::info!(
                    enqueued = report.enqueued,
                    skipped_over_quota = report.skipped_over_quota,
                    skipped_inactive = report.skipped_inactive,
                    skipped_no_consent = report.skipped_no_consent,
                    skipped_unverified = report.skipped_unverified,
                    lost = report.lost,
                    ended = report.ended,
                    errors = report.errors,
                    quotas_reset = report.quotas_reset,
                    jobs_pruned = report.jobs_pruned,
                    "scheduler tick"
                ),
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Enqueued,
    SkippedOverQuota,
    SkippedInactive,
    SkippedNoConsent,
    SkippedUnverified,
    Lost,
}

#[cfg(test)]
mod tests;
