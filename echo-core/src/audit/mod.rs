//! The audit log's hash chain, its verification, signed checkpoints and archives.
//!
//! Every event stores the hash of its predecessor and its own hash over a canonical encoding
//! ([`chain_hash`]), so editing, deleting, inserting or reordering a stored event breaks the chain
//! at that point; [`ChainVerifier`] walks a chain (streaming) and names the first break.
//!
//! Whoever can write the table can also recompute every hash after an edit. Signed
//! [`AuditCheckpoint`]s close that gap: an Ed25519 signature over `(seq, hash, time)`, made with a
//! key the database does not hold and kept elsewhere, pins every event up to its seq
//! ([`CheckpointPolicy`] says when to make the next one). Old ranges move to JSON Lines archives
//! ([`write_archive`]) whose manifest lets the chain be verified across the archive boundary.

use sha2::{Digest, Sha256};

use crate::model::NewAuditEvent;

mod archive;
mod checkpoint;
mod sink;
mod verify;

pub use archive::{
    ARCHIVE_FORMAT, ArchiveError, ArchiveManifest, ArchiveReader, read_archive, verify_archive,
    write_archive, write_archive_with_erasures,
};
pub use checkpoint::{
    AuditCheckpoint, CHECKPOINT_DOMAIN, CHECKPOINT_MESSAGE_LEN, CheckpointError, CheckpointPolicy,
    CheckpointSigner, CheckpointVerifier, checkpoint_message,
};
pub use sink::{AuditSink, DynAuditSink, StoreAuditSink};
pub use verify::{BreakKind, ChainBreak, ChainStart, ChainVerifier, VerifyReport, verify_chain};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Domain separation: a hash made for another purpose can never be mistaken for a chain link.
const DOMAIN: &[u8] = b"echo.audit.v1\0";

/// SHA-256 over a canonical, unambiguous encoding of `(prev_hash, seq, event)`.
///
/// Every variable-length field is length-prefixed and every optional field carries a presence
/// byte, so no two different events encode to the same bytes. `details` is encoded as compact
/// JSON with object keys sorted (serde_json's default map is ordered), so it is canonical too.
///
/// ```
/// use echo_core::audit::{chain_hash, GENESIS_HASH};
/// use echo_core::model::{NewAuditEvent, Timestamp};
///
/// let event = NewAuditEvent {
///     actor_user_id: None,
///     action: "login".into(),
///     resource_type: "user".into(),
///     resource_id: None,
///     ip: None,
///     user_agent: None,
///     request_id: None,
///     details: serde_json::json!({}),
///     created_at: Timestamp::now(),
/// };
/// let h1 = chain_hash(&GENESIS_HASH, 1, &event);
/// assert_ne!(h1, chain_hash(&GENESIS_HASH, 2, &event));
/// ```
pub fn chain_hash(prev_hash: &[u8; 32], seq: u64, event: &NewAuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    put_opt(
        &mut h,
        event
            .actor_user_id
            .map(|id| *id.as_uuid().as_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    put(&mut h, event.action.as_bytes());
    put(&mut h, event.resource_type.as_bytes());
    put_opt(&mut h, event.resource_id.as_deref().map(str::as_bytes));
    put_opt(&mut h, event.ip.as_deref().map(str::as_bytes));
    put_opt(&mut h, event.user_agent.as_deref().map(str::as_bytes));
    put_opt(&mut h, event.request_id.as_deref().map(str::as_bytes));
    put(&mut h, event.details.to_string().as_bytes());
    h.update(event.created_at.unix_micros().to_be_bytes());
    h.finalize().into()
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn put_opt(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            put(h, b);
        }
    }
}

#[cfg(test)]
mod chain_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn event() -> NewAuditEvent {
        NewAuditEvent {
            actor_user_id: None,
            action: "a".into(),
            resource_type: "bc".into(),
            resource_id: None,
            ip: None,
            user_agent: None,
            request_id: None,
            details: serde_json::json!({"b": 1, "a": 2}),
            created_at: Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let e1 = event();
        let mut e2 = event();
        e2.action = "ab".into();
        e2.resource_type = "c".into();
        assert_ne!(
            chain_hash(&GENESIS_HASH, 1, &e1),
            chain_hash(&GENESIS_HASH, 1, &e2)
        );
        let mut e3 = event();
        e3.resource_id = Some(String::new());
        assert_ne!(
            chain_hash(&GENESIS_HASH, 1, &e1),
            chain_hash(&GENESIS_HASH, 1, &e3)
        );
    }

    #[test]
    fn details_key_order_does_not_matter() {
        let mut e2 = event();
        e2.details = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(
            chain_hash(&GENESIS_HASH, 1, &event()),
            chain_hash(&GENESIS_HASH, 1, &e2)
        );
    }
}
