use async_trait::async_trait;
use echo_core::model::{
    DeliveryAttempt, Job, UserId, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookId,
};
use echo_core::store::sql::{ColumnReader, found};
use echo_core::store::{DeliveryQuery, Page, StoreError, WebhookStore};
use sqlx::PgConnection;

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::jobs::insert_jobs;
use crate::queries as q;
use crate::rows::{self, Cols, dt, opt_dt};

async fn owned(
    conn: &mut PgConnection,
    sql: &'static str,
    id: uuid::Uuid,
    owner: UserId,
) -> Result<bool, StoreError> {
    Ok(fetch_opt(
        conn,
        sqlx::query(sql).bind(id).bind(*owner.as_uuid()),
        |row| Cols::new(row).bool("owned"),
    )
    .await?
    .unwrap_or(false))
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        let user = *endpoint.user_id.as_uuid();
        let count = fetch_opt(
            &mut tx,
            sqlx::query(q::WEBHOOK_LOCK_OWNER).bind(user),
            |row| Cols::new(row).i64("webhook count"),
        )
        .await?
        .ok_or(StoreError::not_found("user"))?;
        if count >= i64::from(max_per_user) {
            return Err(StoreError::conflict("webhook endpoint limit reached"));
        }
        execute(
            &mut tx,
            sqlx::query(q::WEBHOOK_INSERT)
                .bind(*endpoint.id.as_uuid())
                .bind(user)
                .bind(endpoint.url.as_str())
                .bind(endpoint.description.as_str())
                .bind(endpoint.secret.expose())
                .bind(dt(endpoint.created_at)),
        )
        .await?;
        commit(tx).await
    }

    async fn list_webhooks(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::WEBHOOKS_BY_USER).bind(*owner.as_uuid()),
            rows::record::<WebhookEndpoint>,
        )
        .await
    }

    async fn get_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::WEBHOOK_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            rows::record::<WebhookEndpoint>,
        )
        .await?
        .ok_or(StoreError::not_found("webhook"))
    }

    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::WEBHOOK_DELETE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
        )
        .await?;
        found(changed, "webhook")
    }

    async fn enqueue_deliveries(
        &self,
        deliveries: &[(WebhookDelivery, Job)],
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.db().begin().await?;
        for (d, _) in deliveries {
            if !owned(
                &mut tx,
                q::WEBHOOK_OWNED,
                *d.endpoint_id.as_uuid(),
                d.user_id,
            )
            .await?
            {
                return Err(StoreError::not_found("webhook"));
            }
            execute(
                &mut tx,
                sqlx::query(q::DELIVERY_INSERT)
                    .bind(*d.id.as_uuid())
                    .bind(*d.user_id.as_uuid())
                    .bind(*d.endpoint_id.as_uuid())
                    .bind(d.event.as_str())
                    .bind(d.body.as_str())
                    .bind(d.status.as_str())
                    .bind(i64::from(d.attempts))
                    .bind(d.response_status.map(i64::from))
                    .bind(d.last_error.as_deref())
                    .bind(opt_dt(d.last_attempt_at))
                    .bind(opt_dt(d.next_attempt_at))
                    .bind(dt(d.created_at)),
            )
            .await?;
        }
        let jobs: Vec<Job> = deliveries.iter().map(|(_, j)| j.clone()).collect();
        insert_jobs(&mut tx, &jobs).await?;
        commit(tx).await?;
        self.jobs_committed();
        Ok(())
    }

    async fn get_delivery(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::DELIVERY_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            rows::record::<WebhookDelivery>,
        )
        .await?
        .ok_or(StoreError::not_found("delivery"))
    }

    async fn record_delivery_attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<WebhookDelivery, StoreError> {
        let mut conn = self.db().conn().await?;
        let updated = fetch_opt(
            &mut conn,
            sqlx::query(q::DELIVERY_ATTEMPT)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(attempt.status.as_str())
                .bind(attempt.response_status.map(i64::from))
                .bind(attempt.error.as_deref())
                .bind(dt(attempt.at))
                .bind(opt_dt(attempt.next_attempt_at)),
            rows::record::<WebhookDelivery>,
        )
        .await?;
        match updated {
            Some(d) => Ok(d),
            None if owned(&mut conn, q::DELIVERY_OWNED, *id.as_uuid(), owner).await? => {
                Err(StoreError::conflict("the delivery is already settled"))
            }
            None => Err(StoreError::not_found("delivery")),
        }
    }

    async fn list_deliveries(
        &self,
        owner: UserId,
        endpoint: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, StoreError> {
        let mut conn = self.db().conn().await?;
        let e = *endpoint.as_uuid();
        if !owned(&mut conn, q::WEBHOOK_OWNED, e, owner).await? {
            return Err(StoreError::not_found("webhook"));
        }
        let limit = query.limit.get() as usize;
        let fetch = i64::from(query.limit.get()) + 1;
        let sql = match query.after {
            None => sqlx::query(q::DELIVERIES_PAGE).bind(e).bind(fetch),
            Some(after) => sqlx::query(q::DELIVERIES_PAGE_AFTER)
                .bind(e)
                .bind(fetch)
                .bind(*after.as_uuid()),
        };
        let items = fetch_all(&mut conn, sql, rows::record::<WebhookDelivery>).await?;
        Ok(Page::from_overfetch(items, limit, |d: &WebhookDelivery| {
            d.id
        }))
    }
}
