//! [`JobQueue`](crate::store::JobQueue): the leased job queue, its fencing and its races.
//!
//! These scenarios assume a fresh store: they claim whatever is due and count the whole queue.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use super::fixtures::{assert_conflict, assert_lease_lost, assert_not_found, at, job, yield_now};
use crate::model::{Job, JobId, JobLease, JobStatus, Timestamp};
use crate::store::{DynStore, QueueStats};

const LEASE: Duration = Duration::from_secs(30);

/// `now + LEASE` as a timestamp.
fn lease_end(now: Timestamp) -> Timestamp {
    now + time::Duration::seconds(30)
}

/// Claims with limit 1 at `now` and asserts the claim returned exactly job `id`.
async fn claim_exactly(store: &DynStore, worker: &str, id: JobId, now: Timestamp) -> Job {
    let claimed = store.claim(worker, 1, LEASE, now).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id],
        "claim at {now}"
    );
    claimed.into_iter().next().expect("one job")
}

/// A job reads back equal; a duplicate id is a Conflict that leaves the first alone; an unknown
/// id is NotFound.
pub async fn enqueue_and_get(store: &DynStore) {
    let mut j = job(at(5), 3);
    j.payload = json!({ "experiment_id": "x", "nested": { "list": [1, 2, 3] } });
    store.enqueue(&j).await.expect("enqueue");
    assert_eq!(store.get_job(j.id).await.expect("get_job"), j);

    let mut clash = job(at(6), 1);
    clash.id = j.id;
    assert_conflict(store.enqueue(&clash).await, "enqueue with a taken id");
    assert_eq!(
        store.get_job(j.id).await.expect("get_job"),
        j,
        "first job unchanged"
    );
    assert_not_found(store.get_job(JobId::new()).await, "unknown job");
}

/// `claim_job` leases exactly the named job when it is claimable (leaving older due jobs
/// alone), and answers `None` for a job that is not due, held under a live lease, finished or
/// unknown; an expired lease can be taken over with a higher token.
pub async fn claim_job_takes_only_that_job(store: &DynStore) {
    let older = job(at(-30), 3);
    let mine = job(at(-10), 3);
    let later = job(at(50), 3);
    for j in [&older, &mine, &later] {
        store.enqueue(j).await.expect("enqueue");
    }
    let now = at(0);
    let got = store
        .claim_job(mine.id, "cli", LEASE, now)
        .await
        .expect("claim_job")
        .expect("claimable");
    assert_eq!(
        (got.id, got.status, got.attempts),
        (mine.id, JobStatus::Running, 1)
    );
    assert_eq!(got.lease_owner.as_deref(), Some("cli"));
    assert_eq!(got.lease_expires_at, Some(lease_end(now)));
    assert_eq!(
        store.get_job(older.id).await.expect("get").status,
        JobStatus::Queued
    );

    let held = store
        .claim_job(mine.id, "other", LEASE, at(1))
        .await
        .expect("claim_job");
    assert!(held.is_none(), "held under a live lease");
    let not_due = store
        .claim_job(later.id, "cli", LEASE, now)
        .await
        .expect("claim_job");
    assert!(not_due.is_none(), "not due yet");
    let unknown = store
        .claim_job(JobId::new(), "cli", LEASE, now)
        .await
        .expect("claim_job");
    assert!(unknown.is_none(), "unknown job");

    let taken = store
        .claim_job(mine.id, "other", LEASE, at(31))
        .await
        .expect("claim_job")
        .expect("the lease expired");
    assert!(
        taken.lease_token > got.lease_token,
        "a higher fencing token"
    );
    assert_lease_lost(store.complete(got.lease(), at(32)).await, "the old lease");
    store
        .complete(taken.lease(), at(32))
        .await
        .expect("complete");
    let done = store
        .claim_job(mine.id, "cli", LEASE, at(40))
        .await
        .expect("claim_job");
    assert!(done.is_none(), "finished jobs are not claimable");
}

/// `claim` takes only due jobs, oldest `run_at` first, at most `limit`, and leases each one:
/// running, one more attempt, owner, expiry and a higher token.
pub async fn claim_respects_run_at_limit_and_order(store: &DynStore) {
    let oldest = job(at(-30), 3);
    let middle = job(at(-20), 3);
    let newest = job(at(-10), 3);
    let future = job(at(50), 3);
    for j in [&newest, &future, &oldest, &middle] {
        store.enqueue(j).await.expect("enqueue");
    }
    let now = at(0);
    let claimed = store.claim("w1", 2, LEASE, now).await.expect("claim");
    let mut got: Vec<_> = claimed.iter().map(|j| j.id).collect();
    got.sort();
    let mut want = vec![oldest.id, middle.id];
    want.sort();
    assert_eq!(got, want, "the two oldest due jobs");
    for c in &claimed {
        assert_eq!(c.status, JobStatus::Running);
        assert_eq!(c.attempts, 1);
        assert_eq!(c.lease_owner.as_deref(), Some("w1"));
        assert_eq!(c.lease_expires_at, Some(lease_end(now)));
        assert!(c.lease_token > 0, "a new, higher token");
        assert_eq!(
            store.get_job(c.id).await.expect("get_job"),
            *c,
            "claim returns the stored job"
        );
    }

    let next = store
        .claim("w2", 10, LEASE, at(1))
        .await
        .expect("claim the rest");
    assert_eq!(
        next.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![newest.id],
        "future job waits"
    );
    let all_leased = store.claim("w2", 10, LEASE, at(29)).await.expect("claim");
    assert!(all_leased.is_empty(), "all leased");
    for c in claimed.iter().chain(&next) {
        store.complete(c.lease(), at(2)).await.expect("complete");
    }
    let not_due = store.claim("w2", 10, LEASE, at(49)).await.expect("claim");
    assert!(not_due.is_empty(), "the future job is not due");
    claim_exactly(store, "w3", future.id, at(50)).await;
}

/// 8 claimers racing over 200 jobs: no job is handed out twice while leased, and every job is
/// claimed exactly once.
pub async fn concurrent_claims_never_double_lease(store: &DynStore) {
    let jobs: Vec<_> = (0..200).map(|i| job(at(-(i % 17)), 3)).collect();
    for j in &jobs {
        store.enqueue(j).await.expect("enqueue");
    }
    let held: Mutex<HashSet<JobId>> = Mutex::new(HashSet::new());
    let leases: Mutex<Vec<JobLease>> = Mutex::new(Vec::new());
    let claimers = (0..8).map(|w| {
        let (held, leases) = (&held, &leases);
        async move {
            let worker = format!("worker-{w}");
            let mut rounds = 0;
            loop {
                yield_now().await;
                let claimed = store.claim(&worker, 7, LEASE, at(0)).await.expect("claim");
                if claimed.is_empty() {
                    return rounds;
                }
                rounds += 1;
                let mut held = held.lock().expect("lock");
                for j in claimed {
                    assert!(held.insert(j.id), "job {} claimed twice while leased", j.id);
                    assert_eq!(j.lease_owner.as_deref(), Some(worker.as_str()));
                    leases.lock().expect("lock").push(j.lease());
                }
            }
        }
    });
    join_all(claimers).await;
    let held = held.into_inner().expect("lock");
    assert_eq!(
        held,
        jobs.iter().map(|j| j.id).collect::<HashSet<_>>(),
        "all claimed once"
    );
    assert_eq!(
        store.queue_stats(at(0)).await.expect("queue_stats"),
        QueueStats {
            running: 200,
            ..QueueStats::default()
        }
    );
    let leases = leases.into_inner().expect("lock");
    let completions = join_all(leases.iter().map(|l| store.complete(*l, at(1)))).await;
    for c in completions {
        c.expect("every holder can complete its job");
    }
    assert!(
        store
            .claim("late", 10, LEASE, at(10_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        store.queue_stats(at(1)).await.expect("queue_stats"),
        QueueStats::default()
    );
}

/// An expired lease is re-claimed by another worker with a higher token; the old holder's
/// heartbeat, complete, fail and release are LeaseLost.
pub async fn expired_lease_is_fenced(store: &DynStore) {
    let j = job(at(0), 3);
    store.enqueue(&j).await.expect("enqueue");
    let first = claim_exactly(store, "w1", j.id, at(0)).await;
    assert!(
        store
            .claim("w2", 10, LEASE, at(10))
            .await
            .expect("claim")
            .is_empty(),
        "still leased"
    );

    let second = claim_exactly(store, "w2", j.id, at(31)).await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.lease_owner.as_deref(), Some("w2"));
    assert!(second.lease_token > first.lease_token, "token increases");

    let old = first.lease();
    assert_lease_lost(store.heartbeat(old, at(100)).await, "old heartbeat");
    assert_lease_lost(store.complete(old, at(32)).await, "old complete");
    assert_lease_lost(
        store.fail(old, "late", Some(at(40)), at(32)).await,
        "old fail",
    );
    assert_lease_lost(store.release(old, at(32)).await, "old release");
    assert_eq!(
        store.get_job(j.id).await.expect("get_job"),
        second,
        "the new lease is intact"
    );

    store
        .complete(second.lease(), at(33))
        .await
        .expect("new holder completes");
    assert_eq!(
        store.get_job(j.id).await.expect("get_job").status,
        JobStatus::Succeeded
    );
}

/// A heartbeat extends the lease: the job is not re-claimable before the new expiry, and is
/// after it; a stale token or a finished job is LeaseLost.
pub async fn heartbeat_extends_lease(store: &DynStore) {
    let j = job(at(0), 3);
    store.enqueue(&j).await.expect("enqueue");
    let claimed = claim_exactly(store, "w1", j.id, at(0)).await;
    store
        .heartbeat(claimed.lease(), at(120))
        .await
        .expect("heartbeat");
    assert_eq!(
        store.get_job(j.id).await.expect("get_job").lease_expires_at,
        Some(at(120))
    );
    assert!(
        store
            .claim("w2", 10, LEASE, at(60))
            .await
            .expect("claim")
            .is_empty(),
        "extended"
    );
    let stale = JobLease {
        token: claimed.lease_token - 1,
        ..claimed.lease()
    };
    assert_lease_lost(
        store.heartbeat(stale, at(200)).await,
        "heartbeat with a wrong token",
    );

    let reclaimed = claim_exactly(store, "w2", j.id, at(121)).await;
    assert_lease_lost(
        store.heartbeat(claimed.lease(), at(300)).await,
        "heartbeat after takeover",
    );
    store
        .complete(reclaimed.lease(), at(122))
        .await
        .expect("complete");
    assert_lease_lost(
        store.heartbeat(reclaimed.lease(), at(300)).await,
        "heartbeat after complete",
    );
}

/// `complete` marks the job succeeded; it is never claimed again and completing twice is
/// LeaseLost.
pub async fn complete_marks_succeeded(store: &DynStore) {
    let j = job(at(0), 3);
    store.enqueue(&j).await.expect("enqueue");
    let claimed = claim_exactly(store, "w1", j.id, at(0)).await;
    store
        .complete(claimed.lease(), at(5))
        .await
        .expect("complete");
    let done = store.get_job(j.id).await.expect("get_job");
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_lease_lost(
        store.complete(claimed.lease(), at(6)).await,
        "complete twice",
    );
    assert!(
        store
            .claim("w2", 10, LEASE, at(1_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        store.queue_stats(at(6)).await.expect("queue_stats"),
        QueueStats::default()
    );
}

/// `fail` with `retry_at` and attempts left queues the job again for `retry_at`, keeping the
/// error; the old lease is then LeaseLost.
pub async fn fail_with_retry_requeues(store: &DynStore) {
    let j = job(at(0), 3);
    store.enqueue(&j).await.expect("enqueue");
    let claimed = claim_exactly(store, "w1", j.id, at(0)).await;
    let status = store
        .fail(claimed.lease(), "boom", Some(at(60)), at(1))
        .await
        .expect("fail");
    assert_eq!(status, JobStatus::Queued);
    let queued = store.get_job(j.id).await.expect("get_job");
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.run_at, at(60));
    assert_eq!(queued.last_error.as_deref(), Some("boom"));
    assert_lease_lost(
        store.complete(claimed.lease(), at(2)).await,
        "complete after fail",
    );

    assert!(
        store
            .claim("w1", 10, LEASE, at(59))
            .await
            .expect("claim")
            .is_empty(),
        "not before retry_at"
    );
    let retried = claim_exactly(store, "w2", j.id, at(60)).await;
    assert_eq!(retried.attempts, 2);
    assert!(retried.lease_token > claimed.lease_token);
}

/// `fail` without attempts left, or without `retry_at`, fails the job for good.
pub async fn fail_without_attempts_left_is_final(store: &DynStore) {
    let exhausted = job(at(0), 2);
    store.enqueue(&exhausted).await.expect("enqueue");
    let c1 = claim_exactly(store, "w1", exhausted.id, at(0)).await;
    let s1 = store
        .fail(c1.lease(), "first", Some(at(10)), at(1))
        .await
        .expect("fail 1");
    assert_eq!(s1, JobStatus::Queued);
    let c2 = claim_exactly(store, "w1", exhausted.id, at(10)).await;
    assert_eq!(c2.attempts, 2);
    let s2 = store
        .fail(c2.lease(), "second", Some(at(20)), at(11))
        .await
        .expect("fail 2");
    assert_eq!(s2, JobStatus::Failed, "attempts exhausted");
    let got = store.get_job(exhausted.id).await.expect("get_job");
    assert_eq!(got.status, JobStatus::Failed);
    assert_eq!(got.last_error.as_deref(), Some("second"));
    assert!(
        store
            .claim("w1", 10, LEASE, at(1_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_lease_lost(
        store.complete(c2.lease(), at(12)).await,
        "complete after final fail",
    );

    let permanent = job(at(2_000), 5);
    store.enqueue(&permanent).await.expect("enqueue");
    let c = claim_exactly(store, "w1", permanent.id, at(2_000)).await;
    let s = store
        .fail(c.lease(), "permanent", None, at(2_001))
        .await
        .expect("fail");
    assert_eq!(s, JobStatus::Failed, "no retry_at");
    assert_eq!(
        store.get_job(permanent.id).await.expect("get_job").status,
        JobStatus::Failed
    );
    assert_eq!(
        store.queue_stats(at(3_000)).await.expect("queue_stats"),
        QueueStats {
            failed: 2,
            ..QueueStats::default()
        }
    );
}

/// `release` queues the job again, due at `now`, without counting the attempt: a job with one
/// allowed attempt can be claimed again.
pub async fn release_requeues_without_counting(store: &DynStore) {
    let j = job(at(0), 1);
    store.enqueue(&j).await.expect("enqueue");
    let first = claim_exactly(store, "w1", j.id, at(0)).await;
    store.release(first.lease(), at(5)).await.expect("release");
    let released = store.get_job(j.id).await.expect("get_job");
    assert_eq!(released.status, JobStatus::Queued);
    assert_eq!(released.run_at, at(5));
    assert_lease_lost(
        store.complete(first.lease(), at(6)).await,
        "complete after release",
    );

    assert!(
        store
            .claim("w2", 10, LEASE, at(4))
            .await
            .expect("claim")
            .is_empty(),
        "due at now"
    );
    let again = claim_exactly(store, "w2", j.id, at(5)).await;
    assert_eq!(again.attempts, 1, "the released attempt is not counted");
    assert!(again.lease_token > first.lease_token);
    store
        .complete(again.lease(), at(6))
        .await
        .expect("complete");
}

/// A lease that expires on the job's last allowed attempt fails the job instead of handing it
/// out again.
pub async fn expired_last_attempt_fails(store: &DynStore) {
    let j = job(at(0), 1);
    store.enqueue(&j).await.expect("enqueue");
    let claimed = claim_exactly(store, "w1", j.id, at(0)).await;
    assert!(
        store
            .claim("w2", 10, LEASE, at(60))
            .await
            .expect("claim")
            .is_empty(),
        "not re-claimed"
    );
    assert_eq!(
        store.get_job(j.id).await.expect("get_job").status,
        JobStatus::Failed
    );
    assert_lease_lost(
        store.complete(claimed.lease(), at(61)).await,
        "complete after expiry",
    );
    assert_eq!(
        store.queue_stats(at(61)).await.expect("queue_stats"),
        QueueStats {
            failed: 1,
            ..QueueStats::default()
        }
    );
}

/// `queue_stats` counts due (`run_at <= now`), scheduled, running and failed jobs; succeeded
/// ones are not counted.
pub async fn queue_stats_counts_by_state(store: &DynStore) {
    let failed = job(at(-30), 1);
    store.enqueue(&failed).await.expect("enqueue");
    let c = claim_exactly(store, "w", failed.id, at(-30)).await;
    assert_eq!(
        store
            .fail(c.lease(), "x", None, at(-29))
            .await
            .expect("fail"),
        JobStatus::Failed
    );

    let succeeded = job(at(-30), 1);
    store.enqueue(&succeeded).await.expect("enqueue");
    let c = claim_exactly(store, "w", succeeded.id, at(-30)).await;
    store.complete(c.lease(), at(-29)).await.expect("complete");

    let running = job(at(-20), 3);
    store.enqueue(&running).await.expect("enqueue");
    let c = store
        .claim("w", 1, Duration::from_secs(3_600), at(-20))
        .await
        .expect("claim");
    assert_eq!(c.iter().map(|j| j.id).collect::<Vec<_>>(), vec![running.id]);

    for j in [job(at(-10), 3), job(at(0), 3), job(at(10), 3)] {
        store.enqueue(&j).await.expect("enqueue");
    }
    assert_eq!(
        store.queue_stats(at(0)).await.expect("queue_stats"),
        QueueStats {
            due: 2,
            scheduled: 1,
            running: 1,
            failed: 1,
        }
    );
    assert_eq!(
        store.queue_stats(at(10)).await.expect("queue_stats later"),
        QueueStats {
            due: 3,
            scheduled: 0,
            running: 1,
            failed: 1,
        }
    );
}

/// `prune_jobs` deletes only finished jobs last updated before `before`, at most `limit`, and
/// returns the count.
pub async fn prune_jobs_deletes_old_finished_only(store: &DynStore) {
    let finish = |status: JobStatus, at_secs: i64| async move {
        let j = job(at(at_secs - 1), 1);
        store.enqueue(&j).await.expect("enqueue");
        let c = claim_exactly(store, "w", j.id, at(at_secs - 1)).await;
        match status {
            JobStatus::Succeeded => store
                .complete(c.lease(), at(at_secs))
                .await
                .expect("complete"),
            _ => {
                let s = store
                    .fail(c.lease(), "x", None, at(at_secs))
                    .await
                    .expect("fail");
                assert_eq!(s, JobStatus::Failed);
            }
        }
        j.id
    };
    let old_ok = finish(JobStatus::Succeeded, -100).await;
    let old_failed = finish(JobStatus::Failed, -50).await;
    let recent = finish(JobStatus::Succeeded, 50).await;

    let running = job(at(-500), 3);
    store.enqueue(&running).await.expect("enqueue");
    let c = store
        .claim("w", 1, Duration::from_secs(100_000), at(-500))
        .await
        .expect("claim");
    assert_eq!(c.iter().map(|j| j.id).collect::<Vec<_>>(), vec![running.id]);
    let mut waiting = job(at(5_000), 3);
    waiting.created_at = at(-1_000);
    waiting.updated_at = at(-1_000);
    store.enqueue(&waiting).await.expect("enqueue");

    assert_eq!(store.prune_jobs(at(0), 10).await.expect("prune"), 2);
    assert_not_found(store.get_job(old_ok).await, "pruned succeeded job");
    assert_not_found(store.get_job(old_failed).await, "pruned failed job");
    for kept in [recent, running.id, waiting.id] {
        store.get_job(kept).await.expect("kept job");
    }
    assert_eq!(store.prune_jobs(at(0), 10).await.expect("prune again"), 0);

    let more = [
        finish(JobStatus::Succeeded, -40).await,
        finish(JobStatus::Failed, -30).await,
        finish(JobStatus::Succeeded, -20).await,
    ];
    assert_eq!(store.prune_jobs(at(0), 2).await.expect("prune limited"), 2);
    assert_eq!(store.prune_jobs(at(0), 2).await.expect("prune the rest"), 1);
    for id in more {
        assert_not_found(store.get_job(id).await, "pruned job");
    }
    assert_eq!(
        store.prune_jobs(at(100), 10).await.expect("prune recent"),
        1
    );
    assert_not_found(store.get_job(recent).await, "recent job once old enough");
    store.get_job(running.id).await.expect("running job kept");
    store.get_job(waiting.id).await.expect("queued job kept");
}
