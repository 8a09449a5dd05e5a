//! The key lifecycle: create, list, revoke, expire, rotate.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::cache::VerifiedKeyCache;
use super::digest::KeyHasher;
use super::key::{ApiKey, EntropyError, KeyEnvironment, PresentedKey};
use crate::model::{ApiKeyId, ApiKeyRecord, Label, Timestamp, UserId};
use crate::store::{ApiKeyStore, StoreError};

/// What went wrong in a lifecycle operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store refused or failed (`NotFound` for another user's or a missing key).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for a new key.
    #[error(transparent)]
    Entropy(#[from] EntropyError),
    /// The key is revoked or expired, so it cannot be rotated.
    #[error("the API key is revoked or expired")]
    Inactive,
    /// The owner already holds [`KeyServiceConfig::max_active_keys`] active keys.
    #[error("at most {max} active API keys per account; revoke one first")]
    TooManyKeys {
        /// The cap.
        max: usize,
    },
}

/// Settings of [`ApiKeyService`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyServiceConfig {
    /// Lifetime given to new keys created without an explicit expiry; `None` (the default)
    /// means they do not expire.
    pub default_lifetime: Option<Duration>,
    /// How long a rotated key keeps working after its replacement is issued, so deployments
    /// can switch over. Default 24 hours.
    pub rotation_grace: Duration,
    /// Most active (neither revoked nor expired) keys one account may hold; creating one more
    /// fails with [`KeyError::TooManyKeys`]. Rate limits are per account, so the cap is not
    /// what bounds request rates: it bounds the rows a user can make the store keep and the
    /// keys an owner has to audit. A rotation may exceed it by the one key it replaces, until
    /// that key's grace period ends. Default 25.
    pub max_active_keys: usize,
}

impl Default for KeyServiceConfig {
    fn default() -> Self {
        Self {
            default_lifetime: None,
            rotation_grace: Duration::from_secs(24 * 3600),
            max_active_keys: 25,
        }
    }
}

/// Shards of the per-owner creation lock: creations of one owner are serialised (count, then
/// insert), creations of different owners rarely contend.
const CREATE_LOCK_SHARDS: usize = 64;

/// A key's state at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Works.
    Active,
    /// Past its `expires_at`.
    Expired,
    /// Revoked by its owner.
    Revoked,
}

/// A key as listed to its owner: never the secret or its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeySummary {
    /// Record id (for revoke and rotate URLs).
    pub id: ApiKeyId,
    /// Owner-chosen label.
    pub name: Label,
    /// Display start, e.g. `echo1_live_AbCd` ([`ApiKey::display_start`]).
    pub start: String,
    /// Live or test.
    pub environment: Option<KeyEnvironment>,
    /// State at the time of listing.
    pub status: KeyStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use (coalesced: up to about a minute stale).
    pub last_used_at: Option<Timestamp>,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKeySummary {
    /// The listing view of `record` at `now`.
    pub fn from_record(record: &ApiKeyRecord, now: Timestamp) -> Self {
        let status = if !record.is_active || record.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if record.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        };
        Self {
            id: record.id,
            name: record.name.clone(),
            start: ApiKey::display_start(&record.public_id).to_owned(),
            environment: KeyEnvironment::of_public_id(&record.public_id),
            status,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A newly issued key: the only time the full key exists outside its owner's hands.
#[derive(Debug)]
pub struct CreatedKey {
    /// The full key: show it once, then drop it.
    pub key: PresentedKey,
    /// Its listing view.
    pub summary: ApiKeySummary,
}

/// The result of [`ApiKeyService::rotate`].
#[derive(Debug)]
pub struct Rotation {
    /// The replacement key.
    pub new_key: CreatedKey,
    /// When the old key stops working.
    pub old_key_expires_at: Timestamp,
}

/// Creates, lists, revokes and rotates keys. Revocation and rotation invalidate the shared
/// [`VerifiedKeyCache`] at once (in this process; see its docs for other replicas).
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    store: Arc<dyn ApiKeyStore>,
    hasher: Arc<KeyHasher>,
    config: KeyServiceConfig,
    cache: Option<Arc<VerifiedKeyCache>>,
    create_locks: Arc<[tokio::sync::Mutex<()>; CREATE_LOCK_SHARDS]>,
    lock_hasher: std::hash::RandomState,
}

impl ApiKeyService {
    /// A service digesting new keys with `hasher` (the verifier's).
    pub fn new(
        store: Arc<dyn ApiKeyStore>,
        hasher: Arc<KeyHasher>,
        config: KeyServiceConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            config,
            cache: None,
            create_locks: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            lock_hasher: std::hash::RandomState::new(),
        }
    }

    /// Invalidates `cache` (the verifier's) on revocation and rotation.
    pub fn with_cache(mut self, cache: Arc<VerifiedKeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Issues a key for `owner`. `expires_at = None` applies
    /// [`KeyServiceConfig::default_lifetime`]. The returned [`CreatedKey::key`] is the only
    /// copy: the store keeps the public id and an HMAC of the secret.
    ///
    /// Fails with [`KeyError::TooManyKeys`] when the owner already holds
    /// [`KeyServiceConfig::max_active_keys`] active keys. The count and the insert run under a
    /// per-owner lock, so concurrent creations through one service cannot pass the cap
    /// together. The lock is per process: replicas racing on one account could each add a
    /// key, exceeding the cap by at most the replica count minus one.
    pub async fn create(
        &self,
        owner: UserId,
        name: Label,
        environment: KeyEnvironment,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<CreatedKey, KeyError> {
        let _guard = self.lock_owner(owner).await;
        self.check_cap(owner, None, now).await?;
        self.insert_new(owner, name, environment, expires_at, now)
            .await
    }

    async fn lock_owner(&self, owner: UserId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher as _;
        let shard = (self.lock_hasher.hash_one(owner) % CREATE_LOCK_SHARDS as u64) as usize;
        self.create_locks[shard].lock().await
    }

    /// Refuses when `owner`'s active keys, not counting `replacing`, are at the cap.
    async fn check_cap(
        &self,
        owner: UserId,
        replacing: Option<ApiKeyId>,
        now: Timestamp,
    ) -> Result<(), KeyError> {
        let active = self
            .store
            .list_api_keys(owner)
            .await?
            .iter()
            .filter(|r| Some(r.id) != replacing)
            .filter(|r| ApiKeySummary::from_record(r, now).status == KeyStatus::Active)
            .count();
        if active >= self.config.max_active_keys {
            return Err(KeyError::TooManyKeys {
                max: self.config.max_active_keys,
            });
        }
        Ok(())
    }

    async fn insert_new(
        &self,
        owner: UserId,
        name: Label,
        environment: KeyEnvironment,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<CreatedKey, KeyError> {
        let expires_at = expires_at.or_else(|| {
            let lifetime = time::Duration::try_from(self.config.default_lifetime?).ok()?;
            Some(now + lifetime)
        });
        // A public-id collision needs two equal 95-bit random ids; retrying covers the
        // astronomically unlikely case instead of surfacing it.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let key = ApiKey::generate(environment)?;
            let record = self.record_for(&key, owner, name.clone(), expires_at, now);
            match self.store.create_api_key(&record).await {
                Ok(()) => {
                    return Ok(CreatedKey {
                        key,
                        summary: ApiKeySummary::from_record(&record, now),
                    });
                }
                Err(StoreError::Conflict { .. }) if attempts < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn record_for(
        &self,
        key: &PresentedKey,
        owner: UserId,
        name: Label,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> ApiKeyRecord {
        ApiKeyRecord {
            id: ApiKeyId::new(),
            user_id: owner,
            name,
            public_id: key.public_id().to_owned(),
            secret_hash: self.hasher.digest(key.secret()),
            is_active: true,
            created_at: now,
            last_used_at: None,
            expires_at,
            revoked_at: None,
        }
    }

    /// The owner's keys, newest first, revoked and expired ones included.
    pub async fn list(
        &self,
        owner: UserId,
        now: Timestamp,
    ) -> Result<Vec<ApiKeySummary>, KeyError> {
        Ok(self
            .store
            .list_api_keys(owner)
            .await?
            .iter()
            .map(|r| ApiKeySummary::from_record(r, now))
            .collect())
    }

    /// Revokes the owner's key at `now` and drops it from the cache. Idempotent.
    pub async fn revoke(
        &self,
        owner: UserId,
        id: ApiKeyId,
        now: Timestamp,
    ) -> Result<(), KeyError> {
        let result = self.store.revoke_api_key(owner, id, now).await;
        // Invalidate even on error: a revoke that committed but reported failure must not
        // leave a cached key behind.
        if let Some(cache) = &self.cache {
            cache.invalidate_key(id);
        }
        Ok(result?)
    }

    /// Rotates the owner's key `id`: issues a new key with the same name and environment, and
    /// makes the old one expire at `now + grace` (default
    /// [`KeyServiceConfig::rotation_grace`]; an earlier existing expiry is kept). A grace of
    /// zero ends the old key at once. The old key's expiry is set with
    /// [`ApiKeyStore::set_api_key_expiry`](crate::store::ApiKeyStore::set_api_key_expiry).
    ///
    /// If setting the expiry fails, the new key is revoked again and the error returned: the
    /// caller never holds a replacement while the old key lives on unbounded.
    pub async fn rotate(
        &self,
        owner: UserId,
        id: ApiKeyId,
        grace: Option<Duration>,
        now: Timestamp,
    ) -> Result<Rotation, KeyError> {
        let old = self
            .store
            .list_api_keys(owner)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or(StoreError::not_found("API key"))?;
        if ApiKeySummary::from_record(&old, now).status != KeyStatus::Active {
            return Err(KeyError::Inactive);
        }
        let environment =
            KeyEnvironment::of_public_id(&old.public_id).unwrap_or(KeyEnvironment::Live);
        let grace = time::Duration::try_from(grace.unwrap_or(self.config.rotation_grace))
            .unwrap_or(time::Duration::MAX);
        let mut old_expires_at = now + grace;
        if let Some(existing) = old.expires_at {
            old_expires_at = old_expires_at.min(existing);
        }

        let new_key = {
            let _guard = self.lock_owner(owner).await;
            self.check_cap(owner, Some(id), now).await?;
            self.insert_new(owner, old.name.clone(), environment, None, now)
                .await?
        };
        if let Err(e) = self
            .store
            .set_api_key_expiry(owner, id, Some(old_expires_at))
            .await
        {
            if let Err(undo) = self.revoke(owner, new_key.summary.id, now).await {
                tracing::error!(error = %undo, key = %new_key.summary.id, "could not revoke the replacement of a failed rotation");
            }
            return Err(e.into());
        }
        if let Some(cache) = &self.cache {
            cache.invalidate_key(id);
        }
        Ok(Rotation {
            new_key,
            old_key_expires_at: old_expires_at,
        })
    }
}
