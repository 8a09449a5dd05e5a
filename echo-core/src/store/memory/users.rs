//! [`UserStore`] for the in-memory store. With no foreign keys to cascade, deleting a user
//! removes what belongs to them by hand: profile, keys, sessions, experiments with their runs,
//! and the jobs whose payload names them.

use async_trait::async_trait;

use super::MemoryStore;
use crate::model::{
    ApiKeyRecord, BrandProfile, ConsentChange, Consents, Email, EmailVerificationRedemption,
    EmailVerificationToken, ExperimentId, Job, PasswordHash, PricingTier, SecretDigest, Timestamp,
    User, UserId,
};
use crate::store::{StoreError, UserStore};

/// Whether a job's payload names the user whose id's canonical text is `user`, the way
/// `delete_user` documents: a top-level `"user_id"` equal to it.
fn payload_names_user(job: &Job, user: &str) -> bool {
    job.payload
        .get("user_id")
        .and_then(serde_json::Value::as_str)
        == Some(user)
}

impl MemoryStore {
    /// Runs `edit` on the stored user under the state lock, the in-memory form of a targeted
    /// `UPDATE ... WHERE id = ?`.
    fn edit_user<T>(&self, id: UserId, edit: impl FnOnce(&mut User) -> T) -> Result<T, StoreError> {
        let mut s = self.state()?;
        let user = s.users.get_mut(&id).ok_or(StoreError::not_found("user"))?;
        Ok(edit(user))
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.user_by_email.contains_key(user.email.as_str()) {
            return Err(StoreError::conflict("email is already registered"));
        }
        if s.users.contains_key(&user.id) {
            return Err(StoreError::conflict("user id already exists"));
        }
        s.user_by_email
            .insert(user.email.as_str().to_owned(), user.id);
        s.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<User, StoreError> {
        self.state()?
            .users
            .get(&id)
            .cloned()
            .ok_or(StoreError::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let s = self.state()?;
        Ok(s.user_by_email
            .get(email.as_str())
            .and_then(|id| s.users.get(id))
            .cloned())
    }

    async fn request_deletion(
        &self,
        id: UserId,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<(), StoreError> {
        self.edit_user(id, |u| {
            u.is_active = false;
            u.scheduled_deletion_at = Some(purge_after);
            u.updated_at = at;
        })
    }

    async fn cancel_deletion(&self, id: UserId, at: Timestamp) -> Result<bool, StoreError> {
        self.edit_user(id, |u| {
            let pending = !u.is_active && u.scheduled_deletion_at.is_some_and(|due| due > at);
            if pending {
                u.is_active = true;
                u.scheduled_deletion_at = None;
                u.updated_at = at;
            }
            pending
        })
    }

    async fn update_consents(
        &self,
        id: UserId,
        change: &ConsentChange,
        at: Timestamp,
    ) -> Result<Consents, StoreError> {
        self.edit_user(id, |u| {
            u.consents.apply(change, at);
            u.updated_at = at;
            u.consents.clone()
        })
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        expected: &PasswordHash,
        new: &PasswordHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.edit_user(id, |u| {
            let current = u.password_hash == *expected;
            if current {
                u.password_hash = new.clone();
                u.updated_at = at;
            }
            current
        })
    }

    async fn set_tier(
        &self,
        id: UserId,
        tier: PricingTier,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.edit_user(id, |u| {
            u.tier = tier;
            u.updated_at = at;
        })
    }

    async fn set_admin(&self, id: UserId, is_admin: bool, at: Timestamp) -> Result<(), StoreError> {
        self.edit_user(id, |u| {
            u.is_admin = is_admin;
            u.updated_at = at;
        })
    }

    async fn put_email_verification_token(
        &self,
        token: &EmailVerificationToken,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&token.user_id) {
            return Err(StoreError::not_found("user"));
        }
        if s.verification_tokens
            .get(&token.token_hash.0)
            .is_some_and(|t| t.user_id != token.user_id)
        {
            return Err(StoreError::conflict("verification token already exists"));
        }
        s.verification_tokens
            .retain(|_, t| t.user_id != token.user_id);
        s.verification_tokens
            .insert(token.token_hash.0, token.clone());
        Ok(())
    }

    async fn redeem_email_verification_token(
        &self,
        token_hash: &SecretDigest,
        now: Timestamp,
    ) -> Result<EmailVerificationRedemption, StoreError> {
        let mut s = self.state()?;
        let token = s
            .verification_tokens
            .get(&token_hash.0)
            .ok_or(StoreError::not_found("verification token"))?;
        if token.expires_at <= now {
            return Ok(EmailVerificationRedemption::Expired);
        }
        let owner = token.user_id;
        let user = s
            .users
            .get_mut(&owner)
            .ok_or(StoreError::not_found("verification token"))?;
        user.email_verified_at = user.email_verified_at.or(Some(now));
        user.updated_at = now;
        s.verification_tokens.remove(&token_hash.0);
        Ok(EmailVerificationRedemption::Verified(owner))
    }

    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let user = s.users.remove(&id).ok_or(StoreError::not_found("user"))?;
        s.user_by_email.remove(user.email.as_str());
        s.profiles.remove(&id);
        let sets: Vec<_> = s
            .prompt_sets
            .values()
            .filter(|p| p.user_id == id)
            .map(|p| p.id)
            .collect();
        for set in sets {
            s.remove_prompt_set(set);
        }
        s.verification_tokens.retain(|_, t| t.user_id != id);
        let keys: Vec<ApiKeyRecord> = s
            .api_keys
            .values()
            .filter(|k| k.user_id == id)
            .cloned()
            .collect();
        for key in keys {
            s.api_keys.remove(&key.id);
            s.key_by_public_id.remove(&key.public_id);
        }
        s.sessions.retain(|_, session| session.user_id != id);
        s.webhooks.retain(|_, w| w.user_id != id);
        s.deliveries.retain(|_, d| d.user_id != id);
        let experiments: Vec<ExperimentId> = s
            .experiments
            .values()
            .filter(|e| e.user_id == id)
            .map(|e| e.id)
            .collect();
        for experiment in experiments {
            s.remove_experiment_cascade(experiment);
        }
        let name = id.to_string();
        s.jobs.retain(|_, job| !payload_names_user(job, &name));
        Ok(())
    }

    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let s = self.state()?;
        let mut due: Vec<(Timestamp, UserId)> = s
            .users
            .values()
            .filter(|u| !u.is_active)
            .filter_map(|u| Some((u.scheduled_deletion_at.filter(|at| *at <= now)?, u.id)))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }

    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let user = s
            .users
            .get_mut(&user)
            .ok_or(StoreError::not_found("user"))?;
        user.quota.prompts_used = user.quota.prompts_used.saturating_sub(amount);
        Ok(())
    }

    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut reset = 0;
        for user in s.users.values_mut().filter(|u| u.quota.resets_at <= now) {
            user.quota.resets_at = user.quota.next_reset_after(now);
            user.quota.prompts_used = 0;
            reset += 1;
        }
        Ok(reset)
    }

    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError> {
        self.state()?
            .profiles
            .get(&owner)
            .cloned()
            .ok_or(StoreError::not_found("brand profile"))
    }

    async fn put_brand_profile(&self, profile: &BrandProfile) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if !s.users.contains_key(&profile.user_id) {
            return Err(StoreError::not_found("user"));
        }
        s.profiles.insert(profile.user_id, profile.clone());
        Ok(())
    }
}
