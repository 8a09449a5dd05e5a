//! [`ApiKeyStore`] for the in-memory store. Revoking a key or changing its expiry checks the
//! owner: another user's key reads as not found, as an unknown one does.

use async_trait::async_trait;

use super::{MemoryStore, State};
use crate::model::{ApiKeyId, ApiKeyRecord, Timestamp, UserId};
use crate::store::{ApiKeyAuth, ApiKeyStore, StoreError};

impl State {
    /// The owner's key `id`; NotFound for another user's or an unknown key.
    fn owned_key_mut(
        &mut self,
        owner: UserId,
        id: ApiKeyId,
    ) -> Result<&mut ApiKeyRecord, StoreError> {
        self.api_keys
            .get_mut(&id)
            .filter(|k| k.user_id == owner)
            .ok_or(StoreError::not_found("API key"))
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&key.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.key_by_public_id.contains_key(&key.public_id) || s.api_keys.contains_key(&key.id) {
            return Err(StoreError::conflict("API key id already exists"));
        }
        s.key_by_public_id.insert(key.public_id.clone(), key.id);
        s.api_keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let s = self.state()?;
        Ok(s.key_by_public_id
            .get(public_id)
            .and_then(|id| s.api_keys.get(id))
            .cloned())
    }

    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        let s = self.state()?;
        // An inner join, as in the SQL stores (keys are deleted with their owner anyway).
        Ok(s.key_by_public_id
            .get(public_id)
            .and_then(|id| s.api_keys.get(id))
            .and_then(|key| {
                let owner = s.users.get(&key.user_id)?;
                Some(ApiKeyAuth {
                    key: key.clone(),
                    owner_active: owner.is_active,
                    owner_tier: owner.tier,
                })
            }))
    }

    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let s = self.state()?;
        let mut keys: Vec<ApiKeyRecord> = s
            .api_keys
            .values()
            .filter(|k| k.user_id == owner)
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let key = s.owned_key_mut(owner, id)?;
        key.is_active = false;
        key.revoked_at.get_or_insert(at);
        Ok(())
    }

    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.state()?.owned_key_mut(owner, id)?.expires_at = expires_at;
        Ok(())
    }

    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for (id, at) in uses {
            if let Some(key) = s.api_keys.get_mut(id)
                && key.last_used_at.is_none_or(|prev| prev < *at)
            {
                key.last_used_at = Some(*at);
            }
        }
        Ok(())
    }
}
