use async_trait::async_trait;
use echo_core::model::{
    DeliveryAttempt, Job, UserId, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookId,
};
use echo_core::store::{DeliveryQuery, Page, StoreError, WebhookStore};
use rusqlite::{Transaction, params};

use crate::SqliteStore;
use crate::db::{execute, query_all, query_bool, query_opt};
use crate::error::SqlResultExt;
use crate::jobs::insert_job;
use crate::queries as q;
use crate::rows::{self, opt_micros};

fn insert_delivery(tx: &Transaction<'_>, d: &WebhookDelivery) -> Result<(), StoreError> {
    execute(
        tx,
        q::DELIVERY_INSERT,
        params![
            d.id.as_uuid().as_bytes(),
            d.user_id.as_uuid().as_bytes(),
            d.endpoint_id.as_uuid().as_bytes(),
            d.event.as_str(),
            d.body,
            d.status.as_str(),
            d.attempts,
            d.response_status,
            d.last_error,
            opt_micros(d.last_attempt_at),
            opt_micros(d.next_attempt_at),
            d.created_at.unix_micros(),
        ],
    )
    .db()?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        let e = endpoint.clone();
        self.db
            .write(move |tx| {
                let user = e.user_id.as_uuid().as_bytes();
                let owned: i64 = tx
                    .prepare_cached(q::WEBHOOKS_COUNT)
                    .db()?
                    .query_row([user], |row| row.get(0))
                    .db()?;
                if owned >= i64::from(max_per_user) {
                    return Err(StoreError::conflict("webhook endpoint limit reached"));
                }
                execute(
                    tx,
                    q::WEBHOOK_INSERT,
                    params![
                        e.id.as_uuid().as_bytes(),
                        user,
                        e.url.as_str(),
                        e.description,
                        e.secret.expose(),
                        e.created_at.unix_micros(),
                    ],
                )
                .db_parent("user")?;
                Ok(())
            })
            .await
    }

    async fn list_webhooks(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    q::WEBHOOKS_BY_USER,
                    [owner.as_uuid().as_bytes()],
                    rows::record,
                )
            })
            .await
    }

    async fn get_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::WEBHOOK_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                    rows::record,
                )
            })
            .await?
            .ok_or(StoreError::not_found("webhook"))
    }

    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::WEBHOOK_DELETE,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                )
                .db()?;
                echo_core::store::sql::found(changed as u64, "webhook")
            })
            .await
    }

    async fn enqueue_deliveries(
        &self,
        deliveries: &[(WebhookDelivery, Job)],
    ) -> Result<(), StoreError> {
        let deliveries = deliveries.to_vec();
        self.db
            .write(move |tx| {
                for (d, job) in &deliveries {
                    let owned = query_bool(
                        tx,
                        q::WEBHOOK_OWNED,
                        params![
                            d.endpoint_id.as_uuid().as_bytes(),
                            d.user_id.as_uuid().as_bytes()
                        ],
                    )?;
                    if !owned {
                        return Err(StoreError::not_found("webhook"));
                    }
                    insert_delivery(tx, d)?;
                    insert_job(tx, job)?;
                }
                Ok(())
            })
            .await
    }

    async fn get_delivery(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::DELIVERY_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                    rows::record,
                )
            })
            .await?
            .ok_or(StoreError::not_found("delivery"))
    }

    async fn record_delivery_attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<WebhookDelivery, StoreError> {
        let attempt = attempt.clone();
        self.db
            .write(move |tx| {
                let (id, owner) = (id.as_uuid().as_bytes(), owner.as_uuid().as_bytes());
                let updated = query_opt(
                    tx,
                    q::DELIVERY_ATTEMPT,
                    params![
                        id,
                        owner,
                        attempt.status.as_str(),
                        attempt.response_status,
                        attempt.error,
                        attempt.at.unix_micros(),
                        opt_micros(attempt.next_attempt_at),
                    ],
                    rows::record,
                )?;
                match updated {
                    Some(d) => Ok(d),
                    None if query_bool(tx, q::DELIVERY_OWNED, params![id, owner])? => {
                        Err(StoreError::conflict("the delivery is already settled"))
                    }
                    None => Err(StoreError::not_found("delivery")),
                }
            })
            .await
    }

    async fn list_deliveries(
        &self,
        owner: UserId,
        endpoint: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, StoreError> {
        let query = query.clone();
        let limit = query.limit.get() as usize;
        let items = self
            .db
            .read(move |tx| {
                let e = endpoint.as_uuid().as_bytes();
                if !query_bool(tx, q::WEBHOOK_OWNED, params![e, owner.as_uuid().as_bytes()])? {
                    return Err(StoreError::not_found("webhook"));
                }
                let fetch = query.limit.get() + 1;
                match query.after {
                    None => query_all(tx, q::DELIVERIES_PAGE, params![e, fetch], rows::record),
                    Some(after) => query_all(
                        tx,
                        q::DELIVERIES_PAGE_AFTER,
                        params![e, fetch, after.as_uuid().as_bytes()],
                        rows::record,
                    ),
                }
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |d: &WebhookDelivery| {
            d.id
        }))
    }
}
