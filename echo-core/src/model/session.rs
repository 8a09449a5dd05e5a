//! Stored login sessions. The session token itself is never stored: only its session id (the
//! lookup handle) and a digest of its secret, exactly as for API keys.

use serde::{Deserialize, Serialize};

use super::{SecretDigest, SessionId, Timestamp, UserId};

/// A login session as stored (see [`SessionService`](crate::auth::SessionService) for the
/// token format and checks).
///
/// A session is usable while `revoked_at` is `None`, `now < expires_at` and its owner is
/// active; the store keeps expired and revoked rows until they are pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Identity, embedded in the token: the authentication lookup's key.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Digest of the token's secret part.
    pub secret_hash: SecretDigest,
    /// When the session was issued.
    pub created_at: Timestamp,
    /// From this instant on the session is refused.
    pub expires_at: Timestamp,
    /// When it was revoked (logout, password change, account deletion); kept at the first
    /// revocation.
    pub revoked_at: Option<Timestamp>,
}
