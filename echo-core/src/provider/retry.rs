//! Retries with exponential backoff and full jitter that honour `Retry-After`.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Completion, CompletionRequest, Provider, ProviderError};
use crate::model::ProviderKind;
use crate::rng::SplitMix64;

/// When and how long to retry retryable provider failures.
///
/// The wait before retry `n` (0-based) is drawn uniformly from `[0, min(max_delay, base_delay ·
/// 2ⁿ)]` ("full jitter", from AWS's *Exponential Backoff and Jitter*, 2015): clients that failed
/// together do not retry together. A `Retry-After` from the server is a floor on the wait; one
/// longer than `max_retry_after` ends the retries, since waiting that long inside one iteration
/// would stall the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` calls at most).
    pub max_retries: u32,
    /// Backoff scale.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
    /// Longest server-requested wait the policy will honour.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `retry` (0-based) after `error`, or `None` to give up.
    /// `unit` is a uniform draw in [0, 1) that supplies the jitter.
    pub fn delay(&self, retry: u32, error: &ProviderError, unit: f64) -> Option<Duration> {
        if retry >= self.max_retries || !error.is_retryable() {
            return None;
        }
        let cap = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.max_delay);
        let jittered = cap.mul_f64(unit.clamp(0.0, 1.0));
        match error {
            ProviderError::RateLimited {
                retry_after: Some(after),
                ..
            } => (*after <= self.max_retry_after).then(|| jittered.max(*after)),
            _ => Some(jittered),
        }
    }
}

/// Wraps a provider with a [`RetryPolicy`].
#[derive(Debug)]
pub struct Retrying<P> {
    inner: P,
    policy: RetryPolicy,
    rng: Mutex<SplitMix64>,
}

impl<P: Provider> Retrying<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            rng: Mutex::new(SplitMix64::from_entropy()),
        }
    }

    fn unit(&self) -> f64 {
        self.rng.lock().map(|mut r| r.next_f64()).unwrap_or(0.5)
    }
}

#[async_trait]
impl<P: Provider> Provider for Retrying<P> {
    fn kind(&self) -> ProviderKind {
        self.inner.kind()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let mut retry = 0;
        loop {
            match self.inner.complete(request).await {
                Ok(c) => return Ok(c),
                Err(e) => match self.policy.delay(retry, &e, self.unit()) {
                    Some(wait) => {
                        tracing::debug!(retry, ?wait, error = %e, "retrying provider call");
                        tokio::time::sleep(wait).await;
                        retry += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let transient = ProviderError::Transient {
            status: Some(503),
            message: "overloaded".into(),
        };
        assert_eq!(
            p.delay(0, &transient, 0.999_999).map(|d| d.as_millis()),
            Some(499)
        );
        assert_eq!(p.delay(3, &transient, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(10, &transient, 0.5), None);
        let limited = |s| ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
            message: String::new(),
        };
        assert_eq!(p.delay(0, &limited(7), 0.1), Some(Duration::from_secs(7)));
        assert_eq!(p.delay(0, &limited(600), 0.1), None);
        let permanent = ProviderError::Permanent {
            kind: super::super::PermanentKind::Authentication,
            status: Some(401),
            message: "bad key".into(),
        };
        assert_eq!(p.delay(0, &permanent, 0.1), None);
    }

    #[derive(Debug, Default)]
    struct Flaky(AtomicU32);

    #[async_trait]
    impl Provider for Flaky {
        fn kind(&self) -> ProviderKind {
            ProviderKind::Simulated
        }
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, ProviderError> {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(ProviderError::Transient {
                    status: Some(500),
                    message: "boom".into(),
                });
            }
            Ok(Completion {
                text: "ok".into(),
                model: "m".into(),
                input_tokens: 1,
                output_tokens: 1,
                latency: Duration::ZERO,
                finish_reason: super::super::FinishReason::Stop,
                citations: vec![],
            })
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let p = Retrying::new(Flaky::default(), policy);
        let req = CompletionRequest {
            prompt: "p".into(),
            model: "m".into(),
            temperature: 0.0,
            max_tokens: None,
            system_prompt: None,
            sample_index: 0,
        };
        assert_eq!(p.complete(&req).await.unwrap().text, "ok");
        assert_eq!(p.inner.0.load(Ordering::SeqCst), 3);
    }
}
