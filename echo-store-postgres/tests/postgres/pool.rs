//! echo-core's worker pool and scheduler on PostgreSQL: LISTEN/NOTIFY wake-ups through
//! [`PgJobSignal`], experiments run to completion, and schedulers racing on one database.

use std::sync::Arc;
use std::time::Duration;

use echo_core::conformance::fixtures::{experiment, new_user, recurring, with_iterations};
use echo_core::model::{ExperimentStatus, JobStatus, QuotaDebit, Timestamp};
use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
use echo_core::runner::{
    ExperimentRunner, JobExecutor, JobSignal, RunExperimentPayload, RunnerConfig, Scheduler,
    SchedulerConfig, WorkerPool, WorkerPoolConfig,
};
use echo_core::store::{DynStore, JobQueue};
use echo_store_postgres::PgJobSignal;
use tokio_util::sync::CancellationToken;

/// Generous: nothing here asserts on speed.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_job_signal_wakes_on_enqueue_and_times_out_without() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let lazy = PgJobSignal::new(store.clone());
    tokio::time::timeout(PATIENCE, lazy.wait(Duration::from_millis(50)))
        .await
        .expect("a quiet wait ends at its timeout");

    let signal = Arc::new(PgJobSignal::connect(store.clone()).await.unwrap());
    let waiting = tokio::spawn({
        let signal = signal.clone();
        // Far longer than the test waits below: only a notification ends it in time.
        async move { signal.wait(Duration::from_secs(600)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .enqueue(&echo_core::conformance::fixtures::job(Timestamp::now(), 3))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the enqueue woke the waiting signal")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_runs_experiments_to_completion_on_postgres() {
    let Some(pg) = crate::fresh_store().await else {
        return;
    };
    let store: Arc<DynStore> = Arc::new(pg.clone());
    let user = new_user(&*store).await;
    let template = experiment(user.id, Timestamp::now());
    let provider = Arc::new(SimulatedProvider::new(SimulatedConfig::for_brands(
        7,
        &template.target,
        &template.competitors,
    )));
    let runner =
        ExperimentRunner::new(store.clone(), RunnerConfig::default()).with_provider(provider);
    let executor = Arc::new(JobExecutor::new(
        store.clone(),
        Arc::new(runner),
        Duration::from_secs(30),
    ));
    let pool = Arc::new(
        WorkerPool::new(
            store.clone(),
            executor,
            WorkerPoolConfig {
                worker_id: "pg-pool".into(),
                max_concurrency: 4,
                poll_interval: Duration::from_millis(500),
                ..WorkerPoolConfig::default()
            },
        )
        .with_signal(Arc::new(PgJobSignal::new(pg.clone()))),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move { pool.run(shutdown).await }
    });

    // Enqueued while the pool is already waiting, as the API would.
    let mut created = Vec::new();
    for _ in 0..8 {
        let e = with_iterations(experiment(user.id, Timestamp::now()), 15);
        let job = RunExperimentPayload {
            user_id: user.id,
            experiment_id: e.id,
        }
        .into_job(Timestamp::now());
        let debit = QuotaDebit {
            user_id: user.id,
            amount: e.prompts_per_run(),
            limit: 1_000_000,
        };
        store.create_experiment(&e, debit, &job).await.unwrap();
        created.push((e, job));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for (_, job) in &created {
        while store.get_job(job.id).await.unwrap().status != JobStatus::Succeeded {
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {} never finished",
                job.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("the pool shuts down")
        .unwrap()
        .unwrap();
    assert_eq!(pool.stats().succeeded, 8);
    for (e, _) in &created {
        let stored = store.get_experiment(user.id, e.id).await.unwrap();
        assert_eq!(stored.status, ExperimentStatus::Completed);
        let runs = store.list_batch_runs(user.id, e.id).await.unwrap();
        assert_eq!(runs.len(), 1);
        let indexes: Vec<u32> = store
            .list_iterations(user.id, runs[0].id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|i| i.index)
            .collect();
        assert_eq!(indexes, (0..15).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_schedulers_enqueue_each_due_experiment_once_on_postgres() {
    let Some(pg) = crate::fresh_store().await else {
        return;
    };
    let store: Arc<DynStore> = Arc::new(pg);
    let user = new_user(&*store).await;
    let now = Timestamp::now();
    // The scheduler skips the runs of an owner without data-processing consent.
    let consent = echo_core::model::ConsentChange {
        data_processing: Some(true),
        ..Default::default()
    };
    store.update_consents(user.id, &consent, now).await.unwrap();
    let due = now - time::Duration::minutes(90);
    for _ in 0..20 {
        let e = recurring(user.id, now, Some(due));
        // The creation's own job is due next year, so the queue's `due` count is the
        // scheduler's alone.
        let first = RunExperimentPayload {
            user_id: user.id,
            experiment_id: e.id,
        }
        .into_job(now + time::Duration::days(365));
        let debit = QuotaDebit {
            user_id: user.id,
            amount: e.prompts_per_run(),
            limit: 1_000_000,
        };
        store.create_experiment(&e, debit, &first).await.unwrap();
    }
    let config = SchedulerConfig {
        batch: 4,
        ..SchedulerConfig::default()
    };
    let (a, b) = (
        Arc::new(Scheduler::new(store.clone(), config.clone())),
        Arc::new(Scheduler::new(store.clone(), config)),
    );
    let (ra, rb) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.tick(now).await }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.tick(now).await }
        }),
    );
    let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    assert_eq!(ra.enqueued + rb.enqueued, 20, "{ra:?} {rb:?}");
    assert_eq!(ra.errors + rb.errors, 0);
    assert_eq!(store.queue_stats(now).await.unwrap().due, 20);
}
