//! Login throttling: exponential backoff after repeated failures, per (account, client IP),
//! per account across all addresses (a higher ceiling), and per client IP across accounts.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Backoff for one dimension (account and IP, account, or IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones; it doubles with each further failure.
    pub base_delay: Duration,
    /// Cap on the delay.
    pub max_delay: Duration,
}

impl BackoffPolicy {
    /// How long after the last failure the next attempt is refused, given `failures` so far.
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.free_failures).filter(|&n| n > 0) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Settings of [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Per account (email) from one client IP: 5 free failures, then 1 s doubling to 15 min.
    /// Keyed by the pair, so a stranger guessing from one address does not lock the owner
    /// out of logging in from another.
    pub account_ip: BackoffPolicy,
    /// Per account across all addresses, the ceiling against guessing spread over many
    /// addresses: 50 free failures, then 1 s doubling to 15 min. Reaching it does lock the
    /// owner out too, which is the price of bounding a distributed guess.
    pub account: BackoffPolicy,
    /// Per client IP (IPv6 per /64): 20 free failures (offices and NATs share addresses),
    /// then 1 s doubling to 15 min.
    pub ip: BackoffPolicy,
    /// A counter with no failure for this long is forgotten. Default 1 hour.
    pub forget_after: Duration,
    /// Most counters kept per dimension; past it the longest-quiet counter is dropped.
    /// Default 100,000.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_ip: BackoffPolicy {
                free_failures: 5,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(15 * 60),
            },
            account: BackoffPolicy {
                free_failures: 50,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(15 * 60),
            },
            ip: BackoffPolicy {
                free_failures: 20,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(15 * 60),
            },
            forget_after: Duration::from_secs(3600),
            max_entries: 100_000,
        }
    }
}

/// A login attempt refused before the password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; retry later")]
pub struct Throttled {
    /// When to retry (send as `Retry-After`, rounded up to whole seconds).
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last_failure: Instant,
}

#[derive(Debug)]
struct Table<K> {
    counters: Mutex<HashMap<K, Counter>>,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new() -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Counter>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self, key: K, policy: &BackoffPolicy, forget: Duration, now: Instant) -> Duration {
        let Some(c) = self.lock().get(&key).copied() else {
            return Duration::ZERO;
        };
        if now.saturating_duration_since(c.last_failure) >= forget {
            return Duration::ZERO;
        }
        (c.last_failure + policy.delay(c.failures)).saturating_duration_since(now)
    }

    fn fail(&self, key: K, config: &ThrottleConfig, now: Instant) {
        let mut counters = self.lock();
        if counters.len() >= config.max_entries && !counters.contains_key(&key) {
            counters
                .retain(|_, c| now.saturating_duration_since(c.last_failure) < config.forget_after);
            if counters.len() >= config.max_entries {
                let oldest = counters
                    .iter()
                    .min_by_key(|(_, c)| c.last_failure)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    counters.remove(&k);
                }
            }
        }
        let c = counters.entry(key).or_insert(Counter {
            failures: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(c.last_failure) >= config.forget_after {
            c.failures = 0;
        }
        c.failures = c.failures.saturating_add(1);
        c.last_failure = now;
    }

    fn prune(&self, forget: Duration, now: Instant) {
        self.lock()
            .retain(|_, c| now.saturating_duration_since(c.last_failure) < forget);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Slows down password guessing: after repeated failures for an account from one IP, for an
/// account from anywhere (a higher ceiling), or from one IP for any accounts, further
/// attempts are refused for an exponentially growing delay.
///
/// In memory and **per replica**: with N replicas behind a load balancer an attacker gets up
/// to N times the attempts (use sticky routing by client IP, or a shared store-backed
/// throttle, for a strict bound). Bounded by [`ThrottleConfig::max_entries`] per dimension.
/// Accounts are kept as keyed 64-bit hashes, so no email address sits in the table.
///
/// Usage at login: [`LoginThrottle::check`] before touching the password (answer 429 with
/// `Retry-After` when throttled), then [`LoginThrottle::record_failure`] or
/// [`LoginThrottle::record_success`]. Record unknown emails as failures too, so the throttle
/// does not reveal which accounts exist. The IP is the client's address as the server
/// determines it (the peer, or a trusted proxy's `X-Forwarded-For`).
///
/// ```
/// use std::net::IpAddr;
/// use std::time::Instant;
/// use echo_core::auth::{LoginThrottle, ThrottleConfig};
///
/// let throttle = LoginThrottle::new(ThrottleConfig::default());
/// let stranger: IpAddr = "203.0.113.7".parse()?;
/// let owner: IpAddr = "198.51.100.20".parse()?;
/// let now = Instant::now();
/// for _ in 0..6 {
///     throttle.check("ada@example.com", stranger, now)?;
///     throttle.record_failure("ada@example.com", stranger, now);
/// }
/// assert!(throttle.check("ada@example.com", stranger, now).is_err());
/// // The owner, elsewhere, is not locked out by the stranger's guesses.
/// assert!(throttle.check("ada@example.com", owner, now).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    account_keys: RandomState,
    pairs: Table<(u64, IpAddr)>,
    accounts: Table<u64>,
    ips: Table<IpAddr>,
}

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            account_keys: RandomState::new(),
            pairs: Table::new(),
            accounts: Table::new(),
            ips: Table::new(),
        }
    }

    fn account_key(&self, account: &str) -> u64 {
        self.account_keys.hash_one(account)
    }

    /// Whether an attempt for `account` (the normalised email) from `ip` may proceed at `now`.
    pub fn check(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let forget = self.config.forget_after;
        let key = self.account_key(account);
        let wait = self
            .pairs
            .wait(
                (key, address_block(ip)),
                &self.config.account_ip,
                forget,
                now,
            )
            .max(self.accounts.wait(key, &self.config.account, forget, now))
            .max(
                self.ips
                    .wait(address_block(ip), &self.config.ip, forget, now),
            );
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Throttled { retry_after: wait })
        }
    }

    /// Counts a failed attempt (wrong password or unknown account).
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Instant) {
        let key = self.account_key(account);
        self.pairs.fail((key, address_block(ip)), &self.config, now);
        self.accounts.fail(key, &self.config, now);
        self.ips.fail(address_block(ip), &self.config, now);
    }

    /// Clears the account's counters for `ip` and across addresses after a successful login
    /// from `ip`. Other addresses' counters for the account stay (the owner logging in does
    /// not forgive a stranger guessing elsewhere), and so does the IP counter: one valid
    /// account must not reset the throttle of an address guessing others.
    pub fn record_success(&self, account: &str, ip: IpAddr) {
        let key = self.account_key(account);
        self.pairs.lock().remove(&(key, address_block(ip)));
        self.accounts.lock().remove(&key);
    }

    /// Drops counters quiet for longer than [`ThrottleConfig::forget_after`]; call it now and
    /// then (e.g. every minute).
    pub fn prune(&self, now: Instant) {
        self.pairs.prune(self.config.forget_after, now);
        self.accounts.prune(self.config.forget_after, now);
        self.ips.prune(self.config.forget_after, now);
    }

    /// Counters held: (account and IP pairs, accounts, IPs).
    pub fn len(&self) -> (usize, usize, usize) {
        (self.pairs.len(), self.accounts.len(), self.ips.len())
    }
}

/// The key per-address limits should use: IPv4 addresses as they are; IPv6 by /64, the block
/// one subscriber usually holds (so rotating through a /64 does not escape a limit).
/// IPv4-mapped IPv6 counts as IPv4.
pub fn address_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = ThrottleConfig::default().account_ip;
        let d: Vec<u64> = (0..=20).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(&d[..9], &[0, 0, 0, 0, 0, 0, 1, 2, 4]);
        assert_eq!(p.delay(15).as_secs(), 512);
        assert_eq!(p.delay(16).as_secs(), 900);
        assert_eq!(p.delay(u32::MAX).as_secs(), 900);
    }

    #[test]
    fn account_backoff_and_success_reset() {
        let t = LoginThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        let a = ip("198.51.100.1");
        for i in 0..5 {
            assert!(t.check("ada", a, now).is_ok(), "attempt {i}");
            t.record_failure("ada", a, now);
        }
        assert!(t.check("ada", a, now).is_ok());
        t.record_failure("ada", a, now);
        assert_eq!(
            t.check("ada", a, now),
            Err(Throttled {
                retry_after: Duration::from_secs(1)
            })
        );
        // Other accounts from other IPs are unaffected.
        assert!(t.check("bob", ip("198.51.100.2"), now).is_ok());
        assert!(t.check("ada", a, now + Duration::from_secs(1)).is_ok());
        t.record_failure("ada", a, now + Duration::from_secs(1));
        assert_eq!(
            t.check("ada", a, now + Duration::from_secs(1))
                .unwrap_err()
                .retry_after,
            Duration::from_secs(2)
        );
        t.record_success("ada", a);
        assert!(t.check("ada", a, now + Duration::from_secs(1)).is_ok());
        // Forgotten after an hour of quiet.
        t.record_failure("cy", a, now);
        t.prune(now + Duration::from_secs(3600));
        assert_eq!(t.len(), (0, 0, 0));
    }

    #[test]
    fn ip_backoff_across_accounts_and_ipv6_prefix() {
        let t = LoginThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        for i in 0..21u32 {
            let v6 = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            t.record_failure(&format!("user{i}"), v6, now);
        }
        let err = t
            .check("someone-else", ip("2001:db8:1:2:ffff::1"), now)
            .unwrap_err();
        assert_eq!(err.retry_after, Duration::from_secs(1));
        assert!(t.check("someone-else", ip("2001:db8:1:3::1"), now).is_ok());
        assert_eq!(address_block(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn bounded() {
        let cfg = ThrottleConfig {
            max_entries: 3,
            ..ThrottleConfig::default()
        };
        let t = LoginThrottle::new(cfg);
        let now = Instant::now();
        for i in 0..10u64 {
            t.record_failure(
                &format!("u{i}"),
                ip("192.0.2.1"),
                now + Duration::from_secs(i),
            );
        }
        assert_eq!(t.len(), (3, 3, 1));
    }

    #[test]
    fn a_stranger_does_not_lock_the_owner_out_but_the_account_ceiling_holds() {
        let t = LoginThrottle::new(ThrottleConfig::default());
        let now = Instant::now();
        let stranger = ip("203.0.113.9");
        let owner = ip("198.51.100.20");
        for _ in 0..6 {
            t.record_failure("ada", stranger, now);
        }
        assert!(t.check("ada", stranger, now).is_err());
        assert!(t.check("ada", owner, now).is_ok());
        // Guesses spread over addresses: each address stays under its 5, the account
        // reaches its ceiling of 50 and is throttled from everywhere.
        for i in 0..44u32 {
            t.record_failure("ada", ip(&format!("192.0.2.{}", i + 1)), now);
        }
        assert!(t.check("ada", owner, now).is_ok(), "50 failures are free");
        t.record_failure("ada", ip("192.0.2.200"), now);
        let err = t.check("ada", owner, now).unwrap_err();
        assert_eq!(err.retry_after, Duration::from_secs(1));
        assert!(t.check("bob", owner, now).is_ok());
        // The owner's success from their address lifts the ceiling, not the stranger's pair.
        t.record_success("ada", owner);
        assert!(t.check("ada", owner, now).is_ok());
        assert!(t.check("ada", stranger, now).is_err());
    }
}
