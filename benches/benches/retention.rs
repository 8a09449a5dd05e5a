//! Retention pass benchmarks on SQLite (`RunStore::anonymize_iterations`):
//! - a full pass over 1,000,000 old iterations of one tier in batches of 2,000, until the call
//!   returns 0 — target < 60 s, and no call over 1 s (the longest call is printed: it bounds
//!   the write transaction, which is only part of it);
//! - one batch of 2,000 among them — its share of the pass;
//! - the call that ends a pass when another tier keeps 1,000,000 old iterations that the pass
//!   must pass over (read outside the write lock).
//!
//! `ECHO_BENCH_RETENTION_ROWS` overrides the 1,000,000 (seeding takes about 30 s per million).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use echo_benches::{experiment, iteration, user};
use echo_core::model::*;
use echo_core::store::{RunStore, UserStore};
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

const BATCH: u32 = 2_000;
const PER_RUN: u32 = 1_000;

fn rows() -> u32 {
    std::env::var("ECHO_BENCH_RETENTION_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// The pass's cut-off: 90 days ago. Seeded rows are 100 to 130 days old.
fn cutoff() -> Timestamp {
    now() - time::Duration::days(90)
}

/// Stores a user on `tier` with `rows` iterations (in runs of `PER_RUN`) created between 130
/// and 100 days ago.
fn seed_tenant(rt: &Runtime, store: &SqliteStore, tier: PricingTier, rows: u32) {
    let t0 = now();
    let mut owner = user(t0);
    owner.tier = tier;
    rt.block_on(store.create_user(&owner)).unwrap();
    let old = time::Duration::days(130).whole_microseconds() as i64;
    let e = experiment(owner.id, t0, old, ExperimentStatus::Completed);
    rt.block_on(store.import_experiments(std::slice::from_ref(&e)))
        .unwrap();
    let span = time::Duration::days(30).whole_microseconds() as i64;
    for r in 0..rows.div_ceil(PER_RUN) {
        let run = BatchRun::new(e.id, ProviderKind::OpenAi, "m", PER_RUN, e.created_at);
        rt.block_on(store.create_batch_run(&run)).unwrap();
        let batch: Vec<Iteration> = (0..PER_RUN.min(rows - r * PER_RUN))
            .map(|i| {
                let n = i64::from(r * PER_RUN + i);
                let at = e.created_at.unix_micros() + span * n / i64::from(rows);
                iteration(run.id, i, Timestamp::from_unix_micros(at).unwrap())
            })
            .collect();
        rt.block_on(store.record_iterations(&batch)).unwrap();
    }
}

fn open(rt: &Runtime, dir: &tempfile::TempDir) -> SqliteStore {
    rt.block_on(SqliteStore::open(
        dir.path().join("retention.db"),
        SqliteConfig::default(),
    ))
    .unwrap()
}

/// Puts every anonymized iteration back as it was (answer included), outside the measurement.
fn reset(store: &SqliteStore) {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    let answer = iteration(BatchRunId::new(), 0, now()).raw_response;
    conn.execute(
        "UPDATE iterations SET raw_response = ?1, is_anonymized = 0, anonymized_at = NULL \
         WHERE is_anonymized",
        [answer],
    )
    .unwrap();
}

/// Runs a whole pass; returns its duration, the longest call and the rows changed.
fn pass(rt: &Runtime, store: &SqliteStore) -> (Duration, Duration, u64) {
    let (cutoff, at) = (cutoff(), now());
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    let mut total = 0;
    loop {
        let call = Instant::now();
        let changed = rt
            .block_on(store.anonymize_iterations(PricingTier::Free, cutoff, BATCH, at))
            .unwrap();
        longest = longest.max(call.elapsed());
        total += changed;
        if changed == 0 {
            return (started.elapsed(), longest, total);
        }
    }
}

fn full_pass(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir);
    let rows = rows();
    let seeding = Instant::now();
    seed_tenant(&rt, &store, PricingTier::Free, rows);
    eprintln!("seeded {rows} iterations in {:?}", seeding.elapsed());

    let mut group = c.benchmark_group("retention");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(u64::from(rows)));
    let mut longest = Duration::ZERO;
    group.bench_function(format!("full_pass_{rows}_old_iterations"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, call, changed) = pass(&rt, &store);
                assert_eq!(changed, u64::from(rows));
                total += took;
                longest = longest.max(call);
                reset(&store);
            }
            total
        })
    });
    eprintln!("longest anonymize_iterations call over all passes: {longest:?}");

    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.sample_size(50);
    let mut left = u64::from(rows);
    group.bench_function(format!("batch_of_{BATCH}_among_{rows}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if left < u64::from(BATCH) {
                    reset(&store);
                    left = u64::from(rows);
                }
                let started = Instant::now();
                let changed = rt
                    .block_on(store.anonymize_iterations(PricingTier::Free, cutoff(), BATCH, now()))
                    .unwrap();
                total += started.elapsed();
                assert_eq!(changed, u64::from(BATCH));
                left -= changed;
            }
            total
        })
    });
    group.finish();
}

fn end_of_pass(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir);
    let rows = rows();
    // The free tier's pass is done; the enterprise tier keeps its old rows.
    seed_tenant(&rt, &store, PricingTier::Enterprise, rows);
    seed_tenant(&rt, &store, PricingTier::Free, 10_000);
    let (_, _, changed) = pass(&rt, &store);
    assert_eq!(changed, 10_000);

    let mut group = c.benchmark_group("retention");
    group.sample_size(10);
    group.bench_function(format!("end_of_pass_past_{rows}_retained"), |b| {
        b.iter(|| {
            rt.block_on(store.anonymize_iterations(PricingTier::Free, cutoff(), BATCH, now()))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, full_pass, end_of_pass);
criterion_main!(benches);
