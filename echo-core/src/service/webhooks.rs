//! Webhook endpoints: registered by their owner, sent each run's new alerts (and a test ping on
//! request) through the job queue, with a delivery log.

use std::sync::Arc;

use serde_json::json;

use super::ServiceError;
use super::alerts::describe_alert;
use crate::model::{
    Alert, Experiment, Job, Timestamp, UserId, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint,
    WebhookEvent, WebhookId, WebhookUrl,
};
use crate::runner::DeliverWebhookPayload;
use crate::store::{DeliveryQuery, DynStore, Page, WebhookStore};
use crate::webhook::{WebhookSecret, WebhookUrlPolicy};

/// Most endpoints one user may register.
pub const MAX_WEBHOOKS_PER_USER: u32 = 10;

/// What the owner asks to register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookDraft {
    /// The receiver's URL, checked against the service's [`WebhookUrlPolicy`].
    pub url: String,
    /// A note for the owner; may be empty.
    pub description: String,
}

/// Registers, lists and deletes endpoints, queues deliveries and reads the delivery log.
///
/// Deliveries are queued as [`DELIVER_WEBHOOK`](crate::runner::DELIVER_WEBHOOK) jobs, so
/// nothing here waits on a receiver: a worker with a transport
/// ([`JobExecutor::with_webhook_transport`](crate::runner::JobExecutor::with_webhook_transport))
/// sends them, retrying with backoff.
#[derive(Debug, Clone)]
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    policy: WebhookUrlPolicy,
}

impl WebhookService {
    /// A service over the store part it uses, checking URLs with `policy`.
    pub fn new(store: Arc<dyn WebhookStore>, policy: WebhookUrlPolicy) -> Self {
        Self { store, policy }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>, policy: WebhookUrlPolicy) -> Self {
        Self::new(store.clone(), policy)
    }

    /// The policy URLs are checked with.
    pub fn policy(&self) -> WebhookUrlPolicy {
        self.policy
    }

    /// Registers an endpoint with a new secret. The returned endpoint's `secret` is the one
    /// to show its owner, once: listings never show it again.
    ///
    /// Errors: `Invalid` for a URL the policy refuses (field `url`) or a bad description;
    /// `Store(Conflict)` at [`MAX_WEBHOOKS_PER_USER`]; `Entropy` when no secret could be drawn.
    pub async fn create(
        &self,
        owner: UserId,
        draft: &WebhookDraft,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let url = WebhookUrl::parse(&draft.url, self.policy)?;
        let description = WebhookEndpoint::validate_description(&draft.description)?;
        let endpoint = WebhookEndpoint {
            id: WebhookId::new(),
            user_id: owner,
            url,
            description,
            secret: WebhookSecret::generate()?,
            created_at: now,
        };
        self.store
            .create_webhook(&endpoint, MAX_WEBHOOKS_PER_USER)
            .await?;
        Ok(endpoint)
    }

    /// The owner's endpoints, oldest first.
    pub async fn list(&self, owner: UserId) -> Result<Vec<WebhookEndpoint>, ServiceError> {
        Ok(self.store.list_webhooks(owner).await?)
    }

    /// One of the owner's endpoints (`NotFound` for anyone else's).
    pub async fn get(&self, owner: UserId, id: WebhookId) -> Result<WebhookEndpoint, ServiceError> {
        Ok(self.store.get_webhook(owner, id).await?)
    }

    /// Deletes one of the owner's endpoints and its delivery log; queued attempts find it gone.
    pub async fn delete(&self, owner: UserId, id: WebhookId) -> Result<(), ServiceError> {
        Ok(self.store.delete_webhook(owner, id).await?)
    }

    /// One endpoint's delivery log, newest first.
    pub async fn deliveries(
        &self,
        owner: UserId,
        id: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Page<WebhookDelivery, WebhookDeliveryId>, ServiceError> {
        Ok(self.store.list_deliveries(owner, id, query).await?)
    }

    /// Queues a `ping` to one of the owner's endpoints, so they can check their receiver.
    pub async fn ping(
        &self,
        owner: UserId,
        id: WebhookId,
        now: Timestamp,
    ) -> Result<WebhookDelivery, ServiceError> {
        let endpoint = self.store.get_webhook(owner, id).await?;
        let delivery_id = WebhookDeliveryId::new();
        let body = envelope(
            delivery_id,
            WebhookEvent::Ping,
            now,
            json!({ "webhook_id": endpoint.id }),
        );
        let queued = queue_one(&endpoint, delivery_id, WebhookEvent::Ping, body, now);
        self.store
            .enqueue_deliveries(std::slice::from_ref(&queued))
            .await?;
        Ok(queued.0)
    }

    /// Queues one `alerts.raised` delivery of `alerts` (new alerts of one run of `experiment`)
    /// to each of the owner's endpoints, in one transaction. Returns the deliveries queued:
    /// none when the owner has no endpoint or there is no alert.
    pub async fn queue_alerts(
        &self,
        owner: UserId,
        experiment: &Experiment,
        alerts: &[Alert],
        now: Timestamp,
    ) -> Result<Vec<WebhookDelivery>, ServiceError> {
        queue_alerts(&*self.store, owner, experiment, alerts, now).await
    }
}

/// [`WebhookService::queue_alerts`], for the alert service, which needs no URL policy.
pub(super) async fn queue_alerts(
    store: &dyn WebhookStore,
    owner: UserId,
    experiment: &Experiment,
    alerts: &[Alert],
    now: Timestamp,
) -> Result<Vec<WebhookDelivery>, ServiceError> {
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints = store.list_webhooks(owner).await?;
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    let data = json!({
        "experiment_id": experiment.id,
        "prompt": experiment.prompt.as_str(),
        "alerts": alerts
            .iter()
            .map(|a| json!({
                "id": a.id,
                "batch_run_id": a.batch_run_id,
                "previous_run_id": a.previous_run_id,
                "created_at": a.created_at,
                "finding": a.finding,
                "summary": describe_alert(&a.finding),
            }))
            .collect::<Vec<_>>(),
    });
    let queued: Vec<(WebhookDelivery, Job)> = endpoints
        .iter()
        .map(|endpoint| {
            let id = WebhookDeliveryId::new();
            let body = envelope(id, WebhookEvent::AlertsRaised, now, data.clone());
            queue_one(endpoint, id, WebhookEvent::AlertsRaised, body, now)
        })
        .collect();
    store.enqueue_deliveries(&queued).await?;
    Ok(queued.into_iter().map(|(d, _)| d).collect())
}

/// The body every delivery shares: `{"id", "type", "created_at", "data"}`.
fn envelope(
    id: WebhookDeliveryId,
    event: WebhookEvent,
    now: Timestamp,
    data: serde_json::Value,
) -> String {
    json!({
        "id": id,
        "type": event.as_str(),
        "created_at": now,
        "data": data,
    })
    .to_string()
}

fn queue_one(
    endpoint: &WebhookEndpoint,
    id: WebhookDeliveryId,
    event: WebhookEvent,
    body: String,
    now: Timestamp,
) -> (WebhookDelivery, Job) {
    let delivery = WebhookDelivery::new(endpoint, id, event, body, now);
    let job = DeliverWebhookPayload {
        user_id: endpoint.user_id,
        delivery_id: id,
    }
    .into_job(now);
    (delivery, job)
}

#[cfg(test)]
mod tests;
