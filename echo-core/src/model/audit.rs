//! Audit events, the erasures rewritten into them, and signed checkpoints of the chain.

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
    /// Position in the log, from 1, without gaps. The oldest events may have been archived
    /// and deleted ([`AuditStore::delete_audit_through`](crate::store::AuditStore::delete_audit_through)),
    /// so the first stored `seq` is not always 1.
    pub seq: u64,
    /// The event, as appended, except for the fields an erasure cleared (see
    /// `actor_pseudonym`).
    #[serde(flatten)]
    pub event: NewAuditEvent,
    /// Set when the actor was erased
    /// ([`AuditStore::pseudonymize_actor`](crate::store::AuditStore::pseudonymize_actor)):
    /// `actor_user_id`, `ip` and `user_agent` were then cleared and this keyed hash of the
    /// actor, computed by the caller, stands in for them. Never part of the chain's input, and
    /// always `None` on a fresh append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_pseudonym: Option<String>,
    /// Hash of the previous event (zeros for the first).
    pub prev_hash: [u8; 32],
    /// Hash of this event as appended: see [`crate::audit::chain_hash`]. An erasure leaves it
    /// (and `prev_hash`) unchanged, so the links still verify while the erased event's own
    /// hash can no longer be recomputed from its fields.
    pub hash: [u8; 32],
}

/// What verifying one stored event needs, without the event: its place, its stored links,
/// and its hash recomputed from its stored fields (built by
/// [`AuditLink::of`](crate::model::AuditLink::of), or by a store straight from its rows;
/// see [`AuditStore::audit_links`](crate::store::AuditStore::audit_links)).
///
/// [`crate::audit::ChainVerifier::push_link`] checks a chain of these exactly as
/// [`push`](crate::audit::ChainVerifier::push) checks the events themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLink {
    /// The event's `seq`.
    pub seq: u64,
    /// Its stored `prev_hash`.
    pub prev_hash: [u8; 32],
    /// Its stored `hash`.
    pub hash: [u8; 32],
    /// [`crate::audit::chain_hash`] over `prev_hash`, `seq` and the fields as stored: equal to
    /// `hash` unless the event was altered (or erased).
    pub recomputed: [u8; 32],
    /// Whether the event has the shape an erasure leaves: `actor_pseudonym` set, and
    /// `actor_user_id`, `ip` and `user_agent` empty.
    pub erased_shape: bool,
}

/// The record of one erased event: its `actor_user_id`, `ip` and `user_agent` were cleared at
/// `erased_at` and replaced by `pseudonym`. A chain verifier accepts exactly these events'
/// three fields as erased instead of reporting tampering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditErasure {
    /// The erased event.
    pub seq: u64,
    /// When it was erased.
    pub erased_at: Timestamp,
    /// The pseudonym written into the event's `actor_pseudonym`.
    pub pseudonym: String,
}

/// A signed statement that the chain's head was `head_hash` at `seq`, made before events are
/// archived and deleted so that what remains (and the archive) can be verified against it.
///
/// The store keeps the bytes as given: it checks neither the signature (made by
/// [`crate::audit::CheckpointSigner`], Ed25519 over
/// [`checkpoint_message`](crate::audit::checkpoint_message)) nor that `head_hash` matches the
/// stored event; [`crate::audit::CheckpointVerifier`] does.
///
/// Serialized with the hash and signature in lowercase hex:
/// `{"seq":1000,"head_hash":"…64 hex…","created_at":"2026-…Z","signature":"…128 hex…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    /// The sequence number of the head event it covers.
    pub seq: u64,
    /// That event's `hash`.
    #[serde(with = "hex::serde")]
    pub head_hash: [u8; 32],
    /// When the checkpoint was made.
    pub created_at: Timestamp,
    /// The signer's signature (64 bytes for Ed25519).
    #[serde(with = "hex::serde")]
    pub signature: Vec<u8>,
}
