//! Builders for valid records, a fixed clock, assertion helpers and a small async property
//! runner, shared by the scenarios.
//!
//! Every builder returns a record that passes its model's validation and carries identities that
//! are unique across calls (emails, public key ids), so scenarios can create as many users as they
//! like in one store. Time is always explicit: [`base_time`] plus offsets.

use std::fmt::Debug;
use std::future::Future;
use std::task::Poll;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use time::Duration;

use crate::analysis::{
    AnswerRecord, PawcSummary, ReproducibilityRecord, RunMetrics, TrackedBrands,
};
use crate::model::{
    ApiKeyId, ApiKeyRecord, BatchRun, BatchRunId, BatchRunMetrics, BatchRunStatus, BatchRunUpdate,
    Brand, BrandMention, BrandName, Email, Experiment, ExperimentId, ExperimentStatus, Iteration,
    IterationId, IterationSource, Iterations, Job, JobPayload, JobStatus, Label, NewAuditEvent,
    PasswordHash, PricingTier, Prompt, ProviderConfig, ProviderKind, QuotaDebit, Recurrence,
    SecretDigest, SessionId, SessionRecord, Timestamp, User, UserId,
};
use crate::provider::SourceSpan;
use crate::store::{DynStore, ExperimentQuery, PageSize, StoreError};

/// The limit passed with debits in scenarios that are not about quotas: high enough never to
/// refuse.
pub const GENEROUS_LIMIT: u32 = 1_000_000;

/// The instant every scenario's clock is built from: 2026-03-15 12:00:00 UTC.
pub fn base_time() -> Timestamp {
    Timestamp::from_datetime(time::macros::datetime!(2026-03-15 12:00 UTC))
}

/// [`base_time`] plus `secs` seconds (negative for earlier).
pub fn at(secs: i64) -> Timestamp {
    base_time() + Duration::seconds(secs)
}

/// [`base_time`] plus `micros` microseconds: for values that must keep sub-second precision.
pub fn at_micros(micros: i64) -> Timestamp {
    base_time() + Duration::microseconds(micros)
}

/// A string no other call returns (a UUID v7 in simple form).
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A unique, valid email address.
pub fn email() -> Email {
    Email::parse(format!("user-{}@example.com", unique())).expect("fixture email is valid")
}

/// A syntactically valid PHC password hash.
pub fn password_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
        .expect("fixture hash is valid")
}

/// A new free-tier user created at [`base_time`] (not stored).
pub fn user() -> User {
    User::new(email(), password_hash(), PricingTier::Free, base_time())
}

/// Stores a new [`user`] and returns it.
pub async fn new_user(store: &DynStore) -> User {
    new_user_with(store, |_| {}).await
}

/// Stores a new [`user`] after `edit` has changed it, and returns it.
pub async fn new_user_with(store: &DynStore, edit: impl FnOnce(&mut User)) -> User {
    let mut u = user();
    edit(&mut u);
    store
        .create_user(&u)
        .await
        .expect("create_user of a fixture user");
    u
}

/// A brand name; panics on invalid input (fixtures only pass valid names).
pub fn name(s: &str) -> BrandName {
    BrandName::parse(s).expect("fixture brand name is valid")
}

/// A brand without aliases.
pub fn brand(s: &str) -> Brand {
    Brand::new(name(s))
}

/// A provider configuration for `provider`.
pub fn provider(provider: ProviderKind) -> ProviderConfig {
    ProviderConfig {
        provider,
        model: "sim-1".into(),
        temperature: 0.7,
    }
}

/// A valid pending experiment of `owner`: 10 iterations on the simulated provider (10 prompts
/// per run), created at `created_at`.
pub fn experiment(owner: UserId, created_at: Timestamp) -> Experiment {
    Experiment {
        id: ExperimentId::new(),
        user_id: owner,
        prompt: Prompt::parse("Which CRM would you recommend to a startup?")
            .expect("fixture prompt is valid"),
        target: Brand {
            name: name("HubSpot"),
            aliases: vec![name("HubSpot CRM")],
            match_mode: crate::model::MatchMode::CaseInsensitive,
        },
        competitors: vec![brand("Salesforce"), brand("Pipedrive")],
        iterations: Iterations::new(10).expect("fixture iterations are valid"),
        providers: vec![provider(ProviderKind::Simulated)],
        status: ExperimentStatus::Pending,
        recurrence: None,
        prompt_set: None,
        precision: None,
        created_at,
        updated_at: created_at,
    }
}

/// Like [`experiment`], recurring hourly with the given next due instant.
pub fn recurring(
    owner: UserId,
    created_at: Timestamp,
    next_run_at: Option<Timestamp>,
) -> Experiment {
    let mut e = experiment(owner, created_at);
    e.recurrence = Some(Recurrence {
        schedule: "0 * * * *".into(),
        next_run_at,
    });
    e
}

/// Sets the number of iterations (and so the prompts per run with one provider).
pub fn with_iterations(mut e: Experiment, n: u32) -> Experiment {
    e.iterations = Iterations::new(n).expect("fixture iterations are valid");
    e
}

/// A debit of one run of `e` for its owner, under [`GENEROUS_LIMIT`].
pub fn debit(e: &Experiment) -> QuotaDebit {
    debit_with_limit(e, GENEROUS_LIMIT)
}

/// A debit of one run of `e` for its owner, under `limit`.
pub fn debit_with_limit(e: &Experiment, limit: u32) -> QuotaDebit {
    QuotaDebit {
        user_id: e.user_id,
        amount: e.prompts_per_run(),
        limit,
    }
}

/// A queued `run_experiment` job for `experiment` (naming its owner), due at `now`.
pub fn run_job(experiment: &Experiment, now: Timestamp) -> Job {
    let mut job = crate::runner::RunExperimentPayload {
        user_id: experiment.user_id,
        experiment_id: experiment.id,
    }
    .into_job(now);
    job.request_id = Some(format!("req-{}", unique()));
    job
}

/// Stores `e` with a generous debit and a fresh run job; returns the job.
pub async fn store_experiment(store: &DynStore, e: &Experiment) -> Job {
    let job = run_job(e, e.created_at);
    store
        .create_experiment(e, debit(e), &job)
        .await
        .expect("create_experiment of a fixture experiment");
    job
}

/// Stores a new [`experiment`] of `owner` created at `created_at` and returns it.
pub async fn new_experiment(store: &DynStore, owner: UserId, created_at: Timestamp) -> Experiment {
    let e = experiment(owner, created_at);
    store_experiment(store, &e).await;
    e
}

/// A pending batch run of `e` on `provider` planning 10 iterations.
pub fn batch_run(e: &Experiment, provider: ProviderKind, created_at: Timestamp) -> BatchRun {
    BatchRun::new(e.id, provider, "sim-1", 10, created_at)
}

/// Stores a new [`batch_run`] of `e` and returns it.
pub async fn new_batch_run(store: &DynStore, e: &Experiment, created_at: Timestamp) -> BatchRun {
    let run = batch_run(e, ProviderKind::Simulated, created_at);
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run of a fixture run");
    run
}

/// A successful iteration: an answer naming two brands, 10 input and `20 + index` output tokens.
pub fn iteration(run: BatchRunId, index: u32, created_at: Timestamp) -> Iteration {
    Iteration {
        id: IterationId::new(),
        batch_run_id: run,
        index,
        raw_response: Some(format!("Answer {index}: HubSpot, then Salesforce.")),
        mentions: Some(vec![
            BrandMention {
                brand: "HubSpot".into(),
                count: 1,
                first_offset: 10,
                rank: 1,
                list_position: None,
            },
            BrandMention {
                brand: "Salesforce".into(),
                count: 1,
                first_offset: 24,
                rank: 2,
                list_position: Some(2),
            },
        ]),
        is_success: true,
        error: None,
        latency_ms: 100 + index,
        input_tokens: 10,
        output_tokens: 20 + index,
        created_at,
        is_anonymized: false,
        anonymized_at: None,
        sources: sources(),
    }
}

/// The two sources every fixture [`iteration`] cites: one with a title and the span of the
/// answer it supports (with a multi-byte title), one known by its URL alone.
pub fn sources() -> Vec<IterationSource> {
    vec![
        IterationSource {
            position: 1,
            url: "https://www.hubspot.com/products/crm".into(),
            domain: "hubspot.com".into(),
            title: Some("HubSpot CRM — free «forever»".into()),
            spans: vec![
                SourceSpan { start: 0, end: 9 },
                SourceSpan { start: 10, end: 17 },
            ],
        },
        IterationSource {
            position: 2,
            url: "https://news.bbc.co.uk/tech?x=1&y=2".into(),
            domain: "bbc.co.uk".into(),
            title: None,
            spans: vec![],
        },
    ]
}

/// A failed iteration: no answer, no mentions, an error, no tokens.
pub fn failed_iteration(run: BatchRunId, index: u32, created_at: Timestamp) -> Iteration {
    Iteration {
        raw_response: None,
        mentions: None,
        is_success: false,
        error: Some("provider timed out".into()),
        input_tokens: 0,
        output_tokens: 0,
        sources: Vec::new(),
        ..iteration(run, index, created_at)
    }
}

/// The metrics of a run of [`experiment`]'s brands over 100 answers, `visibility` of which
/// (rounded to a hundredth) name the target; every answer names Salesforce.
pub fn batch_metrics(visibility: f64) -> BatchRunMetrics {
    let e = experiment(UserId::new(), base_time());
    let brands = TrackedBrands::new(&e.target, &e.competitors);
    let mention = |brand: &str, rank: u32| BrandMention {
        brand: brand.to_owned(),
        count: 1,
        first_offset: rank * 10,
        rank,
        list_position: None,
    };
    let named = [mention("HubSpot", 1), mention("Salesforce", 2)];
    let unnamed = [mention("Salesforce", 1)];
    let hits = (visibility.clamp(0.0, 1.0) * 100.0).round() as usize;
    let answers =
        (0..100).map(|i| AnswerRecord::Analysed(if i < hits { &named[..] } else { &unnamed[..] }));
    BatchRunMetrics {
        metrics: RunMetrics::compute(&brands, false, answers),
        word_count: PawcSummary::mean(&brands, std::iter::empty()),
        reproducibility: ReproducibilityRecord::new(&e.providers[0], None, e.prompt.as_str()),
        prompt_set: None,
    }
}

/// An update that completes a run with `visibility` at `completed_at`.
pub fn completed_update(visibility: Option<f64>, completed_at: Timestamp) -> BatchRunUpdate {
    BatchRunUpdate {
        status: BatchRunStatus::Completed,
        metrics: visibility.map(batch_metrics),
        visibility_rate: visibility,
        cost_micros_usd: 1_250,
        error: None,
        started_at: Some(completed_at - Duration::minutes(5)),
        completed_at: Some(completed_at),
    }
}

/// An active API-key record of `owner` with a unique public id.
pub fn api_key(owner: UserId, created_at: Timestamp) -> ApiKeyRecord {
    let id = ApiKeyId::new();
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(id.as_uuid().as_bytes());
    digest[16..].copy_from_slice(owner.as_uuid().as_bytes());
    ApiKeyRecord {
        id,
        user_id: owner,
        name: Label::parse("CI key").expect("fixture label is valid"),
        public_id: format!("ek_{}", unique()),
        secret_hash: SecretDigest(digest),
        is_active: true,
        created_at,
        last_used_at: None,
        expires_at: Some(created_at + Duration::days(90)),
        revoked_at: None,
    }
}

/// An unrevoked session of `owner` created at `created_at`, expiring 12 hours later, with a
/// digest unique to it.
pub fn session(owner: UserId, created_at: Timestamp) -> SessionRecord {
    let id = SessionId::new();
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(owner.as_uuid().as_bytes());
    digest[16..].copy_from_slice(id.as_uuid().as_bytes());
    SessionRecord {
        id,
        user_id: owner,
        secret_hash: SecretDigest(digest),
        created_at,
        expires_at: created_at + Duration::hours(12),
        revoked_at: None,
    }
}

/// An audit event with every optional field set.
pub fn audit_event(action: &str, created_at: Timestamp) -> NewAuditEvent {
    NewAuditEvent {
        actor_user_id: None,
        action: action.into(),
        resource_type: "experiment".into(),
        resource_id: Some(unique()),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("echo-conformance/1.0".into()),
        request_id: Some(format!("req-{}", unique())),
        details: json!({ "source": "conformance", "n": 1 }),
        created_at,
    }
}

/// The payload of the queue scenarios' jobs: the queue never reads payloads, so any typed
/// payload will do. Also for benches and embedders' queue tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestPayload {
    /// Makes every job's payload distinct.
    pub token: String,
}

impl JobPayload for TestPayload {
    const KIND: &'static str = "test_job";
}

/// A numbered payload of kind `noop`, for queue benchmarks and multi-process queue tests that
/// enqueue many jobs nobody executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoopPayload {
    /// The job's number.
    pub n: usize,
}

impl JobPayload for NoopPayload {
    const KIND: &'static str = "noop";
}

/// A queued test job due at `run_at`, allowed `max_attempts` claims, enqueued at `run_at`.
pub fn job(run_at: Timestamp, max_attempts: u32) -> Job {
    let payload = TestPayload { token: unique() };
    let mut j =
        Job::new(&payload, run_at, max_attempts, run_at).expect("a one-string struct encodes");
    j.request_id = Some(format!("req-{}", unique()));
    j
}

/// The experiments of a skewed database for query-plan tests: `heavy` for the first owner and
/// `light` for each other, created a minute apart from [`at`]`(0)`, every tenth recurring (due an
/// hour after its creation), statuses cycling through [`ExperimentStatus::ALL`].
pub fn skewed_experiments(owners: &[UserId], heavy: u32, light: u32) -> Vec<Experiment> {
    let statuses = ExperimentStatus::ALL;
    let mut experiments = Vec::new();
    for (n, owner) in owners.iter().enumerate() {
        let count = if n == 0 { heavy } else { light };
        for i in 0..count {
            let created = at(i64::from(i) * 60);
            let mut e = if i % 10 == 0 {
                recurring(*owner, created, Some(at(i64::from(i) * 60 + 3_600)))
            } else {
                experiment(*owner, created)
            };
            e.status = statuses[i as usize % statuses.len()];
            experiments.push(e);
        }
    }
    experiments
}

/// The `i`th job of a queue in every state: of each eight, one queued, one running (its lease
/// expiring 30 s after it was due), one failed and five succeeded; due at [`at`]`(i)`.
pub fn mixed_queue_job(i: i64) -> Job {
    let mut j = job(at(i), 3);
    j.status = match i % 8 {
        0 => JobStatus::Queued,
        1 => JobStatus::Running,
        2 => JobStatus::Failed,
        _ => JobStatus::Succeeded,
    };
    if j.status == JobStatus::Running {
        j.lease_expires_at = Some(at(i + 30));
    }
    j
}

/// The `i`th audit event of a busy log: logins and experiment creations in turn, by `owners`
/// in turn, at [`at`]`(i)`.
pub fn busy_log_event(i: i64, owners: &[UserId]) -> NewAuditEvent {
    let action = if i % 2 == 0 {
        "login"
    } else {
        "create_experiment"
    };
    let mut event = audit_event(action, at(i));
    event.actor_user_id = Some(owners[i as usize % owners.len()]);
    event
}

/// A page size; panics outside 1..=100.
pub fn page_size(n: u32) -> PageSize {
    PageSize::new(n).expect("fixture page size is valid")
}

/// Every experiment of `owner` matching `query`'s filter, by following cursors from the start
/// with pages of `limit`. Checks that only the last page lacks a cursor and that the cursor is
/// the last row's `(created_at, id)`.
pub async fn collect_experiment_pages(
    store: &DynStore,
    owner: UserId,
    query: &ExperimentQuery,
) -> Result<Vec<Experiment>, String> {
    let mut query = query.clone();
    query.after = None;
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .list_experiments(owner, &query)
            .await
            .map_err(|e| format!("list_experiments: {e:?}"))?;
        if page.items.len() > query.limit.get() as usize {
            return Err(format!(
                "page of {} rows over limit {}",
                page.items.len(),
                query.limit.get()
            ));
        }
        let Some(cursor) = page.next_cursor else {
            all.extend(page.items);
            return Ok(all);
        };
        let Some(last) = page.items.last() else {
            return Err("an empty page has a next_cursor".into());
        };
        if (cursor.created_at, cursor.id) != (last.created_at, last.id) {
            return Err(format!(
                "cursor {cursor:?} is not the last row ({:?}, {:?})",
                last.created_at, last.id
            ));
        }
        all.extend(page.items);
        query.after = Some(cursor);
    }
    Err("pagination did not end".into())
}

/// Ids in the listing's documented order: `created_at`, then `id`, both descending.
pub fn newest_first(experiments: &[Experiment]) -> Vec<ExperimentId> {
    let mut keys: Vec<_> = experiments.iter().map(|e| (e.created_at, e.id)).collect();
    keys.sort_by(|a, b| b.cmp(a));
    keys.into_iter().map(|(_, id)| id).collect()
}

/// Ids of `experiments`, in order.
pub fn ids(experiments: &[Experiment]) -> Vec<ExperimentId> {
    experiments.iter().map(|e| e.id).collect()
}

/// Asserts [`StoreError::NotFound`].
#[track_caller]
pub fn assert_not_found<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Asserts [`StoreError::Conflict`].
#[track_caller]
pub fn assert_conflict<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// Asserts [`StoreError::Invalid`].
#[track_caller]
pub fn assert_invalid<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// Asserts [`StoreError::LeaseLost`].
#[track_caller]
pub fn assert_lease_lost<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LeaseLost) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

/// Asserts that two figures are equal to within 1e-9, and finite.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        actual.is_finite() && (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

/// Yields once to the executor, so that concurrent futures on one task interleave even when a
/// store's futures complete without waiting.
pub async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Runs an async property over `cases` inputs drawn from `strategy`.
///
/// proptest's own runner takes a synchronous closure; this drives the strategy by hand so the
/// check can await the store. A failing input is shrunk (bounded at 256 steps) and the panic
/// reports the smallest failing input found. `check` must isolate its cases itself, e.g. by
/// creating a fresh user per call.
pub async fn check_property<S, F, Fut>(name: &str, cases: u32, strategy: S, mut check: F)
where
    S: Strategy,
    S::Value: Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|reason| panic!("property {name}: cannot generate input: {reason}"));
        let Err(mut failure) = check(tree.current()).await else {
            continue;
        };
        let mut minimal = format!("{:?}", tree.current());
        let mut failing = true;
        for _ in 0..256 {
            let moved = if failing {
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !moved {
                break;
            }
            match check(tree.current()).await {
                Err(e) => {
                    failure = e;
                    minimal = format!("{:?}", tree.current());
                    failing = true;
                }
                Ok(()) => failing = false,
            }
        }
        panic!(
            "property {name} failed (case {case}): {failure}\nsmallest failing input: {minimal}"
        );
    }
}
