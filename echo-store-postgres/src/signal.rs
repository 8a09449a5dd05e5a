//! [`PgJobSignal`]: LISTEN/NOTIFY as the worker pool's wake-up.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use echo_core::runner::JobSignal;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{JobNotifications, PgStore};

/// Wakes an idle [`WorkerPool`](echo_core::runner::WorkerPool) as soon as a job is enqueued on
/// the shared database, through [`PgStore::job_notifications`] (`LISTEN echo_jobs`).
///
/// The subscription is opened on the first wait (on its own connection, outside the pool) and
/// kept. When opening it or waiting on it fails, the error is logged, the subscription is
/// dropped so the next wait reconnects, and this wait sleeps out its timeout: the pool then
/// polls at its `poll_interval` until the listener is back, and never misses a job for it.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use echo_core::runner::{WorkerPool, WorkerPoolConfig, JobExecutor};
/// # use echo_store_postgres::{PgJobSignal, PgStore};
/// # fn wire(store: PgStore, executor: Arc<JobExecutor>) {
/// let signal = Arc::new(PgJobSignal::new(store.clone()));
/// let pool = WorkerPool::new(Arc::new(store), executor, WorkerPoolConfig::default())
///     .with_signal(signal);
/// # }
/// ```
pub struct PgJobSignal {
    store: PgStore,
    // A tokio mutex: the guard is held across the wait. Pools sharing one signal take turns;
    // a wait that cannot get it before its timeout just returns (a spurious wake-up is cheap).
    notifications: Mutex<Option<JobNotifications>>,
}

impl PgJobSignal {
    /// A signal on `store`'s database; connects lazily.
    pub fn new(store: PgStore) -> Self {
        Self {
            store,
            notifications: Mutex::new(None),
        }
    }

    /// A signal whose subscription is already open, so a bad setup fails at start-up rather
    /// than degrading to polling. Errors as [`PgStore::job_notifications`].
    pub async fn connect(store: PgStore) -> Result<Self, echo_core::store::StoreError> {
        let notifications = store.job_notifications().await?;
        Ok(Self {
            store,
            notifications: Mutex::new(Some(notifications)),
        })
    }
}

impl fmt::Debug for PgJobSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJobSignal")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl JobSignal for PgJobSignal {
    async fn wait(&self, timeout: Duration) {
        // A timeout too long to represent is as good as an hour: the pool waits again.
        let now = Instant::now();
        let Some(deadline) = now
            .checked_add(timeout)
            .or_else(|| now.checked_add(Duration::from_secs(3_600)))
        else {
            return;
        };
        let Ok(mut guard) = tokio::time::timeout_at(deadline, self.notifications.lock()).await
        else {
            return;
        };
        if guard.is_none() {
            match tokio::time::timeout_at(deadline, self.store.job_notifications()).await {
                Ok(Ok(notifications)) => *guard = Some(notifications),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not listen for job notifications; polling");
                }
                // Connecting took the whole wait: that was the wait.
                Err(_) => return,
            }
        }
        if let Some(notifications) = guard.as_mut() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match notifications.wait(remaining).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "job notifications lost; reconnecting on the next wait");
                    *guard = None;
                }
            }
        }
        drop(guard);
        tokio::time::sleep_until(deadline).await;
    }
}
