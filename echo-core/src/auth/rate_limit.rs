//! Per-account rate limits: a keyed GCRA with per-tier quotas, and the values of the
//! `Retry-After`, `RateLimit-Policy` and `RateLimit` response headers.
//!
//! # Algorithm
//! GCRA (the generic cell rate algorithm) keeps one number per key, the theoretical arrival
//! time (TAT). With emission interval T = window / quota and tolerance τ = T × (burst − 1), a
//! request at `now` is allowed iff `now ≥ TAT − τ`, and then `TAT = max(TAT, now) + T`. So a
//! fresh key may send `burst` requests at once, then one per T; in any interval of one window
//! at most `burst + quota` requests pass.
//!
//! # Why not `governor`
//! `governor` (already used by the runner for provider calls) implements the same algorithm,
//! but its keyed limiter has one quota for every key (no per-tier quota; upstream issue #193),
//! does not expose the TAT needed for the `RateLimit` header's `t`, and reads its own clock.
//! This module is about 150 lines, takes `now` as an argument (deterministic tests) and keeps
//! state in sharded `Mutex<HashMap>`s pruned of idle keys.
//!
//! # Headers
//! Values follow draft-ietf-httpapi-ratelimit-headers-11 (May 2026, §3 and §4), structured
//! fields lists of items named by policy:
//!
//! ```text
//! RateLimit-Policy: "default";q=100;w=60
//! RateLimit: "default";r=42;t=17
//! ```
//!
//! `q` is the quota per window of `w` seconds; `r` the requests available now; `t` the
//! seconds until the full quota is available again (when `r = 0`, until the next request is
//! allowed, equal to `Retry-After`, which §6 asks not to point earlier than the window's end).
//! A refusal (429, RFC 6585) carries `Retry-After` (RFC 9110 §10.2.3) in whole seconds,
//! rounded up.
//!
//! # Replicas
//! The limiter lives in one process. With N replicas behind a round-robin load balancer a key
//! gets up to N times its quota. Either configure each replica with quota ÷ N (exact under
//! even balancing), or route by API key (sticky, consistent hashing) so each key's traffic
//! meets one limiter. A limiter shared through the store (one atomic `INSERT … ON CONFLICT DO
//! UPDATE … RETURNING` per check on PostgreSQL) is future work.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::model::{PricingTier, UserId};

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SHARDS: usize = 16;

/// A quota was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// Quota, burst or window is zero.
    #[error("rate limit quota, burst and window must be positive")]
    Zero,
    /// The window is not a whole number of seconds (the headers cannot express it).
    #[error("rate limit window must be a whole number of seconds")]
    FractionalWindow,
}

/// `quota` requests per `window`, with bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    quota: NonZeroU32,
    window_secs: NonZeroU32,
    burst: NonZeroU32,
}

impl Quota {
    /// `quota` requests per `window` (whole seconds), burst = quota.
    pub fn new(quota: u32, window: Duration) -> Result<Self, QuotaError> {
        if window.subsec_nanos() != 0 {
            return Err(QuotaError::FractionalWindow);
        }
        let window_secs = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
        let quota = NonZeroU32::new(quota).ok_or(QuotaError::Zero)?;
        Ok(Self {
            quota,
            window_secs: NonZeroU32::new(window_secs).ok_or(QuotaError::Zero)?,
            burst: quota,
        })
    }

    /// `quota` requests per minute, burst = quota.
    pub fn per_minute(quota: u32) -> Result<Self, QuotaError> {
        Self::new(quota, Duration::from_secs(60))
    }

    /// The same rate with a different burst.
    pub fn with_burst(self, burst: u32) -> Result<Self, QuotaError> {
        Ok(Self {
            burst: NonZeroU32::new(burst).ok_or(QuotaError::Zero)?,
            ..self
        })
    }

    /// Requests per window.
    pub fn quota(&self) -> u32 {
        self.quota.get()
    }

    /// The window in seconds.
    pub fn window_secs(&self) -> u32 {
        self.window_secs.get()
    }

    /// The largest burst.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    fn emission_ns(&self) -> u64 {
        (u64::from(self.window_secs.get()) * NANOS_PER_SEC / u64::from(self.quota.get())).max(1)
    }

    fn tolerance_ns(&self) -> u64 {
        self.emission_ns()
            .saturating_mul(u64::from(self.burst.get() - 1))
    }
}

/// One quota per pricing tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierQuotas {
    /// Free tier.
    pub free: Quota,
    /// Pro tier.
    pub pro: Quota,
    /// Enterprise tier.
    pub enterprise: Quota,
}

impl TierQuotas {
    /// The same quota for every tier.
    pub fn uniform(quota: Quota) -> Self {
        Self {
            free: quota,
            pro: quota,
            enterprise: quota,
        }
    }

    /// The quota of `tier`.
    pub fn for_tier(&self, tier: PricingTier) -> Quota {
        match tier {
            PricingTier::Free => self.free,
            PricingTier::Pro => self.pro,
            PricingTier::Enterprise => self.enterprise,
        }
    }
}

/// The limits [`ApiRateLimiter`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Every authenticated request. Default per minute: free 60, pro 600, enterprise 3,000.
    pub general: TierQuotas,
    /// Experiment creation (which spends provider money), on top of the general limit.
    /// Default 10 per minute for every tier.
    pub experiment_creation: TierQuotas,
    /// Keys tracked per limit; past it, new keys pass untracked (fail open) until idle keys
    /// are pruned. Default 100,000.
    pub max_tracked_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let q = |n: u32| Quota {
            quota: nonzero(n),
            window_secs: nonzero(60),
            burst: nonzero(n),
        };
        Self {
            general: TierQuotas {
                free: q(60),
                pro: q(600),
                enterprise: q(3_000),
            },
            experiment_creation: TierQuotas::uniform(q(10)),
            max_tracked_keys: 100_000,
        }
    }
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Every request (policy name `default`).
    General,
    /// Experiment creation (policy name `experiments`).
    ExperimentCreation,
}

impl LimitKind {
    /// The policy name used in the headers.
    pub const fn policy_name(self) -> &'static str {
        match self {
            LimitKind::General => "default",
            LimitKind::ExperimentCreation => "experiments",
        }
    }
}

/// The outcome of one check, with everything the response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Policy name (`default`, `experiments`).
    pub policy: &'static str,
    /// `q`: requests per window.
    pub quota: u32,
    /// `w`: window in seconds.
    pub window_secs: u32,
    /// `r`: requests available now (after this one, if allowed).
    pub remaining: u32,
    /// `t`: seconds until the full quota is available again; when `remaining` is 0, until the
    /// next request is allowed.
    pub reset_secs: u64,
    /// `Retry-After` seconds, on refusals only (at least 1).
    pub retry_after_secs: Option<u64>,
}

impl RateLimitDecision {
    /// The `RateLimit-Policy` list item, e.g. `"default";q=100;w=60`.
    pub fn policy_item(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy, self.quota, self.window_secs
        )
    }

    /// The `RateLimit` list item, e.g. `"default";r=42;t=17`.
    pub fn limit_item(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.policy, self.remaining, self.reset_secs
        )
    }

    /// `Retry-After` as a duration, on refusals.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs.map(Duration::from_secs)
    }

    /// The `RateLimit-Policy` and `RateLimit` header values for several decisions made for
    /// one request (e.g. the general and the experiment-creation limit), as structured-field
    /// lists.
    pub fn header_values(decisions: &[RateLimitDecision]) -> (String, String) {
        let mut policy = String::new();
        let mut limit = String::new();
        for (i, d) in decisions.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(policy, "{sep}{}", d.policy_item());
            let _ = write!(limit, "{sep}{}", d.limit_item());
        }
        (policy, limit)
    }
}

/// A keyed GCRA limiter: one TAT per key, in sharded maps. The quota is given per check, so
/// keys of different tiers share one limiter.
#[derive(Debug)]
pub struct KeyedGcra<K> {
    epoch: Instant,
    shard_hasher: RandomState,
    shards: [Mutex<HashMap<K, u64>>; SHARDS],
    max_per_shard: usize,
}

impl<K: Hash + Eq + Clone> KeyedGcra<K> {
    /// An empty limiter tracking about `max_keys` keys at most.
    pub fn new(max_keys: usize) -> Self {
        Self {
            epoch: Instant::now(),
            shard_hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, u64>> {
        let i = (self.shard_hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Checks (and on success records) one request of `key` under `quota` at `now`.
    pub fn check(
        &self,
        key: &K,
        quota: &Quota,
        kind: LimitKind,
        now: Instant,
    ) -> RateLimitDecision {
        let now_ns = self.nanos(now);
        let mut shard = self.shard(key);
        let tat = shard.get(key).copied().unwrap_or(now_ns).max(now_ns);
        if let Some(refused) = refusal(quota, kind, tat, now_ns) {
            return refused;
        }
        let new_tat = tat.saturating_add(quota.emission_ns());
        if !shard.contains_key(key) && shard.len() >= self.max_per_shard {
            shard.retain(|_, tat| *tat > now_ns);
        }
        if shard.contains_key(key) || shard.len() < self.max_per_shard {
            shard.insert(key.clone(), new_tat);
        }
        admitted(quota, kind, new_tat, now_ns)
    }

    /// Whether `key` would be allowed one more request under `quota` at `now`, without
    /// recording one. For limits that count only some outcomes (failed authentications):
    /// peek before the work, [`KeyedGcra::check`] when the outcome is to be counted.
    pub fn peek(&self, key: &K, quota: &Quota, kind: LimitKind, now: Instant) -> RateLimitDecision {
        let now_ns = self.nanos(now);
        let tat = self
            .shard(key)
            .get(key)
            .copied()
            .unwrap_or(now_ns)
            .max(now_ns);
        refusal(quota, kind, tat, now_ns).unwrap_or_else(|| admitted(quota, kind, tat, now_ns))
    }

    /// Drops keys whose quota is fully restored at `now` (they behave as new keys). Call it
    /// periodically (e.g. every minute) to bound memory.
    pub fn prune(&self, now: Instant) {
        let now_ns = self.nanos(now);
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, tat| *tat > now_ns);
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The refusal at `now_ns` for a key whose TAT is `tat`, or `None` when a request may pass.
fn refusal(quota: &Quota, kind: LimitKind, tat: u64, now_ns: u64) -> Option<RateLimitDecision> {
    let earliest = tat.saturating_sub(quota.tolerance_ns());
    (now_ns < earliest).then(|| {
        let retry = ceil_secs(earliest - now_ns).max(1);
        RateLimitDecision {
            allowed: false,
            policy: kind.policy_name(),
            quota: quota.quota(),
            window_secs: quota.window_secs(),
            remaining: 0,
            reset_secs: retry,
            retry_after_secs: Some(retry),
        }
    })
}

/// An admission at `now_ns` that leaves the key's TAT at `tat`.
fn admitted(quota: &Quota, kind: LimitKind, tat: u64, now_ns: u64) -> RateLimitDecision {
    let slack = (now_ns + quota.tolerance_ns()).checked_sub(tat);
    let remaining = slack
        .map_or(0, |s| s / quota.emission_ns() + 1)
        .min(u64::from(quota.burst()));
    RateLimitDecision {
        allowed: true,
        policy: kind.policy_name(),
        quota: quota.quota(),
        window_secs: quota.window_secs(),
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset_secs: ceil_secs(tat.saturating_sub(now_ns)),
        retry_after_secs: None,
    }
}

/// `n` as a `NonZeroU32`, with 0 raised to 1 (for literals).
fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::MIN.saturating_add(n.saturating_sub(1))
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// The per-account limits of [`RateLimitConfig`]: a general limit for every request and a
/// separate one for experiment creation, each per pricing tier. Pure logic: the HTTP layer
/// maps a refusal to 429 with the headers.
///
/// Keyed by the account, never by the credential: every API key and session of one user
/// draws on one budget, so creating more keys (or logging in again) does not multiply it.
///
/// ```
/// use std::time::Instant;
/// use echo_core::auth::{ApiRateLimiter, LimitKind, RateLimitConfig};
/// use echo_core::model::{PricingTier, UserId};
///
/// let limiter = ApiRateLimiter::new(RateLimitConfig::default());
/// let key = UserId::new();
/// let now = Instant::now();
/// let d = limiter.check(key, PricingTier::Free, LimitKind::General, now);
/// assert!(d.allowed);
/// assert_eq!(d.policy_item(), r#""default";q=60;w=60"#);
/// assert_eq!(d.limit_item(), r#""default";r=59;t=1"#);
///
/// for _ in 0..10 {
///     assert!(limiter.check(key, PricingTier::Free, LimitKind::ExperimentCreation, now).allowed);
/// }
/// let refused = limiter.check(key, PricingTier::Free, LimitKind::ExperimentCreation, now);
/// assert!(!refused.allowed);
/// assert_eq!(refused.retry_after_secs, Some(6));
/// assert_eq!(refused.limit_item(), r#""experiments";r=0;t=6"#);
/// ```
#[derive(Debug)]
pub struct ApiRateLimiter {
    config: RateLimitConfig,
    general: KeyedGcra<UserId>,
    experiments: KeyedGcra<UserId>,
}

impl ApiRateLimiter {
    /// A limiter with `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            general: KeyedGcra::new(config.max_tracked_keys),
            experiments: KeyedGcra::new(config.max_tracked_keys),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Checks one request of the account `key` (on `tier`) against the `kind` limit at
    /// `now`. For experiment creation check [`LimitKind::General`] first, and the creation
    /// limit only if that passed.
    pub fn check(
        &self,
        key: UserId,
        tier: PricingTier,
        kind: LimitKind,
        now: Instant,
    ) -> RateLimitDecision {
        let (limiter, quotas) = match kind {
            LimitKind::General => (&self.general, &self.config.general),
            LimitKind::ExperimentCreation => (&self.experiments, &self.config.experiment_creation),
        };
        limiter.check(&key, &quotas.for_tier(tier), kind, now)
    }

    /// Drops idle keys; call it periodically.
    pub fn prune(&self, now: Instant) {
        self.general.prune(now);
        self.experiments.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn quota_validation() {
        assert_eq!(Quota::new(0, secs(60)), Err(QuotaError::Zero));
        assert_eq!(Quota::new(1, secs(0)), Err(QuotaError::Zero));
        assert_eq!(
            Quota::new(1, Duration::from_millis(1500)),
            Err(QuotaError::FractionalWindow)
        );
        assert_eq!(
            Quota::per_minute(1).unwrap().with_burst(0),
            Err(QuotaError::Zero)
        );
    }

    #[test]
    fn burst_then_steady_rate_and_headers() {
        let l = KeyedGcra::new(100);
        let q = Quota::new(100, secs(60)).unwrap();
        let t0 = Instant::now();
        for i in 0..100u32 {
            let d = l.check(&1, &q, LimitKind::General, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 99 - i);
        }
        let d = l.check(&1, &q, LimitKind::General, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(1)); // T = 0.6 s, rounded up
        assert_eq!(d.limit_item(), "\"default\";r=0;t=1");
        assert_eq!(d.policy_item(), "\"default\";q=100;w=60");
        // One emission interval later, one more.
        let t1 = t0 + Duration::from_millis(600);
        let d = l.check(&1, &q, LimitKind::General, t1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_secs, 60);
        assert!(!l.check(&1, &q, LimitKind::General, t1).allowed);
        // Fully restored after a window; pruning then forgets the key.
        let later = t1 + secs(60);
        l.prune(later);
        assert!(l.is_empty());
        let d = l.check(&1, &q, LimitKind::General, later);
        assert_eq!((d.allowed, d.remaining), (true, 99));
    }

    #[test]
    fn headers_example() {
        let l = KeyedGcra::new(100);
        let q = Quota::new(100, secs(60)).unwrap();
        let t0 = Instant::now();
        for _ in 0..57 {
            l.check(&7, &q, LimitKind::General, t0);
        }
        // 58 used at once: 42 left; full again after 58 × 0.6 s = 34.8 s → 35.
        let d = l.check(&7, &q, LimitKind::General, t0 + Duration::from_millis(1));
        assert_eq!(d.limit_item(), "\"default\";r=42;t=35");
        let (policy, limit) = RateLimitDecision::header_values(&[
            d,
            l.check(
                &8,
                &Quota::per_minute(10).unwrap(),
                LimitKind::ExperimentCreation,
                t0,
            ),
        ]);
        assert_eq!(policy, "\"default\";q=100;w=60, \"experiments\";q=10;w=60");
        assert_eq!(limit, "\"default\";r=42;t=35, \"experiments\";r=9;t=6");
    }

    #[test]
    fn tiers_and_kinds_are_separate() {
        let l = ApiRateLimiter::new(RateLimitConfig::default());
        let k = UserId::new();
        let now = Instant::now();
        for _ in 0..10 {
            assert!(
                l.check(k, PricingTier::Pro, LimitKind::ExperimentCreation, now)
                    .allowed
            );
        }
        assert!(
            !l.check(k, PricingTier::Pro, LimitKind::ExperimentCreation, now)
                .allowed
        );
        let d = l.check(k, PricingTier::Pro, LimitKind::General, now);
        assert!(d.allowed);
        assert_eq!((d.quota, d.remaining), (600, 599));
        assert!(
            l.check(
                UserId::new(),
                PricingTier::Pro,
                LimitKind::ExperimentCreation,
                now
            )
            .allowed
        );
        let custom = RateLimitConfig {
            experiment_creation: TierQuotas {
                enterprise: Quota::per_minute(100).unwrap(),
                ..RateLimitConfig::default().experiment_creation
            },
            ..RateLimitConfig::default()
        };
        let l = ApiRateLimiter::new(custom);
        let d = l.check(
            k,
            PricingTier::Enterprise,
            LimitKind::ExperimentCreation,
            now,
        );
        assert_eq!(d.quota, 100);
    }

    #[test]
    fn peek_never_records() {
        let l = KeyedGcra::new(10);
        let q = Quota::per_minute(3).unwrap();
        let now = Instant::now();
        for _ in 0..10 {
            let d = l.peek(&1, &q, LimitKind::General, now);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3);
        }
        for _ in 0..3 {
            assert!(l.check(&1, &q, LimitKind::General, now).allowed);
        }
        let d = l.peek(&1, &q, LimitKind::General, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, Some(20));
        assert!(l.peek(&2, &q, LimitKind::General, now).allowed);
        assert!(
            l.peek(&1, &q, LimitKind::General, now + secs(20)).allowed,
            "one request back after one emission interval"
        );
    }

    #[test]
    fn bounded_fails_open() {
        let l = KeyedGcra::new(SHARDS); // one key per shard
        let q = Quota::per_minute(1).unwrap();
        let now = Instant::now();
        for k in 0..1000 {
            assert!(l.check(&k, &q, LimitKind::General, now).allowed);
        }
        assert!(l.len() <= SHARDS);
    }

    proptest! {
        /// In every interval of one window, admitted ≤ burst + quota; every refusal carries
        /// a Retry-After of at least one second that equals `t`, and `r = 0`.
        #[test]
        fn admitted_never_exceeds_quota_plus_burst(
            quota in 1u32..20,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..3_000, 1..300),
        ) {
            let q = Quota::new(quota, secs(10)).unwrap().with_burst(burst).unwrap();
            let l = KeyedGcra::new(10);
            let t0 = Instant::now();
            let mut at = 0u64;
            let mut admitted = Vec::new();
            for g in gaps {
                at += g;
                let d = l.check(&0, &q, LimitKind::General, t0 + Duration::from_millis(at));
                if d.allowed {
                    admitted.push(at);
                    prop_assert!(d.remaining < burst);
                } else {
                    prop_assert_eq!(d.remaining, 0);
                    let retry = d.retry_after_secs.unwrap();
                    prop_assert!(retry >= 1);
                    prop_assert_eq!(retry, d.reset_secs);
                }
            }
            let window_ms = 10_000;
            let mut lo = 0;
            for hi in 0..admitted.len() {
                while admitted[hi] - admitted[lo] >= window_ms {
                    lo += 1;
                }
                prop_assert!((hi - lo + 1) as u32 <= quota + burst);
            }
        }
    }
}
