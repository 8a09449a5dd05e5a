//! API-key verification: the [`ApiKeyVerifier`] trait and its store-backed implementation.

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::{Either, select};

use super::cache::{OwnerStatus, VerifiedKeyCache};
use super::digest::KeyHasher;
use super::key::{ApiKey, KeyEnvironment};
use super::usage::LastUsedCoalescer;
use crate::model::{ApiKeyId, ApiKeyRecord, PricingTier, Timestamp, UserId};
use crate::store::{ApiKeyStore, StoreError};

/// Why a presented key was not accepted.
///
/// Every refusal, whatever its cause (malformed, bad checksum, unknown id, wrong secret,
/// revoked, expired, wrong environment, inactive owner), is the one variant
/// [`AuthError::InvalidKey`] with one message, so a caller cannot tell which check failed.
/// Log the presented key's public id if needed, never the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The key is not valid now. Answer 401.
    #[error("invalid API key")]
    InvalidKey,
    /// The store failed, so the key could not be checked. Answer 503 when
    /// [`StoreError::is_retryable`], 500 otherwise; the key may well be valid.
    #[error("API-key verification is unavailable")]
    Unavailable {
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

impl From<StoreError> for AuthError {
    fn from(source: StoreError) -> Self {
        AuthError::Unavailable { source }
    }
}

/// A key that passed every check: who is calling, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    /// The key record's id (for audit events).
    pub key_id: ApiKeyId,
    /// The key's owner: the tenant every store call is scoped to.
    pub user_id: UserId,
    /// The public id (prefix and key id): safe to log.
    pub public_id: String,
    /// Live or test.
    pub environment: KeyEnvironment,
    /// The owner's tier (for per-tier rate limits).
    pub tier: PricingTier,
    /// When the key stops working, if ever (e.g. the end of a rotation's grace period).
    pub expires_at: Option<Timestamp>,
    /// The key's digest was made with the previous pepper: it predates a pepper rotation and
    /// should be rotated before that pepper is retired.
    pub previous_pepper: bool,
}

/// Authenticates API keys.
///
/// # Contract
/// - `verify` accepts a key only if it is well formed (prefix, alphabet, checksum), its
///   secret matches the stored digest, and it is active, not revoked, not expired at `now`,
///   of an accepted environment, and owned by an active user.
/// - Every refusal is [`AuthError::InvalidKey`]; [`AuthError::Unavailable`] only means the
///   answer could not be determined.
/// - Implementations compare secrets in constant time and do the same work for an unknown key
///   id as for a wrong secret.
/// - `verify` never logs or returns the presented key or any part of its secret.
#[async_trait]
pub trait ApiKeyVerifier: Send + Sync + Debug + 'static {
    /// Checks `presented` (the full key text) at `now`.
    async fn verify(&self, presented: &str, now: Timestamp) -> Result<VerifiedKey, AuthError>;
}

/// The trait object servers hold: `Arc<DynApiKeyVerifier>`.
pub type DynApiKeyVerifier = dyn ApiKeyVerifier;

/// Which key environments a deployment accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptedEnvironments {
    /// Production: only `echo1_live_` keys.
    #[default]
    Live,
    /// Sandbox or staging: only `echo1_test_` keys.
    Test,
    /// Both (a deployment that serves sandbox traffic from the same process; branch on
    /// [`VerifiedKey::environment`]).
    Both,
}

impl AcceptedEnvironments {
    /// Whether keys of `env` are accepted.
    pub fn accepts(self, env: KeyEnvironment) -> bool {
        matches!(
            (self, env),
            (AcceptedEnvironments::Both, _)
                | (AcceptedEnvironments::Live, KeyEnvironment::Live)
                | (AcceptedEnvironments::Test, KeyEnvironment::Test)
        )
    }
}

/// Settings of [`StoreKeyVerifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Accepted key environments. Default: live only.
    pub environments: AcceptedEnvironments,
    /// At most one `last_used_at` write per key per this interval. Default 60 s.
    pub last_used_interval: Duration,
    /// Most keys whose last use is tracked between flushes. Default 100,000.
    pub last_used_max_tracked: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            environments: AcceptedEnvironments::Live,
            last_used_interval: Duration::from_secs(60),
            last_used_max_tracked: 100_000,
        }
    }
}

/// The default [`ApiKeyVerifier`]: checks keys against the store.
///
/// Per request: parse and checksum (no I/O; malformed keys stop here) → a cache hit, or one
/// store call that reads the key by public id with its owner's status
/// ([`ApiKeyStore::find_api_key_for_auth`](crate::store::ApiKeyStore::find_api_key_for_auth),
/// one round trip) → HMAC of the secret and constant-time comparison with the stored digest
/// (with a dummy digest when the id is unknown, so unknown ids, wrong secrets and revoked keys
/// cost the same) → state, expiry, environment and owner checks, combined into one branch →
/// the use is queued for a coalesced `last_used_at` write.
///
/// Call [`StoreKeyVerifier::run_last_used_flusher`] in a background task (it flushes once more
/// on shutdown), or [`StoreKeyVerifier::flush_last_used`] yourself.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::auth::*;
/// use echo_core::model::*;
/// use echo_core::store::{memory::MemoryStore, DynStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let now = Timestamp::now();
/// let user = User::new(
///     Email::parse("ada@example.com")?,
///     PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")?,
///     PricingTier::Pro,
///     now,
/// );
/// store.create_user(&user).await?;
///
/// let hasher = Arc::new(KeyHasher::new(Pepper::new(b"a pepper from configuration, 32+ bytes".to_vec())?));
/// let cache = Arc::new(VerifiedKeyCache::new(CacheConfig::default()));
/// let keys = ApiKeyService::new(store.clone(), hasher.clone(), KeyServiceConfig::default())
///     .with_cache(cache.clone());
/// let verifier = StoreKeyVerifier::new(store.clone(), hasher, VerifierConfig::default())
///     .with_cache(cache);
///
/// let created = keys
///     .create(user.id, Label::parse("CI")?, KeyEnvironment::Live, None, now)
///     .await?;
/// let verified = verifier.verify(created.key.expose(), now).await?;
/// assert_eq!(verified.user_id, user.id);
///
/// keys.revoke(user.id, created.summary.id, now).await?;
/// assert!(matches!(
///     verifier.verify(created.key.expose(), now).await,
///     Err(AuthError::InvalidKey)
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StoreKeyVerifier {
    store: Arc<dyn ApiKeyStore>,
    hasher: Arc<KeyHasher>,
    config: VerifierConfig,
    cache: Option<Arc<VerifiedKeyCache>>,
    usage: LastUsedCoalescer,
}

impl StoreKeyVerifier {
    /// A verifier without a cache.
    pub fn new(
        store: Arc<dyn ApiKeyStore>,
        hasher: Arc<KeyHasher>,
        config: VerifierConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            usage: LastUsedCoalescer::new(config.last_used_interval, config.last_used_max_tracked),
            config,
            cache: None,
        }
    }

    /// Uses `cache` for verified keys. Give the same cache to the
    /// [`ApiKeyService`](super::ApiKeyService) so revocations invalidate it.
    pub fn with_cache(mut self, cache: Arc<VerifiedKeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&Arc<VerifiedKeyCache>> {
        self.cache.as_ref()
    }

    /// Drops the cached entry of one key (a revocation heard from another replica).
    pub fn invalidate(&self, public_id: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(public_id);
        }
    }

    /// Drops every cached key of `user` (deactivated, deleted, or tier changed).
    pub fn invalidate_user(&self, user: UserId) {
        if let Some(cache) = &self.cache {
            cache.invalidate_user(user);
        }
    }

    /// Writes the queued `last_used_at` values in one bulk call; returns how many keys were
    /// written. On failure the uses are kept for the next flush.
    pub async fn flush_last_used(&self, now: Timestamp) -> Result<usize, AuthError> {
        let uses = self.usage.take(now);
        if uses.is_empty() {
            return Ok(0);
        }
        match self.store.touch_api_keys(&uses).await {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                self.usage.restore(uses);
                Err(e.into())
            }
        }
    }

    /// Uses waiting for the next flush.
    pub fn pending_last_used(&self) -> usize {
        self.usage.pending()
    }

    /// Flushes `last_used_at` every `every` until `shutdown` completes, then flushes once more.
    /// Failures are logged and retried at the next tick.
    pub async fn run_last_used_flusher(&self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = pin!(shutdown);
        while let Either::Left(_) = select(pin!(ticks.tick()), shutdown.as_mut()).await {
            self.flush_logged().await;
        }
        self.flush_logged().await;
    }

    async fn flush_logged(&self) {
        if let Err(error) = self.flush_last_used(Timestamp::now()).await {
            tracing::warn!(%error, pending = self.usage.pending(), "last_used_at flush failed");
        }
    }

    fn usable(&self, record: &ApiKeyRecord, env: KeyEnvironment, now: Timestamp) -> bool {
        record.is_active
            & record.revoked_at.is_none()
            & record.expires_at.is_none_or(|at| now < at)
            & self.config.environments.accepts(env)
    }
}

#[async_trait]
impl ApiKeyVerifier for StoreKeyVerifier {
    async fn verify(&self, presented: &str, now: Timestamp) -> Result<VerifiedKey, AuthError> {
        let Ok(parsed) = ApiKey::parse(presented) else {
            return Err(AuthError::InvalidKey);
        };
        let public_id = parsed.public_id();
        let cached = self.cache.as_ref().and_then(|c| c.get(public_id, now));
        let from_store = cached.is_none();
        let (record, owner) = match cached {
            Some((record, owner)) => (Some(record), Some(owner)),
            None => match self.store.find_api_key_for_auth(public_id).await? {
                Some(auth) => (
                    Some(Arc::new(auth.key)),
                    Some(OwnerStatus {
                        is_active: auth.owner_active,
                        tier: auth.owner_tier,
                    }),
                ),
                None => (None, None),
            },
        };

        // The same work whether the record exists or not: one HMAC, one constant-time
        // comparison (against a dummy digest when it does not), a few flag checks, then a
        // single branch on the combined result.
        let digest = self
            .hasher
            .verify(parsed.secret(), record.as_deref().map(|r| &r.secret_hash));
        let usable = record
            .as_deref()
            .is_some_and(|r| self.usable(r, parsed.environment(), now));
        let owner_active = owner.is_some_and(|o| o.is_active);
        let (record, owner) = match (record, owner) {
            (Some(record), Some(owner)) if digest.matched() & usable & owner_active => {
                (record, owner)
            }
            _ => return Err(AuthError::InvalidKey),
        };

        if from_store && let Some(cache) = &self.cache {
            cache.insert(Arc::clone(&record), owner, now);
        }
        self.usage.record(record.id, now);
        Ok(VerifiedKey {
            key_id: record.id,
            user_id: record.user_id,
            public_id: record.public_id.clone(),
            environment: parsed.environment(),
            tier: owner.tier,
            expires_at: record.expires_at,
            previous_pepper: digest.by_previous_pepper(),
        })
    }
}
