//! [`SessionStore`] for the in-memory store.

use async_trait::async_trait;

use super::MemoryStore;
use crate::model::{SessionId, SessionRecord, Timestamp, UserId};
use crate::store::{SessionAuth, SessionStore, StoreError};

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&session.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.sessions.contains_key(&session.id) {
            return Err(StoreError::conflict("session id already exists"));
        }
        s.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn find_session_for_auth(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionAuth>, StoreError> {
        let s = self.state()?;
        // An inner join, as in the SQL stores (sessions are deleted with their owner anyway).
        Ok(s.sessions.get(&id).and_then(|session| {
            let owner = s.users.get(&session.user_id)?;
            Some(SessionAuth {
                session: session.clone(),
                owner_active: owner.is_active,
                owner_is_admin: owner.is_admin,
                owner_tier: owner.tier,
            })
        }))
    }

    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let session = s
            .sessions
            .get_mut(&id)
            .filter(|session| session.user_id == owner)
            .ok_or(StoreError::not_found("session"))?;
        session.revoked_at.get_or_insert(at);
        Ok(())
    }

    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut revoked = 0;
        for session in s
            .sessions
            .values_mut()
            .filter(|session| session.user_id == owner && session.revoked_at.is_none())
        {
            session.revoked_at = Some(at);
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let prunable: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|session| {
                session.expires_at < before || session.revoked_at.is_some_and(|at| at < before)
            })
            .map(|session| session.id)
            .take(limit as usize)
            .collect();
        for id in &prunable {
            s.sessions.remove(id);
        }
        Ok(prunable.len() as u64)
    }
}
