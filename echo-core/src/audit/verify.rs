//! Walking the chain: finding the first event that was altered, inserted, deleted or moved.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use super::GENESIS_HASH;
use super::archive::ArchiveManifest;
use super::checkpoint::{AuditCheckpoint, CheckpointError, CheckpointVerifier};
use crate::model::{AuditEvent, AuditLink};

/// Where a walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// The beginning of the log: the first event is seq 1 and links to [`GENESIS_HASH`].
    Genesis,
    /// Just after an event verified before: the first event is `seq + 1` and links to `hash`.
    /// Use it to continue from an archive ([`ChainStart::after_archive`]) or from a signed
    /// checkpoint ([`CheckpointVerifier::anchor`]).
    Anchor {
        /// The anchor event's seq.
        seq: u64,
        /// The anchor event's hash.
        hash: [u8; 32],
    },
}

impl ChainStart {
    /// Continue after the last event of an archive.
    ///
    /// The manifest is only as trustworthy as the place it is kept; sign its `(last_seq,
    /// last_hash)` with a checkpoint when the archive leaves the database's control.
    pub fn after_archive(manifest: &ArchiveManifest) -> Self {
        Self::Anchor {
            seq: manifest.last_seq,
            hash: manifest.last_hash,
        }
    }

    fn head(self) -> (u64, [u8; 32]) {
        match self {
            Self::Genesis => (0, GENESIS_HASH),
            Self::Anchor { seq, hash } => (seq, hash),
        }
    }
}

/// The first place where the chain does not hold, and what is wrong there.
///
/// Its `Display` is one line fit for `echoai audit verify`, for example
/// `audit chain broken at seq 42: deleted: this event is missing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {kind}")]
pub struct ChainBreak {
    /// The seq of the bad (or missing) event; see [`BreakKind`] for which one each kind names.
    pub seq: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

/// What the verifier observed at a [`ChainBreak`].
///
/// The verifier sees only the events it is given, in the order given. It tells the kinds apart
/// like this, for an event arriving after the head (the last good event, or the start anchor):
///
/// | observation | kind | `seq` named |
/// | --- | --- | --- |
/// | stored `hash` ≠ hash recomputed from its fields | `Altered` | the event |
/// | seq skips ahead, and the next event is not the skipped one | `Deleted` | first missing seq |
/// | seq skips ahead, and the next event is the skipped one | `Reordered` | the skipped seq |
/// | seq goes back below the head's | `Reordered` | the event |
/// | seq equals the head's (two events claim one place) | `Inserted` | that seq |
/// | `prev_hash` skips the head, linking to the event before it | `Inserted` | the head |
/// | any other `prev_hash` ≠ head's hash | `BrokenLink` | the event |
/// | hash at a signed checkpoint's seq ≠ the signed hash | `CheckpointMismatch` | checkpoint's seq |
/// | the walk ends before a signed checkpoint's seq | `Truncated` | first missing seq |
///
/// Limits: an event appended after the last checkpoint with correct hashes is indistinguishable
/// from a genuine one (it is counted in [`VerifyReport::unsigned_tail`]); an event altered with
/// its own hash recomputed shows as a `BrokenLink` at the event after it; a tail rewritten with
/// every hash recomputed passes the chain and is caught only by a checkpoint inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakKind {
    /// The event's contents do not match its stored hash.
    Altered,
    /// An extra event sits in the chain.
    Inserted,
    /// Events are missing from here on.
    Deleted {
        /// How many consecutive seqs are missing.
        count: u64,
    },
    /// The event arrived out of order.
    Reordered {
        /// The seq it arrived after.
        after: u64,
    },
    /// The event's `prev_hash` is not the hash of the event before it.
    BrokenLink,
    /// The event's hash differs from the one a checkpoint signed: the chain up to here was
    /// rewritten (with recomputed hashes) after the checkpoint was made.
    CheckpointMismatch,
    /// The log ends here, but a checkpoint signed a later event.
    Truncated {
        /// The last seq a checkpoint signed.
        signed_through: u64,
    },
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Altered => f.write_str("altered: its stored hash does not match its contents"),
            Self::Inserted => {
                f.write_str("inserted: an extra event claims this place in the chain")
            }
            Self::Deleted { count: 1 } => f.write_str("deleted: this event is missing"),
            Self::Deleted { count } => write!(f, "deleted: {count} events are missing from here"),
            Self::Reordered { after } => write!(f, "reordered: it appears after seq {after}"),
            Self::BrokenLink => {
                f.write_str("broken link: its prev_hash is not the hash of the event before it")
            }
            Self::CheckpointMismatch => {
                f.write_str("rewritten: its hash differs from the one the checkpoint signed")
            }
            Self::Truncated { signed_through } => write!(
                f,
                "deleted: the log ends before this event, but a checkpoint signed seq {signed_through}"
            ),
        }
    }
}

/// What a successful walk covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events verified.
    pub events: u64,
    /// Seq of the first event verified; `None` when there was none.
    pub first_seq: Option<u64>,
    /// Seq of the head: the last event verified, or the start's when there was none.
    pub last_seq: u64,
    /// Hash of the head.
    pub head_hash: [u8; 32],
    /// Checkpoints whose signed hash matched the chain.
    pub checkpoints_matched: u64,
    /// The highest seq a matched checkpoint signed.
    pub signed_through: Option<u64>,
    /// Events after the last matched checkpoint (all of them when none matched): these are
    /// protected by the chain only, not yet by a signature.
    pub unsigned_tail: u64,
    /// Erased events accepted (see [`ChainVerifier::mark_erased`]): their links verified, their
    /// own hash could not be recomputed from the remaining fields.
    pub erased: u64,
}

/// A streaming verifier: push events in ascending seq, then [`finish`](ChainVerifier::finish).
///
/// Memory is constant in the number of events (it keeps the head, one deferred observation and
/// the checkpoints not yet reached), so a million events can come straight from a store's pages
/// or an archive file.
///
/// The first break is sticky: once [`push`](ChainVerifier::push) has returned an error, every
/// later call returns the same one. A seq gap is reported one event later (or at `finish`),
/// because only the next event tells a deletion from two swapped events.
///
/// ```
/// use echo_core::audit::{chain_hash, BreakKind, ChainStart, ChainVerifier, GENESIS_HASH};
/// use echo_core::model::{AuditEvent, NewAuditEvent, Timestamp};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut events = Vec::new();
/// let mut prev = GENESIS_HASH;
/// for seq in 1..=3 {
///     let event = NewAuditEvent {
///         actor_user_id: None,
///         action: "login".into(),
///         resource_type: "user".into(),
///         resource_id: None,
///         ip: None,
///         user_agent: None,
///         request_id: None,
///         details: serde_json::json!({}),
///         created_at: Timestamp::now(),
///     };
///     let hash = chain_hash(&prev, seq, &event);
///     events.push(AuditEvent { seq, event, actor_pseudonym: None, prev_hash: prev, hash });
///     prev = hash;
/// }
///
/// let mut verifier = ChainVerifier::new(ChainStart::Genesis);
/// for event in &events {
///     verifier.push(event)?;
/// }
/// assert_eq!(verifier.finish()?.events, 3);
///
/// events[1].event.action = "logout".into();
/// let broken = echo_core::audit::verify_chain(ChainStart::Genesis, &events).unwrap_err();
/// assert_eq!((broken.seq, broken.kind), (2, BreakKind::Altered));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head_seq: u64,
    head_hash: [u8; 32],
    /// Hash of the event before the head: an event linking to it skipped an inserted head.
    before_head_hash: Option<[u8; 32]>,
    first_seq: Option<u64>,
    events: u64,
    /// A seq gap seen but not yet classified: `(expected, got)`.
    gap: Option<(u64, u64)>,
    broken: Option<ChainBreak>,
    /// Signed `(seq → head hash)` not yet reached.
    checkpoints: BTreeMap<u64, [u8; 32]>,
    checkpoints_matched: u64,
    signed_through: Option<u64>,
    start_seq: u64,
    /// Seqs whose actor, IP and user agent an erasure cleared, not yet reached.
    erased: std::collections::BTreeSet<u64>,
    erased_accepted: u64,
}

impl ChainVerifier {
    /// A verifier expecting the event after `start`.
    pub fn new(start: ChainStart) -> Self {
        let (head_seq, head_hash) = start.head();
        Self {
            head_seq,
            head_hash,
            before_head_hash: None,
            first_seq: None,
            events: 0,
            gap: None,
            broken: None,
            checkpoints: BTreeMap::new(),
            checkpoints_matched: 0,
            signed_through: None,
            start_seq: head_seq,
            erased: std::collections::BTreeSet::new(),
            erased_accepted: 0,
        }
    }

    /// Accepts event `seq` as erased (GDPR erasure, recorded by
    /// [`AuditStore::pseudonymize_actor`](crate::store::AuditStore::pseudonymize_actor) and
    /// listed by [`AuditStore::audit_erasures`](crate::store::AuditStore::audit_erasures)).
    ///
    /// An erasure clears the event's `actor_user_id`, `ip` and `user_agent` and sets
    /// `actor_pseudonym`, leaving `hash` and `prev_hash` as they were: the links still verify,
    /// but the event's own hash can no longer be recomputed. Such an event passes only if it is
    /// marked here **and** those three fields are empty and a pseudonym is set; anything else
    /// that fails recomputation is still [`BreakKind::Altered`]. What an erasure record does
    /// not protect is the rest of that one event (its action, resource, details): the erasure
    /// itself is audited (`erase_actor`, with the count and a digest of the erased seqs) so a
    /// forged erasure record shows up against the chain. Mark erasures before pushing events.
    pub fn mark_erased(&mut self, seq: u64) {
        if seq > self.head_seq {
            self.erased.insert(seq);
        }
    }

    /// Checks `checkpoint`'s signature with `key` and remembers it: when the walk reaches its
    /// seq, the hash there must be the one it signed. Add checkpoints before pushing events.
    ///
    /// A checkpoint before the start is ignored (that part of the chain is not walked); one at the
    /// head is compared at once (so the anchor of a walk can be confirmed by its checkpoint).
    ///
    /// # Errors
    /// [`CheckpointError::BadSignature`] if the signature does not verify;
    /// [`CheckpointError::AlreadyPassed`] if the walk has already gone past its seq.
    pub fn add_checkpoint(
        &mut self,
        key: &CheckpointVerifier,
        checkpoint: &AuditCheckpoint,
    ) -> Result<(), CheckpointError> {
        key.verify(checkpoint)?;
        let seq = checkpoint.seq;
        if seq < self.start_seq {
            return Ok(());
        }
        if seq < self.head_seq {
            return Err(CheckpointError::AlreadyPassed {
                seq,
                head: self.head_seq,
            });
        }
        if seq == self.head_seq {
            let head_hash = self.head_hash;
            self.match_checkpoint(seq, &checkpoint.head_hash, &head_hash);
            return Ok(());
        }
        if let Some(existing) = self.checkpoints.insert(seq, checkpoint.head_hash)
            && existing != checkpoint.head_hash
            && self.broken.is_none()
        {
            // Two validly signed checkpoints disagree: the signing key signed a fork.
            self.broken = Some(ChainBreak {
                seq,
                kind: BreakKind::CheckpointMismatch,
            });
        }
        Ok(())
    }

    /// The head so far: the last verified event's `(seq, hash)`, or the start's.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.head_seq, self.head_hash)
    }

    /// Verifies the next event.
    ///
    /// # Errors
    /// The first [`ChainBreak`], as soon as it is certain.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        self.push_link(&AuditLink::of(event))
    }

    /// Verifies the next event from its [`AuditLink`], as [`push`](ChainVerifier::push) does
    /// from the event (which it turns into its link first).
    ///
    /// # Errors
    /// The first [`ChainBreak`], as soon as it is certain.
    pub fn push_link(&mut self, link: &AuditLink) -> Result<(), ChainBreak> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        let result = self.check(link);
        if let Err(broken) = &result {
            self.broken = Some(broken.clone());
        }
        result
    }

    fn check(&mut self, link: &AuditLink) -> Result<(), ChainBreak> {
        let seq = link.seq;
        let broken = |seq, kind| Err(ChainBreak { seq, kind });
        if let Some((expected, got)) = self.gap.take() {
            return if seq == expected {
                broken(expected, BreakKind::Reordered { after: got })
            } else {
                broken(
                    expected,
                    BreakKind::Deleted {
                        count: got - expected,
                    },
                )
            };
        }
        let Some(expected) = self.head_seq.checked_add(1) else {
            return broken(seq, BreakKind::Inserted);
        };
        if seq > expected {
            self.gap = Some((expected, seq));
            return Ok(());
        }
        if seq == self.head_seq {
            return broken(seq, BreakKind::Inserted);
        }
        if seq < self.head_seq {
            return broken(
                seq,
                BreakKind::Reordered {
                    after: self.head_seq,
                },
            );
        }
        if link.prev_hash != self.head_hash {
            return if Some(link.prev_hash) == self.before_head_hash {
                broken(self.head_seq, BreakKind::Inserted)
            } else {
                broken(seq, BreakKind::BrokenLink)
            };
        }
        if link.recomputed != link.hash {
            // Removed either way: a break is sticky, so the set is not consulted again.
            let erased = self.erased.remove(&seq) && link.erased_shape;
            if !erased {
                return broken(seq, BreakKind::Altered);
            }
            self.erased_accepted += 1;
        }
        if let Some(signed) = self.checkpoints.remove(&seq) {
            self.match_checkpoint(seq, &signed, &link.hash);
            if let Some(broken) = &self.broken {
                return Err(broken.clone());
            }
        }
        self.before_head_hash = Some(self.head_hash);
        self.head_seq = seq;
        self.head_hash = link.hash;
        self.first_seq.get_or_insert(seq);
        self.events += 1;
        Ok(())
    }

    fn match_checkpoint(&mut self, seq: u64, signed: &[u8; 32], actual: &[u8; 32]) {
        if signed == actual {
            self.checkpoints_matched += 1;
            self.signed_through = Some(self.signed_through.map_or(seq, |s| s.max(seq)));
        } else if self.broken.is_none() {
            self.broken = Some(ChainBreak {
                seq,
                kind: BreakKind::CheckpointMismatch,
            });
        }
    }

    /// Ends the walk.
    ///
    /// # Errors
    /// The first [`ChainBreak`]: one already returned by `push`, a seq gap before the last event
    /// (`Deleted`), or a checkpoint beyond the last event (`Truncated`).
    pub fn finish(self) -> Result<VerifyReport, ChainBreak> {
        if let Some(broken) = self.broken {
            return Err(broken);
        }
        if let Some((expected, got)) = self.gap {
            return Err(ChainBreak {
                seq: expected,
                kind: BreakKind::Deleted {
                    count: got - expected,
                },
            });
        }
        if let Some((&signed_through, _)) = self.checkpoints.last_key_value() {
            return Err(ChainBreak {
                seq: self.head_seq.saturating_add(1),
                kind: BreakKind::Truncated { signed_through },
            });
        }
        let unsigned_tail = match self.signed_through {
            Some(signed) => self.head_seq.saturating_sub(signed.max(self.start_seq)),
            None => self.events,
        };
        Ok(VerifyReport {
            events: self.events,
            first_seq: self.first_seq,
            last_seq: self.head_seq,
            head_hash: self.head_hash,
            checkpoints_matched: self.checkpoints_matched,
            signed_through: self.signed_through,
            unsigned_tail,
            erased: self.erased_accepted,
        })
    }
}

/// Verifies `events` (ascending seq) from `start` without checkpoints; see [`ChainVerifier`].
///
/// Accepts borrowed or owned events, so a store's pages can be streamed through it.
///
/// # Errors
/// The first [`ChainBreak`].
pub fn verify_chain<I>(start: ChainStart, events: I) -> Result<VerifyReport, ChainBreak>
where
    I: IntoIterator,
    I::Item: Borrow<AuditEvent>,
{
    let mut verifier = ChainVerifier::new(start);
    for event in events {
        verifier.push(event.borrow())?;
    }
    verifier.finish()
}
