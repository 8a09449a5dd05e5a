//! Webhook endpoints (where a user's alerts are posted) and their deliveries (the log of what
//! was posted, how often, and how the receiver answered).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::{Timestamp, UserId, ValidationError, WebhookDeliveryId, WebhookId};
use crate::webhook::{WebhookSecret, WebhookUrlPolicy, is_public_ip};

/// An endpoint's URL, checked against a [`WebhookUrlPolicy`] when it is registered.
///
/// The registration check sees only the URL's text: a host *name* that resolves to a private
/// address passes it, so the transport checks every resolved address again at delivery (see
/// [`WebhookTransport`](crate::webhook::WebhookTransport)).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Longest accepted URL, in characters as given.
    pub const MAX_LEN: usize = 2048;

    /// Longest stored (normalised, percent-encoded) URL, in bytes.
    pub const MAX_STORED_LEN: usize = 4096;

    /// Checks `text` as a new endpoint's URL under `policy`: an absolute `https` URL with a
    /// host, no credentials and no fragment, at most [`WebhookUrl::MAX_LEN`] characters; `http` only
    /// for a loopback host when the policy allows it (development). Under a policy that
    /// forbids private addresses (production), a literal private, loopback, link-local or
    /// otherwise non-public IP address, and `localhost` names, are refused.
    ///
    /// Errors name the field `url`.
    pub fn parse(text: &str, policy: WebhookUrlPolicy) -> Result<Self, ValidationError> {
        let invalid = |reason: &str| ValidationError::new("url", reason);
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("must not be empty"));
        }
        let too_long = || invalid("must be at most 2048 characters");
        if text.chars().count() > Self::MAX_LEN {
            return Err(too_long());
        }
        let url = url::Url::parse(text).map_err(|_| invalid("must be an absolute URL"))?;
        // Normalising adds at most a `/` to ASCII input, but percent-encoding can triple other
        // text: the stored form is bounded apart (the stores' column check).
        if url.as_str().len() > Self::MAX_STORED_LEN {
            return Err(too_long());
        }
        let host = url.host().ok_or_else(|| invalid("must have a host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        let loopback = match &host {
            url::Host::Domain(name) => is_localhost_name(name),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http_localhost && loopback => {}
            "http" if policy.allow_http_localhost => {
                return Err(invalid("must use https (http only for localhost)"));
            }
            _ => return Err(invalid("must use https")),
        }
        if !policy.allow_private_addresses {
            let public = match host {
                url::Host::Domain(name) => !is_localhost_name(name),
                url::Host::Ipv4(ip) => is_public_ip(ip.into()),
                url::Host::Ipv6(ip) => is_public_ip(ip.into()),
            };
            if !public {
                return Err(invalid("must not point to a private or loopback address"));
            }
        }
        Ok(Self(url))
    }

    /// A URL read back from storage, checked only for being a URL: it passed
    /// [`WebhookUrl::parse`] when it was stored. `None` when it is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        url::Url::parse(text).ok().map(Self)
    }

    /// The URL's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL, for a transport.
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

/// `localhost` and its subdomains (RFC 6761 reserves them for loopback).
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({:?})", self.0.as_str())
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl Serialize for WebhookUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

/// A user's webhook endpoint: alerts raised for their experiments are posted to `url`, signed
/// with `secret` (see [`crate::webhook`]).
///
/// Not `Serialize`: the secret is shown once, at creation, and never listed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Identity.
    pub id: WebhookId,
    /// The owner.
    pub user_id: UserId,
    /// Where deliveries are posted.
    pub url: WebhookUrl,
    /// The owner's note about the endpoint ("Slack relay"); may be empty.
    pub description: String,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// Registration time.
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    /// Longest description, in characters.
    pub const MAX_DESCRIPTION_CHARS: usize = 200;

    /// Checks a description: at most [`WebhookEndpoint::MAX_DESCRIPTION_CHARS`] characters,
    /// no control characters. Returns it trimmed.
    pub fn validate_description(text: &str) -> Result<String, ValidationError> {
        let text = text.trim();
        if text.chars().count() > Self::MAX_DESCRIPTION_CHARS || text.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "description",
                "must be at most 200 printable characters",
            ));
        }
        Ok(text.to_owned())
    }
}

/// What a delivery tells the receiver; the body's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// One run's new alerts (`alerts.raised`).
    AlertsRaised,
    /// A test delivery the owner asked for (`ping`).
    Ping,
}

impl WebhookEvent {
    /// The wire name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            WebhookEvent::AlertsRaised => "alerts.raised",
            WebhookEvent::Ping => "ping",
        }
    }
}

impl FromStr for WebhookEvent {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "alerts.raised" => Ok(WebhookEvent::AlertsRaised),
            "ping" => Ok(WebhookEvent::Ping),
            _ => Err(ValidationError::new("event", "is not a webhook event")),
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; attempts may follow (`next_attempt_at`).
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Given up: a permanent refusal, or the last attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The wire and column name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "succeeded" => Ok(DeliveryStatus::Succeeded),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(ValidationError::new("status", "is not a delivery status")),
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DeliveryStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One event posted (and re-posted until it succeeds or is given up) to one endpoint: the
/// delivery log's row.
///
/// `body` is fixed when the delivery is created, so every attempt posts the same bytes; only
/// the signature's timestamp changes between attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    /// Identity; also the body's `id`, so a receiver can drop a repeat.
    pub id: WebhookDeliveryId,
    /// The endpoint's owner.
    pub user_id: UserId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// What it tells.
    pub event: WebhookEvent,
    /// The JSON body posted.
    pub body: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, when there was one.
    pub response_status: Option<u16>,
    /// Why the last attempt failed (a timeout, a refused address, a status); never a secret.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<Timestamp>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Timestamp>,
    /// When the event was raised.
    pub created_at: Timestamp,
}

impl WebhookDelivery {
    /// A pending delivery of `body` to `endpoint`, due at `now`.
    pub fn new(
        endpoint: &WebhookEndpoint,
        id: WebhookDeliveryId,
        event: WebhookEvent,
        body: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            user_id: endpoint.user_id,
            endpoint_id: endpoint.id,
            event,
            body,
            status: DeliveryStatus::Pending,
            attempts: 0,
            response_status: None,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            created_at: now,
        }
    }
}

/// The result of one attempt, as [`WebhookStore::record_delivery_attempt`] stores it.
///
/// [`WebhookStore::record_delivery_attempt`]: crate::store::WebhookStore::record_delivery_attempt
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// When it was made.
    pub at: Timestamp,
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    /// The receiver's HTTP status, when it answered.
    pub response_status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// When the next attempt is due (`None` once settled).
    pub next_attempt_at: Option<Timestamp>,
}
