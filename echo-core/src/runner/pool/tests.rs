use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinHandle;

use super::*;
use crate::model::{BatchRunStatus, ExperimentStatus, JobStatus, ProviderKind, User};
use crate::provider::DynProvider;
use crate::runner::tests::{Scripted, add_experiment, add_user, memory_store, simulated_for};
use crate::runner::{ExperimentRunner, RUN_EXPERIMENT, RunExperimentPayload, RunnerConfig};
use crate::store::DynStore;

/// Generous: the machine running the tests may be slow and busy, and nothing here asserts
/// on speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn config(worker: &str) -> WorkerPoolConfig {
    WorkerPoolConfig {
        worker_id: worker.to_owned(),
        min_concurrency: 1,
        max_concurrency: 4,
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(10),
        hard_time_limit: None,
    }
}

fn executor(
    store: &Arc<DynStore>,
    provider: Arc<DynProvider>,
    runner: RunnerConfig,
) -> Arc<JobExecutor> {
    let runner = ExperimentRunner::new(store.clone(), runner).with_provider(provider);
    Arc::new(JobExecutor::new(
        store.clone(),
        Arc::new(runner),
        Duration::from_secs(5),
    ))
}

/// A pool running on its own task.
struct Started {
    pool: Arc<WorkerPool>,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), StoreError>>,
}

fn start(pool: WorkerPool) -> Started {
    let pool = Arc::new(pool);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move { pool.run(shutdown).await }
    });
    Started {
        pool,
        shutdown,
        handle,
    }
}

impl Started {
    async fn stop(self) -> PoolSnapshot {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("the pool shuts down")
            .expect("the pool's task ends normally")
            .expect("run returns Ok");
        self.pool.stats()
    }
}

/// Polls `check` until it holds; fails the test after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn job(store: &Arc<DynStore>, id: JobId) -> Job {
    store.get_job(id).await.unwrap()
}

/// Every iteration of the experiment's runs, checked to be stored exactly once per index.
async fn assert_each_iteration_once(
    store: &Arc<DynStore>,
    user: &User,
    experiment: &crate::model::Experiment,
) {
    let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
    assert_eq!(
        runs.len(),
        experiment.providers.len(),
        "one batch run per provider"
    );
    for run in runs {
        assert_eq!(run.iterations_recorded, run.iterations_planned, "{run:?}");
        let stored = store
            .list_iterations(user.id, run.id, 0, 100_000)
            .await
            .unwrap();
        let indexes: Vec<u32> = stored.iter().map(|i| i.index).collect();
        assert_eq!(indexes, (0..run.iterations_planned).collect::<Vec<_>>());
    }
}

fn collect_events() -> (JobObserver, Arc<Mutex<Vec<JobEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (Arc::new(move |e| sink.lock().unwrap().push(e)), events)
}

#[test]
fn target_concurrency_follows_depth_within_bounds() {
    assert_eq!(target_concurrency(1, 8, 0, 0), 1, "never below the minimum");
    assert_eq!(target_concurrency(2, 8, 0, 0), 2);
    assert_eq!(target_concurrency(1, 8, 0, 3), 3);
    assert_eq!(target_concurrency(1, 8, 2, 3), 5, "running plus due");
    assert_eq!(
        target_concurrency(1, 8, 2, 100),
        8,
        "never above the maximum"
    );
    assert_eq!(target_concurrency(1, 8, 8, 0), 8);
    assert_eq!(target_concurrency(1, 8, 0, u64::MAX), 8);
    assert_eq!(
        target_concurrency(3, 2, 0, 0),
        3,
        "a maximum below the minimum is raised"
    );
}

#[test]
fn new_raises_bad_bounds_and_backoff_grows_to_its_cap() {
    let store = memory_store();
    let provider: Arc<DynProvider> = Arc::new(Scripted::default());
    let pool = WorkerPool::new(
        store.clone(),
        executor(&store, provider, RunnerConfig::default()),
        WorkerPoolConfig {
            min_concurrency: 0,
            max_concurrency: 0,
            ..config("w")
        },
    );
    assert_eq!(
        (pool.config().min_concurrency, pool.config().max_concurrency),
        (1, 1)
    );
    assert!(WorkerPoolConfig::default().max_concurrency >= 1);
    assert!(WorkerPoolConfig::default().worker_id.starts_with("worker-"));

    let mut backoff = Backoff::new(Duration::from_millis(100));
    let waits: Vec<Duration> = (0..12).map(|_| backoff.next()).collect();
    assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
    assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
    assert!(waits[11] >= MAX_BACKOFF / 2, "{waits:?}");
    backoff.reset();
    assert!(backoff.next() <= Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_drains_many_jobs_and_records_each_iteration_once() {
    let store = memory_store();
    let user = add_user(&store).await;
    let mut experiments = Vec::new();
    for _ in 0..50 {
        experiments.push(add_experiment(&store, &user, 10, &[ProviderKind::Simulated]).await);
    }
    let provider = simulated_for(&experiments[0].0);
    let (observer, events) = collect_events();
    let pool = WorkerPool::new(
        store.clone(),
        executor(&store, provider, RunnerConfig::default()),
        WorkerPoolConfig {
            max_concurrency: 8,
            ..config("drain")
        },
    )
    .with_observer(observer);
    let started = start(pool);
    eventually("every job to succeed", || {
        let store = store.clone();
        let ids: Vec<JobId> = experiments.iter().map(|(_, j)| j.id).collect();
        async move {
            for id in ids {
                if job(&store, id).await.status != JobStatus::Succeeded {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!((stats.claimed, stats.succeeded), (50, 50));
    assert_eq!(stats.in_flight, 0);
    for (experiment, _) in &experiments {
        let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
        assert_eq!(stored.status, ExperimentStatus::Completed);
        assert_each_iteration_once(&store, &user, experiment).await;
    }
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        500
    );
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 50);
    assert!(
        events
            .iter()
            .all(|e| e.outcome == JobOutcome::Succeeded && e.kind == RUN_EXPERIMENT)
    );
    let distinct: HashSet<JobId> = events.iter().map(|e| e.job_id).collect();
    assert_eq!(distinct.len(), 50, "each job executed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_concurrency_grows_with_depth_and_stays_within_bounds() {
    let store = memory_store();
    let user = add_user(&store).await;
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(
            add_experiment(&store, &user, 5, &[ProviderKind::OpenAi])
                .await
                .1,
        );
    }
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(30),
        ..Scripted::default()
    });
    let config = WorkerPoolConfig {
        min_concurrency: 1,
        max_concurrency: 3,
        ..config("scale")
    };
    let pool = WorkerPool::new(
        store.clone(),
        executor(
            &store,
            provider,
            RunnerConfig {
                provider_concurrency: 1,
                ..RunnerConfig::default()
            },
        ),
        config,
    );
    assert_eq!(pool.stats().target_concurrency, 1, "starts at the minimum");
    let started = start(pool);
    let samples = Arc::new(Mutex::new(Vec::new()));
    eventually("every job to succeed", || {
        let (store, pool, samples) = (store.clone(), started.pool.clone(), samples.clone());
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        async move {
            samples.lock().unwrap().push(pool.stats());
            for id in ids {
                if job(&store, id).await.status != JobStatus::Succeeded {
                    return false;
                }
            }
            true
        }
    })
    .await;
    // Once the queue is empty the target falls back to the minimum.
    eventually("the target to fall back", || {
        let pool = started.pool.clone();
        async move { pool.stats().target_concurrency == 1 }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.succeeded, 12);
    let samples = samples.lock().unwrap();
    assert!(
        samples
            .iter()
            .all(|s| (1..=3).contains(&s.target_concurrency)),
        "{samples:?}"
    );
    assert!(samples.iter().all(|s| s.in_flight <= 3), "{samples:?}");
    assert!(
        samples.iter().any(|s| s.target_concurrency == 3),
        "twelve due jobs raise the target to the maximum: {samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_claimed_again_after_its_lease_and_counted_once() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 200, &[ProviderKind::OpenAi]).await;
    let slow = Arc::new(Scripted {
        delay: Duration::from_millis(20),
        ..Scripted::default()
    });
    let runner = RunnerConfig {
        provider_concurrency: 2,
        write_batch: 1,
        ..RunnerConfig::default()
    };
    let lease = Duration::from_millis(300);
    let first = start(WorkerPool::new(
        store.clone(),
        executor(&store, slow.clone(), runner.clone()),
        WorkerPoolConfig {
            lease,
            ..config("doomed")
        },
    ));
    eventually("the first worker to record some answers", || {
        let store = store.clone();
        async move {
            let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
            runs.first().is_some_and(|r| r.iterations_recorded >= 5)
        }
    })
    .await;
    // Killed: its task (and with it every job task) is aborted, settling and releasing nothing.
    first.handle.abort();
    let _ = first.handle.await;
    let held = job(&store, queued.id).await;
    assert_eq!(held.status, JobStatus::Running);
    assert_eq!(held.lease_owner.as_deref(), Some("doomed"));
    let recorded_by_first =
        store.list_batch_runs(user.id, experiment.id).await.unwrap()[0].iterations_recorded;
    assert!(recorded_by_first < 200, "killed mid-job");

    let fast = Arc::new(Scripted::default());
    let second = start(WorkerPool::new(
        store.clone(),
        executor(&store, fast.clone(), runner),
        WorkerPoolConfig {
            lease,
            ..config("survivor")
        },
    ));
    eventually("the second worker to finish the job", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    let stats = second.stop().await;
    assert_eq!((stats.claimed, stats.succeeded), (1, 1));
    let finished = job(&store, queued.id).await;
    assert_eq!(
        finished.attempts, 2,
        "claimed again after the lease expired"
    );
    let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
    assert_eq!(stored.status, ExperimentStatus::Completed);
    assert_each_iteration_once(&store, &user, &experiment).await;
    // The second worker only ran what the first had not stored.
    let recorded_after_kill = 200 - fast.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(recorded_after_kill >= recorded_by_first);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        200,
        "no refund, no double debit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_unfinished_jobs_keeping_their_answers() {
    let store = memory_store();
    let user = add_user(&store).await;
    // One provider per experiment (provider limits are shared by every run of a runner): each
    // answers twice, then never again.
    let kinds = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];
    let mut queued = Vec::new();
    let mut providers = Vec::new();
    let mut runner = ExperimentRunner::new(
        store.clone(),
        RunnerConfig {
            provider_concurrency: 1,
            ..RunnerConfig::default()
        },
    );
    for kind in kinds {
        queued.push(add_experiment(&store, &user, 50, &[kind]).await);
        let provider = Arc::new(Scripted {
            kind: Some(kind),
            hang_from: Some(2),
            ..Scripted::default()
        });
        runner = runner.with_provider(provider.clone());
        providers.push(provider);
    }
    let executor = Arc::new(JobExecutor::new(
        store.clone(),
        Arc::new(runner),
        Duration::from_secs(5),
    ));
    let grace = Duration::from_millis(300);
    let (observer, events) = collect_events();
    let started = start(
        WorkerPool::new(
            store.clone(),
            executor,
            WorkerPoolConfig {
                shutdown_grace: grace,
                ..config("leaving")
            },
        )
        .with_observer(observer),
    );
    eventually("every job to be stuck", || {
        let (pool, providers) = (started.pool.clone(), providers.clone());
        async move {
            pool.stats().in_flight == 3
                && providers
                    .iter()
                    .all(|p| p.calls.load(std::sync::atomic::Ordering::SeqCst) >= 3)
        }
    })
    .await;
    let began = std::time::Instant::now();
    let stats = started.stop().await;
    let took = began.elapsed();
    assert!(took >= grace, "waited for the grace period");
    assert!(
        took < grace + STOP_WAIT,
        "returned after the grace period: {took:?}"
    );
    assert_eq!((stats.released, stats.in_flight), (3, 0));
    let mut recorded = 0;
    for (experiment, queued) in &queued {
        let job = job(&store, queued.id).await;
        assert_eq!(job.status, JobStatus::Queued, "handed back");
        assert_eq!(job.attempts, 0, "a released attempt is not counted");
        assert!(job.lease_owner.is_none());
        let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
        assert_eq!(
            runs[0].status,
            BatchRunStatus::Running,
            "resumable, not cancelled"
        );
        recorded += runs[0].iterations_recorded;
        let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
        assert_eq!(stored.status, ExperimentStatus::Running);
    }
    assert_eq!(
        recorded, 6,
        "the answers received were written before releasing"
    );
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        150,
        "nothing refunded"
    );
    let events = events.lock().unwrap();
    assert!(
        events.iter().all(|e| e.outcome == JobOutcome::Released),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_finish_within_the_grace_period_complete() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 10, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(50),
        ..Scripted::default()
    });
    let started = start(WorkerPool::new(
        store.clone(),
        executor(
            &store,
            provider.clone(),
            RunnerConfig {
                provider_concurrency: 1,
                ..RunnerConfig::default()
            },
        ),
        WorkerPoolConfig {
            shutdown_grace: PATIENCE,
            ..config("patient")
        },
    ));
    eventually("the job to start", || {
        let provider = provider.clone();
        async move { provider.calls.load(std::sync::atomic::Ordering::SeqCst) > 0 }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!((stats.succeeded, stats.released), (1, 0));
    assert_eq!(job(&store, queued.id).await.status, JobStatus::Succeeded);
    assert_each_iteration_once(&store, &user, &experiment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_time_limit_stops_and_fails_the_job_for_a_retry() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 20, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        hang_from: Some(4),
        ..Scripted::default()
    });
    let (observer, events) = collect_events();
    let started = start(
        WorkerPool::new(
            store.clone(),
            executor(
                &store,
                provider,
                RunnerConfig {
                    provider_concurrency: 1,
                    ..RunnerConfig::default()
                },
            ),
            WorkerPoolConfig {
                hard_time_limit: Some(Duration::from_millis(200)),
                ..config("strict")
            },
        )
        .with_observer(observer),
    );
    eventually("the attempt to fail", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.last_error.is_some() }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.retrying, 1);
    let failed = job(&store, queued.id).await;
    assert_eq!(failed.status, JobStatus::Queued, "retried later");
    assert!(failed.run_at > Timestamp::now(), "after a backoff");
    assert_eq!(failed.attempts, 1);
    assert!(failed.last_error.unwrap().contains("hard time limit"));
    // The retry resumes the run: it is left as it was, with its answers and its quota.
    let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
    assert_eq!(
        (runs[0].status, runs[0].iterations_recorded),
        (BatchRunStatus::Running, 4)
    );
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        20
    );
    assert_eq!(events.lock().unwrap()[0].outcome, JobOutcome::Retrying);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_time_limit_on_the_last_attempt_fails_job_and_runs_and_refunds() {
    let store = memory_store();
    let user = add_user(&store).await;
    let experiment = crate::runner::tests::experiment_of(&user, 20, &[ProviderKind::OpenAi]);
    let payload = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    };
    let now = Timestamp::now();
    let queued = Job::new(&payload, now, 1, now).unwrap();
    crate::runner::tests::create_with_job(&store, &experiment, &queued).await;
    let provider = Arc::new(Scripted {
        hang_from: Some(4),
        ..Scripted::default()
    });
    let started = start(WorkerPool::new(
        store.clone(),
        executor(
            &store,
            provider,
            RunnerConfig {
                provider_concurrency: 1,
                ..RunnerConfig::default()
            },
        ),
        WorkerPoolConfig {
            hard_time_limit: Some(Duration::from_millis(200)),
            ..config("strict")
        },
    ));
    eventually("the job to fail", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Failed }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.failed, 1);
    assert!(
        job(&store, queued.id)
            .await
            .last_error
            .unwrap()
            .contains("hard time limit")
    );
    let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
    assert_eq!(
        (runs[0].status, runs[0].iterations_recorded),
        (BatchRunStatus::Failed, 4)
    );
    let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
    assert_eq!(stored.status, ExperimentStatus::Failed);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        4,
        "the unrun 16 refunded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_experiment_stops_it_and_refunds_the_rest() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 1_000, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(10),
        ..Scripted::default()
    });
    let (observer, events) = collect_events();
    let started = start(
        WorkerPool::new(
            store.clone(),
            executor(
                &store,
                provider,
                RunnerConfig {
                    provider_concurrency: 1,
                    write_batch: 1,
                    ..RunnerConfig::default()
                },
            ),
            WorkerPoolConfig {
                // Heartbeats, and so cancellation checks, every 100 ms.
                lease: Duration::from_millis(300),
                ..config("obedient")
            },
        )
        .with_observer(observer),
    );
    eventually("the run to be under way", || {
        let store = store.clone();
        async move {
            let runs = store.list_batch_runs(user.id, experiment.id).await.unwrap();
            runs.first().is_some_and(|r| r.iterations_recorded >= 3)
        }
    })
    .await;
    store
        .set_experiment_status(
            user.id,
            experiment.id,
            ExperimentStatus::Cancelled,
            Timestamp::now(),
        )
        .await
        .unwrap();
    eventually("the job to end", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.cancelled, 1);
    let run = &store.list_batch_runs(user.id, experiment.id).await.unwrap()[0];
    assert_eq!(run.status, BatchRunStatus::Cancelled);
    assert!(run.iterations_recorded < 1_000);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        run.iterations_recorded,
        "the unrun iterations were refunded"
    );
    let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
    assert_eq!(
        stored.status,
        ExperimentStatus::Cancelled,
        "not overwritten"
    );
    assert_eq!(events.lock().unwrap()[0].outcome, JobOutcome::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_an_already_cancelled_experiment_does_nothing_and_refunds() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 25, &[ProviderKind::OpenAi]).await;
    store
        .set_experiment_status(
            user.id,
            experiment.id,
            ExperimentStatus::Cancelled,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let provider = Arc::new(Scripted::default());
    let started = start(WorkerPool::new(
        store.clone(),
        executor(&store, provider.clone(), RunnerConfig::default()),
        config("idle"),
    ));
    eventually("the job to end", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.cancelled, 1);
    assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        store
            .list_batch_runs(user.id, experiment.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_user(user.id).await.unwrap().quota.prompts_used, 0);
    let stored = store.get_experiment(user.id, experiment.id).await.unwrap();
    assert_eq!(stored.status, ExperimentStatus::Cancelled);
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// One thread, so the thread-local subscriber sees the job's task too.
#[tokio::test(flavor = "current_thread")]
async fn job_log_lines_carry_the_request_id_of_the_enqueuing_request() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = memory_store();
    let user = add_user(&store).await;
    let experiment = crate::runner::tests::experiment_of(&user, 3, &[ProviderKind::OpenAi]);
    let mut queued = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    }
    .into_job(Timestamp::now());
    queued.request_id = Some("req-7f3a".to_owned());
    crate::runner::tests::create_with_job(&store, &experiment, &queued).await;
    let (observer, events) = collect_events();
    let started = start(
        WorkerPool::new(
            store.clone(),
            executor(
                &store,
                Arc::new(Scripted::default()),
                RunnerConfig::default(),
            ),
            config("traced"),
        )
        .with_observer(observer),
    );
    eventually("the job to end", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    started.stop().await;
    {
        let events = events.lock().unwrap();
        assert_eq!(events[0].request_id.as_deref(), Some("req-7f3a"));
        assert_eq!(events[0].attempt, 1);
    }
    let output = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let finished = output
        .lines()
        .find(|l| l.contains("job finished"))
        .unwrap_or_else(|| panic!("no job line in {output}"));
    assert!(finished.contains("request_id=\"req-7f3a\""), "{finished}");
    assert!(
        finished.contains(&format!("job_id={}", queued.id)),
        "{finished}"
    );
    assert!(finished.contains("kind=run_experiment"), "{finished}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outages_back_off_and_the_pool_keeps_going() {
    let store = Arc::new(crate::auth::test_store::TestStore::default());
    let dyn_store: Arc<DynStore> = store.clone();
    let user = add_user(&dyn_store).await;
    let (_, queued) = add_experiment(&dyn_store, &user, 3, &[ProviderKind::OpenAi]).await;
    store
        .queue_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = start(WorkerPool::new(
        dyn_store.clone(),
        executor(
            &dyn_store,
            Arc::new(Scripted::default()),
            RunnerConfig::default(),
        ),
        config("resilient"),
    ));
    eventually("claims to fail a few times", || {
        let pool = started.pool.clone();
        async move { pool.stats().claim_errors >= 2 }
    })
    .await;
    assert!(!started.handle.is_finished(), "errors never end the loop");
    store
        .queue_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("the job to run once the store is back", || {
        let store = dyn_store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    let stats = started.stop().await;
    assert_eq!(stats.succeeded, 1);
}

#[tokio::test]
async fn a_zero_lease_is_refused_before_claiming() {
    let store = memory_store();
    let pool = WorkerPool::new(
        store.clone(),
        executor(
            &store,
            Arc::new(Scripted::default()),
            RunnerConfig::default(),
        ),
        WorkerPoolConfig {
            lease: Duration::ZERO,
            ..config("broken")
        },
    );
    let err = pool.run(CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_runs_finished_before_its_worker_died_completes_without_rerunning() {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, queued) = add_experiment(&store, &user, 10, &[ProviderKind::OpenAi]).await;
    // The dead worker: claimed with a short lease, ran everything, never settled the job.
    let lease = Duration::from_millis(200);
    let claimed = store
        .claim("dead", 1, lease, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let first = Arc::new(Scripted::default());
    ExperimentRunner::new(store.clone(), RunnerConfig::default())
        .with_provider(first.clone())
        .run(user.id, experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();

    let second = Arc::new(Scripted::default());
    let started = start(WorkerPool::new(
        store.clone(),
        executor(&store, second.clone(), RunnerConfig::default()),
        WorkerPoolConfig {
            lease,
            ..config("heir")
        },
    ));
    eventually("the job to be completed", || {
        let store = store.clone();
        async move { job(&store, queued.id).await.status == JobStatus::Succeeded }
    })
    .await;
    started.stop().await;
    assert_eq!(second.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_each_iteration_once(&store, &user, &experiment).await;
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        10
    );
}
