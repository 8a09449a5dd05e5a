use async_trait::async_trait;

use super::MemoryStore;
use crate::model::{PromptSet, PromptSetId, PromptSetVersion, UserId};
use crate::store::{PromptSetStore, StoreError, after_version, check_prompt_set_version};

#[async_trait]
impl PromptSetStore for MemoryStore {
    async fn create_prompt_set(
        &self,
        owner: UserId,
        first: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(first, Some(1))?;
        let mut s = self.state()?;
        if !s.users.contains_key(&owner) {
            return Err(StoreError::not_found("user"));
        }
        if s.prompt_sets.contains_key(&first.set_id) {
            return Err(StoreError::conflict("prompt set id already exists"));
        }
        s.prompt_sets
            .insert(first.set_id, PromptSet::first(owner, first));
        s.prompt_set_versions
            .insert((first.set_id, first.version), first.clone());
        Ok(())
    }

    async fn add_prompt_set_version(
        &self,
        owner: UserId,
        next: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(next, None)?;
        let mut s = self.state()?;
        let set = s
            .prompt_sets
            .get(&next.set_id)
            .filter(|p| p.user_id == owner)
            .ok_or(StoreError::not_found("prompt set"))?;
        if next.version != set.latest_version.saturating_add(1) {
            return Err(StoreError::conflict(
                "the prompt set has changed since it was read",
            ));
        }
        let updated = after_version(set, next);
        s.prompt_sets.insert(next.set_id, updated);
        s.prompt_set_versions
            .insert((next.set_id, next.version), next.clone());
        Ok(())
    }

    async fn get_prompt_set(
        &self,
        owner: UserId,
        id: PromptSetId,
    ) -> Result<PromptSet, StoreError> {
        self.state()?
            .prompt_sets
            .get(&id)
            .filter(|p| p.user_id == owner)
            .cloned()
            .ok_or(StoreError::not_found("prompt set"))
    }

    async fn get_prompt_set_version(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: u32,
    ) -> Result<PromptSetVersion, StoreError> {
        let s = self.state()?;
        s.prompt_sets
            .get(&id)
            .filter(|p| p.user_id == owner)
            .and_then(|_| s.prompt_set_versions.get(&(id, version)))
            .cloned()
            .ok_or(StoreError::not_found("prompt set version"))
    }

    async fn list_prompt_sets(&self, owner: UserId) -> Result<Vec<PromptSet>, StoreError> {
        let mut sets: Vec<PromptSet> = self
            .state()?
            .prompt_sets
            .values()
            .filter(|p| p.user_id == owner)
            .cloned()
            .collect();
        sets.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
        Ok(sets)
    }

    async fn delete_prompt_set(&self, owner: UserId, id: PromptSetId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.prompt_sets.get(&id).is_none_or(|p| p.user_id != owner) {
            return Err(StoreError::not_found("prompt set"));
        }
        s.remove_prompt_set(id);
        Ok(())
    }
}
