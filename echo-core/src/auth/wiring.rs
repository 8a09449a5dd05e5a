//! The common wiring of API-key issuing and verification in one constructor.

use std::sync::Arc;

use super::{
    ApiKeyService, CacheConfig, KeyHasher, KeyServiceConfig, Pepper, StoreKeyVerifier,
    VerifiedKeyCache, VerifierConfig,
};
use crate::store::ApiKeyStore;

/// API keys over one store: the [`ApiKeyService`] that issues, lists and revokes them and the
/// [`StoreKeyVerifier`] that checks presented keys, sharing one digest key and one cache (so a
/// revoke takes effect on the next verification).
///
/// ```
/// use std::sync::Arc;
/// use echo_core::auth::{ApiKeyVerifier, KeyAuth, KeyEnvironment, Pepper};
/// use echo_core::model::{Email, Label, Timestamp};
/// use echo_core::service::Accounts;
/// use echo_core::store::{DynStore, memory::MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let owner = Accounts::from_store(&store).local_user(&Email::parse("ada@example.com")?).await?;
/// let auth = KeyAuth::new(store, Pepper::new(vec![7u8; 32])?);
/// let now = Timestamp::now();
/// let created = auth.keys.create(owner.id, Label::parse("ci")?, KeyEnvironment::Live, None, now).await?;
/// let verified = auth.verifier.verify(created.key.expose(), now).await?;
/// assert_eq!(verified.user_id, owner.id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KeyAuth {
    /// Issues, lists, rotates and revokes keys.
    pub keys: ApiKeyService,
    /// Verifies presented keys (constant-time digest comparison, cached).
    pub verifier: Arc<StoreKeyVerifier>,
}

impl KeyAuth {
    /// Keys over `store` with digests keyed by `pepper` and the default settings: live keys
    /// only, no default expiry, a verification cache of [`CacheConfig::default`].
    pub fn new(store: Arc<dyn ApiKeyStore>, pepper: Pepper) -> Self {
        Self::with_config(
            store,
            Arc::new(KeyHasher::new(pepper)),
            VerifierConfig::default(),
            KeyServiceConfig::default(),
            CacheConfig::default(),
        )
    }

    /// Keys over `store` with every setting explicit (a hasher that also accepts a previous
    /// pepper during rotation, test keys accepted, …).
    pub fn with_config(
        store: Arc<dyn ApiKeyStore>,
        hasher: Arc<KeyHasher>,
        verifier: VerifierConfig,
        keys: KeyServiceConfig,
        cache: CacheConfig,
    ) -> Self {
        let cache = Arc::new(VerifiedKeyCache::new(cache));
        Self {
            keys: ApiKeyService::new(store.clone(), hasher.clone(), keys).with_cache(cache.clone()),
            verifier: Arc::new(StoreKeyVerifier::new(store, hasher, verifier).with_cache(cache)),
        }
    }
}
