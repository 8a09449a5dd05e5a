//! Signed checkpoints of the chain head.
//!
//! The hash chain shows that no event was changed *unless the whole tail after it was
//! recomputed*, which anyone with write access can do. A checkpoint is an Ed25519 signature over
//! `(seq, head hash, time)` made by a key the database does not hold; kept apart from the
//! database (write-once storage), it pins every event up to its seq, as CloudTrail's digest
//! files do.

use std::fmt;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::verify::ChainStart;
use crate::model::Timestamp;

/// Domain separation: a checkpoint signature can never be replayed as another signed message.
pub const CHECKPOINT_DOMAIN: &[u8; 25] = b"echo.audit.checkpoint.v1\0";

/// Length of [`checkpoint_message`].
pub const CHECKPOINT_MESSAGE_LEN: usize = CHECKPOINT_DOMAIN.len() + 8 + 32 + 8;

pub use crate::model::AuditCheckpoint;

/// The message a checkpoint signs: [`CHECKPOINT_DOMAIN`] (`"echo.audit.checkpoint.v1\0"`),
/// then `seq` as 8 bytes big-endian, the 32-byte `head_hash`, and `created_at` as microseconds
/// since the Unix epoch, 8 bytes big-endian two's complement. Fixed length, so unambiguous.
pub fn checkpoint_message(checkpoint: &AuditCheckpoint) -> [u8; CHECKPOINT_MESSAGE_LEN] {
    message(checkpoint.seq, &checkpoint.head_hash, checkpoint.created_at)
}

fn message(seq: u64, head_hash: &[u8; 32], created_at: Timestamp) -> [u8; CHECKPOINT_MESSAGE_LEN] {
    let mut out = [0u8; CHECKPOINT_MESSAGE_LEN];
    let (domain, rest) = out.split_at_mut(CHECKPOINT_DOMAIN.len());
    domain.copy_from_slice(CHECKPOINT_DOMAIN);
    let (seq_bytes, rest) = rest.split_at_mut(8);
    seq_bytes.copy_from_slice(&seq.to_be_bytes());
    let (hash_bytes, time_bytes) = rest.split_at_mut(32);
    hash_bytes.copy_from_slice(head_hash);
    time_bytes.copy_from_slice(&created_at.unix_micros().to_be_bytes());
    out
}

/// A checkpoint could not be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The configured public key is not a valid Ed25519 key.
    #[error("the audit checkpoint public key is not a valid Ed25519 key")]
    InvalidPublicKey(#[source] ed25519_dalek::SignatureError),
    /// The signature does not verify: the checkpoint was altered or signed by another key.
    #[error("the audit checkpoint for seq {seq} has an invalid signature")]
    BadSignature {
        /// The checkpoint's (claimed) seq.
        seq: u64,
    },
    /// The checkpoint was given to a [`super::ChainVerifier`] after its walk had passed it.
    #[error("the audit checkpoint for seq {seq} came after the walk reached seq {head}")]
    AlreadyPassed {
        /// The checkpoint's seq.
        seq: u64,
        /// Where the walk was.
        head: u64,
    },
}

/// Makes checkpoints. Holds the secret key; its `Debug` shows only the public key.
#[derive(Clone)]
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    /// The key whose 32-byte Ed25519 seed (secret key) is `seed`. The seed comes from
    /// configuration and should be kept outside the database (a secrets manager or KMS).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Signs "event `seq` had hash `head_hash`" as of `created_at`.
    pub fn sign(&self, seq: u64, head_hash: [u8; 32], created_at: Timestamp) -> AuditCheckpoint {
        let signature = self.key.sign(&message(seq, &head_hash, created_at));
        AuditCheckpoint {
            seq,
            head_hash,
            created_at,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// The public key, for [`CheckpointVerifier::new`] (publish it, or pin it in the verifier's
    /// configuration).
    pub fn verifying_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A verifier for this signer's checkpoints.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            key: self.key.verifying_key(),
        }
    }
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("verifying_key", &hex::encode(self.verifying_key()))
            .finish_non_exhaustive()
    }
}

/// Checks checkpoints against a pinned public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// A verifier for the Ed25519 public key `public_key`.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidPublicKey`] if the bytes are not a point on the curve.
    pub fn new(public_key: &[u8; 32]) -> Result<Self, CheckpointError> {
        VerifyingKey::from_bytes(public_key)
            .map(|key| Self { key })
            .map_err(CheckpointError::InvalidPublicKey)
    }

    /// Checks the signature (strictly: no malleable or small-order forms).
    ///
    /// # Errors
    /// [`CheckpointError::BadSignature`].
    pub fn verify(&self, checkpoint: &AuditCheckpoint) -> Result<(), CheckpointError> {
        let bad = || CheckpointError::BadSignature {
            seq: checkpoint.seq,
        };
        let bytes: &[u8; 64] = checkpoint
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| bad())?;
        let signature = Signature::from_bytes(bytes);
        self.key
            .verify_strict(&checkpoint_message(checkpoint), &signature)
            .map_err(|_| bad())
    }

    /// Verifies `checkpoint` and returns it as a place to start a walk from, for when the events
    /// up to it have been archived and pruned.
    ///
    /// # Errors
    /// [`CheckpointError::BadSignature`].
    pub fn anchor(&self, checkpoint: &AuditCheckpoint) -> Result<ChainStart, CheckpointError> {
        self.verify(checkpoint)?;
        Ok(ChainStart::Anchor {
            seq: checkpoint.seq,
            hash: checkpoint.head_hash,
        })
    }
}

/// When to make the next checkpoint: after `every_events` new events or `every` elapsed,
/// whichever comes first, and only when there is something new to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// New events that make a checkpoint due; 0 turns the count off.
    pub every_events: u64,
    /// Time since the last checkpoint that makes one due, if there are new events.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    /// Every 1,000 events or every minute: an attacker who rewrites the log can hide at most
    /// that much unsigned tail.
    fn default() -> Self {
        Self {
            every_events: 1000,
            every: Duration::from_secs(60),
        }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint of `head_seq` is due at `now`, given the last one's `(seq, time)`.
    ///
    /// ```
    /// use echo_core::audit::CheckpointPolicy;
    /// use echo_core::model::Timestamp;
    /// use std::time::Duration;
    ///
    /// let policy = CheckpointPolicy::default();
    /// let t0 = Timestamp::now();
    /// assert!(policy.due(None, 1, t0));
    /// assert!(!policy.due(Some((10, t0)), 10, t0 + time::Duration::hours(1)));
    /// assert!(!policy.due(Some((10, t0)), 500, t0 + time::Duration::seconds(5)));
    /// assert!(policy.due(Some((10, t0)), 1010, t0 + time::Duration::seconds(5)));
    /// assert!(policy.due(Some((10, t0)), 11, t0 + time::Duration::seconds(60)));
    /// ```
    pub fn due(&self, last: Option<(u64, Timestamp)>, head_seq: u64, now: Timestamp) -> bool {
        let Some((last_seq, last_at)) = last else {
            return head_seq > 0;
        };
        if head_seq <= last_seq {
            return false;
        }
        let by_count = self.every_events > 0 && head_seq - last_seq >= self.every_events;
        // A clock that went backwards gives a negative age: not due by time.
        let age = (now - last_at).whole_microseconds();
        let by_time = age >= 0 && age.unsigned_abs() >= self.every.as_micros();
        by_count || by_time
    }
}
