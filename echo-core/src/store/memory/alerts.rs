//! [`AlertStore`] for the in-memory store.

use std::collections::HashSet;

use async_trait::async_trait;

use super::MemoryStore;
use crate::model::{Alert, AlertId, UserId};
use crate::store::{AlertQuery, AlertStore, Page, StoreError};

#[async_trait]
impl AlertStore for MemoryStore {
    async fn record_alerts(&self, alerts: &[Alert]) -> Result<u32, StoreError> {
        let mut s = self.state()?;
        for a in alerts {
            s.owned_experiment(a.user_id, a.experiment_id)?;
            for run in [a.batch_run_id, a.previous_run_id] {
                s.runs
                    .get(&run)
                    .filter(|r| r.experiment_id == a.experiment_id)
                    .ok_or(StoreError::not_found("batch run"))?;
            }
        }
        let mut keys: HashSet<_> = s
            .alerts
            .values()
            .map(|a| (a.batch_run_id, a.finding.kind, a.finding.brand.clone()))
            .collect();
        let mut ids = HashSet::new();
        let mut fresh = Vec::new();
        for a in alerts {
            if !keys.insert((a.batch_run_id, a.finding.kind, a.finding.brand.clone())) {
                continue;
            }
            if s.alerts.contains_key(&a.id) || !ids.insert(a.id) {
                return Err(StoreError::conflict("alert id already exists"));
            }
            fresh.push(a.clone());
        }
        let inserted = u32::try_from(fresh.len()).unwrap_or(u32::MAX);
        for a in fresh {
            s.alerts.insert(a.id, a);
        }
        Ok(inserted)
    }

    async fn list_alerts(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, StoreError> {
        let s = self.state()?;
        let limit = query.limit.get() as usize;
        let rows: Vec<Alert> = s
            .alerts
            .values()
            .rev()
            .filter(|a| a.user_id == owner && query.after.is_none_or(|after| a.id < after))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(rows, limit, |a| a.id))
    }
}
