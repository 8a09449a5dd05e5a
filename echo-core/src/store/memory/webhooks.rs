//! [`WebhookStore`] for the in-memory store.

use std::collections::HashSet;

use async_trait::async_trait;

use super::MemoryStore;
use crate::model::{
    DeliveryAttempt, DeliveryStatus, Job, UserId, WebhookDelivery, WebhookDeliveryId,
    WebhookEndpoint, WebhookId,
};
use crate::store::{DeliveryQuery, Page, StoreError, WebhookStore};

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&endpoint.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.webhooks.contains_key(&endpoint.id) {
            return Err(StoreError::conflict(
                "a webhook with this id already exists",
            ));
        }
        let owned = s
            .webhooks
            .values()
            .filter(|w| w.user_id == endpoint.user_id)
            .count();
        if owned >= max_per_user as usize {
            return Err(StoreError::conflict("webhook endpoint limit reached"));
        }
        s.webhooks.insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    async fn list_webhooks(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let s = self.state()?;
        let mut list: Vec<WebhookEndpoint> = s
            .webhooks
            .values()
            .filter(|w| w.user_id == owner)
            .cloned()
            .collect();
        list.sort_by_key(|w| (w.created_at, w.id));
        Ok(list)
    }

    async fn get_webhook(
        &self,
        owner: UserId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, StoreError> {
        let s = self.state()?;
        s.webhooks
            .get(&id)
            .filter(|w| w.user_id == owner)
            .cloned()
            .ok_or(StoreError::not_found("webhook"))
    }

    async fn delete_webhook(&self, owner: UserId, id: WebhookId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.webhooks.get(&id).is_none_or(|w| w.user_id != owner) {
            return Err(StoreError::not_found("webhook"));
        }
        s.webhooks.remove(&id);
        s.deliveries.retain(|_, d| d.endpoint_id != id);
        Ok(())
    }

    async fn enqueue_deliveries(
        &self,
        deliveries: &[(WebhookDelivery, Job)],
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let mut ids = HashSet::new();
        let mut jobs = HashSet::new();
        for (d, job) in deliveries {
            if s.webhooks
                .get(&d.endpoint_id)
                .is_none_or(|w| w.user_id != d.user_id)
            {
                return Err(StoreError::not_found("webhook"));
            }
            if s.deliveries.contains_key(&d.id) || !ids.insert(d.id) {
                return Err(StoreError::conflict(
                    "a delivery with this id already exists",
                ));
            }
            s.check_new_job(job)?;
            if !jobs.insert(job.id) {
                return Err(StoreError::conflict("a job with this id already exists"));
            }
        }
        for (d, job) in deliveries {
            s.deliveries.insert(d.id, d.clone());
            s.jobs.insert(job.id, job.clone());
        }
        Ok(())
    }

    async fn get_delivery(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery, StoreError> {
        let s = self.state()?;
        s.deliveries
            .get(&id)
            .filter(|d| d.user_id == owner)
            .cloned()
            .ok_or(StoreError::not_found("delivery"))
    }

    async fn record_delivery_attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        attempt: &DeliveryAttempt,
    ) -> Result<WebhookDelivery, StoreError> {
        let mut s = self.state()?;
        let d = s
            .deliveries
            .get_mut(&id)
            .filter(|d| d.user_id == owner)
            .ok_or(StoreError::not_found("delivery"))?;
        if d.status != DeliveryStatus::Pending {
            return Err(StoreError::conflict("the delivery is already settled"));
        }
        d.attempts = d.attempts.saturating_add(1);
        d.status = attempt.status;
        d.response_status = attempt.response_status;
        d.last_error.clone_from(&attempt.error);
        d.last_attempt_at = Some(attempt.at);
        d.next_attempt_at = attempt.next_attempt_at;
        Ok(d.clone())
    }

    async fn list_deliveries(
        &self,
        owner: UserId,
        endpoint: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, StoreError> {
        let s = self.state()?;
        if s.webhooks.get(&endpoint).is_none_or(|w| w.user_id != owner) {
            return Err(StoreError::not_found("webhook"));
        }
        let limit = query.limit.get() as usize;
        let rows: Vec<WebhookDelivery> = s
            .deliveries
            .values()
            .rev()
            .filter(|d| d.endpoint_id == endpoint && query.after.is_none_or(|after| d.id < after))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(rows, limit, |d| d.id))
    }
}
