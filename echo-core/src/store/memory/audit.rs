//! [`AuditStore`] for the in-memory store. The chain head is kept apart from the events so
//! that deleting archived events never breaks the hash chain of later appends.

use async_trait::async_trait;

use super::MemoryStore;
use crate::audit::{GENESIS_HASH, chain_hash};
use crate::model::{AuditCheckpoint, AuditErasure, AuditEvent, NewAuditEvent, Timestamp, UserId};
use crate::store::{AuditQuery, AuditStore, Page, StoreError};

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let mut s = self.state()?;
        let (prev_seq, prev_hash) = s.audit_head.unwrap_or((0, GENESIS_HASH));
        let seq = prev_seq + 1;
        let stored = AuditEvent {
            seq,
            event: event.clone(),
            actor_pseudonym: None,
            prev_hash,
            hash: chain_hash(&prev_hash, seq, event),
        };
        s.audit_head = Some((seq, stored.hash));
        s.audit.push(stored.clone());
        Ok(stored)
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError> {
        let s = self.state()?;
        let limit = query.limit.get() as usize;
        let matches = |a: &&AuditEvent| {
            let e = &a.event;
            query.before_seq.is_none_or(|b| a.seq < b)
                && query
                    .actor_user_id
                    .is_none_or(|u| e.actor_user_id == Some(u))
                && query.action.as_ref().is_none_or(|x| &e.action == x)
                && query
                    .resource_type
                    .as_ref()
                    .is_none_or(|x| &e.resource_type == x)
                && query
                    .resource_id
                    .as_ref()
                    .is_none_or(|x| e.resource_id.as_ref() == Some(x))
                && query.from.is_none_or(|t| e.created_at >= t)
                && query.to.is_none_or(|t| e.created_at < t)
        };
        let items: Vec<AuditEvent> = s
            .audit
            .iter()
            .rev()
            .filter(matches)
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, limit, |a| a.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let s = self.state()?;
        Ok(s.audit
            .iter()
            .filter(|a| a.seq >= from_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn pseudonymize_actor(
        &self,
        user: UserId,
        pseudonym: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut guard = self.state()?;
        let s = &mut *guard;
        let mut erased = 0;
        for e in s
            .audit
            .iter_mut()
            .filter(|e| e.event.actor_user_id == Some(user))
        {
            e.event.actor_user_id = None;
            e.event.ip = None;
            e.event.user_agent = None;
            e.actor_pseudonym = Some(pseudonym.to_owned());
            s.audit_erasures.insert(
                e.seq,
                AuditErasure {
                    seq: e.seq,
                    erased_at: now,
                    pseudonym: pseudonym.to_owned(),
                },
            );
            erased += 1;
        }
        Ok(erased)
    }

    async fn audit_erasures(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditErasure>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_erasures
            .range(from_seq..)
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.audit_checkpoints.contains_key(&checkpoint.seq) {
            return Err(StoreError::conflict(
                "an audit checkpoint with this sequence number already exists",
            ));
        }
        s.audit_checkpoints
            .insert(checkpoint.seq, checkpoint.clone());
        Ok(())
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_checkpoints.values().next_back().cloned())
    }

    async fn audit_checkpoints(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let s = self.state()?;
        Ok(s.audit_checkpoints
            .range(from_seq..)
            .take(limit as usize)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn delete_audit_through(&self, seq: u64) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        // `audit` is ascending, so the deleted events are a prefix.
        let end = s.audit.partition_point(|e| e.seq <= seq);
        s.audit.drain(..end);
        Ok(end as u64)
    }

    async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let s = self.state()?;
        Ok(s.audit
            .first()
            .zip(s.audit.last())
            .map(|(a, b)| (a.seq, b.seq)))
    }
}
