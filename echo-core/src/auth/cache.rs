//! A bounded, short-lived, in-process cache of verified keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::model::{ApiKeyId, ApiKeyRecord, PricingTier, Timestamp, UserId};

/// Cache sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries kept; when full, an arbitrary entry is evicted. Default 10,000.
    pub capacity: usize,
    /// How long an entry is trusted without asking the store again: the bound on how stale a
    /// revocation made on *another* replica can be. Default 30 s.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_secs(30),
        }
    }
}

/// What the verifier needs to know about a key's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerStatus {
    /// Inactive owners' keys are refused.
    pub is_active: bool,
    /// For per-tier rate limits.
    pub tier: PricingTier,
}

#[derive(Debug)]
struct Entry {
    record: Arc<ApiKeyRecord>,
    owner: OwnerStatus,
    inserted_at: Timestamp,
}

/// Verified keys by public id: the key record (with its digest, so the secret is still checked
/// on every request) and its owner's status, for [`CacheConfig::ttl`].
///
/// Share one cache (`Arc`) between the verifier and the [`ApiKeyService`](super::ApiKeyService)
/// so that a revocation in this process takes effect at once. **Other replicas must be told**:
/// call [`VerifiedKeyCache::invalidate`] / [`VerifiedKeyCache::invalidate_user`] from whatever
/// carries revocations between processes (the PostgreSQL store's LISTEN/NOTIFY channel when it
/// lands); until then the TTL bounds how long another replica may accept a revoked key.
///
/// Only successful verifications are inserted, so garbage keys cannot fill it. Expiry and state
/// are re-checked on every hit against the request's `now`.
#[derive(Debug)]
pub struct VerifiedKeyCache {
    config: CacheConfig,
    entries: Mutex<HashMap<String, Entry>>,
}

impl VerifiedKeyCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    // A poisoned lock only means another thread panicked between two map operations; every
    // entry is still whole, so the cache keeps working.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fresh entry for `public_id` at `now`, if any. A stale entry is dropped. A clock
    /// that went backwards also makes the entry stale, so a TTL can only shorten.
    pub(crate) fn get(
        &self,
        public_id: &str,
        now: Timestamp,
    ) -> Option<(Arc<ApiKeyRecord>, OwnerStatus)> {
        let mut entries = self.lock();
        let entry = entries.get(public_id)?;
        let age = now - entry.inserted_at;
        if age.is_negative() || age >= self.config.ttl {
            entries.remove(public_id);
            return None;
        }
        Some((Arc::clone(&entry.record), entry.owner))
    }

    pub(crate) fn insert(&self, record: Arc<ApiKeyRecord>, owner: OwnerStatus, now: Timestamp) {
        if self.config.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.config.capacity && !entries.contains_key(&record.public_id) {
            // Arbitrary-victim eviction: O(1), and under a TTL this short an LRU would gain
            // little.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(
            record.public_id.clone(),
            Entry {
                record,
                owner,
                inserted_at: now,
            },
        );
    }

    /// Forgets the key with this public id.
    pub fn invalidate(&self, public_id: &str) {
        self.lock().remove(public_id);
    }

    /// Forgets the key with this record id.
    pub fn invalidate_key(&self, id: ApiKeyId) {
        self.lock().retain(|_, e| e.record.id != id);
    }

    /// Forgets every key of `user` (deactivated, deleted or changed tier).
    pub fn invalidate_user(&self, user: UserId) {
        self.lock().retain(|_, e| e.record.user_id != user);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many entries are held (fresh or not yet noticed stale).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Label, SecretDigest};

    fn record(user: UserId, public_id: &str) -> Arc<ApiKeyRecord> {
        Arc::new(ApiKeyRecord {
            id: ApiKeyId::new(),
            user_id: user,
            name: Label::parse("k").unwrap(),
            public_id: public_id.into(),
            secret_hash: SecretDigest([0; 32]),
            is_active: true,
            created_at: Timestamp::from_unix_micros(0).unwrap(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        })
    }

    const OWNER: OwnerStatus = OwnerStatus {
        is_active: true,
        tier: PricingTier::Free,
    };

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(secs * 1_000_000).unwrap()
    }

    #[test]
    fn ttl_and_clock_going_back() {
        let c = VerifiedKeyCache::new(CacheConfig::default());
        c.insert(record(UserId::new(), "a"), OWNER, at(100));
        assert!(c.get("a", at(100)).is_some());
        assert!(c.get("a", at(129)).is_some());
        assert!(c.get("a", at(130)).is_none());
        c.insert(record(UserId::new(), "a"), OWNER, at(100));
        assert!(c.get("a", at(99)).is_none());
    }

    #[test]
    fn bounded() {
        let c = VerifiedKeyCache::new(CacheConfig {
            capacity: 3,
            ttl: Duration::from_secs(30),
        });
        for i in 0..10 {
            c.insert(record(UserId::new(), &format!("k{i}")), OWNER, at(1));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get("k9", at(1)).is_some());
        let off = VerifiedKeyCache::new(CacheConfig {
            capacity: 0,
            ttl: Duration::from_secs(30),
        });
        off.insert(record(UserId::new(), "x"), OWNER, at(1));
        assert!(off.is_empty());
    }

    #[test]
    fn invalidation() {
        let c = VerifiedKeyCache::new(CacheConfig::default());
        let u = UserId::new();
        let r1 = record(u, "a");
        let id1 = r1.id;
        c.insert(r1, OWNER, at(1));
        c.insert(record(u, "b"), OWNER, at(1));
        c.insert(record(UserId::new(), "c"), OWNER, at(1));
        c.invalidate("c");
        assert!(c.get("c", at(1)).is_none());
        c.invalidate_key(id1);
        assert!(c.get("a", at(1)).is_none());
        assert!(c.get("b", at(1)).is_some());
        c.invalidate_user(u);
        assert!(c.is_empty());
    }
}
