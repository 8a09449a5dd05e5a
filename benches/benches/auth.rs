//! Authentication benchmarks (issue: authentication core):
//! - `verify_sqlite_no_cache/keys/N`: `StoreKeyVerifier` without cache against SQLite holding
//!   N = 1,000 / 10,000 / 100,000 / 1,000,000 keys, presenting keys drawn uniformly from all
//!   seeded ones. Target: median < 20 µs at every size, 1M within 2x of 1k.
//!   Beside each size: `find_api_key_only` and `find_api_key_for_auth_only`, the store call a
//!   verification makes (the key with its owner's status, one round trip) and the plain key
//!   lookup.
//! - `verify_parts/…` at the largest size: `get_user` (what a verification used to add to the
//!   key lookup), the CPU path alone, and a cache hit.
//! - `old_design/keys/N` for N = 1,000 and 10,000: fetch the owner's keys and argon2id-hash the
//!   presented secret against each (OWASP parameters, per-key salt) until one matches. The
//!   target sits in the middle of the list, the average case. Non-target rows hold random
//!   digests (their hashing costs the same; only the target needs a real one).
//! - `password_verify`: argon2id at the default (OWASP) parameters.
//! - `rate_limit_check`: one keyed GCRA decision.
//!
//! Seeding goes through the store traits (`ApiKeyService::create`, one transaction per key) and
//! prints its rate. Set `AUTH_BENCH_MAX_KEYS` to stop at a smaller size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use echo_benches::user;
use echo_core::auth::*;
use echo_core::model::*;
use echo_core::store::DynStore;
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const KEYS_PER_USER: usize = 1_000;
const SAMPLE: usize = 1_000;

/// SplitMix64 for reservoir sampling and key picks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct Seeded {
    _dir: tempfile::TempDir,
    store: Arc<DynStore>,
    hasher: Arc<KeyHasher>,
    service: ApiKeyService,
    now: Timestamp,
    total: usize,
    owner: Option<UserId>,
    /// A uniform sample of all seeded keys (reservoir sampling).
    sample: Vec<String>,
    rng: Rng,
}

impl Seeded {
    fn open(rt: &Runtime) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<DynStore> = Arc::new(
            rt.block_on(SqliteStore::open(
                dir.path().join("auth.db"),
                SqliteConfig::default(),
            ))
            .unwrap(),
        );
        let hasher = Arc::new(KeyHasher::new(
            Pepper::new(b"benchmark pepper, at least thirty-two bytes".to_vec()).unwrap(),
        ));
        let service =
            ApiKeyService::new(store.clone(), hasher.clone(), KeyServiceConfig::default());
        Self {
            _dir: dir,
            store,
            hasher,
            service,
            now: Timestamp::now(),
            total: 0,
            owner: None,
            sample: Vec::with_capacity(SAMPLE),
            rng: Rng(0x5eed),
        }
    }

    /// Adds keys until `target` exist, through the store traits.
    fn grow_to(&mut self, rt: &Runtime, target: usize) {
        let started = Instant::now();
        let added = target - self.total;
        rt.block_on(async {
            let name = Label::parse("bench").unwrap();
            while self.total < target {
                if self.total.is_multiple_of(KEYS_PER_USER) {
                    let u = user(self.now);
                    self.store.create_user(&u).await.unwrap();
                    self.owner = Some(u.id);
                }
                let created = self
                    .service
                    .create(
                        self.owner.unwrap(),
                        name.clone(),
                        KeyEnvironment::Live,
                        None,
                        self.now,
                    )
                    .await
                    .unwrap();
                let key = created.key.expose().to_owned();
                self.total += 1;
                if self.sample.len() < SAMPLE {
                    self.sample.push(key);
                } else {
                    let j = (self.rng.next() % self.total as u64) as usize;
                    if j < SAMPLE {
                        self.sample[j] = key;
                    }
                }
            }
        });
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "seeded {added} keys (total {target}) in {secs:.1} s: {:.0} keys/s through ApiKeyStore::create_api_key",
            added as f64 / secs
        );
    }

    fn pick(&mut self) -> &str {
        let i = (self.rng.next() % self.sample.len() as u64) as usize;
        &self.sample[i]
    }
}

fn max_keys() -> usize {
    std::env::var("AUTH_BENCH_MAX_KEYS")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

fn verify_sqlite(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut seeded = Seeded::open(&rt);
    let mut group = c.benchmark_group("verify_sqlite_no_cache");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    for size in SIZES.into_iter().filter(|&s| s <= max_keys()) {
        seeded.grow_to(&rt, size);
        let verifier = StoreKeyVerifier::new(
            seeded.store.clone(),
            seeded.hasher.clone(),
            VerifierConfig::default(),
        );
        let now = seeded.now;
        group.bench_with_input(BenchmarkId::new("keys", size), &size, |b, _| {
            b.iter(|| {
                let key = seeded.pick().to_owned();
                rt.block_on(verifier.verify(&key, now)).unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("find_api_key_only", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let key = seeded.pick()[..PUBLIC_ID_LEN].to_owned();
                    rt.block_on(seeded.store.find_api_key(&key))
                        .unwrap()
                        .unwrap()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("find_api_key_for_auth_only", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let key = seeded.pick()[..PUBLIC_ID_LEN].to_owned();
                    rt.block_on(seeded.store.find_api_key_for_auth(&key))
                        .unwrap()
                        .unwrap()
                })
            },
        );
    }
    group.finish();

    // Where the time goes, at the largest size.
    let mut parts = c.benchmark_group("verify_parts");
    parts
        .sample_size(100)
        .measurement_time(Duration::from_secs(3));
    let owner = seeded.owner.unwrap();
    parts.bench_function("get_user", |b| {
        b.iter(|| rt.block_on(seeded.store.get_user(owner)).unwrap())
    });
    parts.bench_function("cpu_parse_hmac_compare", |b| {
        let key = seeded.sample[0].clone();
        let parsed = ApiKey::parse(&key).unwrap();
        let digest = seeded.hasher.digest(parsed.secret());
        b.iter(|| {
            let parsed = ApiKey::parse(black_box(&key)).unwrap();
            seeded
                .hasher
                .verify(parsed.secret(), Some(&digest))
                .matched()
        })
    });
    let cache = Arc::new(VerifiedKeyCache::new(CacheConfig {
        capacity: 10_000,
        ttl: Duration::from_secs(3600),
    }));
    let cached = StoreKeyVerifier::new(
        seeded.store.clone(),
        seeded.hasher.clone(),
        VerifierConfig::default(),
    )
    .with_cache(cache);
    let now = seeded.now;
    parts.bench_function("verify_cache_hit", |b| {
        b.iter(|| {
            let key = seeded.pick().to_owned();
            rt.block_on(cached.verify(&key, now)).unwrap()
        })
    });
    parts.finish();
}

/// argon2id with OWASP's parameters, as the old design used for every stored key.
fn owasp_argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, Some(32)).unwrap(),
    )
}

fn old_design(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<DynStore> = Arc::new(
        rt.block_on(SqliteStore::open(
            dir.path().join("old.db"),
            SqliteConfig::default(),
        ))
        .unwrap(),
    );
    let argon = owasp_argon2();
    let now = Timestamp::now();
    let mut group = c.benchmark_group("old_design");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for size in [1_000usize, 10_000] {
        // One owner holding every key: "fetch all active keys" is then the owner listing.
        let owner = user(now);
        rt.block_on(store.create_user(&owner)).unwrap();
        let mut rng = Rng(size as u64);
        let mut presented = String::new();
        rt.block_on(async {
            for i in 0..size {
                let key = ApiKey::generate(KeyEnvironment::Live).unwrap();
                let parsed = ApiKey::parse(key.expose()).unwrap();
                let mut digest = [0u8; 32];
                if i == size / 2 {
                    argon
                        .hash_password_into(
                            parsed.secret().as_bytes(),
                            parsed.public_id().as_bytes(),
                            &mut digest,
                        )
                        .unwrap();
                    presented = key.expose().to_owned();
                } else {
                    for chunk in digest.chunks_mut(8) {
                        chunk.copy_from_slice(&rng.next().to_le_bytes());
                    }
                }
                let record = ApiKeyRecord {
                    id: ApiKeyId::new(),
                    user_id: owner.id,
                    name: Label::parse("old").unwrap(),
                    public_id: parsed.public_id().to_owned(),
                    secret_hash: SecretDigest(digest),
                    is_active: true,
                    created_at: Timestamp::from_unix_micros(now.unix_micros() + i as i64).unwrap(),
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: None,
                };
                store.create_api_key(&record).await.unwrap();
            }
        });
        let old_verify = |key: &str| -> Option<(ApiKeyId, usize)> {
            let secret = ApiKey::parse(key).ok()?.secret();
            let keys = rt.block_on(store.list_api_keys(owner.id)).unwrap();
            let mut out = [0u8; 32];
            for (tried, record) in keys.iter().filter(|k| k.is_active).enumerate() {
                argon
                    .hash_password_into(secret.as_bytes(), record.public_id.as_bytes(), &mut out)
                    .unwrap();
                if out == record.secret_hash.0 {
                    return Some((record.id, tried + 1));
                }
            }
            None
        };
        let tried = std::cell::Cell::new(0);
        group.bench_with_input(BenchmarkId::new("keys", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    tried.set(black_box(old_verify(&presented).unwrap()).1);
                }
                started.elapsed()
            })
        });
        if tried.get() > 0 {
            eprintln!(
                "old design, {size} keys: the target is found after {} argon2id hashes",
                tried.get()
            );
        }
    }
    group.finish();
}

fn password(c: &mut Criterion) {
    let hasher = PasswordHasher::new(PasswordParams::default(), PasswordPolicy::default()).unwrap();
    let hash = hasher.hash("correct horse battery staple").unwrap();
    let mut group = c.benchmark_group("password");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("verify_argon2id_m19456_t2_p1", |b| {
        b.iter(|| {
            hasher
                .verify(black_box("correct horse battery staple"), &hash)
                .unwrap()
        })
    });
    group.bench_function("verify_dummy", |b| {
        b.iter(|| hasher.verify_dummy(black_box("no such account")))
    });
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let limiter = ApiRateLimiter::new(RateLimitConfig::default());
    let keys: Vec<UserId> = (0..10_000).map(|_| UserId::new()).collect();
    let mut i = 0usize;
    c.bench_function("rate_limit_check", |b| {
        b.iter(|| {
            i = (i + 7_919) % keys.len();
            limiter.check(
                keys[i],
                PricingTier::Pro,
                LimitKind::General,
                Instant::now(),
            )
        })
    });
}

criterion_group!(benches, verify_sqlite, password, rate_limit, old_design);
criterion_main!(benches);
