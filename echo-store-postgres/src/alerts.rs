use async_trait::async_trait;
use echo_core::model::{Alert, AlertId, UserId};
use echo_core::store::sql::{ColumnReader, to_json};
use echo_core::store::{AlertQuery, AlertStore, Page, StoreError};

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::queries as q;
use crate::rows::{self, Cols, dt};

#[async_trait]
impl AlertStore for PgStore {
    async fn record_alerts(&self, alerts: &[Alert]) -> Result<u32, StoreError> {
        let mut tx = self.db().begin().await?;
        let mut inserted = 0u32;
        for a in alerts {
            let (exp, user) = (*a.experiment_id.as_uuid(), *a.user_id.as_uuid());
            for run in [a.batch_run_id, a.previous_run_id] {
                let owned = fetch_opt(
                    &mut tx,
                    sqlx::query(q::ALERT_RUN_OWNED)
                        .bind(*run.as_uuid())
                        .bind(exp)
                        .bind(user),
                    |row| Cols::new(row).bool("alert run owned"),
                )
                .await?
                .unwrap_or(false);
                if !owned {
                    return Err(StoreError::not_found("batch run"));
                }
            }
            let changed = execute(
                &mut tx,
                sqlx::query(q::ALERT_INSERT)
                    .bind(*a.id.as_uuid())
                    .bind(user)
                    .bind(exp)
                    .bind(*a.batch_run_id.as_uuid())
                    .bind(*a.previous_run_id.as_uuid())
                    .bind(to_json("alert finding", &a.finding)?)
                    .bind(dt(a.created_at))
                    .bind(a.finding.provider.as_str())
                    .bind(a.finding.kind.as_str())
                    .bind(a.finding.brand.as_str()),
            )
            .await?;
            inserted += u32::from(changed > 0);
        }
        commit(tx).await?;
        Ok(inserted)
    }

    async fn list_alerts(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, StoreError> {
        let limit = query.limit.get() as usize;
        let fetch = i64::from(query.limit.get()) + 1;
        let user = *owner.as_uuid();
        let sql = match query.after {
            None => sqlx::query(q::ALERTS_PAGE).bind(user).bind(fetch),
            Some(after) => sqlx::query(q::ALERTS_PAGE_AFTER)
                .bind(user)
                .bind(fetch)
                .bind(*after.as_uuid()),
        };
        let mut conn = self.db().conn().await?;
        let items = fetch_all(&mut conn, sql, rows::record::<Alert>).await?;
        Ok(Page::from_overfetch(items, limit, |a: &Alert| a.id))
    }
}
