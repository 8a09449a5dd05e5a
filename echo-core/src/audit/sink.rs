//! Where audit events go: the [`AuditSink`] trait, and [`StoreAuditSink`], which appends to the
//! store's chain and signs checkpoints of its head as [`CheckpointPolicy`] asks.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::checkpoint::{CheckpointPolicy, CheckpointSigner};
use crate::model::{AuditCheckpoint, AuditEvent, NewAuditEvent, Timestamp};
use crate::store::{AuditStore, StoreError};

/// Records audit events.
///
/// # Contract
/// `record` returns once the event is durably part of the log (with its `seq` and chain
/// hashes). Concurrent calls keep one chain: the store serialises appends. Implementations
/// never drop an event silently; a failure is returned so the caller can log it.
#[async_trait]
pub trait AuditSink: Send + Sync + Debug + 'static {
    /// Appends `event`.
    async fn record(&self, event: NewAuditEvent) -> Result<AuditEvent, StoreError>;
}

/// The trait object services hold: `Arc<DynAuditSink>`.
pub type DynAuditSink = dyn AuditSink;

/// Appends to the store's audit log and, with a signer, checkpoints the chain head at least
/// every [`CheckpointPolicy::every_events`] events or [`CheckpointPolicy::every`] (the time
/// rule needs [`StoreAuditSink::checkpoint_if_due`] called periodically, since no append may
/// come).
///
/// Several replicas may sign: checkpoints are keyed by `seq`, and a replica that loses the race
/// for a `seq` (a conflict) simply signs a later one next time.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::audit::{AuditSink, CheckpointPolicy, CheckpointSigner, StoreAuditSink};
/// use echo_core::model::{NewAuditEvent, Timestamp};
/// use echo_core::store::{memory::MemoryStore, DynStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let policy = CheckpointPolicy { every_events: 2, ..CheckpointPolicy::default() };
/// let sink = StoreAuditSink::new(store.clone())
///     .with_signer(CheckpointSigner::from_seed(&[7; 32]), policy);
/// for action in ["login_success", "create_experiment"] {
///     sink.record(NewAuditEvent {
///         actor_user_id: None, action: action.into(), resource_type: "user".into(),
///         resource_id: None, ip: None, user_agent: None, request_id: None,
///         details: serde_json::json!({}), created_at: Timestamp::now(),
///     }).await?;
/// }
/// assert_eq!(store.latest_audit_checkpoint().await?.map(|c| c.seq), Some(1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StoreAuditSink {
    store: Arc<dyn AuditStore>,
    signing: Option<(CheckpointSigner, CheckpointPolicy)>,
    /// The last checkpoint's `(seq, created_at)`, read from the store on first use.
    last: Mutex<Option<Option<(u64, Timestamp)>>>,
}

impl StoreAuditSink {
    /// A sink that appends to `store` without signing.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self {
            store,
            signing: None,
            last: Mutex::new(None),
        }
    }

    /// Signs checkpoints with `signer` as `policy` asks.
    pub fn with_signer(mut self, signer: CheckpointSigner, policy: CheckpointPolicy) -> Self {
        self.signing = Some((signer, policy));
        self
    }

    /// Whether checkpoints are signed.
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// Signs a checkpoint of the current head if the policy says one is due (by time or by
    /// count) and the head moved since the last one. Call it periodically (e.g. every 10 s).
    pub async fn checkpoint_if_due(
        &self,
        now: Timestamp,
    ) -> Result<Option<AuditCheckpoint>, StoreError> {
        let Some((_, last_seq)) = self.store.audit_bounds().await? else {
            return Ok(None);
        };
        let Some(head) = self
            .store
            .audit_range(last_seq, 1)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        self.maybe_sign(head.seq, head.hash, now).await
    }

    async fn maybe_sign(
        &self,
        seq: u64,
        hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<AuditCheckpoint>, StoreError> {
        let Some((signer, policy)) = &self.signing else {
            return Ok(None);
        };
        let mut last = self.last.lock().await;
        if last.is_none() {
            let stored = self.store.latest_audit_checkpoint().await?;
            *last = Some(stored.map(|c| (c.seq, c.created_at)));
        }
        let previous = last.flatten();
        if !policy.due(previous, seq, now) {
            return Ok(None);
        }
        let checkpoint = signer.sign(seq, hash, now);
        match self.store.put_audit_checkpoint(&checkpoint).await {
            Ok(()) => {
                *last = Some(Some((seq, now)));
                Ok(Some(checkpoint))
            }
            // Another replica signed this seq first: its checkpoint serves as well.
            Err(StoreError::Conflict { .. }) => {
                *last = Some(Some((seq, now)));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl AuditSink for StoreAuditSink {
    async fn record(&self, event: NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let now = event.created_at;
        let stored = self.store.append_audit(&event).await?;
        if let Err(e) = self.maybe_sign(stored.seq, stored.hash, now).await {
            // The event is recorded; a checkpoint missed now is made on the next append or
            // tick, so the append is not reported as failed.
            tracing::warn!(error = %e, seq = stored.seq, "audit checkpoint not stored");
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::{ChainStart, ChainVerifier};
    use crate::store::DynStore;
    use crate::store::memory::MemoryStore;

    fn event(at: Timestamp) -> NewAuditEvent {
        NewAuditEvent {
            actor_user_id: None,
            action: "login_success".into(),
            resource_type: "user".into(),
            resource_id: None,
            ip: None,
            user_agent: None,
            request_id: None,
            details: serde_json::json!({}),
            created_at: at,
        }
    }

    #[tokio::test]
    async fn checkpoints_every_n_events_and_by_time_and_they_verify() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let signer = CheckpointSigner::from_seed(&[3; 32]);
        let key = signer.verifier();
        let policy = CheckpointPolicy {
            every_events: 10,
            every: Duration::from_secs(60),
        };
        let sink = StoreAuditSink::new(store.clone()).with_signer(signer, policy);
        let t0 = Timestamp::now();
        for _ in 0..25 {
            sink.record(event(t0)).await.unwrap();
        }
        let cps = store.audit_checkpoints(0, 100).await.unwrap();
        let seqs: Vec<u64> = cps.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 11, 21]);
        // Nothing due by time yet; a minute later the unsigned tail gets signed.
        assert!(sink.checkpoint_if_due(t0).await.unwrap().is_none());
        let later = t0 + time::Duration::seconds(61);
        assert_eq!(
            sink.checkpoint_if_due(later).await.unwrap().map(|c| c.seq),
            Some(25)
        );
        assert!(
            sink.checkpoint_if_due(later).await.unwrap().is_none(),
            "head unchanged"
        );

        let mut v = ChainVerifier::new(ChainStart::Genesis);
        for cp in store.audit_checkpoints(0, 100).await.unwrap() {
            v.add_checkpoint(&key, &cp).unwrap();
        }
        for e in store.audit_range(1, 100).await.unwrap() {
            v.push(&e).unwrap();
        }
        let report = v.finish().unwrap();
        assert_eq!((report.checkpoints_matched, report.unsigned_tail), (4, 0));
    }

    #[tokio::test]
    async fn concurrent_records_keep_one_chain() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let sink = Arc::new(StoreAuditSink::new(store.clone()).with_signer(
            CheckpointSigner::from_seed(&[4; 32]),
            CheckpointPolicy::default(),
        ));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let sink = sink.clone();
                tokio::spawn(async move { sink.record(event(Timestamp::now())).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let events = store.audit_range(1, 100).await.unwrap();
        assert_eq!(events.len(), 50);
        crate::audit::verify_chain(ChainStart::Genesis, &events).unwrap();
    }
}
