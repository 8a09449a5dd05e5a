//! PostgreSQL store benchmarks against the server at `DATABASE_URL` (skipped with a message when
//! it is unset). Each group seeds its own database `echo_bench_<group>_<pid>` with the bulk
//! loaders, vacuums and analyses it as autovacuum would, and drops it afterwards.
//! - first page (20 rows) for a user with 10,000 experiments among 1,000,000 (target < 2 ms);
//! - dashboard of a user with 10,000 experiments and 100,000 iterations (target < 10 ms);
//! - `find_api_key` among 1,000,000 keys (target < 1 ms);
//! - no-op queue burn-down of 100,000 jobs: claim in batches, complete in batches
//!   (target ≥ 5,000 jobs/s);
//! - enqueue → start latency with an idle worker waiting on `LISTEN` (target p50 ≤ 5 ms).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use echo_benches::{experiment, iteration, user};
use echo_core::conformance::fixtures::NoopPayload;
use echo_core::model::*;
use echo_core::store::{
    ApiKeyStore, ExperimentQuery, ExperimentStore, JobQueue, RunStore, UserStore,
};
use echo_store_postgres::{PgConfig, PgStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::runtime::Runtime;

const PER_USER: usize = 10_000;

fn admin_url() -> Option<String> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED: the PostgreSQL benchmarks need DATABASE_URL \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
        );
    }
    url
}

/// A database of its own for one group; dropped by `drop_database`.
struct BenchDb {
    admin: String,
    name: String,
    store: PgStore,
}

fn create_database(rt: &Runtime, admin: &str, group: &str) -> BenchDb {
    rt.block_on(async {
        let name = format!("echo_bench_{group}_{}", std::process::id());
        let mut conn = PgConnection::connect(admin).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .unwrap();
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = PgConnectOptions::from_str(admin)
            .unwrap()
            .database(&name)
            .to_url_lossy()
            .to_string();
        let store = PgStore::connect(&url, PgConfig::default()).await.unwrap();
        store.migrate().await.unwrap();
        BenchDb {
            admin: admin.to_owned(),
            name,
            store,
        }
    })
}

fn vacuum_analyze(rt: &Runtime, store: &PgStore) {
    rt.block_on(async {
        sqlx::query("VACUUM ANALYZE")
            .execute(store.pool())
            .await
            .unwrap();
    });
}

fn drop_database(rt: &Runtime, db: BenchDb) {
    rt.block_on(async {
        db.store.close().await;
        let mut conn = PgConnection::connect(&db.admin).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

fn listing(c: &mut Criterion) {
    let Some(admin) = admin_url() else { return };
    let rt = Runtime::new().unwrap();
    let db = create_database(&rt, &admin, "listing");
    let store = &db.store;
    let now = Timestamp::now();
    let started = Instant::now();
    let total = 1_000_000;
    let mut target = None;
    for u in 0..total / PER_USER {
        let owner = user(now);
        rt.block_on(store.create_user(&owner)).unwrap();
        target.get_or_insert(owner.id);
        let statuses = ExperimentStatus::ALL;
        let batch: Vec<Experiment> = (0..PER_USER)
            .map(|i| {
                // Users interleaved in time, as real traffic is, so one user's rows are spread
                // over the table.
                let age = ((PER_USER - i) * 1_000 + u) as i64 * 1_000;
                experiment(owner.id, now, age, statuses[i % statuses.len()])
            })
            .collect();
        rt.block_on(store.import_experiments(&batch)).unwrap();
    }
    vacuum_analyze(&rt, store);
    eprintln!("seeded {total} experiments in {:?}", started.elapsed());
    let target = target.unwrap();

    let mut group = c.benchmark_group("pg_experiment_listing_first_page");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    let query = ExperimentQuery::default();
    group.bench_function("10k_of_1m_rows", |b| {
        b.iter(|| {
            let page = rt.block_on(store.list_experiments(target, &query)).unwrap();
            assert_eq!(page.items.len(), 20);
            page
        })
    });
    let filtered = ExperimentQuery {
        status: Some(ExperimentStatus::Completed),
        ..ExperimentQuery::default()
    };
    group.bench_function("10k_of_1m_rows_status_filter", |b| {
        b.iter(|| {
            rt.block_on(store.list_experiments(target, &filtered))
                .unwrap()
        })
    });
    group.finish();
    drop_database(&rt, db);
}

fn dashboard(c: &mut Criterion) {
    let Some(admin) = admin_url() else { return };
    let rt = Runtime::new().unwrap();
    let db = create_database(&rt, &admin, "dashboard");
    let store = &db.store;
    let now = Timestamp::now();
    let owner = user(now);
    rt.block_on(store.create_user(&owner)).unwrap();
    // Another tenant's rows in the same tables, so the queries must filter, not just count.
    let other = user(now);
    rt.block_on(store.create_user(&other)).unwrap();
    let mut runs = Vec::new();
    let providers = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];
    for (who, owner_id) in [(0, other.id), (1, owner.id)] {
        let experiments: Vec<Experiment> = (0..PER_USER)
            .map(|i| {
                let status = ExperimentStatus::ALL[i % ExperimentStatus::ALL.len()];
                experiment(owner_id, now, i as i64 * 60_000_000, status)
            })
            .collect();
        rt.block_on(store.import_experiments(&experiments)).unwrap();
        let batch: Vec<BatchRun> = experiments
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut run = BatchRun::new(e.id, providers[i % 3], "m", 10, e.created_at);
                run.status = BatchRunStatus::Completed;
                run.metrics = Some(echo_core::conformance::fixtures::batch_metrics(0.5));
                run.visibility_rate = Some((i % 100) as f64 / 100.0);
                run.cost_micros_usd = 120;
                run.started_at = Some(e.created_at);
                run.completed_at = Some(e.created_at);
                run
            })
            .collect();
        rt.block_on(store.import_batch_runs(&batch)).unwrap();
        if who == 1 {
            runs = batch;
        }
    }
    let iterations: Vec<Iteration> = runs
        .iter()
        .flat_map(|r| (0..10).map(move |k| iteration(r.id, k, r.created_at)))
        .collect();
    for chunk in iterations.chunks(5_000) {
        rt.block_on(store.record_iterations(chunk)).unwrap();
    }
    vacuum_analyze(&rt, store);
    let since = now - time::Duration::days(30);
    let stats = rt.block_on(store.dashboard(owner.id, since)).unwrap();
    assert_eq!(stats.experiments_total, PER_USER as u64);
    assert_eq!(stats.iterations_total, 100_000);

    let mut group = c.benchmark_group("pg_dashboard");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("10k_experiments_100k_iterations", |b| {
        b.iter(|| rt.block_on(store.dashboard(owner.id, since)).unwrap())
    });
    group.finish();
    drop_database(&rt, db);
}

fn api_key_lookup(c: &mut Criterion) {
    let Some(admin) = admin_url() else { return };
    let rt = Runtime::new().unwrap();
    let db = create_database(&rt, &admin, "api_keys");
    let store = &db.store;
    let now = Timestamp::now();
    let started = Instant::now();
    let mut sample = Vec::new();
    for u in 0..100 {
        let owner = user(now);
        rt.block_on(store.create_user(&owner)).unwrap();
        let keys: Vec<ApiKeyRecord> = (0..10_000)
            .map(|i| {
                let id = ApiKeyId::new();
                let mut digest = [0u8; 32];
                digest[..16].copy_from_slice(id.as_uuid().as_bytes());
                ApiKeyRecord {
                    id,
                    user_id: owner.id,
                    name: Label::parse("bench key").unwrap(),
                    public_id: format!("ek_{}", id.as_uuid().simple()),
                    secret_hash: SecretDigest(digest),
                    // A tenth revoked, as keys are rotated.
                    is_active: i % 10 != 0,
                    created_at: now,
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: (i % 10 == 0).then_some(now),
                }
            })
            .collect();
        if u % 10 == 0 {
            sample.extend(keys.iter().step_by(997).map(|k| k.public_id.clone()));
        }
        rt.block_on(store.import_api_keys(&keys)).unwrap();
    }
    vacuum_analyze(&rt, store);
    eprintln!("seeded 1,000,000 API keys in {:?}", started.elapsed());

    let mut group = c.benchmark_group("pg_api_key_lookup");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    let mut next = sample.iter().cycle();
    group.bench_function("find_api_key_among_1m", |b| {
        b.iter(|| {
            let id = next.next().unwrap();
            let found = rt.block_on(store.find_api_key(id)).unwrap();
            assert!(found.is_some());
            found
        })
    });
    group.finish();
    drop_database(&rt, db);
}

/// Drains the queue with `workers` concurrent claim loops: claim up to `batch`, then complete
/// them all in one statement (no-op jobs).
async fn burn_down(store: &PgStore, workers: usize, batch: u32) -> u64 {
    let lease = Duration::from_secs(60);
    let tasks = (0..workers).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let name = format!("bench-{w}");
            let mut done = 0u64;
            loop {
                let jobs = store
                    .claim(&name, batch, lease, Timestamp::now())
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return done;
                }
                let leases: Vec<JobLease> = jobs.iter().map(Job::lease).collect();
                let lost = store
                    .complete_many(&leases, Timestamp::now())
                    .await
                    .unwrap();
                assert!(lost.is_empty());
                done += leases.len() as u64;
            }
        })
    });
    let mut total = 0;
    for t in futures_join(tasks).await {
        total += t;
    }
    total
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn queue_burn_down(c: &mut Criterion) {
    let Some(admin) = admin_url() else { return };
    let rt = Runtime::new().unwrap();
    let db = create_database(&rt, &admin, "queue");
    let store = &db.store;
    const JOBS: usize = 100_000;
    let make_jobs = || {
        let now = Timestamp::now();
        (0..JOBS)
            .map(|i| Job::new(&NoopPayload { n: i }, now, 3, now).unwrap())
            .collect::<Vec<_>>()
    };
    let started = Instant::now();
    rt.block_on(store.enqueue_many(&make_jobs())).unwrap();
    eprintln!("bulk-enqueued {JOBS} jobs in {:?}", started.elapsed());
    rt.block_on(async {
        sqlx::query("DELETE FROM jobs")
            .execute(store.pool())
            .await
            .unwrap();
    });
    vacuum_analyze(&rt, store);

    let mut group = c.benchmark_group("pg_queue");
    group.throughput(Throughput::Elements(JOBS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_millis(1));
    group.bench_function("noop_burn_down_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(store.enqueue_many(&make_jobs())).unwrap();
                let started = Instant::now();
                let done = rt.block_on(burn_down(store, 8, 200));
                total += started.elapsed();
                assert_eq!(done, JOBS as u64);
                // Finished jobs pruned and vacuumed, as a deployment's pruner keeps the table.
                rt.block_on(async {
                    sqlx::query("DELETE FROM jobs")
                        .execute(store.pool())
                        .await
                        .unwrap();
                    sqlx::query("VACUUM jobs")
                        .execute(store.pool())
                        .await
                        .unwrap();
                });
            }
            total
        })
    });
    group.finish();
    drop_database(&rt, db);
}

fn enqueue_to_start(c: &mut Criterion) {
    let Some(admin) = admin_url() else { return };
    let rt = Runtime::new().unwrap();
    let db = create_database(&rt, &admin, "latency");
    // The worker is another "process": its own pool and listening connection.
    let worker_store = rt
        .block_on(PgStore::connect(
            db.store.pool().connect_options().to_url_lossy().as_ref(),
            PgConfig::default(),
        ))
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(JobId, Instant)>();
    let worker = rt.spawn(async move {
        let mut wakeups = worker_store.job_notifications().await.unwrap();
        loop {
            let jobs = worker_store
                .claim(
                    "latency-worker",
                    10,
                    Duration::from_secs(60),
                    Timestamp::now(),
                )
                .await
                .unwrap();
            if jobs.is_empty() {
                wakeups.wait(Duration::from_secs(1)).await.unwrap();
                continue;
            }
            let at = Instant::now();
            for j in &jobs {
                if tx.send((j.id, at)).is_err() {
                    return;
                }
            }
            let leases: Vec<JobLease> = jobs.iter().map(Job::lease).collect();
            worker_store
                .complete_many(&leases, Timestamp::now())
                .await
                .unwrap();
        }
    });
    let store = Arc::new(db.store.clone());
    let mut latencies = Vec::new();
    let mut group = c.benchmark_group("pg_enqueue_to_start");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("idle_worker_on_listen", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Idle long enough for the worker to be waiting and the debounce window to
                // have passed: this measures the wake-up of an idle worker.
                std::thread::sleep(Duration::from_millis(10));
                let now = Timestamp::now();
                let job = Job::new(&NoopPayload { n: 0 }, now, 3, now).unwrap();
                let started = Instant::now();
                rt.block_on(store.enqueue(&job)).unwrap();
                let (id, at) = rt.block_on(rx.recv()).unwrap();
                assert_eq!(id, job.id);
                let latency = at - started;
                latencies.push(latency);
                total += latency;
            }
            total
        })
    });
    group.finish();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    eprintln!(
        "enqueue → start over {} jobs: p50 {:?}, p95 {:?}, p99 {:?}",
        latencies.len(),
        pct(50),
        pct(95),
        pct(99)
    );
    worker.abort();
    drop_database(&rt, db);
}

criterion_group!(
    benches,
    listing,
    dashboard,
    api_key_lookup,
    queue_burn_down,
    enqueue_to_start
);
criterion_main!(benches);
