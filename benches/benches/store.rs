//! Storage benchmarks on SQLite (issue: foundation):
//! - first page (20 rows) of a user with 10,000 experiments among 100,000 and among 1,000,000
//!   rows (the second must stay within 2x of the first: the index, not a scan);
//! - dashboard aggregation for a user with 10,000 experiments and 100,000 iterations;
//! - bulk insert of iterations in batches of 1,000.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use echo_benches::{experiment, iteration, user};
use echo_core::model::*;
use echo_core::store::{DynStore, ExperimentQuery, RunStore, UserStore};
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

const PER_USER: usize = 10_000;

struct Seeded {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    target: UserId,
}

/// `total` experiments spread over users of `PER_USER` each; the target user is one of them.
fn seed_listing(rt: &Runtime, total: usize) -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            dir.path().join("bench.db"),
            SqliteConfig::default(),
        ))
        .unwrap();
    let now = Timestamp::now();
    let started = Instant::now();
    let mut target = None;
    for u in 0..total / PER_USER {
        let owner = user(now);
        rt.block_on(store.create_user(&owner)).unwrap();
        target.get_or_insert(owner.id);
        let statuses = ExperimentStatus::ALL;
        let batch: Vec<Experiment> = (0..PER_USER)
            .map(|i| {
                // Interleave users in time, as real traffic does, so one user's rows are not
                // physically contiguous.
                let age = ((PER_USER - i) * 1_000 + u) as i64 * 1_000;
                experiment(owner.id, now, age, statuses[i % statuses.len()])
            })
            .collect();
        rt.block_on(store.import_experiments(&batch)).unwrap();
    }
    eprintln!("seeded {total} experiments in {:?}", started.elapsed());
    Seeded {
        _dir: dir,
        store: Arc::new(store),
        target: target.unwrap(),
    }
}

fn listing(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("experiment_listing_first_page");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    for total in [100_000usize, 1_000_000] {
        let seeded = seed_listing(&rt, total);
        let store: Arc<DynStore> = seeded.store.clone();
        let query = ExperimentQuery::default();
        group.bench_with_input(BenchmarkId::new("rows_in_table", total), &total, |b, _| {
            b.iter(|| {
                let page = rt
                    .block_on(store.list_experiments(seeded.target, &query))
                    .unwrap();
                assert_eq!(page.items.len(), 20);
                page
            })
        });
        let filtered = ExperimentQuery {
            status: Some(ExperimentStatus::Completed),
            ..ExperimentQuery::default()
        };
        group.bench_with_input(
            BenchmarkId::new("rows_in_table_status_filter", total),
            &total,
            |b, _| {
                b.iter(|| {
                    rt.block_on(store.list_experiments(seeded.target, &filtered))
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn dashboard(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            dir.path().join("dash.db"),
            SqliteConfig::default(),
        ))
        .unwrap();
    let now = Timestamp::now();
    let owner = user(now);
    rt.block_on(store.create_user(&owner)).unwrap();
    // Another tenant's rows in the same tables, so the query must filter, not just count.
    let other = user(now);
    rt.block_on(store.create_user(&other)).unwrap();
    let noise: Vec<Experiment> = (0..PER_USER)
        .map(|i| {
            experiment(
                other.id,
                now,
                i as i64 * 1_000_000,
                ExperimentStatus::Completed,
            )
        })
        .collect();
    rt.block_on(store.import_experiments(&noise)).unwrap();

    let experiments: Vec<Experiment> = (0..PER_USER)
        .map(|i| {
            let status = ExperimentStatus::ALL[i % ExperimentStatus::ALL.len()];
            experiment(owner.id, now, i as i64 * 60_000_000, status)
        })
        .collect();
    rt.block_on(store.import_experiments(&experiments)).unwrap();
    let providers = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];
    let mut pending = Vec::with_capacity(1_000);
    for (i, e) in experiments.iter().enumerate() {
        let mut run = BatchRun::new(e.id, providers[i % 3], "m", 10, e.created_at);
        rt.block_on(store.create_batch_run(&run)).unwrap();
        run.status = BatchRunStatus::Completed;
        let update = BatchRunUpdate {
            status: BatchRunStatus::Completed,
            metrics: Some(echo_core::conformance::fixtures::batch_metrics(0.5)),
            visibility_rate: Some((i % 100) as f64 / 100.0),
            cost_micros_usd: 120,
            error: None,
            started_at: Some(e.created_at),
            completed_at: Some(e.created_at),
        };
        rt.block_on(store.update_batch_run(run.id, &update))
            .unwrap();
        pending.extend((0..10).map(|k| iteration(run.id, k, e.created_at)));
        if pending.len() >= 1_000 {
            rt.block_on(store.record_iterations(&pending)).unwrap();
            pending.clear();
        }
    }
    let store: Arc<DynStore> = Arc::new(store);
    let since = now - time::Duration::days(30);
    let stats = rt.block_on(store.dashboard(owner.id, since)).unwrap();
    assert_eq!(stats.experiments_total, PER_USER as u64);
    assert_eq!(stats.iterations_total, 100_000);

    let mut group = c.benchmark_group("dashboard");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("10k_experiments_100k_iterations", |b| {
        b.iter(|| rt.block_on(store.dashboard(owner.id, since)).unwrap())
    });
    group.finish();
}

fn bulk_insert(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            dir.path().join("bulk.db"),
            SqliteConfig::default(),
        ))
        .unwrap();
    let now = Timestamp::now();
    let owner = user(now);
    rt.block_on(store.create_user(&owner)).unwrap();
    let e = experiment(owner.id, now, 0, ExperimentStatus::Running);
    rt.block_on(store.import_experiments(std::slice::from_ref(&e)))
        .unwrap();

    const BATCH: u32 = 1_000;
    let mut group = c.benchmark_group("iteration_bulk_insert");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("batch_of_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = BatchRun::new(e.id, ProviderKind::OpenAi, "m", BATCH, now);
                rt.block_on(store.create_batch_run(&run)).unwrap();
                let rows: Vec<Iteration> = (0..BATCH).map(|i| iteration(run.id, i, now)).collect();
                let started = Instant::now();
                let outcome = rt.block_on(store.record_iterations(&rows)).unwrap();
                total += started.elapsed();
                assert_eq!(outcome.inserted, BATCH);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, listing, dashboard, bulk_insert);
criterion_main!(benches);
