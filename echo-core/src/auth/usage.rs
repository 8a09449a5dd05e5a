//! Coalesced `last_used_at` writes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::model::{ApiKeyId, Timestamp};

/// Collects key uses and hands them out in batches, queuing **at most one use per key per
/// interval** (default one minute), so a key used 1,000 times a second costs one write a
/// minute instead of 1,000 a second. Per process: each replica coalesces its own uses.
///
/// Memory is bounded by `max_tracked` keys; past it, uses of new keys are dropped (the column
/// is advisory, "about a minute stale" by contract).
#[derive(Debug)]
pub struct LastUsedCoalescer {
    interval: time::Duration,
    max_tracked: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    // When each key's use was last queued; entries older than the interval are pruned.
    last_queued: HashMap<ApiKeyId, Timestamp>,
    // Uses not yet written.
    pending: HashMap<ApiKeyId, Timestamp>,
}

impl LastUsedCoalescer {
    /// Queues at most one use per key per `interval`, tracking at most `max_tracked` keys.
    pub fn new(interval: Duration, max_tracked: usize) -> Self {
        Self {
            interval: time::Duration::try_from(interval).unwrap_or(time::Duration::MAX),
            max_tracked,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a use of `key` at `now`; returns whether it was queued for writing.
    pub fn record(&self, key: ApiKeyId, now: Timestamp) -> bool {
        let mut s = self.lock();
        if let Some(prev) = s.last_queued.get(&key)
            && now - *prev < self.interval
        {
            return false;
        }
        if s.last_queued.len() >= self.max_tracked && !s.last_queued.contains_key(&key) {
            return false;
        }
        s.last_queued.insert(key, now);
        s.pending.insert(key, now);
        true
    }

    /// Takes every queued use (in no particular order) and forgets keys whose last
    /// queued use is an interval or more before `now` (their next use queues again anyway).
    pub fn take(&self, now: Timestamp) -> Vec<(ApiKeyId, Timestamp)> {
        let mut s = self.lock();
        let interval = self.interval;
        s.last_queued.retain(|_, t| now - *t < interval);
        s.pending.drain().collect()
    }

    /// Puts back uses whose write failed, keeping the later time where a key was used again
    /// meanwhile.
    pub fn restore(&self, uses: Vec<(ApiKeyId, Timestamp)>) {
        let mut s = self.lock();
        for (key, at) in uses {
            let slot = s.pending.entry(key).or_insert(at);
            if *slot < at {
                *slot = at;
            }
        }
    }

    /// How many uses wait to be written.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(secs * 1_000_000).unwrap()
    }

    #[test]
    fn one_use_per_key_per_minute() {
        let c = LastUsedCoalescer::new(Duration::from_secs(60), 100);
        let k = ApiKeyId::new();
        assert!(c.record(k, at(0)));
        for s in 1..60 {
            assert!(!c.record(k, at(s)));
        }
        assert!(c.record(k, at(60)));
        assert_eq!(c.take(at(60)), vec![(k, at(60))]);
        assert!(c.take(at(61)).is_empty());
    }

    #[test]
    fn restore_keeps_latest_and_take_prunes() {
        let c = LastUsedCoalescer::new(Duration::from_secs(60), 100);
        let k = ApiKeyId::new();
        c.record(k, at(0));
        let batch = c.take(at(0));
        assert!(c.record(k, at(70)));
        c.restore(batch);
        assert_eq!(c.take(at(70)), vec![(k, at(70))]);
        c.take(at(200));
        assert!(c.lock().last_queued.is_empty());
    }

    #[test]
    fn bounded() {
        let c = LastUsedCoalescer::new(Duration::from_secs(60), 2);
        assert!(c.record(ApiKeyId::new(), at(0)));
        assert!(c.record(ApiKeyId::new(), at(0)));
        assert!(!c.record(ApiKeyId::new(), at(0)));
        assert_eq!(c.pending(), 2);
    }
}
