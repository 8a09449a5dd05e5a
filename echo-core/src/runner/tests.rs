use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::jobs::{ExecuteOptions, JobExecutor, JobOutcome, RunExperimentPayload};
use super::*;
use crate::model::*;
use crate::provider::simulated::{SimulatedConfig, SimulatedProvider};
use crate::provider::{
    Completion, CompletionRequest, FinishReason, PermanentKind, Provider, ProviderError,
};
use crate::store::memory::MemoryStore;

pub(super) struct Fixture {
    pub(super) store: Arc<DynStore>,
    pub(super) user: User,
    pub(super) experiment: Experiment,
}

pub(super) fn memory_store() -> Arc<DynStore> {
    Arc::new(MemoryStore::new())
}

/// A new Pro user in `store`, consenting to data processing.
pub(super) async fn add_user(store: &Arc<DynStore>) -> User {
    let mut user = User::new(
        Email::parse(format!("{}@example.com", UserId::new())).unwrap(),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        PricingTier::Pro,
        Timestamp::now(),
    );
    user.consents.data_processing_consent_at = Some(user.created_at);
    store.create_user(&user).await.unwrap();
    user
}

/// An experiment of `user` (HubSpot against Salesforce and Pipedrive), without storing it.
pub(super) fn experiment_of(
    user: &User,
    iterations: u32,
    providers: &[ProviderKind],
) -> Experiment {
    let now = Timestamp::now();
    Experiment {
        id: ExperimentId::new(),
        user_id: user.id,
        prompt: Prompt::parse("Best CRM for startups?").unwrap(),
        target: Brand::new(BrandName::parse("HubSpot").unwrap()),
        competitors: vec![
            Brand::new(BrandName::parse("Salesforce").unwrap()),
            Brand::new(BrandName::parse("Pipedrive").unwrap()),
        ],
        iterations: Iterations::new(iterations).unwrap(),
        providers: providers
            .iter()
            .map(|p| ProviderConfig {
                provider: *p,
                model: "m".into(),
                temperature: 0.7,
            })
            .collect(),
        status: ExperimentStatus::Queued,
        recurrence: None,
        prompt_set: None,
        precision: None,
        created_at: now,
        updated_at: now,
    }
}

/// Stores `experiment`, debiting its run and enqueueing `job`, as the API does.
pub(super) async fn create_with_job(store: &Arc<DynStore>, experiment: &Experiment, job: &Job) {
    let debit = QuotaDebit {
        user_id: experiment.user_id,
        amount: experiment.prompts_per_run(),
        limit: 100_000,
    };
    store
        .create_experiment(experiment, debit, job)
        .await
        .unwrap();
}

/// Stores a new experiment of `user` with its run job (three attempts); returns both.
pub(super) async fn add_experiment(
    store: &Arc<DynStore>,
    user: &User,
    iterations: u32,
    providers: &[ProviderKind],
) -> (Experiment, Job) {
    let experiment = experiment_of(user, iterations, providers);
    let job = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    }
    .into_job(Timestamp::now());
    create_with_job(store, &experiment, &job).await;
    (experiment, job)
}

pub(super) async fn fixture(iterations: u32, providers: &[ProviderKind]) -> Fixture {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, _) = add_experiment(&store, &user, iterations, providers).await;
    Fixture {
        store,
        user,
        experiment,
    }
}

pub(super) fn simulated(f: &Fixture) -> Arc<DynProvider> {
    simulated_for(&f.experiment)
}

pub(super) fn simulated_for(experiment: &Experiment) -> Arc<DynProvider> {
    Arc::new(SimulatedProvider::new(SimulatedConfig::for_brands(
        42,
        &experiment.target,
        &experiment.competitors,
    )))
}

/// A running OpenAI batch run of 20 with its first 8 iterations stored, as an attempt that
/// died would leave it.
async fn half_done_run(f: &Fixture) -> BatchRun {
    let mut run = BatchRun::new(
        f.experiment.id,
        ProviderKind::OpenAi,
        "m",
        20,
        Timestamp::now(),
    );
    run.status = BatchRunStatus::Running;
    f.store.create_batch_run(&run).await.unwrap();
    f.store
        .record_iterations(&answered(run.id, 0..8))
        .await
        .unwrap();
    run
}

/// Successful iterations at `indexes`, as an earlier attempt would have stored them.
fn answered(run: BatchRunId, indexes: std::ops::Range<u32>) -> Vec<Iteration> {
    indexes
        .map(|index| Iteration {
            id: IterationId::new(),
            batch_run_id: run,
            index,
            raw_response: Some("HubSpot".into()),
            mentions: Some(vec![]),
            is_success: true,
            error: None,
            latency_ms: 1,
            input_tokens: 1,
            output_tokens: 1,
            created_at: Timestamp::now(),
            is_anonymized: false,
            anonymized_at: None,
            sources: Vec::new(),
        })
        .collect()
}

/// A provider whose behaviour per call is scripted, counting calls and peak concurrency.
#[derive(Debug, Default)]
pub(super) struct Scripted {
    pub(super) kind: Option<ProviderKind>,
    pub(super) delay: Duration,
    pub(super) fail_permanently_at: Option<u32>,
    pub(super) transient_every: Option<u32>,
    /// Calls from this one on never answer.
    pub(super) hang_from: Option<u32>,
    pub(super) calls: AtomicU32,
    pub(super) in_flight: AtomicU32,
    pub(super) peak: AtomicU32,
    pub(super) seen: Mutex<Vec<u32>>,
}

#[async_trait]
impl Provider for Scripted {
    fn kind(&self) -> ProviderKind {
        self.kind.unwrap_or(ProviderKind::OpenAi)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.seen.lock().unwrap().push(request.sample_index);
        if self.hang_from.is_some_and(|from| n >= from) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.fail_permanently_at == Some(n) {
            return Err(ProviderError::Permanent {
                kind: PermanentKind::Authentication,
                status: Some(401),
                message: "invalid key".into(),
            });
        }
        if self
            .transient_every
            .is_some_and(|k| request.sample_index.is_multiple_of(k))
        {
            return Err(ProviderError::Transient {
                status: Some(503),
                message: "overloaded".into(),
            });
        }
        Ok(Completion {
            text: "1. **HubSpot** is great. 2. **Salesforce** is big.".into(),
            model: "m-2026-01-01".into(),
            input_tokens: 10,
            output_tokens: 20,
            latency: self.delay,
            finish_reason: FinishReason::Stop,
            citations: vec![],
        })
    }
}

#[tokio::test]
async fn full_run_records_every_iteration_and_metrics() {
    let f = fixture(30, &[ProviderKind::Simulated]).await;
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(simulated(&f));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress: ProgressFn = Arc::new(move |e| sink.lock().unwrap().push(e));
    let outcome = runner
        .run(
            f.user.id,
            f.experiment.id,
            CancellationToken::new(),
            Some(progress),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    assert_eq!(outcome.refunded, 0);
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Completed);
    assert_eq!(
        (run.iterations_recorded, run.iterations_succeeded),
        (30, 30)
    );
    let stored = run.metrics.clone().expect("metrics");
    assert_eq!((stored.metrics.n, stored.metrics.failures), (30, 0));
    assert_eq!(stored.reproducibility.answers.len(), 30);
    assert_eq!(stored.reproducibility.models_reported, ["m"]);
    let target = stored.metrics.target().unwrap();
    assert_eq!(run.visibility_rate, target.visibility.rate);
    assert!(
        target.visibility.successes > 0,
        "the simulator names the target sometimes"
    );
    assert!(run.completed_at.is_some());
    let iterations = f
        .store
        .list_iterations(f.user.id, run.id, 0, 100)
        .await
        .unwrap();
    assert_eq!(iterations.len(), 30);
    assert!(
        iterations
            .iter()
            .all(|it| it.mentions.is_some() && it.raw_response.is_some())
    );
    let finished = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ProgressEvent::IterationFinished { .. }))
        .count();
    assert_eq!(finished, 30);
    let stored = f
        .store
        .get_experiment(f.user.id, f.experiment.id)
        .await
        .unwrap();
    assert_eq!(stored.status, ExperimentStatus::Completed);
}

#[tokio::test]
async fn resumed_run_skips_recorded_iterations() {
    let f = fixture(20, &[ProviderKind::OpenAi]).await;
    let run = half_done_run(&f).await;

    let provider = Arc::new(Scripted::default());
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(provider.clone());
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        outcome.batch_runs.len(),
        1,
        "resumes instead of creating a new run"
    );
    assert_eq!(outcome.batch_runs[0].id, run.id);
    assert_eq!(outcome.batch_runs[0].iterations_recorded, 20);
    assert_eq!(provider.calls.load(Ordering::SeqCst), 12);
    let mut seen = provider.seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (8..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn permanent_failure_fails_the_run_and_refunds_unrun_iterations() {
    let f = fixture(50, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        fail_permanently_at: Some(5),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 1,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(provider);
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Failed);
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Failed);
    assert_eq!(
        run.iterations_recorded, 6,
        "five answers and the failed call"
    );
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("invalid key")
    );
    assert_eq!(outcome.refunded, 44);
    let user = f.store.get_user(f.user.id).await.unwrap();
    assert_eq!(user.quota.prompts_used, 6);
}

#[tokio::test]
async fn transient_failures_are_recorded_and_the_run_completes() {
    let f = fixture(20, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        transient_every: Some(4),
        ..Scripted::default()
    });
    let runner =
        ExperimentRunner::new(f.store.clone(), RunnerConfig::default()).with_provider(provider);
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Completed);
    assert_eq!(
        (run.iterations_recorded, run.iterations_succeeded),
        (20, 15)
    );
}

#[tokio::test]
async fn cancellation_stops_the_run_and_refunds() {
    let f = fixture(200, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(5),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 2,
        write_batch: 1,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(provider);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let progress: ProgressFn = Arc::new(move |e| {
        if matches!(e, ProgressEvent::IterationFinished { .. }) {
            trigger.cancel();
        }
    });
    let outcome = runner
        .run(f.user.id, f.experiment.id, cancel, Some(progress))
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Cancelled);
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Cancelled);
    assert!(run.iterations_recorded < 200);
    assert_eq!(outcome.refunded, 200 - run.iterations_recorded);
    let user = f.store.get_user(f.user.id).await.unwrap();
    assert_eq!(user.quota.prompts_used, run.iterations_recorded);
}

#[tokio::test]
async fn time_limit_fails_the_run() {
    let f = fixture(100, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(20),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 1,
        run_timeout: Some(Duration::from_millis(50)),
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(provider);
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("time limit")
    );
    assert_eq!(outcome.refunded, 100 - run.iterations_recorded);
}

#[tokio::test]
async fn concurrency_limits_hold_per_provider_and_globally() {
    let f = fixture(40, &[ProviderKind::OpenAi, ProviderKind::Anthropic]).await;
    let a = Arc::new(Scripted {
        delay: Duration::from_millis(2),
        ..Scripted::default()
    });
    let b = Arc::new(Scripted {
        kind: Some(ProviderKind::Anthropic),
        delay: Duration::from_millis(2),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        global_concurrency: 5,
        provider_concurrency: 3,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config)
        .with_provider(a.clone())
        .with_provider(b.clone());
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    assert!(a.peak.load(Ordering::SeqCst) <= 3);
    assert!(b.peak.load(Ordering::SeqCst) <= 3);
    assert!(a.peak.load(Ordering::SeqCst) + b.peak.load(Ordering::SeqCst) <= 6);
}

#[tokio::test]
async fn rate_limit_spaces_calls() {
    let f = fixture(11, &[ProviderKind::OpenAi]).await;
    let config = RunnerConfig {
        rate_limits: [(
            ProviderKind::OpenAi,
            RateLimit {
                per_second: std::num::NonZeroU32::new(100).unwrap(),
                burst: std::num::NonZeroU32::new(1).unwrap(),
            },
        )]
        .into(),
        ..RunnerConfig::default()
    };
    let runner =
        ExperimentRunner::new(f.store.clone(), config).with_provider(Arc::new(Scripted::default()));
    let started = std::time::Instant::now();
    runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    // A lower bound only (10 intervals of 10 ms after the first call): it holds on any machine.
    assert!(
        started.elapsed() >= Duration::from_millis(95),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn missing_provider_is_an_error_before_any_write() {
    let f = fixture(5, &[ProviderKind::Gemini]).await;
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default());
    let err = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RunError::ProviderNotConfigured(ProviderKind::Gemini)
    ));
    assert!(
        f.store
            .list_batch_runs(f.user.id, f.experiment.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn executor_runs_a_claimed_job_and_completes_it() {
    let f = fixture(10, &[ProviderKind::Simulated]).await;
    let runner = Arc::new(
        ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
            .with_provider(simulated(&f)),
    );
    let executor = JobExecutor::new(f.store.clone(), runner, Duration::from_secs(30));
    let jobs = f
        .store
        .claim("w1", 10, executor.lease(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let (status, outcome) = executor
        .execute(&jobs[0], CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Succeeded);
    assert_eq!(outcome.unwrap().status, ExperimentStatus::Completed);
    assert_eq!(
        f.store.get_job(jobs[0].id).await.unwrap().status,
        JobStatus::Succeeded
    );
}

#[tokio::test]
async fn adaptive_sampling_stops_at_the_requested_precision_and_refunds_the_rest() {
    let f = fixture(2_000, &[ProviderKind::Simulated]).await;
    let config = RunnerConfig {
        precision: Some(0.1),
        provider_concurrency: 1,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(simulated(&f));
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let run = &outcome.batch_runs[0];
    assert_eq!(run.status, BatchRunStatus::Completed);
    // At worst p = 0.5 needs 97 answers for ±0.10; the run must stop long before 2,000.
    assert!(run.iterations_recorded <= 97, "{}", run.iterations_recorded);
    assert_eq!(outcome.refunded, 2_000 - run.iterations_recorded);
    let metrics = run.metrics.clone().unwrap();
    let ci = metrics.metrics.target().unwrap().visibility.ci95.unwrap();
    assert!(ci.half_width() <= 0.1 + 1e-12, "{ci:?}");
    let user = f.store.get_user(f.user.id).await.unwrap();
    assert_eq!(user.quota.prompts_used, run.iterations_recorded);
}

/// Runs a fresh `iterations`-iteration simulated experiment with its own `precision` under a
/// runner configured with `configured`; returns its one batch run and the refund.
async fn run_with_precision(
    iterations: u32,
    precision: Option<f64>,
    configured: Option<f64>,
) -> (BatchRun, u32) {
    let store = memory_store();
    let user = add_user(&store).await;
    let mut experiment = experiment_of(&user, iterations, &[ProviderKind::Simulated]);
    experiment.precision = precision.map(|p| Precision::new(p).unwrap());
    let job = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    }
    .into_job(Timestamp::now());
    create_with_job(&store, &experiment, &job).await;
    let config = RunnerConfig {
        precision: configured,
        provider_concurrency: 1,
        ..RunnerConfig::default()
    };
    let runner =
        ExperimentRunner::new(store.clone(), config).with_provider(simulated_for(&experiment));
    let outcome = runner
        .run(user.id, experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.batch_runs[0].status, BatchRunStatus::Completed);
    (outcome.batch_runs[0].clone(), outcome.refunded)
}

fn half_width(run: &BatchRun) -> f64 {
    let metrics = run.metrics.clone().unwrap();
    metrics
        .metrics
        .target()
        .unwrap()
        .visibility
        .ci95
        .unwrap()
        .half_width()
}

#[tokio::test]
async fn an_experiments_own_precision_stops_its_runs_early_without_a_configured_one() {
    let (run, refunded) = run_with_precision(2_000, Some(0.1), None).await;
    assert!(run.iterations_recorded <= 97, "{}", run.iterations_recorded);
    assert_eq!(refunded, 2_000 - run.iterations_recorded);
    assert!(half_width(&run) <= 0.1 + 1e-12);
}

#[tokio::test]
async fn without_any_precision_a_run_asks_every_iteration() {
    let (run, refunded) = run_with_precision(300, None, None).await;
    assert_eq!(run.iterations_recorded, 300);
    assert_eq!(refunded, 0);
}

#[tokio::test]
async fn an_experiments_precision_overrides_the_configured_one_both_ways() {
    // Wider than configured: ±0.01 alone would take thousands of answers; ±0.2 at worst 24.
    let (wide, refunded) = run_with_precision(2_000, Some(0.2), Some(0.01)).await;
    assert!(
        wide.iterations_recorded <= 24,
        "{}",
        wide.iterations_recorded
    );
    assert_eq!(refunded, 2_000 - wide.iterations_recorded);
    // Narrower than configured: the run goes on past where ±0.3 would have stopped.
    let (narrow, _) = run_with_precision(2_000, Some(0.05), Some(0.3)).await;
    assert!(
        half_width(&narrow) <= 0.05 + 1e-12,
        "{}",
        half_width(&narrow)
    );
    let (configured_only, _) = run_with_precision(2_000, None, Some(0.3)).await;
    assert!(half_width(&configured_only) > 0.05);
    assert!(narrow.iterations_recorded > configured_only.iterations_recorded);
}

#[tokio::test]
async fn metrics_cover_every_page_of_a_large_run() {
    // More than two pages of stored iterations (pages hold 500).
    let f = fixture(1_201, &[ProviderKind::Simulated]).await;
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(simulated(&f));
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    let stored = outcome.batch_runs[0].metrics.clone().unwrap();
    assert_eq!(stored.metrics.n, 1_201);
    assert_eq!(stored.reproducibility.answers.len(), 1_201);
    assert_eq!(stored.word_count.answers, 1_201);
}

#[tokio::test]
async fn an_already_cancelled_experiment_is_not_started_and_its_run_is_refunded() {
    let f = fixture(20, &[ProviderKind::OpenAi, ProviderKind::Anthropic]).await;
    f.store
        .set_experiment_status(
            f.user.id,
            f.experiment.id,
            ExperimentStatus::Cancelled,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        f.store
            .get_user(f.user.id)
            .await
            .unwrap()
            .quota
            .prompts_used,
        40
    );
    let provider = Arc::new(Scripted::default());
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(provider.clone());
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Cancelled);
    assert_eq!(outcome.refunded, 40, "iterations × providers");
    assert!(outcome.batch_runs.is_empty());
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        f.store
            .get_user(f.user.id)
            .await
            .unwrap()
            .quota
            .prompts_used,
        0
    );
    assert!(
        f.store
            .list_batch_runs(f.user.id, f.experiment.id)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = f
        .store
        .get_experiment(f.user.id, f.experiment.id)
        .await
        .unwrap();
    assert_eq!(stored.status, ExperimentStatus::Cancelled);
}

#[tokio::test]
async fn a_cancelled_experiment_with_a_half_done_run_ends_it_and_refunds_only_the_rest() {
    let f = fixture(20, &[ProviderKind::OpenAi]).await;
    half_done_run(&f).await;
    f.store
        .set_experiment_status(
            f.user.id,
            f.experiment.id,
            ExperimentStatus::Cancelled,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let provider = Arc::new(Scripted::default());
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(provider.clone());
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Cancelled);
    assert_eq!(outcome.refunded, 12);
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    let run = &outcome.batch_runs[0];
    assert_eq!(
        (run.status, run.iterations_recorded),
        (BatchRunStatus::Cancelled, 8)
    );
    assert_eq!(run.metrics.clone().unwrap().metrics.n, 8);
    assert_eq!(
        f.store
            .get_user(f.user.id)
            .await
            .unwrap()
            .quota
            .prompts_used,
        8
    );
}

#[tokio::test]
async fn stop_keeps_the_answers_received_and_leaves_the_run_resumable() {
    let f = fixture(20, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        hang_from: Some(5),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 1,
        write_batch: 64,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config.clone()).with_provider(provider);
    let options = RunOptions::default();
    let stop = options.stop.clone();
    let finished = Arc::new(AtomicU32::new(0));
    let counter = finished.clone();
    let options = RunOptions {
        progress: Some(Arc::new(move |e| {
            if matches!(e, ProgressEvent::IterationFinished { .. })
                && counter.fetch_add(1, Ordering::SeqCst) + 1 == 5
            {
                stop.cancel();
            }
        })),
        ..options
    };
    let err = runner
        .run_with(f.user.id, f.experiment.id, options)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Stopped), "{err:?}");
    let runs = f
        .store
        .list_batch_runs(f.user.id, f.experiment.id)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, BatchRunStatus::Running, "left for a resume");
    assert_eq!(
        runs[0].iterations_recorded, 5,
        "buffered answers were written"
    );
    assert_eq!(
        f.store
            .get_user(f.user.id)
            .await
            .unwrap()
            .quota
            .prompts_used,
        20,
        "nothing refunded: the run goes on elsewhere"
    );
    let stored = f
        .store
        .get_experiment(f.user.id, f.experiment.id)
        .await
        .unwrap();
    assert_eq!(stored.status, ExperimentStatus::Running);

    let fresh = Arc::new(Scripted::default());
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(fresh.clone());
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    assert_eq!(outcome.batch_runs[0].id, runs[0].id);
    assert_eq!(outcome.batch_runs[0].iterations_recorded, 20);
    assert_eq!(fresh.calls.load(Ordering::SeqCst), 15);
}

#[tokio::test]
async fn a_hard_deadline_fails_the_runs_and_refunds_the_rest() {
    let f = fixture(20, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        hang_from: Some(3),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 1,
        ..RunnerConfig::default()
    };
    let runner = ExperimentRunner::new(f.store.clone(), config).with_provider(provider);
    let options = RunOptions {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(100)),
        ..RunOptions::default()
    };
    let outcome = runner
        .run_with(f.user.id, f.experiment.id, options)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Failed);
    let run = &outcome.batch_runs[0];
    assert_eq!(
        (run.status, run.iterations_recorded),
        (BatchRunStatus::Failed, 3)
    );
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("hard time limit")
    );
    assert_eq!(outcome.refunded, 17);
}

#[tokio::test]
async fn a_finished_experiment_is_not_run_again() {
    let f = fixture(10, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted::default());
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_provider(provider.clone());
    let first = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(first.status, ExperimentStatus::Completed);
    let again = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.refunded),
        (ExperimentStatus::Completed, 0)
    );
    assert!(again.batch_runs.is_empty());
    assert_eq!(provider.calls.load(Ordering::SeqCst), 10);
    let runs = f
        .store
        .list_batch_runs(f.user.id, f.experiment.id)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_work_resumably_instead_of_cancelling_it() {
    let f = fixture(500, &[ProviderKind::OpenAi]).await;
    let provider = Arc::new(Scripted {
        delay: Duration::from_millis(10),
        ..Scripted::default()
    });
    let config = RunnerConfig {
        provider_concurrency: 1,
        write_batch: 1,
        ..RunnerConfig::default()
    };
    let runner = Arc::new(ExperimentRunner::new(f.store.clone(), config).with_provider(provider));
    let lease = Duration::from_millis(150);
    let executor = JobExecutor::new(f.store.clone(), runner, lease);
    let claimed = f
        .store
        .claim("zombie", 1, lease, Timestamp::now())
        .await
        .unwrap()
        .remove(0);
    let running = tokio::spawn({
        let claimed = claimed.clone();
        async move {
            executor
                .execute_with(&claimed, ExecuteOptions::default())
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = f
            .store
            .list_batch_runs(f.user.id, f.experiment.id)
            .await
            .unwrap();
        if runs.first().is_some_and(|r| r.iterations_recorded >= 3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another worker takes the job over (as after a partition outlasting the lease).
    f.store
        .release(claimed.lease(), Timestamp::now())
        .await
        .unwrap();
    let thief = f
        .store
        .claim("thief", 1, Duration::from_secs(60), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(thief.len(), 1);
    let execution = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the zombie stops within a heartbeat")
        .unwrap()
        .unwrap();
    assert_eq!(execution.outcome, JobOutcome::LeaseLost);
    let run = &f
        .store
        .list_batch_runs(f.user.id, f.experiment.id)
        .await
        .unwrap()[0];
    assert_eq!(
        run.status,
        BatchRunStatus::Running,
        "left for the new owner to resume"
    );
    assert!(run.iterations_recorded < 500);
    assert_eq!(
        f.store
            .get_user(f.user.id)
            .await
            .unwrap()
            .quota
            .prompts_used,
        500,
        "nothing refunded"
    );
    let job = f.store.get_job(claimed.id).await.unwrap();
    assert_eq!(job.lease_owner.as_deref(), Some("thief"));
}

/// Answers with personal data next to brand names.
#[derive(Debug)]
struct ChattyProvider;

#[async_trait]
impl Provider for ChattyProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        Ok(Completion {
            text: "1. **HubSpot**: ask jane.doe@example.com or call +1 (415) 555-2671.\n\
                   2. Salesforce, from 192.168.1.20."
                .into(),
            model: request.model.clone(),
            input_tokens: 1,
            output_tokens: 1,
            latency: Duration::ZERO,
            finish_reason: FinishReason::Stop,
            citations: Vec::new(),
        })
    }
}

#[tokio::test]
async fn redaction_removes_personal_data_before_storage_but_not_from_extraction() {
    let store = memory_store();
    let user = add_user(&store).await;
    let experiment = experiment_of(&user, 3, &[ProviderKind::OpenAi]);
    let job = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    }
    .into_job(Timestamp::now());
    create_with_job(&store, &experiment, &job).await;
    let runner = ExperimentRunner::new(store.clone(), RunnerConfig::default())
        .with_provider(Arc::new(ChattyProvider))
        .with_redaction(Arc::new(crate::privacy::Redactor::new().unwrap()));
    let outcome = runner
        .run(user.id, experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    let run = &outcome.batch_runs[0];
    let stored = store.list_iterations(user.id, run.id, 0, 10).await.unwrap();
    assert_eq!(stored.len(), 3);
    for it in &stored {
        let text = it.raw_response.as_deref().unwrap();
        assert!(
            !text.contains("jane.doe") && !text.contains("555-2671"),
            "{text}"
        );
        assert!(!text.contains("192.168.1.20"), "{text}");
        assert!(text.contains("[EMAIL]") && text.contains("[PHONE]") && text.contains("[IP]"));
        let brands: Vec<&str> = it
            .mentions
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.brand.as_str())
            .collect();
        assert_eq!(brands, ["HubSpot", "Salesforce"]);
    }
    let metrics = run.metrics.clone().unwrap().metrics;
    assert_eq!(metrics.brands[0].visibility.successes, 3);
}

/// The server's `simulated.latency_ms` reaches every per-experiment simulator, so staging
/// rehearsals get runs that are still in flight seconds later. A lower bound (the simulator
/// sleeps at least this long), not a timing measurement.
#[tokio::test]
async fn simulated_latency_applies_to_per_experiment_simulators() {
    let f = fixture(3, &[ProviderKind::Simulated]).await;
    let runner = ExperimentRunner::new(f.store.clone(), RunnerConfig::default())
        .with_simulated_per_experiment(7)
        .with_simulated_latency(std::time::Duration::from_millis(40));
    let outcome = runner
        .run(f.user.id, f.experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    let run = &outcome.batch_runs[0];
    let iterations = f
        .store
        .list_iterations(f.user.id, run.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(iterations.len(), 3);
    assert!(
        iterations.iter().all(|it| it.latency_ms >= 40),
        "{:?}",
        iterations
            .iter()
            .map(|it| it.latency_ms)
            .collect::<Vec<_>>()
    );
}

/// A provider that cites sources: two valid ones (one with a span and a title), one that is
/// not a URL, and (with `pii`) personal data that redaction removes.
#[derive(Debug)]
struct CitingProvider {
    pii: bool,
}

#[async_trait]
impl Provider for CitingProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Perplexity
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let text = if self.pii {
            "HubSpot is free [1]. Mail jane.doe@example.com for Salesforce [3]."
        } else {
            "HubSpot is free [1]. Salesforce is big [3]."
        };
        Ok(Completion {
            text: text.into(),
            model: request.model.clone(),
            input_tokens: 1,
            output_tokens: 1,
            latency: Duration::ZERO,
            finish_reason: FinishReason::Stop,
            citations: vec![
                crate::provider::CitedSource {
                    url: "https://www.hubspot.com/pricing".into(),
                    title: Some("HubSpot pricing".into()),
                    spans: vec![crate::provider::SourceSpan { start: 0, end: 20 }],
                },
                crate::provider::CitedSource::from_url("not a url"),
                crate::provider::CitedSource::from_url("https://news.bbc.co.uk/tech"),
            ],
        })
    }
}

async fn run_citing(pii: bool) -> Vec<Iteration> {
    let store = memory_store();
    let user = add_user(&store).await;
    let (experiment, _) = add_experiment(&store, &user, 2, &[ProviderKind::Perplexity]).await;
    let mut runner = ExperimentRunner::new(store.clone(), RunnerConfig::default())
        .with_provider(Arc::new(CitingProvider { pii }));
    if pii {
        runner = runner.with_redaction(Arc::new(crate::privacy::Redactor::new().unwrap()));
    }
    let outcome = runner
        .run(user.id, experiment.id, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(outcome.status, ExperimentStatus::Completed);
    store
        .list_iterations(user.id, outcome.batch_runs[0].id, 0, 10)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_completions_sources_are_stored_with_each_iteration() {
    let stored = run_citing(false).await;
    assert_eq!(stored.len(), 2);
    for it in &stored {
        let got: Vec<(u32, &str, Option<&str>, usize)> = it
            .sources
            .iter()
            .map(|s| {
                (
                    s.position,
                    s.domain.as_str(),
                    s.title.as_deref(),
                    s.spans.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "hubspot.com", Some("HubSpot pricing"), 1),
                (2, "bbc.co.uk", None, 0)
            ],
            "the invalid source is dropped"
        );
        assert_eq!(it.sources[1].url, "https://news.bbc.co.uk/tech");
    }
}

#[tokio::test]
async fn redacted_answers_keep_their_sources_but_not_the_spans() {
    let stored = run_citing(true).await;
    for it in &stored {
        assert!(it.raw_response.as_deref().unwrap().contains("[EMAIL]"));
        assert_eq!(it.sources.len(), 2);
        assert!(it.sources.iter().all(|s| s.spans.is_empty()));
    }
}
