//! Audit events of HTTP actions: who (actor), what (action, resource), from where (IP, user
//! agent) and which request (request id), recorded through the [`AuditSink`] (which signs
//! checkpoints of the chain).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use echo_core::model::{NewAuditEvent, Timestamp, UserId};

use crate::auth::{client_ip, peer};
use echo_core::audit::AuditSink;

use crate::error::log_chain;
use crate::middleware::RequestId;
use crate::state::AppState;

/// The request facts an audit event records.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    /// The socket peer.
    pub peer: Option<SocketAddr>,
    /// The client IP (the peer, or the trusted proxy's `X-Forwarded-For`).
    pub ip: Option<String>,
    /// `User-Agent`, truncated to 256 characters.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

impl FromRequestParts<AppState> for AuditContext {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = peer(&parts.extensions);
        let ip = client_ip(state, &parts.headers, peer);
        Ok(Self {
            peer,
            ip: Some(ip.to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(256).collect()),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        })
    }
}

/// Appends an audit event. A failed append is logged, not returned: the action itself has
/// already happened, and failing the response would invite a retry that repeats it.
pub async fn audit(
    state: &AppState,
    ctx: &AuditContext,
    actor: Option<UserId>,
    action: &str,
    resource_type: &str,
    resource_id: Option<String>,
    details: serde_json::Value,
) {
    let event = NewAuditEvent {
        actor_user_id: actor,
        action: action.to_owned(),
        resource_type: resource_type.to_owned(),
        resource_id,
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        request_id: ctx.request_id.clone(),
        details,
        created_at: Timestamp::now(),
    };
    if let Err(e) = state.audit_sink.record(event).await {
        log_chain("audit append failed", Some(&e));
    }
}

/// [`audit`] of `actor` acting on one resource, without details: the common case.
pub async fn audit_action(
    state: &AppState,
    ctx: &AuditContext,
    actor: UserId,
    action: &str,
    resource_type: &str,
    resource_id: impl std::fmt::Display,
) {
    audit(
        state,
        ctx,
        Some(actor),
        action,
        resource_type,
        Some(resource_id.to_string()),
        serde_json::json!({}),
    )
    .await;
}
