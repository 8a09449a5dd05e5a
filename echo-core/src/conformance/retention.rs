//! Data retention and account purge, across the traits: anonymizing old iterations by tier
//! ([`RunStore::anonymize_iterations`](crate::store::RunStore::anonymize_iterations)), finding
//! the accounts due for deletion, and a deletion that leaves nothing of the user readable.
//!
//! The clock: `now` is [`at`]`(0)` and the retention cut-off is 90 days before it, as the
//! retention task computes it.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use futures::future::join_all;
use serde_json::json;
use time::Duration;

use super::fixtures::{
    api_key, assert_lease_lost, assert_not_found, at, audit_event, batch_run, brand,
    completed_update, debit, experiment, failed_iteration, iteration, job, new_user_with,
    page_size, recurring, run_job, session, yield_now,
};
use crate::model::{
    BatchRun, BrandProfile, Experiment, Iteration, Job, PricingTier, ProviderKind, Timestamp, User,
    UserId,
};
use crate::store::{AuditQuery, DynStore, ExperimentQuery};

/// The instant the retention pass runs at.
fn now() -> Timestamp {
    at(0)
}

/// `days` days before [`now`].
fn days_ago(days: i64) -> Timestamp {
    now() - Duration::days(days)
}

/// The pass's cut-off: iterations created before it are anonymized.
fn cutoff() -> Timestamp {
    days_ago(90)
}

/// A user on `tier`, created long before the iterations of the scenarios.
async fn user_on(store: &DynStore, tier: PricingTier) -> User {
    new_user_with(store, |u| {
        u.tier = tier;
        u.created_at = days_ago(400);
        u.updated_at = days_ago(400);
    })
    .await
}

/// A stored experiment of `owner` (created 200 days ago) with one stored run.
async fn owned_run(store: &DynStore, owner: UserId) -> (Experiment, BatchRun) {
    let e = experiment(owner, days_ago(200));
    let job = run_job(&e, e.created_at);
    store
        .create_experiment(&e, debit(&e), &job)
        .await
        .expect("create_experiment");
    let run = batch_run(&e, ProviderKind::Simulated, days_ago(200));
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");
    (e, run)
}

/// Stores `iterations` and returns them.
async fn record(store: &DynStore, iterations: Vec<Iteration>) -> Vec<Iteration> {
    store
        .record_iterations(&iterations)
        .await
        .expect("record_iterations");
    iterations
}

/// Every iteration of the owner's run, by index.
async fn stored(store: &DynStore, owner: UserId, run: &BatchRun) -> Vec<Iteration> {
    store
        .list_iterations(owner, run.id, 0, 10_000)
        .await
        .expect("list_iterations")
}

/// `it` as anonymized at `at`.
fn anonymized(it: &Iteration, at: Timestamp) -> Iteration {
    Iteration {
        raw_response: None,
        is_anonymized: true,
        anonymized_at: Some(at),
        sources: Vec::new(),
        ..it.clone()
    }
}

/// A successful iteration 91 days old is anonymized (answer removed, flag and time set) and
/// keeps its mentions, error, tokens and latency, as its run keeps its counters and metrics;
/// one 89 days old, and one created exactly at the cut-off, are untouched.
pub async fn anonymize_iterations_by_age_keeps_the_rest(store: &DynStore) {
    let u = user_on(store, PricingTier::Free).await;
    let (_, run) = owned_run(store, u.id).await;
    let its = record(
        store,
        vec![
            iteration(run.id, 0, days_ago(91)),
            iteration(run.id, 1, days_ago(89)),
            iteration(run.id, 2, cutoff()),
        ],
    )
    .await;
    store
        .update_batch_run(run.id, &completed_update(Some(0.5), days_ago(88)))
        .await
        .expect("update_batch_run");
    let run_before = store.get_batch_run(u.id, run.id).await.expect("run");

    assert_eq!(
        store
            .count_anonymizable(PricingTier::Free, cutoff())
            .await
            .expect("count_anonymizable"),
        1
    );
    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Free, cutoff(), 100, now())
            .await
            .expect("anonymize_iterations"),
        1
    );
    let after = stored(store, u.id, &run).await;
    assert_eq!(
        after,
        vec![anonymized(&its[0], now()), its[1].clone(), its[2].clone()]
    );
    assert!(
        after[0].mentions.as_ref().is_some_and(|m| m.len() == 2),
        "mentions are kept"
    );
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("run"),
        run_before,
        "the run's counters and metrics are kept"
    );
    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Free, cutoff(), 100, now())
            .await
            .expect("again"),
        0,
        "done"
    );
    assert_eq!(
        store
            .count_anonymizable(PricingTier::Free, cutoff())
            .await
            .expect("count after"),
        0
    );
}

/// Only iterations of runs whose owner is on the given tier *now* are touched (a user who
/// moved tier is judged by the new one); `count_anonymizable` counts the same rows.
pub async fn anonymize_iterations_touches_only_the_tier(store: &DynStore) {
    let free = user_on(store, PricingTier::Free).await;
    let pro = user_on(store, PricingTier::Pro).await;
    let enterprise = user_on(store, PricingTier::Enterprise).await;
    let upgraded = user_on(store, PricingTier::Free).await;
    let mut runs = Vec::new();
    for owner in [&free, &pro, &enterprise, &upgraded] {
        let (_, run) = owned_run(store, owner.id).await;
        let its = record(
            store,
            (0..3)
                .map(|i| iteration(run.id, i, days_ago(100 + i64::from(i))))
                .collect(),
        )
        .await;
        runs.push((owner.id, run, its));
    }
    store
        .set_tier(upgraded.id, PricingTier::Pro, days_ago(1))
        .await
        .expect("upgrade");

    assert_eq!(
        store
            .count_anonymizable(PricingTier::Pro, cutoff())
            .await
            .expect("count"),
        6,
        "the pro user's and the upgraded user's"
    );
    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Pro, cutoff(), 100, now())
            .await
            .expect("anonymize pro"),
        6
    );
    for (owner, run, its) in &runs {
        let expected: Vec<Iteration> = if *owner == pro.id || *owner == upgraded.id {
            its.iter().map(|it| anonymized(it, now())).collect()
        } else {
            its.clone()
        };
        assert_eq!(
            stored(store, *owner, run).await,
            expected,
            "tier of {owner:?}"
        );
    }
    assert_eq!(
        store
            .count_anonymizable(PricingTier::Free, cutoff())
            .await
            .expect("count free"),
        3
    );
    assert_eq!(
        store
            .count_anonymizable(PricingTier::Enterprise, cutoff())
            .await
            .expect("count enterprise"),
        3
    );
}

/// `limit` bounds each call; repeated calls finish the job and then return 0, and the count
/// follows. A `limit` of 0 changes nothing. Oldest-first is not required, so only the totals
/// are checked.
pub async fn anonymize_iterations_honours_limit_until_done(store: &DynStore) {
    let u = user_on(store, PricingTier::Free).await;
    let (_, first) = owned_run(store, u.id).await;
    let (_, second) = owned_run(store, u.id).await;
    record(
        store,
        (0..4)
            .map(|i| iteration(first.id, i, days_ago(120 - i64::from(i))))
            .collect(),
    )
    .await;
    record(
        store,
        (0..3)
            .map(|i| iteration(second.id, i, days_ago(95 + i64::from(i))))
            .collect(),
    )
    .await;
    let young = record(store, vec![iteration(second.id, 3, days_ago(10))]).await;

    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Free, cutoff(), 0, now())
            .await
            .expect("limit 0"),
        0
    );
    let mut counts = Vec::new();
    let mut changed = Vec::new();
    for step in 0..5 {
        counts.push(
            store
                .count_anonymizable(PricingTier::Free, cutoff())
                .await
                .expect("count"),
        );
        changed.push(
            store
                .anonymize_iterations(PricingTier::Free, cutoff(), 3, at(step))
                .await
                .expect("anonymize"),
        );
    }
    assert_eq!(changed, vec![3, 3, 1, 0, 0]);
    assert_eq!(counts, vec![7, 4, 1, 0, 0]);

    let all: Vec<Iteration> = [
        stored(store, u.id, &first).await,
        stored(store, u.id, &second).await,
    ]
    .concat();
    assert_eq!(all.iter().filter(|it| it.is_anonymized).count(), 7);
    assert!(
        all.iter()
            .filter(|it| it.is_anonymized)
            .all(|it| it.raw_response.is_none() && it.anonymized_at.is_some_and(|t| t <= at(2))),
        "{all:?}"
    );
    assert_eq!(
        all.last(),
        young.first(),
        "the young iteration is untouched"
    );
}

/// A failed call's iteration (no answer to remove) is flagged too, so the pass converges; an
/// iteration already anonymized is neither counted nor changed again (its `anonymized_at`
/// stays).
pub async fn anonymize_iterations_flags_failed_and_skips_done(store: &DynStore) {
    let u = user_on(store, PricingTier::Pro).await;
    let (_, run) = owned_run(store, u.id).await;
    let mut done = iteration(run.id, 2, days_ago(150));
    done.raw_response = None;
    done.is_anonymized = true;
    done.anonymized_at = Some(days_ago(60));
    let its = record(
        store,
        vec![
            failed_iteration(run.id, 0, days_ago(150)),
            iteration(run.id, 1, days_ago(150)),
            done,
        ],
    )
    .await;

    assert_eq!(
        store
            .count_anonymizable(PricingTier::Pro, cutoff())
            .await
            .expect("count"),
        2,
        "the failed and the successful one, not the done one"
    );
    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Pro, cutoff(), 10, now())
            .await
            .expect("anonymize"),
        2
    );
    assert_eq!(
        stored(store, u.id, &run).await,
        vec![
            anonymized(&its[0], now()),
            anonymized(&its[1], now()),
            its[2].clone()
        ]
    );
    assert!(
        stored(store, u.id, &run).await[0].error.is_some(),
        "the failure reason is kept"
    );
    assert_eq!(
        store
            .anonymize_iterations(PricingTier::Pro, cutoff(), 10, at(5))
            .await
            .expect("again"),
        0,
        "converged"
    );
}

/// Concurrent passes (as from several replicas) never anonymize an iteration twice: their
/// returns add up to exactly the qualifying rows, each row carries the time of one call, and
/// none fails.
pub async fn concurrent_anonymize_calls_never_overlap(store: &DynStore) {
    let u = user_on(store, PricingTier::Free).await;
    let (_, run) = owned_run(store, u.id).await;
    record(
        store,
        (0..60)
            .map(|i| iteration(run.id, i, days_ago(100) + Duration::seconds(i64::from(i))))
            .collect(),
    )
    .await;

    let mut total = 0;
    for round in 0..20i64 {
        let results = join_all((0..6i64).map(|caller| async move {
            yield_now().await;
            store
                .anonymize_iterations(PricingTier::Free, cutoff(), 4, at(round * 10 + caller))
                .await
        }))
        .await;
        let changed: u64 = results
            .into_iter()
            .map(|r| r.expect("anonymize_iterations under contention"))
            .sum();
        total += changed;
        if changed == 0
            && store
                .count_anonymizable(PricingTier::Free, cutoff())
                .await
                .expect("count")
                == 0
        {
            break;
        }
    }
    assert_eq!(total, 60, "each row counted by exactly one call");
    let rows = stored(store, u.id, &run).await;
    assert!(
        rows.iter().all(|it| it.is_anonymized
            && it.raw_response.is_none()
            && it.anonymized_at.is_some_and(|t| t >= at(0) && t < at(200))),
        "{rows:?}"
    );
}

/// `users_due_for_deletion`: inactive users whose date has come (`<= now`), earliest first with
/// ties by id, at most `limit`; not an active user with a date (a restored account), not a
/// future date, not an inactive user without one.
pub async fn users_due_for_deletion_filters_and_orders(store: &DynStore) {
    let due = |days: i64| {
        move |u: &mut User| {
            u.is_active = false;
            u.scheduled_deletion_at = Some(days_ago(days));
        }
    };
    let oldest = new_user_with(store, due(30)).await;
    let tie_a = new_user_with(store, due(10)).await;
    let tie_b = new_user_with(store, due(10)).await;
    let exactly_now = new_user_with(store, due(0)).await;
    new_user_with(store, |u| {
        u.scheduled_deletion_at = Some(days_ago(40));
    })
    .await;
    new_user_with(store, due(-1)).await;
    new_user_with(store, |u| u.is_active = false).await;
    let restored = new_user_with(store, due(50)).await;
    assert!(
        store
            .cancel_deletion(restored.id, days_ago(51))
            .await
            .expect("restore")
    );

    let mut ties = [tie_a.id, tie_b.id];
    ties.sort();
    let expected = vec![oldest.id, ties[0], ties[1], exactly_now.id];
    assert_eq!(
        store
            .users_due_for_deletion(now(), 100)
            .await
            .expect("users_due_for_deletion"),
        expected
    );
    assert_eq!(
        store
            .users_due_for_deletion(now(), 2)
            .await
            .expect("limited"),
        expected[..2].to_vec()
    );
    assert!(
        store
            .users_due_for_deletion(now(), 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    assert_eq!(
        store
            .users_due_for_deletion(days_ago(20), 100)
            .await
            .expect("earlier"),
        vec![oldest.id]
    );
    store.delete_user(oldest.id).await.expect("purge one");
    assert_eq!(
        store
            .users_due_for_deletion(now(), 100)
            .await
            .expect("after a purge"),
        expected[1..].to_vec()
    );
}

/// Everything one user owns, stored through the traits.
struct Footprint {
    user: User,
    profile: BrandProfile,
    key_public_id: String,
    session: crate::model::SessionId,
    experiment: Experiment,
    run: BatchRun,
    /// Jobs whose payload names the user; the first is claimed (leased to a worker).
    jobs: Vec<Job>,
    claimed: Job,
}

/// A user due for deletion with a profile, a key, a session, a recurring experiment due now,
/// a run with old and new iterations, two jobs naming them (one claimed) and audit events.
async fn footprint(store: &DynStore, tier: PricingTier) -> Footprint {
    let user = new_user_with(store, |u| {
        u.tier = tier;
        u.is_active = false;
        u.scheduled_deletion_at = Some(days_ago(1));
    })
    .await;
    let profile = BrandProfile {
        user_id: user.id,
        brand: brand("HubSpot"),
        domain: Some("hubspot.com".into()),
        default_competitors: vec![brand("Salesforce")],
        updated_at: days_ago(5),
    };
    store
        .put_brand_profile(&profile)
        .await
        .expect("put_brand_profile");
    let key = api_key(user.id, days_ago(5));
    store.create_api_key(&key).await.expect("create_api_key");
    let s = session(user.id, days_ago(1));
    store.create_session(&s).await.expect("create_session");

    let experiment = recurring(user.id, days_ago(200), Some(days_ago(1)));
    store
        .create_experiment(
            &experiment,
            debit(&experiment),
            &run_job(&experiment, days_ago(200)),
        )
        .await
        .expect("create_experiment");
    let run = batch_run(&experiment, ProviderKind::OpenAi, days_ago(199));
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");
    record(
        store,
        vec![
            iteration(run.id, 0, days_ago(150)),
            failed_iteration(run.id, 1, days_ago(150)),
            iteration(run.id, 2, days_ago(1)),
        ],
    )
    .await;

    let payload = json!({ "user_id": user.id, "experiment_id": experiment.id });
    let mut jobs = Vec::new();
    for kind in ["run_experiment", "export_account"] {
        let mut j = job(days_ago(2), 3);
        j.kind = kind.into();
        j.payload = payload.clone();
        store.enqueue(&j).await.expect("enqueue");
        jobs.push(j);
    }
    let claimed = store
        .claim_job(
            jobs[0].id,
            "worker-1",
            StdDuration::from_secs(30),
            days_ago(1),
        )
        .await
        .expect("claim_job")
        .expect("the job is claimable");

    for action in ["login", "create_experiment"] {
        let mut event = audit_event(action, days_ago(3));
        event.actor_user_id = Some(user.id);
        store.append_audit(&event).await.expect("append_audit");
    }
    Footprint {
        user,
        profile,
        key_public_id: key.public_id,
        session: s.id,
        experiment,
        run,
        jobs,
        claimed,
    }
}

/// After `delete_user`, nothing of the user can be read back through any trait method (user,
/// profile, keys, sessions, experiments and schedules, runs, iterations, dashboard, retention
/// and purge listings, and the jobs whose payload names them, a claimed one included, whose
/// worker loses its lease), while their audit events remain; a second user with the same
/// footprint is untouched.
pub async fn delete_user_leaves_nothing_readable(store: &DynStore) {
    let gone = footprint(store, PricingTier::Free).await;
    let kept = footprint(store, PricingTier::Free).await;
    let audit_before = store.audit_range(1, 100).await.expect("audit_range");
    let empty = new_user_with(store, |_| {}).await;
    let empty_dashboard = store
        .dashboard(empty.id, days_ago(400))
        .await
        .expect("dashboard");
    let u = &gone.user;

    store.delete_user(u.id).await.expect("delete_user");

    assert_not_found(store.get_user(u.id).await, "user");
    assert_eq!(
        store.find_user_by_email(&u.email).await.expect("by email"),
        None
    );
    assert_not_found(store.get_brand_profile(u.id).await, "brand profile");
    assert_eq!(
        store
            .find_api_key(&gone.key_public_id)
            .await
            .expect("find_api_key"),
        None
    );
    assert_eq!(
        store
            .find_api_key_for_auth(&gone.key_public_id)
            .await
            .expect("find_api_key_for_auth"),
        None
    );
    assert!(store.list_api_keys(u.id).await.expect("keys").is_empty());
    assert_eq!(
        store
            .find_session_for_auth(gone.session)
            .await
            .expect("find_session_for_auth"),
        None
    );
    assert_eq!(
        store
            .revoke_user_sessions(u.id, now())
            .await
            .expect("revoke_user_sessions"),
        0
    );
    assert_not_found(
        store.get_experiment(u.id, gone.experiment.id).await,
        "experiment",
    );
    let page = store
        .list_experiments(u.id, &ExperimentQuery::default())
        .await
        .expect("list_experiments");
    assert!(page.items.is_empty() && page.next_cursor.is_none());
    let due: Vec<_> = store
        .due_recurring(now(), 100)
        .await
        .expect("due_recurring")
        .into_iter()
        .map(|e| e.user_id)
        .collect();
    assert_eq!(
        due,
        vec![kept.user.id],
        "only the kept user's schedule is due"
    );
    assert_not_found(store.get_batch_run(u.id, gone.run.id).await, "run");
    assert_not_found(
        store.list_batch_runs(u.id, gone.experiment.id).await,
        "run list",
    );
    assert_not_found(
        store.list_iterations(u.id, gone.run.id, 0, 100).await,
        "iterations",
    );
    assert!(
        store
            .recorded_indexes(gone.run.id)
            .await
            .expect("recorded_indexes")
            .is_empty()
    );
    assert_eq!(
        store
            .dashboard(u.id, days_ago(400))
            .await
            .expect("dashboard"),
        empty_dashboard,
        "an empty dashboard"
    );
    assert_eq!(
        store
            .count_anonymizable(PricingTier::Free, cutoff())
            .await
            .expect("count_anonymizable"),
        2,
        "only the kept user's old iterations"
    );
    assert_eq!(
        store
            .users_due_for_deletion(now(), 100)
            .await
            .expect("users_due_for_deletion"),
        vec![kept.user.id]
    );
    for j in &gone.jobs {
        assert_not_found(store.get_job(j.id).await, "a job naming the user");
    }
    assert_lease_lost(
        store
            .heartbeat(gone.claimed.lease(), days_ago(1) + Duration::seconds(60))
            .await,
        "the deleted job's worker",
    );
    let claimed = store
        .claim("worker-2", 100, StdDuration::from_secs(30), now())
        .await
        .expect("claim");
    let user_text = u.id.to_string();
    assert!(
        claimed
            .iter()
            .all(|j| j.payload.get("user_id").and_then(|v| v.as_str()) != Some(&user_text)),
        "no claimable job names the user: {claimed:?}"
    );
    let kept_jobs: BTreeSet<_> = claimed.iter().map(|j| j.id).collect();
    assert!(
        kept_jobs.contains(&kept.jobs[1].id),
        "the other user's job remains"
    );
    assert_eq!(
        store.get_job(kept.claimed.id).await.expect("kept job").id,
        kept.claimed.id
    );

    assert_eq!(
        store.audit_range(1, 100).await.expect("audit_range"),
        audit_before,
        "audit events are kept, actor included"
    );
    let by_actor = store
        .list_audit(&AuditQuery {
            actor_user_id: Some(u.id),
            limit: page_size(100),
            ..AuditQuery::default()
        })
        .await
        .expect("list_audit");
    assert_eq!(
        by_actor.items.len(),
        2,
        "until pseudonymize_actor erases them"
    );

    assert_eq!(
        store.get_user(kept.user.id).await.expect("kept user").id,
        kept.user.id
    );
    assert_eq!(
        store
            .get_brand_profile(kept.user.id)
            .await
            .expect("kept profile"),
        kept.profile
    );
    assert_eq!(
        store
            .recorded_indexes(kept.run.id)
            .await
            .expect("kept iterations"),
        vec![0, 1, 2]
    );
}
