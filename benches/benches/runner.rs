//! Experiment runner benchmarks (issue: runner and main job):
//! - overhead: 10,000 iterations against the simulated provider with zero latency, written to
//!   SQLite, end to end (extraction, idempotent writes, metrics) — target ≥ 10,000 iterations/s;
//! - latency-bound: 1,000 iterations with 200 ms simulated latency at concurrency 50 — the
//!   floor is 1,000 × 0.2 / 50 = 4 s, the target < 6 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use echo_benches::{experiment, user};
use echo_core::model::*;
use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
use echo_core::runner::{ExperimentRunner, RunExperimentPayload, RunnerConfig};
use echo_core::store::DynStore;
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<DynStore>,
    owner: UserId,
}

fn setup(rt: &Runtime) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            dir.path().join("runner.db"),
            SqliteConfig::default(),
        ))
        .unwrap();
    let store: Arc<DynStore> = Arc::new(store);
    let owner = user(Timestamp::now());
    rt.block_on(store.create_user(&owner)).unwrap();
    Setup {
        _dir: dir,
        store,
        owner: owner.id,
    }
}

/// Creates a fresh experiment of `iterations` on the simulated provider and runs it.
async fn run_once(s: &Setup, iterations: u32, latency: Duration, concurrency: usize) -> Duration {
    let now = Timestamp::now();
    let mut e = experiment(s.owner, now, 0, ExperimentStatus::Queued);
    e.iterations = Iterations::new(iterations).unwrap();
    e.providers = vec![ProviderConfig {
        provider: ProviderKind::Simulated,
        model: "sim".into(),
        temperature: 0.7,
    }];
    let debit = QuotaDebit {
        user_id: s.owner,
        amount: iterations,
        limit: u32::MAX,
    };
    let job = RunExperimentPayload {
        user_id: s.owner,
        experiment_id: e.id,
    }
    .into_job(now);
    s.store.create_experiment(&e, debit, &job).await.unwrap();
    let mut sim = SimulatedConfig::for_brands(7, &e.target, &e.competitors);
    sim.latency = latency;
    let config = RunnerConfig {
        global_concurrency: concurrency,
        provider_concurrency: concurrency,
        write_batch: 500,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(s.store.clone(), config)
        .with_provider(Arc::new(SimulatedProvider::new(sim)));
    let started = Instant::now();
    let outcome = runner
        .run(s.owner, e.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    assert_eq!(outcome.batch_runs[0].iterations_recorded, iterations);
    s.store.refund_quota(s.owner, iterations).await.unwrap();
    elapsed
}

fn overhead(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let s = setup(&rt);
    let mut group = c.benchmark_group("runner_overhead");
    group.throughput(Throughput::Elements(10_000));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("10k_iterations_zero_latency_sqlite", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(run_once(&s, 10_000, Duration::ZERO, 64)))
                .sum()
        })
    });
    group.finish();
}

fn latency_bound(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let s = setup(&rt);
    let mut group = c.benchmark_group("runner_latency_bound");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(45));
    group.bench_function("1000_iterations_200ms_concurrency_50", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(run_once(&s, 1_000, Duration::from_millis(200), 50)))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, overhead, latency_bound);
criterion_main!(benches);
