//! Audit log benchmarks (the privacy issue's targets):
//! - `AuditStore::append_audit` of a realistic event on SQLite holding 100,000 events — target
//!   < 100 µs median — timed on a runtime worker thread, where a request handler calls it, and
//!   the baseline through tokio's blocking pool (a current-thread runtime) in the same run; the
//!   same through `StoreAuditSink` with a `CheckpointSigner` and the default
//!   `CheckpointPolicy` (a checkpoint every 1,000 events), per call and per 1,000 calls (one
//!   signed checkpoint each), to show the signing cost amortised; a paired run that alternates
//!   the two paths (printed), and signing, verifying and storing one checkpoint;
//! - verification of a 1,000,000-event chain — target < 2 s: pure CPU over events built in
//!   memory with `chain_hash` (with and without the 1,000 signed checkpoints), and end to end
//!   from SQLite as `echoai audit verify` does it (checkpoints, erasures, then
//!   `push_stored_events`: `AuditStore::audit_links` pages read ahead of the verifier), with the
//!   links read one page after another, for pages of 10,000 and 1,000; and the baseline, the
//!   walk before links and read-ahead (whole events from `audit_range`, read then checked).
//!
//! The SQLite chain is seeded through the public path, `StoreAuditSink::record` one event at a
//! time with checkpoints: SQLite has no bulk audit import, and one would have to repeat the
//! chain computation. The seeding rate is printed; it takes about 90 s per million events
//! here. `ECHO_BENCH_AUDIT_EVENTS` overrides the 1,000,000.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use echo_core::audit::{
    AuditSink, ChainStart, ChainVerifier, CheckpointPolicy, CheckpointSigner, CheckpointVerifier,
    GENESIS_HASH, StoreAuditSink, VerifyReport, add_stored_checkpoints, chain_hash,
    mark_stored_erasures, push_stored_events, verify_chain,
};
use echo_core::model::{AuditCheckpoint, AuditEvent, NewAuditEvent, Timestamp, UserId};
use echo_core::store::{AuditStore, DynStore};
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;

/// Events in the store when the append is measured.
const APPEND_AMONG: u64 = 100_000;
/// The page size of the end-to-end walk.
const PAGE: u32 = 10_000;
const SEED: [u8; 32] = [7; 32];

fn chain_len() -> u64 {
    std::env::var("ECHO_BENCH_AUDIT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A realistic event of an HTTP action: actor, action, resource, client IP and user agent,
/// request id and a small details object (about 330 bytes of fields).
fn event(i: u64, actor: UserId, at: Timestamp) -> NewAuditEvent {
    const ACTIONS: [(&str, &str); 4] = [
        ("create_experiment", "experiment"),
        ("run_experiment", "experiment"),
        ("create_api_key", "api_key"),
        ("login_success", "user"),
    ];
    let (action, resource_type) = ACTIONS[(i % 4) as usize];
    NewAuditEvent {
        actor_user_id: Some(actor),
        action: action.into(),
        resource_type: resource_type.into(),
        resource_id: Some(uuid::Uuid::now_v7().to_string()),
        ip: Some(format!("203.0.113.{}", i % 250)),
        user_agent: Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
                .into(),
        ),
        request_id: Some(uuid::Uuid::now_v7().to_string()),
        details: serde_json::json!({
            "providers": ["openai", "anthropic"],
            "iterations": 50,
            "source": "api",
        }),
        created_at: at,
    }
}

fn open(rt: &Runtime, dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(
        rt.block_on(SqliteStore::open(
            dir.path().join("audit.db"),
            SqliteConfig::default(),
        ))
        .unwrap(),
    )
}

fn signing_sink(store: &Arc<SqliteStore>) -> StoreAuditSink {
    let store: Arc<DynStore> = store.clone();
    StoreAuditSink::new(store).with_signer(
        CheckpointSigner::from_seed(&SEED),
        CheckpointPolicy::default(),
    )
}

/// Appends `n` events one at a time with `append`, printing the rate.
fn seed<F, Fut>(rt: &Runtime, n: u64, what: &str, mut append: F)
where
    F: FnMut(NewAuditEvent) -> Fut,
    Fut: Future<Output = ()>,
{
    let actor = UserId::new();
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            append(event(i, actor, Timestamp::now())).await;
        }
    });
    let took = started.elapsed();
    eprintln!(
        "seeded {n} audit events with {what} in {took:.2?} ({:.0} events/s)",
        n as f64 / took.as_secs_f64()
    );
}

fn append(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir);
    seed(&rt, APPEND_AMONG, "append_audit", |e| {
        let store = store.clone();
        async move {
            store.append_audit(&e).await.unwrap();
        }
    });
    let actor = UserId::new();
    let mut i = 0u64;
    let mut next = move || {
        i += 1;
        event(i, actor, Timestamp::now())
    };

    let mut group = c.benchmark_group("audit_append");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(8));
    // Timed inside a spawned task, on a runtime worker thread as in a request handler (the
    // SQLite append runs in place there; from `block_on`'s thread it would only look cheaper).
    group.bench_function(format!("append_audit_among_{APPEND_AMONG}"), |b| {
        b.iter_custom(|iters| {
            let events = (0..iters).map(|_| next()).collect();
            on_worker(&rt, time_appends(store.clone(), events))
        })
    });
    // The baseline: the same append through tokio's blocking pool, the path before it ran in
    // place and the one a current-thread runtime (where `block_in_place` is not allowed)
    // still takes.
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    group.bench_function(
        format!("baseline_append_audit_blocking_pool_among_{APPEND_AMONG}"),
        |b| {
            b.iter_custom(|iters| {
                let events = (0..iters).map(|_| next()).collect();
                current_thread.block_on(time_appends(store.clone(), events))
            })
        },
    );
    let sink = Arc::new(signing_sink(&store));
    group.bench_function(format!("sink_record_signed_among_{APPEND_AMONG}"), |b| {
        b.iter_custom(|iters| {
            let events = (0..iters).map(|_| next()).collect();
            on_worker(&rt, time_records(sink.clone(), events))
        })
    });
    // 1,000 records hold exactly one checkpoint under the default policy.
    let every = CheckpointPolicy::default().every_events;
    group
        .sample_size(20)
        .throughput(Throughput::Elements(every));
    group.bench_function(format!("sink_record_signed_{every}_events"), |b| {
        b.iter_custom(|iters| {
            let events = (0..iters * every).map(|_| next()).collect();
            on_worker(&rt, time_records(sink.clone(), events))
        })
    });
    group.finish();

    // The two paths alternated in the same seconds, so the machine's load weighs on both
    // alike: per round, 1,000 plain appends, then 1,000 signed records (one checkpoint).
    let (mut plain, mut signed) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        for (path, out) in [(false, &mut plain), (true, &mut signed)] {
            let events = (0..every).map(|_| next()).collect();
            let took = if path {
                on_worker(&rt, time_records(sink.clone(), events))
            } else {
                on_worker(&rt, time_appends(store.clone(), events))
            };
            out.push(took / every as u32);
        }
    }
    let (plain, signed) = (median(&mut plain), median(&mut signed));
    eprintln!(
        "paired, median of 15 rounds of {every}: append_audit {plain:.2?}, signed sink \
         {signed:.2?} per event ({:+.1} %)",
        (signed.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0
    );

    let mut group = c.benchmark_group("audit_checkpoint");
    let signer = CheckpointSigner::from_seed(&SEED);
    let key = signer.verifier();
    let cp = signer.sign(1, [1; 32], Timestamp::now());
    group.bench_function("sign", |b| {
        b.iter(|| signer.sign(1, [1; 32], cp.created_at))
    });
    group.bench_function("verify", |b| b.iter(|| key.verify(&cp).unwrap()));
    // Far beyond the chain (the store does not check), unique across criterion's calls.
    let mut seq = 1_000_000_000u64;
    group.bench_function("put_audit_checkpoint", |b| {
        b.iter(|| {
            seq += 1;
            let cp = signer.sign(seq, [1; 32], Timestamp::now());
            rt.block_on(store.put_audit_checkpoint(&cp)).unwrap()
        })
    });
    group.finish();
    let (first, last) = rt.block_on(store.audit_bounds()).unwrap().unwrap();
    eprintln!("the append store ended with events {first}..={last}");
}

/// How long appending `events` one at a time takes.
async fn time_appends(store: Arc<SqliteStore>, events: Vec<NewAuditEvent>) -> Duration {
    let started = Instant::now();
    for e in &events {
        store.append_audit(e).await.unwrap();
    }
    started.elapsed()
}

/// How long recording `events` one at a time through `sink` takes.
async fn time_records(sink: Arc<StoreAuditSink>, events: Vec<NewAuditEvent>) -> Duration {
    let started = Instant::now();
    for e in events {
        sink.record(e).await.unwrap();
    }
    started.elapsed()
}

/// Runs `task` on one of the runtime's worker threads and waits for its result.
fn on_worker<T: Send + 'static>(rt: &Runtime, task: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(task)).unwrap()
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// A chain of `n` events as the store would have it, and a checkpoint every 1,000 events.
fn chain_in_memory(n: u64) -> (Vec<AuditEvent>, Vec<AuditCheckpoint>) {
    let signer = CheckpointSigner::from_seed(&SEED);
    let every = CheckpointPolicy::default().every_events;
    let actor = UserId::new();
    let t0 = Timestamp::now().unix_micros();
    let mut prev = GENESIS_HASH;
    let mut events = Vec::with_capacity(n as usize);
    let mut checkpoints = Vec::new();
    for seq in 1..=n {
        let at = Timestamp::from_unix_micros(t0 + seq as i64).unwrap();
        let event = event(seq, actor, at);
        let hash = chain_hash(&prev, seq, &event);
        events.push(AuditEvent {
            seq,
            event,
            actor_pseudonym: None,
            prev_hash: prev,
            hash,
        });
        if seq % every == 1 {
            checkpoints.push(signer.sign(seq, hash, at));
        }
        prev = hash;
    }
    (events, checkpoints)
}

fn with_checkpoints<'a>(
    key: &CheckpointVerifier,
    checkpoints: impl IntoIterator<Item = &'a AuditCheckpoint>,
) -> ChainVerifier {
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    for cp in checkpoints {
        v.add_checkpoint(key, cp).unwrap();
    }
    v
}

fn long_group(
    c: &mut Criterion,
    n: u64,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("audit_verify");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(n));
    group
}

fn verify_memory(c: &mut Criterion) {
    let n = chain_len();
    let started = Instant::now();
    let (events, checkpoints) = chain_in_memory(n);
    eprintln!(
        "built {n} events in memory (chain_hash each, {} checkpoints signed) in {:.2?}",
        checkpoints.len(),
        started.elapsed()
    );
    let key = CheckpointSigner::from_seed(&SEED).verifier();
    let mut group = long_group(c, n);
    group.bench_function(format!("verify_chain_{n}_in_memory"), |b| {
        b.iter(|| {
            let report = verify_chain(ChainStart::Genesis, &events).unwrap();
            assert_eq!(report.events, n);
        })
    });
    group.bench_function(
        format!(
            "chain_verifier_{n}_with_{}_checkpoints_in_memory",
            checkpoints.len()
        ),
        |b| {
            b.iter(|| {
                let mut v = with_checkpoints(&key, &checkpoints);
                for e in &events {
                    v.push(e).unwrap();
                }
                let report = v.finish().unwrap();
                assert_eq!(report.checkpoints_matched, checkpoints.len() as u64);
            })
        },
    );
    group.finish();
}

/// What `echoai audit verify` does on a database without archives: the checkpoints and the
/// erasure records, then the events as links, the next page read while one is checked.
async fn verify_from_store(
    store: &Arc<DynStore>,
    key: &CheckpointVerifier,
    page: u32,
) -> VerifyReport {
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    add_stored_checkpoints(&**store, &mut v, key, 0, page)
        .await
        .unwrap();
    mark_stored_erasures(&**store, &mut v, 0, page)
        .await
        .unwrap();
    push_stored_events(store.clone(), &mut v, 1, page)
        .await
        .unwrap();
    v.finish().unwrap()
}

/// The walk before links and read-ahead (the baseline): whole events from
/// `AuditStore::audit_range`, each page read, then checked.
async fn verify_events_sequentially(
    store: &DynStore,
    key: &CheckpointVerifier,
    page: u32,
) -> VerifyReport {
    let mut v = ChainVerifier::new(ChainStart::Genesis);
    add_stored_checkpoints(store, &mut v, key, 0, page)
        .await
        .unwrap();
    mark_stored_erasures(store, &mut v, 0, page).await.unwrap();
    let mut from = 1;
    loop {
        let events = store.audit_range(from, page).await.unwrap();
        for e in &events {
            v.push(e).unwrap();
        }
        match events.last() {
            Some(last) if events.len() == page as usize => from = last.seq + 1,
            _ => return v.finish().unwrap(),
        }
    }
}

/// Reads every link in pages of `page`, one page after another; returns the count.
async fn read_links(store: &DynStore, page: u32) -> u64 {
    let (mut from, mut read) = (1, 0u64);
    loop {
        let links = store.audit_links(from, page).await.unwrap();
        read += links.len() as u64;
        match links.last() {
            Some(last) if links.len() == page as usize => from = last.seq + 1,
            _ => return read,
        }
    }
}

fn verify_sqlite(c: &mut Criterion) {
    let n = chain_len();
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir);
    let sink = signing_sink(&store);
    let sink = &sink;
    seed(
        &rt,
        n,
        "StoreAuditSink::record (signed)",
        move |e| async move {
            sink.record(e).await.unwrap();
        },
    );
    let checkpoints = rt
        .block_on(store.audit_checkpoints(0, u32::MAX))
        .unwrap()
        .len() as u64;
    let size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    eprintln!(
        "database file: {} MiB, {checkpoints} checkpoints",
        size >> 20
    );
    let key = CheckpointSigner::from_seed(&SEED).verifier();
    let store: Arc<DynStore> = store;

    let mut group = long_group(c, n);
    // 10,000 is `echoai audit verify`'s page; 1,000 shows what the page size costs.
    for page in [PAGE, 1_000] {
        group.bench_function(format!("sqlite_end_to_end_{n}_pages_of_{page}"), |b| {
            b.iter(|| {
                let report = rt.block_on(verify_from_store(&store, &key, page));
                assert_eq!(report.events, n);
                assert_eq!(report.checkpoints_matched, checkpoints);
            })
        });
        group.bench_function(format!("sqlite_links_only_{n}_pages_of_{page}"), |b| {
            b.iter(|| assert_eq!(rt.block_on(read_links(&*store, page)), n))
        });
    }
    group.bench_function(
        format!("baseline_sqlite_events_sequential_{n}_pages_of_{PAGE}"),
        |b| {
            b.iter(|| {
                let report = rt.block_on(verify_events_sequentially(&*store, &key, PAGE));
                assert_eq!(report.events, n);
            })
        },
    );
    group.finish();
}

criterion_group!(benches, append, verify_memory, verify_sqlite);
criterion_main!(benches);
