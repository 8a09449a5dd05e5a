//! Audit events.

use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId};

/// An event to append to the audit log: who did what to which resource, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// The acting user, if any (system actions have none).
    pub actor_user_id: Option<UserId>,
    /// What happened (`create_experiment`, `login_failed`…).
    pub action: String,
    /// Kind of resource acted on (`experiment`, `api_key`, `user`…).
    pub resource_type: String,
    /// Its id, if it has one.
    pub resource_id: Option<String>,
    /// Client IP address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id, to join the event with log lines.
    pub request_id: Option<String>,
    /// Action-specific details; never secrets.
    pub details: serde_json::Value,
    /// When it happened.
    pub created_at: Timestamp,
}

/// A stored audit event, with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: NewAuditEvent,
    /// Hash of the previous event (zeros for the first).
    pub prev_hash: [u8; 32],
    /// Hash of this event: see [`crate::audit::chain_hash`].
    pub hash: [u8; 32],
}
