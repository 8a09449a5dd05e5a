//! Data retention: what is kept how long ([`RetentionPolicy`]) and the pass that applies it
//! ([`RetentionTask`]): raw answers past their age are anonymized, accounts past their
//! deletion grace period are purged (their audit events keep a pseudonym), and audit events
//! past theirs are archived to a JSON Lines file and removed.
//!
//! Every step works in bounded batches (no lock held long), is resumable after a crash (a
//! rerun finds what is left) and is safe on several replicas at once (the store's calls are
//! concurrency-safe; two purges of one user leave one deletion). Run it daily; the reference
//! server's scheduler does, and `echoai retention run [--dry-run]` runs it by hand.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::audit::{
    ArchiveError, ArchiveManifest, AuditSink, CheckpointSigner, write_archive_with_erasures,
};
use crate::model::{NewAuditEvent, PricingTier, Timestamp, UserId};
use crate::store::{DynStore, StoreError};

/// How long data is kept.
pub trait RetentionPolicy: Send + Sync + Debug + 'static {
    /// Raw answers of users on `tier` older than this are anonymized; `None` keeps them.
    fn raw_answers(&self, tier: PricingTier) -> Option<Duration>;
    /// Audit events older than this are archived and removed from the database; `None` keeps
    /// them in the database.
    fn audit_events(&self) -> Option<Duration>;
}

/// The default policy: raw answers 90 days on every tier, audit events 2 years (730 days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRetentionPolicy {
    /// Raw answers per tier.
    pub raw_answers: BTreeMap<PricingTier, Duration>,
    /// Audit events.
    pub audit_events: Option<Duration>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for DefaultRetentionPolicy {
    fn default() -> Self {
        Self {
            raw_answers: PricingTier::ALL.iter().map(|&t| (t, 90 * DAY)).collect(),
            audit_events: Some(730 * DAY),
        }
    }
}

impl RetentionPolicy for DefaultRetentionPolicy {
    fn raw_answers(&self, tier: PricingTier) -> Option<Duration> {
        self.raw_answers.get(&tier).copied()
    }
    fn audit_events(&self) -> Option<Duration> {
        self.audit_events
    }
}

/// What a pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Raw answers anonymized per tier.
    pub anonymized: BTreeMap<PricingTier, u64>,
    /// Accounts purged.
    pub purged_users: u64,
    /// Audit events whose actor was erased (of the purged accounts).
    pub erased_audit_events: u64,
    /// Audit events archived and removed.
    pub archived_audit_events: u64,
    /// The archive files written.
    pub archives: Vec<PathBuf>,
}

/// Why a pass stopped. What it did before stopping stays done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an audit archive failed (nothing was removed for it).
    #[error("audit archive failed")]
    Archive(#[from] ArchiveError),
    /// The archive directory could not be written.
    #[error("audit archive directory")]
    Io(#[from] std::io::Error),
    /// The age is too large to subtract from now.
    #[error("a retention period is out of range")]
    Range,
}

/// Applies a [`RetentionPolicy`].
#[derive(Debug)]
pub struct RetentionTask {
    store: Arc<DynStore>,
    policy: Arc<dyn RetentionPolicy>,
    pseudonym_key: Vec<u8>,
    batch: u32,
    archive_dir: Option<PathBuf>,
    signer: Option<CheckpointSigner>,
    audit: Option<Arc<dyn AuditSink>>,
}

/// Events per archive file (and per read): bounds memory and each deletion.
const ARCHIVE_CHUNK: u32 = 10_000;

impl RetentionTask {
    /// A task over `store` with `policy`. `pseudonym_key` keys the pseudonyms that replace a
    /// purged user's id in audit events (a server secret: without it the pseudonym of a known
    /// user id cannot be recomputed).
    pub fn new(
        store: Arc<DynStore>,
        policy: Arc<dyn RetentionPolicy>,
        pseudonym_key: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            store,
            policy,
            pseudonym_key: pseudonym_key.into(),
            batch: 2_000,
            archive_dir: None,
            signer: None,
            audit: None,
        }
    }

    /// Rows per store call (default 2,000).
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Archives old audit events into `dir` (without it, audit events are kept). With a
    /// `signer`, the head of each archived range is checkpointed before it is removed.
    pub fn with_audit_archive(mut self, dir: PathBuf, signer: Option<CheckpointSigner>) -> Self {
        self.archive_dir = Some(dir);
        self.signer = signer;
        self
    }

    /// Records each pass (`retention_run`) and each purge (`erase_actor`) in the audit log.
    pub fn with_audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The keyed pseudonym of `user`: hex of HMAC-SHA-256(key, "echo.pseudonym.v1" || id).
    pub fn pseudonym(&self, user: UserId) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.pseudonym_key) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => return String::new(),
        };
        mac.update(b"echo.pseudonym.v1\0");
        mac.update(user.as_uuid().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn before(now: Timestamp, age: Duration) -> Result<Timestamp, RetentionError> {
        let age = time::Duration::try_from(age).map_err(|_| RetentionError::Range)?;
        now.as_datetime()
            .checked_sub(age)
            .map(Timestamp::from_datetime)
            .ok_or(RetentionError::Range)
    }

    /// One pass at `now`. A dry run counts what would change and changes nothing.
    pub async fn run(
        &self,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<RetentionReport, RetentionError> {
        let mut report = RetentionReport {
            dry_run,
            ..RetentionReport::default()
        };
        for &tier in PricingTier::ALL {
            let Some(age) = self.policy.raw_answers(tier) else {
                continue;
            };
            let cutoff = Self::before(now, age)?;
            let n = if dry_run {
                self.store.count_anonymizable(tier, cutoff).await?
            } else {
                let mut total = 0u64;
                loop {
                    let n = self
                        .store
                        .anonymize_iterations(tier, cutoff, self.batch, now)
                        .await?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            };
            report.anonymized.insert(tier, n);
        }
        self.purge(now, dry_run, &mut report).await?;
        if let (Some(age), Some(dir)) = (self.policy.audit_events(), &self.archive_dir) {
            self.archive(Self::before(now, age)?, dir, dry_run, &mut report)
                .await?;
        }
        if !dry_run && let Some(sink) = &self.audit {
            let details = serde_json::to_value(&report).unwrap_or_default();
            self.record(sink, "retention_run", "retention", None, details, now)
                .await;
        }
        Ok(report)
    }

    async fn record(
        &self,
        sink: &Arc<dyn AuditSink>,
        action: &str,
        resource_type: &str,
        resource_id: Option<String>,
        details: serde_json::Value,
        now: Timestamp,
    ) {
        let event = NewAuditEvent {
            actor_user_id: None,
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id,
            ip: None,
            user_agent: None,
            request_id: None,
            details,
            created_at: now,
        };
        if let Err(e) = sink.record(event).await {
            tracing::error!(error = %e, action, "retention audit event not recorded");
        }
    }

    async fn purge(
        &self,
        now: Timestamp,
        dry_run: bool,
        report: &mut RetentionReport,
    ) -> Result<(), RetentionError> {
        loop {
            let due = self.store.users_due_for_deletion(now, 100).await?;
            if dry_run {
                report.purged_users = due.len() as u64;
                return Ok(());
            }
            if due.is_empty() {
                return Ok(());
            }
            for user in due {
                let pseudonym = self.pseudonym(user);
                // Erase first: if the process dies between the two, the rerun deletes the
                // account; the reverse order could leave an identified actor behind.
                let erased = self.store.pseudonymize_actor(user, &pseudonym, now).await?;
                match self.store.delete_user(user).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                report.purged_users += 1;
                report.erased_audit_events += erased;
                if let Some(sink) = &self.audit {
                    // The erasure is itself in the chain: a verifier can check that the
                    // erasure records of this pseudonym add up to what was erased.
                    let details = serde_json::json!({
                        "pseudonym": pseudonym,
                        "erased_events": erased,
                    });
                    self.record(
                        sink,
                        "erase_actor",
                        "user",
                        Some(pseudonym.clone()),
                        details,
                        now,
                    )
                    .await;
                }
                tracing::info!(event = "user_purged", pseudonym = %pseudonym, erased, "account purged");
            }
        }
    }

    async fn archive(
        &self,
        cutoff: Timestamp,
        dir: &std::path::Path,
        dry_run: bool,
        report: &mut RetentionReport,
    ) -> Result<(), RetentionError> {
        loop {
            let Some((first, _)) = self.store.audit_bounds().await? else {
                return Ok(());
            };
            let events: Vec<_> = self
                .store
                .audit_range(first, ARCHIVE_CHUNK)
                .await?
                .into_iter()
                .take_while(|e| e.event.created_at < cutoff)
                .collect();
            let Some(last) = events.last() else {
                return Ok(());
            };
            let last_seq = last.seq;
            let count = events.len() as u64;
            if dry_run {
                // Without deleting it cannot page on: at least this many would go.
                report.archived_audit_events = count;
                return Ok(());
            }
            let erased: Vec<u64> = self
                .store
                .audit_erasures(first, u32::MAX)
                .await?
                .into_iter()
                .map(|e| e.seq)
                .filter(|&s| s <= last_seq)
                .collect();
            std::fs::create_dir_all(dir)?;
            let name = format!("audit-{first:020}-{last_seq:020}.jsonl");
            let path = dir.join(&name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let manifest: ArchiveManifest = {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
                let m = write_archive_with_erasures(&events, erased, &mut file)?;
                file.flush()?;
                file.into_inner()
                    .map_err(|e| RetentionError::Io(e.into_error()))?
                    .sync_all()?;
                m
            };
            std::fs::rename(&tmp, &path)?;
            if let Some(signer) = &self.signer {
                let cp = signer.sign(manifest.last_seq, manifest.last_hash, Timestamp::now());
                match self.store.put_audit_checkpoint(&cp).await {
                    Ok(()) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Only once the file is durable: a crash before this leaves the events in place
            // and the next pass rewrites the same archive.
            self.store.delete_audit_through(last_seq).await?;
            report.archived_audit_events += count;
            report.archives.push(path);
            if count < u64::from(ARCHIVE_CHUNK) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ChainStart, ChainVerifier, StoreAuditSink, read_archive, verify_archive};
    use crate::model::*;
    use crate::store::memory::MemoryStore;

    const KEY: &[u8] = b"pseudonym key for tests, 32 bytes+";

    async fn user(store: &Arc<DynStore>, tier: PricingTier) -> User {
        let u = User::new(
            Email::parse(format!("{}@example.com", UserId::new())).unwrap(),
            PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
            tier,
            Timestamp::now(),
        );
        store.create_user(&u).await.unwrap();
        u
    }

    /// A run of `user` with one iteration per age in days.
    async fn answers(store: &Arc<DynStore>, user: &User, ages_days: &[i64]) -> BatchRunId {
        let now = Timestamp::now();
        let experiment = Experiment {
            id: ExperimentId::new(),
            user_id: user.id,
            prompt: Prompt::parse("Best CRM?").unwrap(),
            target: Brand::new(BrandName::parse("HubSpot").unwrap()),
            competitors: vec![],
            iterations: Iterations::new(10).unwrap(),
            providers: vec![ProviderConfig {
                provider: ProviderKind::Simulated,
                model: "m".into(),
                temperature: 0.7,
            }],
            status: ExperimentStatus::Completed,
            recurrence: None,
            prompt_set: None,
            precision: None,
            created_at: now,
            updated_at: now,
        };
        let job = crate::runner::RunExperimentPayload {
            user_id: user.id,
            experiment_id: experiment.id,
        }
        .into_job(now);
        let debit = QuotaDebit {
            user_id: user.id,
            amount: 10,
            limit: 1_000,
        };
        store
            .create_experiment(&experiment, debit, &job)
            .await
            .unwrap();
        let run = BatchRun::new(experiment.id, ProviderKind::Simulated, "m", 10, now);
        store.create_batch_run(&run).await.unwrap();
        let its: Vec<Iteration> = ages_days
            .iter()
            .enumerate()
            .map(|(i, &days)| Iteration {
                id: IterationId::new(),
                batch_run_id: run.id,
                index: i as u32,
                raw_response: Some("**HubSpot** is great".into()),
                mentions: Some(vec![BrandMention {
                    brand: "HubSpot".into(),
                    count: 1,
                    first_offset: 2,
                    rank: 1,
                    list_position: None,
                }]),
                is_success: true,
                error: None,
                latency_ms: 1,
                input_tokens: 1,
                output_tokens: 1,
                created_at: now - time::Duration::days(days),
                is_anonymized: false,
                anonymized_at: None,
                sources: Vec::new(),
            })
            .collect();
        store.record_iterations(&its).await.unwrap();
        run.id
    }

    fn event(actor: Option<UserId>, at: Timestamp) -> NewAuditEvent {
        NewAuditEvent {
            actor_user_id: actor,
            action: "login_success".into(),
            resource_type: "user".into(),
            resource_id: actor.map(|a| a.to_string()),
            ip: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            request_id: None,
            details: serde_json::json!({}),
            created_at: at,
        }
    }

    #[tokio::test]
    async fn old_answers_are_anonymized_and_their_mentions_kept() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let u = user(&store, PricingTier::Free).await;
        let run = answers(&store, &u, &[91, 89, 200]).await;
        let task = RetentionTask::new(
            store.clone(),
            Arc::new(DefaultRetentionPolicy::default()),
            KEY,
        )
        .with_batch(1);
        let now = Timestamp::now();
        let dry = task.run(now, true).await.unwrap();
        assert_eq!(dry.anonymized[&PricingTier::Free], 2);
        let before = store.list_iterations(u.id, run, 0, 10).await.unwrap();
        assert!(
            before.iter().all(|i| !i.is_anonymized),
            "a dry run changes nothing"
        );

        let report = task.run(now, false).await.unwrap();
        assert_eq!(report.anonymized[&PricingTier::Free], 2);
        let after = store.list_iterations(u.id, run, 0, 10).await.unwrap();
        for (it, old) in after.iter().zip([true, false, true]) {
            assert_eq!(it.is_anonymized, old);
            assert_eq!(it.raw_response.is_none(), old);
            assert_eq!(it.mentions.as_ref().unwrap()[0].brand, "HubSpot");
        }
        assert_eq!(
            task.run(now, false).await.unwrap().anonymized[&PricingTier::Free],
            0
        );
    }

    #[tokio::test]
    async fn accounts_past_their_grace_are_purged_and_their_events_pseudonymized() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let sink: Arc<dyn AuditSink> = Arc::new(StoreAuditSink::new(store.clone()));
        let gone = user(&store, PricingTier::Pro).await;
        let kept = user(&store, PricingTier::Pro).await;
        answers(&store, &gone, &[1]).await;
        let now = Timestamp::now();
        for actor in [gone.id, kept.id, gone.id] {
            sink.record(event(Some(actor), now)).await.unwrap();
        }
        store
            .request_deletion(gone.id, now, now - time::Duration::seconds(1))
            .await
            .unwrap();
        let task = RetentionTask::new(
            store.clone(),
            Arc::new(DefaultRetentionPolicy::default()),
            KEY,
        )
        .with_audit(sink.clone());
        let report = task.run(now, false).await.unwrap();
        assert_eq!((report.purged_users, report.erased_audit_events), (1, 2));
        assert!(matches!(
            store.get_user(gone.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(store.get_user(kept.id).await.is_ok());

        let events = store.audit_range(1, 100).await.unwrap();
        let pseudonym = task.pseudonym(gone.id);
        for e in &events[..3] {
            if e.actor_pseudonym.is_some() {
                assert_eq!(e.actor_pseudonym.as_deref(), Some(pseudonym.as_str()));
                assert!(e.event.actor_user_id.is_none() && e.event.ip.is_none());
            }
        }
        // No event names the purged account as its actor any more (it stays the subject of
        // its own events' resource id: a random id of an account that no longer exists).
        assert!(
            events
                .iter()
                .all(|e| e.event.actor_user_id != Some(gone.id))
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| e.event.actor_user_id == Some(kept.id))
                .count(),
            1
        );
        let erase = events
            .iter()
            .find(|e| e.event.action == "erase_actor")
            .unwrap();
        assert_eq!(erase.event.details["erased_events"], 2);
        // The chain verifies once the erasures are marked.
        let mut v = ChainVerifier::new(ChainStart::Genesis);
        for er in store.audit_erasures(0, 100).await.unwrap() {
            v.mark_erased(er.seq);
        }
        for e in &events {
            v.push(e).unwrap();
        }
        assert_eq!(v.finish().unwrap().erased, 2);
        // A second pass purges nothing more.
        assert_eq!(task.run(now, false).await.unwrap().purged_users, 0);
    }

    #[tokio::test]
    async fn old_audit_events_are_archived_and_the_chain_verifies_across_the_boundary() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let now = Timestamp::now();
        for days in [800, 750, 740, 10, 1] {
            store
                .append_audit(&event(None, now - time::Duration::days(days)))
                .await
                .unwrap();
        }
        let dir = std::env::temp_dir().join(format!("echo-archive-test-{}", uuid::Uuid::now_v7()));
        let signer = CheckpointSigner::from_seed(&[9; 32]);
        let task = RetentionTask::new(
            store.clone(),
            Arc::new(DefaultRetentionPolicy::default()),
            KEY,
        )
        .with_audit_archive(dir.clone(), Some(signer.clone()));
        assert_eq!(task.run(now, true).await.unwrap().archived_audit_events, 3);
        assert_eq!(
            store.audit_bounds().await.unwrap(),
            Some((1, 5)),
            "dry run keeps them"
        );
        let report = task.run(now, false).await.unwrap();
        assert_eq!(report.archived_audit_events, 3);
        assert_eq!(store.audit_bounds().await.unwrap(), Some((4, 5)));
        let path = &report.archives[0];
        let (archived, manifest) =
            read_archive(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
        assert_eq!(
            (archived.len(), manifest.first_seq, manifest.last_seq),
            (3, 1, 3)
        );

        // Archive, then the live table, as one walk; the checkpoint at the boundary matches.
        let mut v = ChainVerifier::new(ChainStart::Genesis);
        for cp in store.audit_checkpoints(0, 10).await.unwrap() {
            v.add_checkpoint(&signer.verifier(), &cp).unwrap();
        }
        verify_archive(
            std::io::BufReader::new(std::fs::File::open(path).unwrap()),
            &mut v,
        )
        .unwrap();
        for e in store.audit_range(4, 10).await.unwrap() {
            v.push(&e).unwrap();
        }
        let r = v.finish().unwrap();
        assert_eq!((r.events, r.checkpoints_matched), (5, 1));
        // The next append continues the chain.
        let next = store.append_audit(&event(None, now)).await.unwrap();
        assert_eq!(next.seq, 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
