use time::macros::datetime;

use super::*;
use crate::model::{
    ConsentChange, Email, ExperimentStatus, Job, JobStatus, PasswordHash, PricingTier,
    ProviderKind, Recurrence,
};
use crate::runner::RUN_EXPERIMENT;
use crate::runner::tests::{add_user, create_with_job, experiment_of, memory_store};

fn now() -> Timestamp {
    Timestamp::from_datetime(datetime!(2026-05-04 10:17:30 UTC))
}

fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

/// A recurring experiment, stored with a first run job due only next year, so the queue's
/// `due` count shows just what the scheduler enqueues.
async fn recurring(
    store: &Arc<DynStore>,
    user: &User,
    iterations: u32,
    schedule: &str,
    next_run_at: Timestamp,
) -> Experiment {
    let mut experiment = experiment_of(user, iterations, &[ProviderKind::Simulated]);
    experiment.status = ExperimentStatus::Completed;
    experiment.recurrence = Some(Recurrence {
        schedule: schedule.to_owned(),
        next_run_at: Some(next_run_at),
    });
    let payload = RunExperimentPayload {
        user_id: user.id,
        experiment_id: experiment.id,
    };
    let first = Job::new(&payload, now() + time::Duration::days(365), 3, now()).unwrap();
    create_with_job(store, &experiment, &first).await;
    experiment
}

fn scheduler(store: &Arc<DynStore>) -> Scheduler {
    Scheduler::new(store.clone(), SchedulerConfig::default())
}

async fn next_run_at(store: &Arc<DynStore>, e: &Experiment) -> Option<Timestamp> {
    let stored = store.get_experiment(e.user_id, e.id).await.unwrap();
    stored.recurrence.and_then(|r| r.next_run_at)
}

async fn due_jobs(store: &Arc<DynStore>) -> u64 {
    store.queue_stats(now()).await.unwrap().due
}

#[tokio::test]
async fn a_due_experiment_is_enqueued_once_and_its_schedule_advanced() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(
        &store,
        &user,
        10,
        "0 * * * *",
        now() - time::Duration::minutes(17),
    )
    .await;
    let used = store.get_user(user.id).await.unwrap().quota.prompts_used;

    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!((report.enqueued, report.lost, report.ended), (1, 0, 0));
    let expected = Timestamp::from_datetime(datetime!(2026-05-04 11:00 UTC));
    assert_eq!(next_run_at(&store, &e).await, Some(expected));
    let stored = store.get_experiment(user.id, e.id).await.unwrap();
    assert_eq!(stored.status, ExperimentStatus::Queued);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        used + 10
    );
    let jobs = store
        .claim("w", 10, Duration::from_secs(30), now())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, RUN_EXPERIMENT);
    let payload: RunExperimentPayload = serde_json::from_value(jobs[0].payload.clone()).unwrap();
    assert_eq!((payload.user_id, payload.experiment_id), (user.id, e.id));

    let again = scheduler(&store).tick(now()).await.unwrap();
    assert!(again.is_quiet(), "{again:?}");
    let at_the_next_slot = scheduler(&store).tick(expected).await.unwrap();
    assert_eq!(at_the_next_slot.enqueued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_schedulers_enqueue_each_of_twenty_due_experiments_exactly_once() {
    let store = memory_store();
    let user = add_user(&store).await;
    for i in 0..20 {
        recurring(
            &store,
            &user,
            3,
            "*/5 * * * *",
            now() - time::Duration::seconds(i),
        )
        .await;
    }
    let used = store.get_user(user.id).await.unwrap().quota.prompts_used;
    // Small pages, so each scheduler reads several and their claims interleave.
    let config = SchedulerConfig {
        batch: 3,
        ..SchedulerConfig::default()
    };
    let a = Arc::new(Scheduler::new(store.clone(), config.clone()));
    let b = Arc::new(Scheduler::new(store.clone(), config));
    let (ra, rb) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.tick(now()).await }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.tick(now()).await }
        }),
    );
    let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    assert_eq!(ra.enqueued + rb.enqueued, 20, "{ra:?} {rb:?}");
    assert_eq!(ra.errors + rb.errors, 0);
    assert_eq!(due_jobs(&store).await, 20);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        used + 60
    );
}

#[tokio::test]
async fn a_schedule_missed_for_several_slots_runs_once() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(&store, &user, 5, "0 * * * *", now() - hours(5)).await;
    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!(report.enqueued, 1);
    assert_eq!(
        due_jobs(&store).await,
        1,
        "one run, not one per missed hour"
    );
    assert_eq!(
        next_run_at(&store, &e).await,
        Some(Timestamp::from_datetime(datetime!(2026-05-04 11:00 UTC))),
        "the next slot after now, not after the missed one"
    );
}

#[tokio::test]
async fn an_owner_over_quota_is_skipped_and_the_schedule_still_advances() {
    let store = memory_store();
    let now_ = now();
    let mut user = User::new(
        Email::parse("free@example.com").unwrap(),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        PricingTier::Free,
        now_,
    );
    user.quota.resets_at = now_ + time::Duration::days(20);
    user.consents.data_processing_consent_at = Some(now_);
    store.create_user(&user).await.unwrap();
    // The first run took 400 of the free tier's 500; another would exceed it.
    let e = recurring(&store, &user, 400, "@daily", now_ - hours(1)).await;
    let report = scheduler(&store).tick(now_).await.unwrap();
    assert_eq!((report.enqueued, report.skipped_over_quota), (0, 1));
    assert_eq!(due_jobs(&store).await, 0, "no job");
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        400
    );
    assert_eq!(
        next_run_at(&store, &e).await,
        Some(Timestamp::from_datetime(datetime!(2026-05-05 00:00 UTC)))
    );
}

#[tokio::test]
async fn due_quotas_are_reset_before_runs_are_debited() {
    let store = memory_store();
    let now_ = now();
    let mut user = User::new(
        Email::parse("renewed@example.com").unwrap(),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        PricingTier::Free,
        now_ - time::Duration::days(40),
    );
    user.quota.resets_at = now_ - time::Duration::days(10);
    user.consents.data_processing_consent_at = Some(now_);
    store.create_user(&user).await.unwrap();
    // 400 used before the reset: without it the run below would be over the 500 limit.
    recurring(&store, &user, 400, "@hourly", now_ - hours(1)).await;
    let report = scheduler(&store).tick(now_).await.unwrap();
    assert_eq!((report.quotas_reset, report.enqueued), (1, 1));
    let after = store.get_user(user.id).await.unwrap().quota;
    assert_eq!(after.prompts_used, 400, "reset to zero, then this run");
    assert!(after.resets_at > now_);
}

#[tokio::test]
async fn an_invalid_stored_expression_ends_the_recurrence_after_the_due_run() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(&store, &user, 2, "every tuesday", now() - hours(1)).await;
    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!((report.enqueued, report.ended, report.errors), (1, 1, 0));
    assert_eq!(next_run_at(&store, &e).await, None);
    let later = scheduler(&store).tick(now() + hours(48)).await.unwrap();
    assert_eq!(later.enqueued, 0);
}

#[tokio::test]
async fn an_inactive_owners_schedule_advances_without_a_run_or_a_charge() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(&store, &user, 2, "@hourly", now() - hours(1)).await;
    store
        .request_deletion(user.id, now(), now() + hours(24 * 30))
        .await
        .unwrap();
    let used = store.get_user(user.id).await.unwrap().quota.prompts_used;
    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!((report.enqueued, report.skipped_inactive), (0, 1));
    assert_eq!(due_jobs(&store).await, 0);
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        used
    );
    assert!(next_run_at(&store, &e).await > Some(now()));
}

#[tokio::test]
async fn old_finished_jobs_are_pruned() {
    let store = memory_store();
    let old = crate::conformance::fixtures::job(now(), 1);
    store.enqueue(&old).await.unwrap();
    let claimed = store
        .claim("w", 1, Duration::from_secs(30), now())
        .await
        .unwrap();
    store.complete(claimed[0].lease(), now()).await.unwrap();
    let fresh = crate::conformance::fixtures::job(now(), 1);
    store.enqueue(&fresh).await.unwrap();

    let soon = scheduler(&store).tick(now() + hours(24)).await.unwrap();
    assert_eq!(soon.jobs_pruned, 0, "younger than prune_after");
    let report = scheduler(&store)
        .tick(now() + time::Duration::days(8))
        .await
        .unwrap();
    assert_eq!(report.jobs_pruned, 1);
    assert!(store.get_job(old.id).await.is_err());
    assert_eq!(
        store.get_job(fresh.id).await.unwrap().status,
        JobStatus::Queued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ticks_until_shutdown() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(&store, &user, 2, "* * * * *", Timestamp::now() - hours(1)).await;
    let scheduler = Arc::new(Scheduler::new(
        store.clone(),
        SchedulerConfig {
            interval: Duration::from_millis(10),
            ..SchedulerConfig::default()
        },
    ));
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let (scheduler, shutdown) = (scheduler.clone(), shutdown.clone());
        async move { scheduler.run(shutdown).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while next_run_at(&store, &e).await <= Some(Timestamp::now() - hours(1)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler never ticked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("run returns on shutdown")
        .unwrap();
    assert_eq!(store.queue_stats(Timestamp::now()).await.unwrap().due, 1);
}

#[tokio::test]
async fn an_owner_without_consent_is_skipped_without_a_run_or_a_charge() {
    let store = memory_store();
    let user = add_user(&store).await;
    let e = recurring(&store, &user, 2, "@hourly", now() - hours(1)).await;
    let withdraw = ConsentChange {
        data_processing: Some(false),
        ..ConsentChange::default()
    };
    store
        .update_consents(user.id, &withdraw, now())
        .await
        .unwrap();
    let used = store.get_user(user.id).await.unwrap().quota.prompts_used;
    let due_before = due_jobs(&store).await;

    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!(
        (
            report.enqueued,
            report.skipped_no_consent,
            report.skipped_over_quota
        ),
        (0, 1, 0)
    );
    assert_eq!(due_jobs(&store).await, due_before, "no job");
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        used,
        "no charge"
    );
    assert_eq!(
        next_run_at(&store, &e).await,
        Some(Timestamp::from_datetime(datetime!(2026-05-04 11:00 UTC))),
        "the schedule advances, so it does not stay due"
    );

    // Consent given again: the next occurrence runs.
    let give = ConsentChange {
        data_processing: Some(true),
        ..ConsentChange::default()
    };
    store.update_consents(user.id, &give, now()).await.unwrap();
    let later = scheduler(&store).tick(now() + hours(1)).await.unwrap();
    assert_eq!((later.enqueued, later.skipped_no_consent), (1, 0));
}

#[tokio::test]
async fn an_owner_with_an_unverified_email_is_skipped_until_verified() {
    let store = memory_store();
    let mut user = User::new(
        Email::parse(format!("{}@example.com", crate::model::UserId::new())).unwrap(),
        PasswordHash::unusable(),
        PricingTier::Pro,
        now() - hours(2),
    );
    user.consents.data_processing_consent_at = Some(user.created_at);
    user.email_verification_required = true;
    store.create_user(&user).await.unwrap();
    let e = recurring(&store, &user, 2, "@hourly", now() - hours(1)).await;
    let used = store.get_user(user.id).await.unwrap().quota.prompts_used;
    let due_before = due_jobs(&store).await;

    let report = scheduler(&store).tick(now()).await.unwrap();
    assert_eq!(
        (
            report.enqueued,
            report.skipped_unverified,
            report.skipped_no_consent
        ),
        (0, 1, 0)
    );
    assert_eq!(due_jobs(&store).await, due_before, "no job");
    assert_eq!(
        store.get_user(user.id).await.unwrap().quota.prompts_used,
        used,
        "no charge"
    );
    assert_eq!(
        next_run_at(&store, &e).await,
        Some(Timestamp::from_datetime(datetime!(2026-05-04 11:00 UTC))),
        "the schedule advances, so it does not stay due"
    );

    // Verified: the next occurrence runs.
    let token = crate::model::EmailVerificationToken {
        user_id: user.id,
        token_hash: crate::model::SecretDigest([7; 32]),
        created_at: now(),
        expires_at: now() + hours(24),
    };
    store.put_email_verification_token(&token).await.unwrap();
    store
        .redeem_email_verification_token(&token.token_hash, now())
        .await
        .unwrap();
    let later = scheduler(&store).tick(now() + hours(1)).await.unwrap();
    assert_eq!((later.enqueued, later.skipped_unverified), (1, 0));
}
