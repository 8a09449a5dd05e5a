//! Cited sources (issue #15): what capturing and storing them costs the runner. The same
//! 5,000-iteration run against the simulated provider with zero latency, written to SQLite,
//! once with answers citing 8 sources each (URL, title, one span) and once citing none — target:
//! the run with sources is < 5% slower. That target is measured twice: against the
//! zero-latency simulator (a worst case no real provider comes near: the runner does nothing but
//! bookkeeping) and against a simulator that answers in 100 ms, still faster than any real
//! assistant, 1,000 iterations at a concurrency of 64.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use echo_benches::{experiment, user};
use echo_core::model::*;
use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
use echo_core::provider::{
    CitedSource, Completion, CompletionRequest, Provider, ProviderError, SourceSpan,
};
use echo_core::runner::{ExperimentRunner, RunExperimentPayload, RunnerConfig};
use echo_core::store::DynStore;
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const ITERATIONS: u32 = 5_000;

/// Iterations of the 100 ms variant (its runs are bound by the latency, not the CPU).
const SLOW_ITERATIONS: u32 = 1_000;

/// The simulator, with `citations` added to every answer (none for the baseline, so both
/// sides pay for the same wrapper).
#[derive(Debug)]
struct Citing {
    inner: SimulatedProvider,
    citations: Vec<CitedSource>,
}

#[async_trait]
impl Provider for Citing {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Simulated
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let mut completion = self.inner.complete(request).await?;
        completion.citations = self.citations.clone();
        Ok(completion)
    }
}

fn eight_sources() -> Vec<CitedSource> {
    [
        "https://www.g2.com/categories/crm",
        "https://www.hubspot.com/products/crm",
        "https://www.salesforce.com/crm/",
        "https://news.bbc.co.uk/technology/crm-market",
        "https://en.wikipedia.org/wiki/Customer_relationship_management",
        "https://www.capterra.com/customer-relationship-management-software/",
        "https://www.forbes.com/advisor/business/software/best-crm-software/",
        "https://zapier.github.io/blog/best-crm-app",
    ]
    .into_iter()
    .enumerate()
    .map(|(i, url)| CitedSource {
        url: url.to_owned(),
        title: Some(format!("Source {i}: the best CRM software of 2026")),
        spans: vec![SourceSpan {
            start: 0,
            end: 8 + i as u32,
        }],
    })
    .collect()
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<DynStore>,
    owner: UserId,
}

fn setup(rt: &Runtime, name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(
            dir.path().join(format!("{name}.db")),
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

async fn run_once(
    s: &Setup,
    citations: &[CitedSource],
    iterations: u32,
    latency: Duration,
) -> (Duration, BatchRunId) {
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
    let mut simulated = SimulatedConfig::for_brands(7, &e.target, &e.competitors);
    simulated.latency = latency;
    let provider = Citing {
        inner: SimulatedProvider::new(simulated),
        citations: citations.to_vec(),
    };
    let config = RunnerConfig {
        global_concurrency: 64,
        provider_concurrency: 64,
        write_batch: 500,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(s.store.clone(), config).with_provider(Arc::new(provider));
    let started = Instant::now();
    let outcome = runner
        .run(s.owner, e.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    assert_eq!(outcome.batch_runs[0].iterations_recorded, iterations);
    s.store.refund_quota(s.owner, iterations).await.unwrap();
    (elapsed, outcome.batch_runs[0].id)
}

fn sources(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("runner_sources");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, citations, iterations, latency) in [
        (
            "5k_iterations_no_sources_sqlite",
            Vec::new(),
            ITERATIONS,
            Duration::ZERO,
        ),
        (
            "5k_iterations_8_sources_sqlite",
            eight_sources(),
            ITERATIONS,
            Duration::ZERO,
        ),
        (
            "1k_iterations_100ms_no_sources_sqlite",
            Vec::new(),
            SLOW_ITERATIONS,
            Duration::from_millis(100),
        ),
        (
            "1k_iterations_100ms_8_sources_sqlite",
            eight_sources(),
            SLOW_ITERATIONS,
            Duration::from_millis(100),
        ),
    ] {
        group.throughput(Throughput::Elements(u64::from(iterations)));
        let s = setup(&rt, name);
        // A warm-up run, which also checks what is measured: the stored answers carry the 8
        // sources, or none.
        let (_, run) = rt.block_on(run_once(&s, &citations, iterations, latency));
        let stored = rt
            .block_on(s.store.list_iterations(s.owner, run, 0, 10))
            .unwrap();
        assert!(stored.iter().all(|it| it.sources.len() == citations.len()));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(run_once(&s, &citations, iterations, latency)).0)
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sources);
criterion_main!(benches);
