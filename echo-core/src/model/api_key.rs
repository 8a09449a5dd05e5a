//! Stored API-key records. The key itself is never stored: only its public id (the lookup
//! handle) and a hash of the secret.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ApiKeyId, Label, Timestamp, UserId};

/// A 32-byte digest of a key's secret part. Redacted in `Debug`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretDigest(pub [u8; 32]);

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Identity (used in URLs to revoke the key).
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Owner-chosen label.
    pub name: Label,
    /// The public key id embedded in the key: unique, indexed, safe to display.
    pub public_id: String,
    /// Digest of the secret part.
    pub secret_hash: SecretDigest,
    /// Cleared on revoke.
    pub is_active: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last successful use (coalesced, so at most about a minute stale).
    pub last_used_at: Option<Timestamp>,
    /// After this instant the key is refused.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}
