use async_trait::async_trait;
use echo_core::model::{Alert, AlertId, UserId};
use echo_core::store::sql::to_json;
use echo_core::store::{AlertQuery, AlertStore, Page, StoreError};
use rusqlite::params;

use crate::SqliteStore;
use crate::db::{execute, query_all, query_bool};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows;

#[async_trait]
impl AlertStore for SqliteStore {
    async fn record_alerts(&self, alerts: &[Alert]) -> Result<u32, StoreError> {
        let alerts = alerts.to_vec();
        self.db
            .write(move |tx| {
                let mut inserted = 0u32;
                for a in &alerts {
                    let exp = a.experiment_id.as_uuid().as_bytes();
                    let user = a.user_id.as_uuid().as_bytes();
                    for run in [a.batch_run_id, a.previous_run_id] {
                        let owned = query_bool(
                            tx,
                            q::ALERT_RUN_OWNED,
                            params![run.as_uuid().as_bytes(), exp, user],
                        )?;
                        if !owned {
                            return Err(StoreError::not_found("batch run"));
                        }
                    }
                    let finding = to_json("alert finding", &a.finding)?;
                    let changed = execute(
                        tx,
                        q::ALERT_INSERT,
                        params![
                            a.id.as_uuid().as_bytes(),
                            user,
                            exp,
                            a.batch_run_id.as_uuid().as_bytes(),
                            a.previous_run_id.as_uuid().as_bytes(),
                            finding,
                            a.created_at.unix_micros(),
                            a.finding.provider.as_str(),
                            a.finding.kind.as_str(),
                            a.finding.brand,
                        ],
                    )
                    .db()?;
                    inserted += u32::from(changed > 0);
                }
                Ok(inserted)
            })
            .await
    }

    async fn list_alerts(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, StoreError> {
        let query = query.clone();
        let limit = query.limit.get() as usize;
        let items = self
            .db
            .read(move |tx| {
                let user = owner.as_uuid().as_bytes();
                let fetch = query.limit.get() + 1;
                match query.after {
                    None => query_all(tx, q::ALERTS_PAGE, params![user, fetch], rows::record),
                    Some(after) => query_all(
                        tx,
                        q::ALERTS_PAGE_AFTER,
                        params![user, fetch, after.as_uuid().as_bytes()],
                        rows::record,
                    ),
                }
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |a: &Alert| a.id))
    }
}
