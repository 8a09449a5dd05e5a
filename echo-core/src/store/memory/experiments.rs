//! [`ExperimentStore`] for the in-memory store. Creating or re-running an experiment debits
//! quota and enqueues its job in the same call; every check runs before any change, so a
//! refused debit leaves no experiment or job behind.

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::model::{
    Experiment, ExperimentId, ExperimentStatus, Job, QuotaDebit, Timestamp, UserId,
};
use crate::store::{
    ExperimentCursor, ExperimentQuery, ExperimentStore, Page, ScheduleClaim, StoreError,
};

impl State {
    /// Checks a debit without applying it, so callers can validate every step first.
    fn check_debit(&self, debit: QuotaDebit, owner: UserId) -> Result<(), StoreError> {
        debit.check_owner(owner)?;
        let user = self
            .users
            .get(&owner)
            .ok_or(StoreError::not_found("user"))?;
        let used = user.quota.prompts_used;
        if !debit.fits(used) {
            return Err(StoreError::quota_exceeded(debit, used));
        }
        Ok(())
    }

    fn apply_debit(&mut self, debit: QuotaDebit) {
        if let Some(user) = self.users.get_mut(&debit.user_id) {
            user.quota.prompts_used = user.quota.prompts_used.saturating_add(debit.amount);
        }
    }
}

#[async_trait]
impl ExperimentStore for MemoryStore {
    async fn create_experiment(
        &self,
        experiment: &Experiment,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        debit.check_owner(experiment.user_id)?;
        if !s.users.contains_key(&experiment.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.experiments.contains_key(&experiment.id) {
            return Err(StoreError::conflict("experiment id already exists"));
        }
        s.check_new_job(job)?;
        s.check_debit(debit, experiment.user_id)?;
        s.apply_debit(debit);
        s.experiments.insert(experiment.id, experiment.clone());
        s.jobs.insert(job.id, job.clone());
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
        let mut s = self.state()?;
        let status = s.owned_experiment(owner, id)?.status;
        if !status.can_rerun() {
            return Err(StoreError::conflict(format!("experiment is {status}")));
        }
        s.check_new_job(job)?;
        s.check_debit(debit, owner)?;
        s.apply_debit(debit);
        if let Some(e) = s.experiments.get_mut(&id) {
            e.status = ExperimentStatus::Queued;
            e.updated_at = now;
        }
        s.jobs.insert(job.id, job.clone());
        Ok(())
    }

    async fn get_experiment(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, StoreError> {
        self.state()?.owned_experiment(owner, id).cloned()
    }

    async fn list_experiments(
        &self,
        owner: UserId,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment, ExperimentCursor>, StoreError> {
        let s = self.state()?;
        let mut rows: Vec<&Experiment> = s
            .experiments
            .values()
            .filter(|e| e.user_id == owner)
            .filter(|e| query.status.is_none_or(|st| e.status == st))
            .filter(|e| {
                query
                    .after
                    .is_none_or(|c| (e.created_at, e.id) < (c.created_at, c.id))
            })
            .collect();
        rows.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
        let limit = query.limit.get() as usize;
        let items = rows.into_iter().take(limit + 1).cloned().collect();
        Ok(Page::from_overfetch(items, limit, ExperimentCursor::after))
    }

    async fn set_experiment_status(
        &self,
        owner: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.owned_experiment(owner, id)?;
        if let Some(e) = s.experiments.get_mut(&id) {
            e.status = status;
            e.updated_at = now;
        }
        Ok(())
    }

    async fn delete_experiment(&self, owner: UserId, id: ExperimentId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.owned_experiment(owner, id)?;
        s.remove_experiment_cascade(id);
        Ok(())
    }

    async fn due_recurring(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Experiment>, StoreError> {
        let s = self.state()?;
        let mut due: Vec<(Timestamp, &Experiment)> = s
            .experiments
            .values()
            .filter(|e| e.status != ExperimentStatus::Cancelled)
            .filter_map(|e| {
                let next = e.recurrence.as_ref()?.next_run_at?;
                (next <= now).then_some((next, e))
            })
            .collect();
        due.sort_by_key(|(next, e)| (*next, e.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn claim_schedule(
        &self,
        id: ExperimentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<ScheduleClaim, StoreError> {
        let mut s = self.state()?;
        let Some(experiment) = s.experiments.get(&id) else {
            return Ok(ScheduleClaim::Lost);
        };
        let still_due = experiment.status != ExperimentStatus::Cancelled
            && experiment
                .recurrence
                .as_ref()
                .is_some_and(|r| r.next_run_at == Some(expected));
        if !still_due {
            return Ok(ScheduleClaim::Lost);
        }
        let owner = experiment.user_id;
        s.check_new_job(job)?;
        let outcome = match s.check_debit(debit, owner) {
            Ok(()) => ScheduleClaim::Enqueued,
            Err(StoreError::QuotaExceeded { .. }) => ScheduleClaim::SkippedOverQuota,
            Err(e) => return Err(e),
        };
        if outcome == ScheduleClaim::Enqueued {
            s.apply_debit(debit);
            s.jobs.insert(job.id, job.clone());
        }
        if let Some(e) = s.experiments.get_mut(&id) {
            if let Some(r) = e.recurrence.as_mut() {
                r.next_run_at = next;
            }
            if outcome == ScheduleClaim::Enqueued {
                e.status = ExperimentStatus::Queued;
            }
            e.updated_at = job.created_at;
        }
        Ok(outcome)
    }
}
