//! Delivering a stored webhook: one signed attempt through a [`WebhookTransport`], its result
//! written to the delivery log, and the retry rule.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::{SIGNATURE_HEADER, sign};
use crate::model::{
    DeliveryAttempt, DeliveryStatus, Timestamp, UserId, WebhookDeliveryId, WebhookEvent, WebhookUrl,
};
use crate::store::{StoreError, WebhookStore};

/// The header naming the delivery (the body's `id`), so a receiver can drop a repeat.
pub const DELIVERY_HEADER: &str = "Echo-Delivery";

/// The header naming the event (the body's `type`).
pub const EVENT_HEADER: &str = "Echo-Event";

/// One signed `POST` for a [`WebhookTransport`] to send.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// Where to.
    pub url: &'a WebhookUrl,
    /// The JSON body, sent as is with `Content-Type: application/json`.
    pub body: &'a [u8],
    /// The [`SIGNATURE_HEADER`] value.
    pub signature: &'a str,
    /// The [`DELIVERY_HEADER`] value.
    pub delivery_id: WebhookDeliveryId,
    /// The [`EVENT_HEADER`] value.
    pub event: WebhookEvent,
}

/// The receiver's answer: only its status matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status code.
    pub status: u16,
}

/// Why a transport got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within the transport's time limit. Retried.
    #[error("timed out")]
    Timeout,
    /// The host resolved to an address the deployment's [`WebhookUrlPolicy`] forbids (or did not
    /// resolve at all to an allowed one). Not retried.
    ///
    /// [`WebhookUrlPolicy`]: super::WebhookUrlPolicy
    #[error("address refused: {0}")]
    AddressRefused(String),
    /// The connection or the exchange failed (DNS failure, refused, reset, TLS). Retried.
    #[error("connection failed: {0}")]
    Connect(String),
}

/// Sends webhook requests over HTTP. `echo-core` has no HTTP client: the server supplies one
/// (the reference server's is reqwest).
///
/// # Contract
/// - `POST` the body with `Content-Type: application/json` and the request's three headers
///   ([`SIGNATURE_HEADER`], [`DELIVERY_HEADER`], [`EVENT_HEADER`]).
/// - Check **every** address the URL's host resolves to against the deployment's
///   [`WebhookUrlPolicy`](super::WebhookUrlPolicy) before connecting, and connect only to an
///   allowed one; otherwise [`TransportError::AddressRefused`]. This is what stops DNS names
///   that point (or later re-point) into private networks.
/// - Never follow redirects: a `3xx` is the answer.
/// - Bound the whole exchange by a time limit ([`TransportError::Timeout`]), so a slow receiver
///   never holds a worker for long.
/// - Never log the body or the signature.
#[async_trait]
pub trait WebhookTransport: Send + Sync + Debug + 'static {
    /// Sends one request and returns the receiver's status.
    async fn post(&self, request: WebhookRequest<'_>) -> Result<WebhookResponse, TransportError>;
}

/// The trait object a [`WebhookDeliverer`] holds.
pub type DynWebhookTransport = dyn WebhookTransport;

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// It failed in a way worth retrying (a timeout, a connection failure, 408, 425, 429 or
    /// 5xx) and attempts remain; the delivery stays pending until `next_attempt_at`.
    Retry {
        /// Why.
        reason: String,
    },
    /// It failed for good: a permanent refusal (another 4xx or a 3xx, a forbidden address)
    /// or the last attempt failed.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// The delivery was already settled (a repeated job): nothing was sent.
    AlreadySettled,
    /// The delivery (or its endpoint) no longer exists: nothing was sent.
    Gone,
}

/// Whether a receiver's status is worth another attempt.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

/// Makes attempts at stored deliveries and writes each one's result to the delivery log.
#[derive(Debug, Clone)]
pub struct WebhookDeliverer {
    store: Arc<dyn WebhookStore>,
    transport: Arc<DynWebhookTransport>,
}

impl WebhookDeliverer {
    /// A deliverer reading and writing `store`, sending through `transport`.
    pub fn new(store: Arc<dyn WebhookStore>, transport: Arc<DynWebhookTransport>) -> Self {
        Self { store, transport }
    }

    /// Makes one attempt at the owner's delivery `id`, now: signs its body with the endpoint's
    /// secret and the current time, sends it, and records the result. `next_attempt_at` is when
    /// a retry would be due; `None` makes this the last attempt (a retryable failure then gives
    /// up).
    ///
    /// Errors: store failures only. Every failure of the receiver is an [`AttemptOutcome`].
    pub async fn attempt(
        &self,
        owner: UserId,
        id: WebhookDeliveryId,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<AttemptOutcome, StoreError> {
        let delivery = match self.store.get_delivery(owner, id).await {
            Ok(d) => d,
            Err(StoreError::NotFound { .. }) => return Ok(AttemptOutcome::Gone),
            Err(e) => return Err(e),
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(AttemptOutcome::AlreadySettled);
        }
        let endpoint = match self.store.get_webhook(owner, delivery.endpoint_id).await {
            Ok(e) => e,
            Err(StoreError::NotFound { .. }) => return Ok(AttemptOutcome::Gone),
            Err(e) => return Err(e),
        };
        let sent_at = Timestamp::now();
        let signature = sign(
            &endpoint.secret,
            sent_at.as_datetime().unix_timestamp(),
            delivery.body.as_bytes(),
        );
        let result = self
            .transport
            .post(WebhookRequest {
                url: &endpoint.url,
                body: delivery.body.as_bytes(),
                signature: &signature,
                delivery_id: delivery.id,
                event: delivery.event,
            })
            .await;
        let (outcome, response_status) = classify(&result, next_attempt_at.is_some());
        let attempt = DeliveryAttempt {
            at: Timestamp::now(),
            status: match outcome {
                AttemptOutcome::Delivered { .. } => DeliveryStatus::Succeeded,
                AttemptOutcome::Retry { .. } => DeliveryStatus::Pending,
                _ => DeliveryStatus::Failed,
            },
            response_status,
            error: match &outcome {
                AttemptOutcome::Retry { reason } | AttemptOutcome::GaveUp { reason } => {
                    Some(reason.clone())
                }
                _ => None,
            },
            next_attempt_at: next_attempt_at
                .filter(|_| matches!(outcome, AttemptOutcome::Retry { .. })),
        };
        match self
            .store
            .record_delivery_attempt(owner, delivery.id, &attempt)
            .await
        {
            Ok(_) => Ok(outcome),
            // Deleted (with its endpoint) or settled by another attempt while this one ran.
            Err(StoreError::NotFound { .. }) => Ok(AttemptOutcome::Gone),
            Err(StoreError::Conflict { .. }) => Ok(AttemptOutcome::AlreadySettled),
            Err(e) => Err(e),
        }
    }
}

/// The retry rule: the outcome of a transport result, and the status to log.
fn classify(
    result: &Result<WebhookResponse, TransportError>,
    attempts_left: bool,
) -> (AttemptOutcome, Option<u16>) {
    let retry_or_give_up = |reason: String| {
        if attempts_left {
            AttemptOutcome::Retry { reason }
        } else {
            AttemptOutcome::GaveUp {
                reason: format!("{reason} (last attempt)"),
            }
        }
    };
    match result {
        Ok(r) if (200..300).contains(&r.status) => (
            AttemptOutcome::Delivered { status: r.status },
            Some(r.status),
        ),
        Ok(r) if retryable_status(r.status) => (
            retry_or_give_up(format!("receiver answered {}", r.status)),
            Some(r.status),
        ),
        Ok(r) => (
            AttemptOutcome::GaveUp {
                reason: format!("receiver answered {} (not retried)", r.status),
            },
            Some(r.status),
        ),
        Err(TransportError::AddressRefused(why)) => (
            AttemptOutcome::GaveUp {
                reason: format!("address refused: {why}"),
            },
            None,
        ),
        Err(e) => (retry_or_give_up(truncate(&e.to_string(), 300)), None),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The request headers a transport sends besides `Content-Type`, in order: the signature,
/// the delivery id and the event.
pub fn request_headers(request: &WebhookRequest<'_>) -> [(&'static str, String); 3] {
    [
        (SIGNATURE_HEADER, request.signature.to_owned()),
        (DELIVERY_HEADER, request.delivery_id.to_string()),
        (EVENT_HEADER, request.event.as_str().to_owned()),
    ]
}

#[cfg(test)]
mod tests;
