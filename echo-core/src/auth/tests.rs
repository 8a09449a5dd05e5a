//! Store-backed tests of verification and the key lifecycle, and the no-secret-leak check.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::test_store::TestStore;
use super::*;
use crate::model::*;
use crate::store::memory::MemoryStore;
use crate::store::{DynStore, StoreError};

const PEPPER: &[u8] = b"test pepper: 32 bytes or more, never logged";

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_700_000_000_000_000 + secs * 1_000_000).unwrap()
}

struct Fixture {
    test_store: Arc<TestStore>,
    store: Arc<DynStore>,
    hasher: Arc<KeyHasher>,
    cache: Arc<VerifiedKeyCache>,
    keys: ApiKeyService,
    user: User,
}

impl Fixture {
    async fn new() -> Self {
        let test_store = Arc::new(TestStore::default());
        let store: Arc<DynStore> = test_store.clone();
        let hasher = Arc::new(KeyHasher::new(Pepper::new(PEPPER.to_vec()).unwrap()));
        let cache = Arc::new(VerifiedKeyCache::new(CacheConfig::default()));
        let keys = ApiKeyService::new(store.clone(), hasher.clone(), KeyServiceConfig::default())
            .with_cache(cache.clone());
        let user = new_user(&store).await;
        Self {
            test_store,
            store,
            hasher,
            cache,
            keys,
            user,
        }
    }

    fn verifier(&self, config: VerifierConfig) -> StoreKeyVerifier {
        StoreKeyVerifier::new(self.store.clone(), self.hasher.clone(), config)
    }

    fn cached_verifier(&self) -> StoreKeyVerifier {
        self.verifier(VerifierConfig::default())
            .with_cache(self.cache.clone())
    }

    async fn create(&self, env: KeyEnvironment, expires_at: Option<Timestamp>) -> CreatedKey {
        self.keys
            .create(
                self.user.id,
                Label::parse("ci").unwrap(),
                env,
                expires_at,
                at(0),
            )
            .await
            .unwrap()
    }
}

async fn new_user(store: &Arc<DynStore>) -> User {
    let user = User::new(
        Email::parse(format!("{}@example.com", UserId::new())).unwrap(),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        PricingTier::Pro,
        at(0),
    );
    store.create_user(&user).await.unwrap();
    user
}

fn assert_invalid(result: Result<VerifiedKey, AuthError>, what: &str) {
    match result {
        Err(e @ AuthError::InvalidKey) => assert_eq!(e.to_string(), "invalid API key", "{what}"),
        other => panic!("{what}: expected InvalidKey, got {other:?}"),
    }
}

/// Replaces the secret of a valid key and fixes the checksum, so only the secret is wrong.
fn with_wrong_secret(key: &str) -> String {
    let mut body = key[..PUBLIC_ID_LEN].to_owned();
    body.push_str(&"A".repeat(SECRET_LEN));
    let crc = crc32fast::hash(body.as_bytes());
    body.push_str(&base62_6(crc));
    body
}

fn base62_6(mut v: u32) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut d = [b'0'; 6];
    for x in d.iter_mut().rev() {
        *x = A[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(d.to_vec()).unwrap()
}

#[tokio::test]
async fn valid_key_verifies() {
    let f = Fixture::new().await;
    let created = f.create(KeyEnvironment::Live, Some(at(1000))).await;
    let v = f.verifier(VerifierConfig::default());
    let ok = v.verify(created.key.expose(), at(1)).await.unwrap();
    assert_eq!(ok.user_id, f.user.id);
    assert_eq!(ok.key_id, created.summary.id);
    assert_eq!(ok.public_id, created.key.public_id());
    assert_eq!(ok.environment, KeyEnvironment::Live);
    assert_eq!(ok.tier, PricingTier::Pro);
    assert_eq!(ok.expires_at, Some(at(1000)));
    assert!(!ok.previous_pepper);
    // Usable as the trait object servers hold.
    let dyn_verifier: Arc<DynApiKeyVerifier> = Arc::new(v);
    assert!(
        dyn_verifier
            .verify(created.key.expose(), at(2))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_refusal_is_the_same_error() {
    let f = Fixture::new().await;
    let v = f.verifier(VerifierConfig::default());

    let good = f.create(KeyEnvironment::Live, None).await;
    assert!(v.verify(good.key.expose(), at(1)).await.is_ok());

    // Wrong secret (valid checksum, known id).
    assert_invalid(
        v.verify(&with_wrong_secret(good.key.expose()), at(1)).await,
        "wrong secret",
    );
    // Unknown id: a well-formed key never stored.
    let unknown = ApiKey::generate(KeyEnvironment::Live).unwrap();
    assert_invalid(v.verify(unknown.expose(), at(1)).await, "unknown id");
    // Malformed and bad checksum never reach the store.
    let finds = f.test_store.finds.load(Ordering::SeqCst);
    assert_invalid(v.verify("not a key", at(1)).await, "malformed");
    let mut typo = good.key.expose().to_owned();
    typo.replace_range(30..31, if &typo[30..31] == "x" { "y" } else { "x" });
    assert_invalid(v.verify(&typo, at(1)).await, "typo");
    assert_eq!(f.test_store.finds.load(Ordering::SeqCst), finds);

    // Revoked.
    let revoked = f.create(KeyEnvironment::Live, None).await;
    f.keys
        .revoke(f.user.id, revoked.summary.id, at(5))
        .await
        .unwrap();
    assert_invalid(v.verify(revoked.key.expose(), at(6)).await, "revoked");

    // Expired: valid until the instant, refused from it on.
    let expiring = f.create(KeyEnvironment::Live, Some(at(10))).await;
    assert!(v.verify(expiring.key.expose(), at(9)).await.is_ok());
    assert_invalid(v.verify(expiring.key.expose(), at(10)).await, "expired");

    // Wrong environment for this deployment, and the other way round.
    let test_key = f.create(KeyEnvironment::Test, None).await;
    assert_invalid(
        v.verify(test_key.key.expose(), at(1)).await,
        "test key on live",
    );
    let sandbox = f.verifier(VerifierConfig {
        environments: AcceptedEnvironments::Test,
        ..VerifierConfig::default()
    });
    assert!(sandbox.verify(test_key.key.expose(), at(1)).await.is_ok());
    assert_invalid(
        sandbox.verify(good.key.expose(), at(1)).await,
        "live key on test",
    );
    let both = f.verifier(VerifierConfig {
        environments: AcceptedEnvironments::Both,
        ..VerifierConfig::default()
    });
    assert_eq!(
        both.verify(test_key.key.expose(), at(1))
            .await
            .unwrap()
            .environment,
        KeyEnvironment::Test
    );
    // A live key relabelled as test (checksum recomputed) finds no record.
    let relabelled = {
        let mut s = format!(
            "echo1_test_{}",
            &good.key.expose()[PREFIX_LEN..KEY_LEN - CHECKSUM_LEN]
        );
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&base62_6(crc));
        s
    };
    assert_invalid(both.verify(&relabelled, at(1)).await, "relabelled");

    // Inactive owner.
    f.store
        .request_deletion(f.user.id, at(1), at(1000))
        .await
        .unwrap();
    assert_invalid(v.verify(good.key.expose(), at(1)).await, "inactive owner");

    // Deleted owner (its keys cascade away).
    f.store.delete_user(f.user.id).await.unwrap();
    assert_invalid(v.verify(good.key.expose(), at(1)).await, "deleted owner");
}

#[tokio::test]
async fn store_outage_is_unavailable_not_invalid() {
    let f = Fixture::new().await;
    let created = f.create(KeyEnvironment::Live, None).await;
    let v = f.verifier(VerifierConfig::default());
    f.test_store.down.store(true, Ordering::SeqCst);
    let err = v.verify(created.key.expose(), at(1)).await.unwrap_err();
    assert!(matches!(&err, AuthError::Unavailable { source } if source.is_retryable()));
    // Malformed keys are still refused without the store.
    assert_invalid(v.verify("garbage", at(1)).await, "malformed during outage");
}

#[tokio::test]
async fn last_used_is_written_at_most_once_per_key_per_minute() {
    let f = Fixture::new().await;
    let k1 = f.create(KeyEnvironment::Live, None).await;
    let k2 = f.create(KeyEnvironment::Live, None).await;
    let v = f.verifier(VerifierConfig::default());
    for s in 0..60 {
        v.verify(k1.key.expose(), at(s)).await.unwrap();
        v.verify(k2.key.expose(), at(s)).await.unwrap();
    }
    assert_eq!(v.pending_last_used(), 2);
    assert_eq!(v.flush_last_used(at(59)).await.unwrap(), 2);
    assert_eq!(v.flush_last_used(at(59)).await.unwrap(), 0);
    // A minute after the first write, the next use is queued again.
    v.verify(k1.key.expose(), at(60)).await.unwrap();
    assert_eq!(v.flush_last_used(at(60)).await.unwrap(), 1);

    let touches = f.test_store.touches.lock().unwrap().clone();
    assert_eq!(touches.len(), 2, "one bulk write per flush");
    assert_eq!(touches[0].len(), 2);
    assert_eq!(touches[1], vec![(k1.summary.id, at(60))]);
    let listed = f.keys.list(f.user.id, at(61)).await.unwrap();
    let k1_listed = listed.iter().find(|k| k.id == k1.summary.id).unwrap();
    assert_eq!(k1_listed.last_used_at, Some(at(60)));

    // Failed flushes keep the uses for the next one.
    v.verify(k2.key.expose(), at(120)).await.unwrap();
    f.test_store.down.store(true, Ordering::SeqCst);
    assert!(v.flush_last_used(at(120)).await.is_err());
    assert_eq!(v.pending_last_used(), 1);
    f.test_store.down.store(false, Ordering::SeqCst);
    assert_eq!(v.flush_last_used(at(121)).await.unwrap(), 1);
}

#[tokio::test]
async fn flusher_flushes_on_shutdown() {
    let f = Fixture::new().await;
    let k = f.create(KeyEnvironment::Live, None).await;
    let v = f.verifier(VerifierConfig::default());
    v.verify(k.key.expose(), Timestamp::now()).await.unwrap();
    v.run_last_used_flusher(Duration::from_secs(3600), async {})
        .await;
    assert_eq!(v.pending_last_used(), 0);
    let rec = f
        .store
        .find_api_key(k.key.public_id())
        .await
        .unwrap()
        .unwrap();
    assert!(rec.last_used_at.is_some());
}

#[tokio::test]
async fn cache_accessor_returns_the_cache_given_to_the_verifier() {
    // Servers hand this cache to the key service so revocations invalidate it: it must be the
    // same instance, not a copy, and there is none on an uncached verifier.
    let f = Fixture::new().await;
    assert!(f.verifier(VerifierConfig::default()).cache().is_none());
    let v = f.cached_verifier();
    let cache = v.cache().expect("a cached verifier exposes its cache");
    assert!(Arc::ptr_eq(cache, &f.cache));
}

#[tokio::test]
async fn cache_serves_hits_and_revoke_invalidates_at_once() {
    let f = Fixture::new().await;
    let k = f.create(KeyEnvironment::Live, None).await;
    let v = f.cached_verifier();
    v.verify(k.key.expose(), at(1)).await.unwrap();
    let (finds, reads) = (
        f.test_store.finds.load(Ordering::SeqCst),
        f.test_store.user_reads.load(Ordering::SeqCst),
    );
    for s in 2..20 {
        v.verify(k.key.expose(), at(s)).await.unwrap();
    }
    assert_eq!(
        f.test_store.finds.load(Ordering::SeqCst),
        finds,
        "hits skip the store"
    );
    assert_eq!(f.test_store.user_reads.load(Ordering::SeqCst), reads);
    // A hit still checks the secret.
    assert_invalid(
        v.verify(&with_wrong_secret(k.key.expose()), at(20)).await,
        "wrong secret on a cached id",
    );

    // Revoking through the service: refused on the very next request.
    f.keys
        .revoke(f.user.id, k.summary.id, at(21))
        .await
        .unwrap();
    assert_invalid(
        v.verify(k.key.expose(), at(21)).await,
        "revoked, was cached",
    );

    // A revocation made elsewhere (another replica) is seen after invalidate(), or the TTL.
    let k2 = f.create(KeyEnvironment::Live, None).await;
    v.verify(k2.key.expose(), at(30)).await.unwrap();
    f.store
        .revoke_api_key(f.user.id, k2.summary.id, at(31))
        .await
        .unwrap();
    assert!(
        v.verify(k2.key.expose(), at(31)).await.is_ok(),
        "stale within the TTL"
    );
    v.invalidate(k2.key.public_id());
    assert_invalid(v.verify(k2.key.expose(), at(31)).await, "after invalidate");

    let k3 = f.create(KeyEnvironment::Live, None).await;
    v.verify(k3.key.expose(), at(40)).await.unwrap();
    f.store
        .revoke_api_key(f.user.id, k3.summary.id, at(41))
        .await
        .unwrap();
    assert_invalid(
        v.verify(k3.key.expose(), at(70)).await,
        "after the 30 s TTL",
    );

    // Deactivating a user: invalidate_user drops all their keys.
    let k4 = f.create(KeyEnvironment::Live, None).await;
    v.verify(k4.key.expose(), at(80)).await.unwrap();
    f.store
        .request_deletion(f.user.id, at(80), at(1000))
        .await
        .unwrap();
    v.invalidate_user(f.user.id);
    assert_invalid(v.verify(k4.key.expose(), at(80)).await, "owner deactivated");
    // Expiry is re-checked on hits.
    assert!(f.store.cancel_deletion(f.user.id, at(81)).await.unwrap());
    let k5 = f.create(KeyEnvironment::Live, Some(at(95))).await;
    v.verify(k5.key.expose(), at(90)).await.unwrap();
    assert_invalid(
        v.verify(k5.key.expose(), at(95)).await,
        "expired while cached",
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_the_grace_ends() {
    let f = Fixture::new().await;
    let old = f.create(KeyEnvironment::Test, None).await;
    let v = f
        .verifier(VerifierConfig {
            environments: AcceptedEnvironments::Test,
            ..VerifierConfig::default()
        })
        .with_cache(f.cache.clone());
    v.verify(old.key.expose(), at(1)).await.unwrap(); // now cached

    let rotation = f
        .keys
        .rotate(
            f.user.id,
            old.summary.id,
            Some(Duration::from_secs(3600)),
            at(100),
        )
        .await
        .unwrap();
    assert_eq!(rotation.old_key_expires_at, at(3700));
    let new = &rotation.new_key;
    assert_eq!(new.summary.name, old.summary.name);
    assert_eq!(new.summary.environment, Some(KeyEnvironment::Test));
    assert_ne!(new.key.expose(), old.key.expose());

    // Both work during the grace period; the verified old key reports its new expiry.
    let during = v.verify(old.key.expose(), at(3699)).await.unwrap();
    assert_eq!(during.expires_at, Some(at(3700)));
    assert!(v.verify(new.key.expose(), at(3699)).await.is_ok());
    // From the end of the grace, only the new one.
    assert_invalid(
        v.verify(old.key.expose(), at(3700)).await,
        "old after grace",
    );
    assert!(v.verify(new.key.expose(), at(3700)).await.is_ok());

    let listed = f.keys.list(f.user.id, at(3700)).await.unwrap();
    let status = |id| listed.iter().find(|k| k.id == id).unwrap().status;
    assert_eq!(status(old.summary.id), KeyStatus::Expired);
    assert_eq!(status(new.summary.id), KeyStatus::Active);

    // An expired (or revoked) key cannot be rotated; zero grace ends the old key at once.
    let again = f
        .keys
        .rotate(f.user.id, old.summary.id, None, at(3800))
        .await;
    assert!(matches!(again, Err(KeyError::Inactive)));
    let r2 = f
        .keys
        .rotate(f.user.id, new.summary.id, Some(Duration::ZERO), at(3800))
        .await
        .unwrap();
    assert_invalid(v.verify(new.key.expose(), at(3800)).await, "zero grace");
    assert!(v.verify(r2.new_key.key.expose(), at(3800)).await.is_ok());
    // The default grace (24 h) never extends an earlier expiry.
    let short = f.create(KeyEnvironment::Test, Some(at(4000))).await;
    let r3 = f
        .keys
        .rotate(f.user.id, short.summary.id, None, at(3900))
        .await
        .unwrap();
    assert_eq!(r3.old_key_expires_at, at(4000));
    // Another user's key is NotFound.
    let other = new_user(&f.store).await;
    assert!(matches!(
        f.keys
            .rotate(other.id, r2.new_key.summary.id, None, at(3900))
            .await,
        Err(KeyError::Store(StoreError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn list_shows_metadata_only() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let hasher = Arc::new(KeyHasher::new(Pepper::new(PEPPER.to_vec()).unwrap()));
    let service = ApiKeyService::new(
        store.clone(),
        hasher.clone(),
        KeyServiceConfig {
            default_lifetime: Some(Duration::from_secs(90 * 86_400)),
            ..KeyServiceConfig::default()
        },
    );
    let user = new_user(&store).await;
    let created = service
        .create(
            user.id,
            Label::parse("prod").unwrap(),
            KeyEnvironment::Live,
            None,
            at(0),
        )
        .await
        .unwrap();
    let secret = ApiKey::parse(created.key.expose())
        .unwrap()
        .secret()
        .to_owned();

    // The store holds the public id and the HMAC, nothing else of the key.
    let record = store
        .find_api_key(created.key.public_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.secret_hash, hasher.digest(&secret));
    let stored = serde_json::to_string(&record).unwrap();
    assert!(!stored.contains(&secret));

    let listed = service.list(user.id, at(1)).await.unwrap();
    assert_eq!(listed, vec![created.summary.clone()]);
    let s = &listed[0];
    assert_eq!(s.name.as_str(), "prod");
    assert_eq!(s.start, &created.key.expose()[..DISPLAY_START_LEN]);
    assert_eq!(s.status, KeyStatus::Active);
    assert_eq!(s.expires_at, Some(at(90 * 86_400)));
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains(&secret));
    assert!(!json.contains("secret_hash"));
    assert!(
        !json.contains(created.key.public_id()),
        "only the start is listed"
    );

    service.revoke(user.id, s.id, at(2)).await.unwrap();
    service.revoke(user.id, s.id, at(3)).await.unwrap(); // idempotent
    let listed = service.list(user.id, at(4)).await.unwrap();
    assert_eq!(listed[0].status, KeyStatus::Revoked);
    assert_eq!(listed[0].revoked_at, Some(at(2)));
    let other = new_user(&store).await;
    assert!(matches!(
        service.revoke(other.id, s.id, at(5)).await,
        Err(KeyError::Store(StoreError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn pepper_rotation_accepts_old_digests() {
    let f = Fixture::new().await;
    let k = f.create(KeyEnvironment::Live, None).await;
    let rotated = Arc::new(
        KeyHasher::new(Pepper::new(b"the next pepper, also at least 32 bytes".to_vec()).unwrap())
            .with_previous(Pepper::new(PEPPER.to_vec()).unwrap()),
    );
    let v = StoreKeyVerifier::new(f.store.clone(), rotated.clone(), VerifierConfig::default());
    let ok = v.verify(k.key.expose(), at(1)).await.unwrap();
    assert!(ok.previous_pepper);
    // Keys made after the rotation use the new pepper.
    let service = ApiKeyService::new(f.store.clone(), rotated, KeyServiceConfig::default());
    let fresh = service
        .create(
            f.user.id,
            Label::parse("new").unwrap(),
            KeyEnvironment::Live,
            None,
            at(2),
        )
        .await
        .unwrap();
    assert!(
        !v.verify(fresh.key.expose(), at(3))
            .await
            .unwrap()
            .previous_pepper
    );
    // Dropping the previous pepper ends the old keys.
    let only_new = StoreKeyVerifier::new(
        f.store.clone(),
        Arc::new(KeyHasher::new(
            Pepper::new(b"the next pepper, also at least 32 bytes".to_vec()).unwrap(),
        )),
        VerifierConfig::default(),
    );
    assert_invalid(
        only_new.verify(k.key.expose(), at(4)).await,
        "old pepper retired",
    );
}

/// No secret (key, secret part, password, pepper, digest, password hash) appears in any error
/// message or `Debug` output.
#[tokio::test]
async fn no_secret_in_errors_or_debug() {
    let f = Fixture::new().await;
    let created = f.create(KeyEnvironment::Live, None).await;
    let key = created.key.expose().to_owned();
    let parsed = ApiKey::parse(&key).unwrap();
    let secret = parsed.secret().to_owned();
    let digest = f.hasher.digest(&secret);
    let digest_hex: String = digest.0.iter().map(|b| format!("{b:02x}")).collect();
    let pepper_text = String::from_utf8(PEPPER.to_vec()).unwrap();
    let password = "correct horse battery staple";
    let hasher = PasswordHasher::new(
        PasswordParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        PasswordPolicy::default(),
    )
    .unwrap();
    let phc = hasher.hash(password).unwrap();
    let phc_hash_part = phc.expose().rsplit('$').next().unwrap().to_owned();

    let mut shown = Vec::new();
    let v = f.cached_verifier();
    let verified = v.verify(&key, at(1)).await.unwrap();
    shown.push(format!("{verified:?}"));
    shown.push(format!("{v:?}"));
    shown.push(format!("{:?} {}", created.key, created.key));
    shown.push(format!("{created:?}"));
    shown.push(format!("{parsed:?}"));
    shown.push(format!("{:?}", f.hasher));
    shown.push(format!("{:?}", Pepper::new(PEPPER.to_vec()).unwrap()));
    shown.push(format!("{digest:?}"));
    shown.push(format!("{:?}", f.keys));
    shown.push(format!("{:?}", f.cache));
    let record = f
        .store
        .find_api_key(&verified.public_id)
        .await
        .unwrap()
        .unwrap();
    shown.push(format!("{record:?}"));
    shown.push(format!("{hasher:?} {phc:?}"));
    for e in [
        v.verify(&with_wrong_secret(&key), at(1)).await.unwrap_err(),
        v.verify(&key[..40], at(1)).await.unwrap_err(),
        v.verify(&format!("{key}x"), at(1)).await.unwrap_err(),
    ] {
        shown.push(format!("{e} {e:?}"));
    }
    for bad in [&key[..75], "echo1_live_", &key.replace('e', "E")] {
        let e = ApiKey::parse(bad).unwrap_err();
        shown.push(format!("{e} {e:?}"));
    }
    f.test_store.down.store(true, Ordering::SeqCst);
    let e = StoreKeyVerifier::new(f.store.clone(), f.hasher.clone(), VerifierConfig::default())
        .verify(&key, at(1))
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = f
        .keys
        .create(
            f.user.id,
            Label::parse("x").unwrap(),
            KeyEnvironment::Live,
            None,
            at(1),
        )
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    for e in [
        hasher.hash("short").unwrap_err(),
        hasher
            .verify(password, &PasswordHash::new("$argon2id$garbage").unwrap())
            .unwrap_err(),
    ] {
        shown.push(format!("{e} {e:?}"));
    }
    shown.push(format!("{:?}", hasher.verify(password, &phc).unwrap()));
    let throttled = LoginThrottle::new(ThrottleConfig::default());
    shown.push(format!("{throttled:?}"));

    for s in &shown {
        for (what, needle) in [
            ("key", key.as_str()),
            ("secret", secret.as_str()),
            ("digest", digest_hex.as_str()),
            ("pepper", pepper_text.as_str()),
            ("password", password),
            ("password hash", phc_hash_part.as_str()),
            ("password hash", phc.expose()),
        ] {
            assert!(!s.contains(needle), "{what} leaked in: {s}");
        }
        assert!(
            !s.contains(&secret[..12]),
            "part of the secret leaked in: {s}"
        );
    }
}

/// No session secret (token, its secret part, its digest, the CSRF secret, the CSRF token)
/// appears in any error message or `Debug` output of the session service and its values.
#[tokio::test]
async fn no_session_secret_in_errors_or_debug() {
    let f = Fixture::new().await;
    let csrf_secret = b"session CSRF secret: 32 bytes or more, never logged";
    let sessions = SessionService::new(
        f.store.clone(),
        f.hasher.clone(),
        Pepper::new(csrf_secret.to_vec()).unwrap(),
        SessionConfig::default(),
    );
    let issued = sessions.issue(&f.user, at(0)).await.unwrap();
    let token = issued.token.expose().to_owned();
    let secret = token[SESSION_TOKEN_LEN - 43..].to_owned();
    let digest = f.hasher.digest(&secret);
    assert_eq!(
        digest, issued.session.secret_hash,
        "the secret part is what is digested"
    );
    let digest_hex: String = digest.0.iter().map(|b| format!("{b:02x}")).collect();
    let digest_bytes = format!("{:?}", digest.0);
    let csrf_text = String::from_utf8(csrf_secret.to_vec()).unwrap();
    let csrf_token = issued.csrf_token.clone();

    let mut shown = vec![
        format!("{issued:?}"),
        format!("{:?}", issued.token),
        format!("{:?}", issued.session),
        format!("{sessions:?}"),
        format!("{:?}", SessionConfig::default()),
        format!("{:?}", Pepper::new(csrf_secret.to_vec()).unwrap()),
    ];
    let verified = sessions.verify(&token, at(1)).await.unwrap();
    shown.push(format!("{verified:?}"));
    let auth = f
        .store
        .find_session_for_auth(verified.session_id)
        .await
        .unwrap()
        .unwrap();
    shown.push(format!("{auth:?}"));
    let wrong_secret = format!("{}{}", &token[..SESSION_TOKEN_LEN - 43], "B".repeat(43));
    for bad in [
        wrong_secret.as_str(),
        &token[..40],
        &format!("{token}x"),
        &token.to_ascii_uppercase(),
    ] {
        let e = sessions.verify(bad, at(1)).await.unwrap_err();
        shown.push(format!("{e} {e:?}"));
    }
    let e = sessions
        .revoke(UserId::new(), verified.session_id, at(1))
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));
    f.test_store.down.store(true, Ordering::SeqCst);
    let e = sessions.verify(&token, at(1)).await.unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = sessions.issue(&f.user, at(1)).await.unwrap_err();
    shown.push(format!("{e} {e:?}"));

    for s in &shown {
        for (what, needle) in [
            ("token", token.as_str()),
            ("secret", secret.as_str()),
            ("digest", digest_hex.as_str()),
            ("digest", digest_bytes.as_str()),
            ("CSRF secret", csrf_text.as_str()),
            ("CSRF token", csrf_token.as_str()),
        ] {
            assert!(!s.contains(needle), "{what} leaked in: {s}");
        }
        assert!(
            !s.contains(&secret[..12]),
            "part of the secret leaked in: {s}"
        );
    }
}

#[tokio::test]
async fn active_keys_are_capped_per_owner_even_under_concurrent_creation() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let hasher = Arc::new(KeyHasher::new(Pepper::new(PEPPER.to_vec()).unwrap()));
    let config = KeyServiceConfig {
        max_active_keys: 3,
        ..KeyServiceConfig::default()
    };
    let service = ApiKeyService::new(store.clone(), hasher, config);
    let user = new_user(&store).await;
    let create = |service: ApiKeyService, owner: UserId| async move {
        service
            .create(
                owner,
                Label::parse("k").unwrap(),
                KeyEnvironment::Live,
                None,
                at(0),
            )
            .await
    };
    // Ten concurrent creations: exactly the cap succeeds, the rest name it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        tasks.spawn(create(service.clone(), user.id));
    }
    let mut created = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(k) => created.push(k),
            Err(KeyError::TooManyKeys { max }) => assert_eq!(max, 3),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(created.len(), 3);
    assert_eq!(store.list_api_keys(user.id).await.unwrap().len(), 3);
    let e = create(service.clone(), user.id).await.unwrap_err();
    assert!(e.to_string().contains("at most 3"), "{e}");

    // Another owner is not affected by this one's keys.
    let other = new_user(&store).await;
    assert!(create(service.clone(), other.id).await.is_ok());

    // A rotation at the cap replaces its key, so it is allowed (the old key is in grace);
    // a second rotation of another key then counts the one still in grace.
    let r = service
        .rotate(user.id, created[0].summary.id, None, at(1))
        .await
        .unwrap();
    assert!(matches!(
        service
            .rotate(user.id, created[1].summary.id, None, at(1))
            .await,
        Err(KeyError::TooManyKeys { max: 3 })
    ));
    // Revoking frees a slot.
    service
        .revoke(user.id, r.new_key.summary.id, at(2))
        .await
        .unwrap();
    service
        .revoke(user.id, created[0].summary.id, at(2))
        .await
        .unwrap();
    assert!(create(service.clone(), user.id).await.is_ok());
}
