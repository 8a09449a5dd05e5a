//! [`WebhookStore`]: webhook endpoints and their delivery log.

use std::fmt::Debug;

use async_trait::async_trait;

use super::{Page, PageSize, StoreError};
use crate::model::{
    DeliveryAttempt, Job, UserId, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookId,
};

/// Position for listing an endpoint's deliveries (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Continue after this delivery (the previous page's `next_cursor`).
    pub after: Option<WebhookDeliveryId>,
    /// Rows per page.
    pub limit: PageSize,
}

/// Webhook endpoints and the log of their deliveries.
///
/// Endpoints and deliveries go with their owner ([`UserStore::delete_user`]), and deliveries
/// with their endpoint. Jobs that would attempt a deleted delivery find it gone and do nothing.
///
/// [`UserStore::delete_user`]: super::UserStore::delete_user
#[async_trait]
pub trait WebhookStore: Send + Sync + Debug + 'static {
    /// Registers `endpoint`. [`StoreError::Conflict`] when its owner already has
    /// `max_per_user` endpoints (checked in the same transaction, so concurrent registrations
    /// cannot pass the limit together) or when its id exists.
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_user: u32,
    ) -> Result<(), StoreError>;

    /// The owner's endpoints, oldest first.
    async fn list_webhooks(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One of the owner's endpoints.
    async fn get_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, StoreError>;

    /// Deletes one of the owner's endpoints and its deliveries.
    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<(), StoreError>;

    /// Stores each delivery with the job that will attempt it, in one transaction, so a
    /// delivery is never stored without its job nor a job without its delivery.
    /// [`StoreError::NotFound`] when a delivery's endpoint is not its `user_id`'s;
    /// [`StoreError::Conflict`] when a delivery or job id exists. On error nothing is written.
    async fn enqueue_deliveries(
        &self,
        deliveries: &[(WebhookDelivery, Job)],
    ) -> Result<(), StoreError>;

    /// One of the owner's deliveries.
    async fn get_delivery(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, StoreError>;

    /// Records one attempt at a **pending** delivery: `attempts` grows by one and `status`,
    /// `response_status`, `last_error`, `next_attempt_at` and `last_attempt_at` (= `at`) take
    /// the attempt's values. Returns the updated delivery. [`StoreError::Conflict`] when the
    /// delivery is no longer pending (two attempts never both settle it);
    /// [`StoreError::NotFound`] for another user's or a missing one.
    async fn record_delivery_attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<WebhookDelivery, StoreError>;

    /// The deliveries of one of the owner's endpoints, newest first (`id` descending: ids are
    /// time-ordered), after `query.after`, at most `query.limit`; `next_cursor` is set when
    /// more follow. [`StoreError::NotFound`] when the endpoint is not the owner's.
    async fn list_deliveries(
        &self,
        owner: UserId,
        endpoint: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, StoreError>;
}
