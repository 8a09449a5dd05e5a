//! [`ExperimentStore`](crate::store::ExperimentStore): creation with quota debit and job,
//! tenant isolation, keyset listing, manual and scheduled runs, and their races.

use futures::future::join_all;
use proptest::prelude::*;

use crate::runner::RunExperimentPayload;

use super::fixtures::{
    assert_conflict, assert_invalid, assert_not_found, at, at_micros, check_property,
    collect_experiment_pages, debit, debit_with_limit, experiment, ids, iteration, new_batch_run,
    new_experiment, new_user, newest_first, page_size, recurring, run_job, store_experiment,
    with_iterations,
};
use crate::model::{ExperimentId, ExperimentStatus, Precision, QuotaDebit, Recurrence, UserId};
use crate::store::{
    DynStore, ExperimentCursor, ExperimentQuery, QueueStats, ScheduleClaim, StoreError,
};

/// `create_experiment` stores the experiment, debits the quota and enqueues the job.
pub async fn create_experiment_debits_and_enqueues(store: &DynStore) {
    let u = new_user(store).await;
    let mut e = experiment(u.id, at_micros(123_457));
    e.status = ExperimentStatus::Queued;
    e.updated_at = at_micros(223_457);
    let job = run_job(&e, at(0));
    store
        .create_experiment(&e, debit(&e), &job)
        .await
        .expect("create_experiment");

    assert_eq!(
        store
            .get_experiment(u.id, e.id)
            .await
            .expect("get_experiment"),
        e
    );
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .quota
            .prompts_used,
        10
    );
    assert_eq!(store.get_job(job.id).await.expect("get_job"), job);
    assert_eq!(
        store.queue_stats(at(0)).await.expect("queue_stats"),
        QueueStats {
            due: 1,
            ..QueueStats::default()
        }
    );
}

/// An experiment's own adaptive precision round-trips exactly through create, get and list,
/// at both bounds and in between; one without stays without (old rows decode as `None`).
pub async fn experiment_precision_round_trips(store: &DynStore) {
    let u = new_user(store).await;
    let mut stored = Vec::new();
    for (i, half_width) in [None, Some(Precision::MIN), Some(0.05), Some(Precision::MAX)]
        .into_iter()
        .enumerate()
    {
        let mut e = experiment(u.id, at(i64::try_from(i).expect("small index")));
        e.precision = half_width.map(|h| Precision::new(h).expect("fixture precision is valid"));
        store_experiment(store, &e).await;
        assert_eq!(
            store
                .get_experiment(u.id, e.id)
                .await
                .expect("get_experiment")
                .precision,
            e.precision,
            "{half_width:?}"
        );
        stored.push(e);
    }
    let listed = collect_experiment_pages(store, u.id, &ExperimentQuery::default())
        .await
        .expect("list_experiments");
    let mut expected: Vec<_> = stored.iter().map(|e| (e.id, e.precision)).collect();
    expected.reverse();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.id, e.precision))
            .collect::<Vec<_>>(),
        expected
    );
}

/// A debit over the limit is QuotaExceeded with the figures, and stores nothing; a debit that
/// reaches the limit exactly succeeds.
pub async fn create_experiment_over_quota_stores_nothing(store: &DynStore) {
    let u = new_user(store).await;
    let first = experiment(u.id, at(1));
    store
        .create_experiment(
            &first,
            debit_with_limit(&first, 15),
            &run_job(&first, at(1)),
        )
        .await
        .expect("first experiment within quota");

    let refused = experiment(u.id, at(2));
    let job = run_job(&refused, at(2));
    match store
        .create_experiment(&refused, debit_with_limit(&refused, 15), &job)
        .await
    {
        Err(StoreError::QuotaExceeded {
            used: 10,
            requested: 10,
            limit: 15,
        }) => {}
        other => panic!("expected QuotaExceeded {{ 10, 10, 15 }}, got {other:?}"),
    }
    assert_not_found(
        store.get_experiment(u.id, refused.id).await,
        "refused experiment",
    );
    assert_not_found(store.get_job(job.id).await, "job of the refused experiment");
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .quota
            .prompts_used,
        10,
        "no debit"
    );
    let listed = store
        .list_experiments(u.id, &ExperimentQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(&listed.items), vec![first.id]);

    let edge = with_iterations(experiment(u.id, at(3)), 5);
    store
        .create_experiment(&edge, debit_with_limit(&edge, 15), &run_job(&edge, at(3)))
        .await
        .expect("a debit reaching the limit exactly is allowed");
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .quota
            .prompts_used,
        15
    );
}

/// A job id that is taken makes `create_experiment` a Conflict that stores nothing: the later
/// step's failure rolls back the debit and the experiment.
pub async fn create_experiment_duplicate_job_is_atomic(store: &DynStore) {
    let u = new_user(store).await;
    let first = experiment(u.id, at(1));
    let job = store_experiment(store, &first).await;

    let second = experiment(u.id, at(2));
    let mut clash = run_job(&second, at(2));
    clash.id = job.id;
    assert_conflict(
        store
            .create_experiment(&second, debit(&second), &clash)
            .await,
        "create_experiment with a taken job id",
    );
    assert_not_found(
        store.get_experiment(u.id, second.id).await,
        "rolled-back experiment",
    );
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .quota
            .prompts_used,
        10,
        "no debit"
    );
    assert_eq!(
        store.get_job(job.id).await.expect("get_job"),
        job,
        "existing job unchanged"
    );
}

/// A debit for another user than the experiment's owner is Invalid and stores nothing.
pub async fn create_experiment_debit_mismatch_is_invalid(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let e = experiment(u.id, at(1));
    let job = run_job(&e, at(1));
    let wrong = QuotaDebit {
        user_id: other.id,
        ..debit(&e)
    };
    assert_invalid(
        store.create_experiment(&e, wrong, &job).await,
        "debit of another user",
    );
    assert_not_found(store.get_experiment(u.id, e.id).await, "experiment");
    assert_not_found(store.get_job(job.id).await, "job");
    for id in [u.id, other.id] {
        assert_eq!(
            store
                .get_user(id)
                .await
                .expect("get_user")
                .quota
                .prompts_used,
            0
        );
    }
}

/// An experiment of an unknown owner is NotFound and enqueues nothing.
pub async fn create_experiment_unknown_owner_is_not_found(store: &DynStore) {
    let e = experiment(UserId::new(), at(1));
    let job = run_job(&e, at(1));
    assert_not_found(
        store.create_experiment(&e, debit(&e), &job).await,
        "unknown owner",
    );
    assert_not_found(store.get_experiment(e.user_id, e.id).await, "experiment");
    assert_not_found(store.get_job(job.id).await, "job");
}

/// Every experiment method called by another user answers NotFound and changes nothing.
pub async fn experiments_are_tenant_isolated(store: &DynStore) {
    let owner = new_user(store).await;
    let intruder = new_user(store).await;
    let mut e = experiment(owner.id, at(1));
    e.status = ExperimentStatus::Completed;
    store_experiment(store, &e).await;

    assert_not_found(store.get_experiment(intruder.id, e.id).await, "get");
    assert_not_found(
        store
            .set_experiment_status(intruder.id, e.id, ExperimentStatus::Cancelled, at(2))
            .await,
        "set_experiment_status",
    );
    let job = run_job(&e, at(3));
    let intruder_debit = QuotaDebit {
        user_id: intruder.id,
        ..debit(&e)
    };
    assert_not_found(
        store
            .request_run(intruder.id, e.id, intruder_debit, &job, at(3))
            .await,
        "request_run",
    );
    assert_not_found(
        store.get_job(job.id).await,
        "job of the refused request_run",
    );
    assert_not_found(store.delete_experiment(intruder.id, e.id).await, "delete");
    let listed = store
        .list_experiments(intruder.id, &ExperimentQuery::default())
        .await;
    assert!(
        listed.expect("list").items.is_empty(),
        "another user's experiments listed"
    );

    assert_eq!(
        store
            .get_experiment(owner.id, e.id)
            .await
            .expect("owner's get"),
        e,
        "unchanged"
    );
    assert_eq!(
        store
            .get_user(owner.id)
            .await
            .expect("owner")
            .quota
            .prompts_used,
        10
    );
    assert_eq!(
        store
            .get_user(intruder.id)
            .await
            .expect("intruder")
            .quota
            .prompts_used,
        0
    );

    let missing = ExperimentId::new();
    assert_not_found(store.get_experiment(owner.id, missing).await, "get missing");
    assert_not_found(
        store
            .set_experiment_status(owner.id, missing, ExperimentStatus::Running, at(4))
            .await,
        "set status of missing",
    );
    assert_not_found(
        store.delete_experiment(owner.id, missing).await,
        "delete missing",
    );
}

/// The listing is newest first, ties on `created_at` broken by `id` descending (not by
/// insertion order), and holds only the owner's experiments.
pub async fn list_experiments_newest_first_with_id_tiebreak(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    new_experiment(store, other.id, at(5)).await;
    // Ids are generated in ascending order, then inserted in another order, so a backend that
    // sorts by insertion order instead of id disagrees.
    let mut rows: Vec<_> = (0..9).map(|_| experiment(u.id, at(0))).collect();
    let created = [2, 1, 2, 0, 1, 2, 0, 0, 1];
    for (row, secs) in rows.iter_mut().zip(created) {
        row.created_at = at(secs);
        row.updated_at = at(secs);
    }
    for i in [4, 0, 8, 2, 6, 1, 7, 3, 5] {
        store_experiment(store, &rows[i]).await;
    }
    let page = store
        .list_experiments(
            u.id,
            &ExperimentQuery {
                limit: page_size(100),
                ..ExperimentQuery::default()
            },
        )
        .await
        .expect("list_experiments");
    assert_eq!(ids(&page.items), newest_first(&rows));
    assert_eq!(page.next_cursor, None, "a complete listing has no cursor");
    let by_id: std::collections::HashMap<_, _> = rows.iter().map(|e| (e.id, e)).collect();
    for item in &page.items {
        assert_eq!(
            Some(&item),
            by_id.get(&item.id),
            "listed row equals the stored one"
        );
    }
}

/// Pages concatenate to the full listing without duplicates or gaps, `next_cursor` is `None` on
/// the last page (also when it is exactly full), and the default page size is 20.
pub async fn list_experiments_pages_concatenate(store: &DynStore) {
    let u = new_user(store).await;
    let mut rows = Vec::new();
    for i in 0..21 {
        rows.push(new_experiment(store, u.id, at(i % 4)).await);
    }
    let expected = newest_first(&rows);

    for size in [1, 3, 7, 20, 21, 100] {
        let query = ExperimentQuery {
            limit: page_size(size),
            ..ExperimentQuery::default()
        };
        let all = collect_experiment_pages(store, u.id, &query)
            .await
            .expect("pages");
        assert_eq!(ids(&all), expected, "pages of {size}");
    }

    let mut query = ExperimentQuery {
        limit: page_size(7),
        ..ExperimentQuery::default()
    };
    let mut sizes = Vec::new();
    loop {
        let page = store.list_experiments(u.id, &query).await.expect("page");
        sizes.push((page.items.len(), page.next_cursor.is_some()));
        match page.next_cursor {
            Some(c) => query.after = Some(c),
            None => break,
        }
    }
    assert_eq!(
        sizes,
        vec![(7, true), (7, true), (7, false)],
        "exactly-full last page"
    );

    let default_page = store
        .list_experiments(u.id, &ExperimentQuery::default())
        .await
        .expect("default");
    assert_eq!(default_page.items.len(), 20, "default page size");
    assert!(default_page.next_cursor.is_some());
}

/// The status filter returns only that status, in order, across pages.
pub async fn list_experiments_status_filter(store: &DynStore) {
    let u = new_user(store).await;
    let statuses = [
        ExperimentStatus::Pending,
        ExperimentStatus::Completed,
        ExperimentStatus::Failed,
    ];
    let mut rows = Vec::new();
    for i in 0..12 {
        let mut e = experiment(u.id, at(i % 5));
        e.status = statuses[i as usize % 3];
        store_experiment(store, &e).await;
        rows.push(e);
    }
    for status in statuses {
        let expected: Vec<_> = rows
            .iter()
            .filter(|e| e.status == status)
            .cloned()
            .collect();
        let query = ExperimentQuery {
            status: Some(status),
            limit: page_size(3),
            ..ExperimentQuery::default()
        };
        let all = collect_experiment_pages(store, u.id, &query)
            .await
            .expect("pages");
        assert_eq!(ids(&all), newest_first(&expected), "filter {status}");
    }
    let none = store
        .list_experiments(
            u.id,
            &ExperimentQuery {
                status: Some(ExperimentStatus::Cancelled),
                ..ExperimentQuery::default()
            },
        )
        .await
        .expect("list cancelled");
    assert!(none.items.is_empty());
    assert_eq!(none.next_cursor, None);
}

/// Rows inserted (newer) between page fetches do not shift or repeat: the pages still yield
/// exactly the original rows.
pub async fn list_experiments_stable_under_inserts(store: &DynStore) {
    let u = new_user(store).await;
    let mut originals = Vec::new();
    for i in 0..10 {
        originals.push(new_experiment(store, u.id, at(i % 3)).await);
    }
    let mut query = ExperimentQuery {
        limit: page_size(4),
        ..ExperimentQuery::default()
    };
    let mut seen = Vec::new();
    let mut newer = 100;
    loop {
        let page = store.list_experiments(u.id, &query).await.expect("page");
        seen.extend(page.items);
        let Some(cursor) = page.next_cursor else {
            break;
        };
        for _ in 0..3 {
            new_experiment(store, u.id, at(newer)).await;
            newer += 1;
        }
        query.after = Some(cursor);
    }
    assert_eq!(ids(&seen), newest_first(&originals));
}

/// A cursor survives `encode`/`decode` and continues the listing exactly where it left off.
pub async fn experiment_cursor_round_trip(store: &DynStore) {
    let u = new_user(store).await;
    for i in 0..5 {
        new_experiment(store, u.id, at_micros(i % 2)).await;
    }
    let first = store
        .list_experiments(
            u.id,
            &ExperimentQuery {
                limit: page_size(2),
                ..ExperimentQuery::default()
            },
        )
        .await
        .expect("first page");
    let cursor = first.next_cursor.expect("more rows follow");
    let decoded = ExperimentCursor::decode(&cursor.encode()).expect("decode");
    assert_eq!(decoded, cursor);
    let via_original = store
        .list_experiments(
            u.id,
            &ExperimentQuery {
                limit: page_size(2),
                after: Some(cursor),
                ..ExperimentQuery::default()
            },
        )
        .await
        .expect("second page");
    let via_decoded = store
        .list_experiments(
            u.id,
            &ExperimentQuery {
                limit: page_size(2),
                after: Some(decoded),
                ..ExperimentQuery::default()
            },
        )
        .await
        .expect("second page via decoded cursor");
    assert_eq!(via_original, via_decoded);
    assert_eq!(via_original.items.len(), 2);
}

/// Property: for random experiments with colliding `created_at` and shuffled ids, paging with a
/// random page size yields exactly the sorted list.
pub async fn prop_paging_yields_sorted_list(store: &DynStore) {
    let strategy = (1usize..24).prop_flat_map(|n| {
        (
            proptest::collection::vec(0i64..4, n),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            1u32..8,
        )
    });
    check_property(
        "paging yields the sorted list",
        24,
        strategy,
        |(created, perm, size)| async move {
            let u = new_user(store).await;
            let mut id_pool: Vec<ExperimentId> =
                (0..created.len()).map(|_| ExperimentId::new()).collect();
            id_pool.sort();
            let mut rows = Vec::new();
            for (secs, rank) in created.iter().zip(&perm) {
                let mut e = with_iterations(experiment(u.id, at_micros(*secs)), 1);
                e.id = id_pool[*rank];
                store
                    .create_experiment(&e, debit(&e), &run_job(&e, at(0)))
                    .await
                    .map_err(|err| format!("create_experiment: {err:?}"))?;
                rows.push(e);
            }
            let query = ExperimentQuery {
                limit: page_size(size),
                ..ExperimentQuery::default()
            };
            let got = ids(&collect_experiment_pages(store, u.id, &query).await?);
            let want = newest_first(&rows);
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:?}, want {want:?}"))
            }
        },
    )
    .await;
}

/// `set_experiment_status` writes the status and `updated_at` and nothing else.
pub async fn set_experiment_status_updates(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(1)).await;
    store
        .set_experiment_status(u.id, e.id, ExperimentStatus::Running, at_micros(50_000_001))
        .await
        .expect("set_experiment_status");
    let mut expected = e.clone();
    expected.status = ExperimentStatus::Running;
    expected.updated_at = at_micros(50_000_001);
    assert_eq!(
        store.get_experiment(u.id, e.id).await.expect("get"),
        expected
    );
}

/// `request_run` from pending, completed or failed debits, queues and enqueues.
pub async fn request_run_debits_queues_and_enqueues(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(1)).await;
    let mut used = 10;
    for (i, from) in [
        ExperimentStatus::Pending,
        ExperimentStatus::Completed,
        ExperimentStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let now = at(100 + i as i64);
        store
            .set_experiment_status(u.id, e.id, from, now)
            .await
            .expect("set status");
        let job = run_job(&e, now);
        store
            .request_run(u.id, e.id, debit(&e), &job, now)
            .await
            .expect("request_run");
        used += 10;
        let got = store.get_experiment(u.id, e.id).await.expect("get");
        assert_eq!(
            got.status,
            ExperimentStatus::Queued,
            "request_run from {from}"
        );
        assert_eq!(
            store.get_user(u.id).await.expect("user").quota.prompts_used,
            used
        );
        assert_eq!(store.get_job(job.id).await.expect("get_job"), job);
    }
}

/// `request_run` on a queued, running or cancelled experiment is a Conflict with no debit and
/// no job; on a missing experiment NotFound.
pub async fn request_run_conflicts_when_busy_or_cancelled(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(1)).await;
    for status in [
        ExperimentStatus::Queued,
        ExperimentStatus::Running,
        ExperimentStatus::Cancelled,
    ] {
        store
            .set_experiment_status(u.id, e.id, status, at(2))
            .await
            .expect("set status");
        let job = run_job(&e, at(3));
        assert_conflict(
            store.request_run(u.id, e.id, debit(&e), &job, at(3)).await,
            &format!("request_run while {status}"),
        );
        assert_eq!(
            store.get_experiment(u.id, e.id).await.expect("get").status,
            status
        );
        assert_eq!(
            store.get_user(u.id).await.expect("user").quota.prompts_used,
            10,
            "no debit"
        );
        assert_not_found(store.get_job(job.id).await, "job of a refused request_run");
    }
    let missing = ExperimentId::new();
    let job = RunExperimentPayload {
        user_id: u.id,
        experiment_id: missing,
    }
    .into_job(at(4));
    let d = QuotaDebit {
        user_id: u.id,
        amount: 10,
        limit: 1_000,
    };
    assert_not_found(
        store.request_run(u.id, missing, d, &job, at(4)).await,
        "missing experiment",
    );
    assert_not_found(store.get_job(job.id).await, "job for a missing experiment");
}

/// `request_run` over quota is QuotaExceeded and changes nothing.
pub async fn request_run_over_quota_changes_nothing(store: &DynStore) {
    let u = new_user(store).await;
    let mut e = experiment(u.id, at(1));
    e.status = ExperimentStatus::Completed;
    store_experiment(store, &e).await;
    let job = run_job(&e, at(2));
    match store
        .request_run(u.id, e.id, debit_with_limit(&e, 19), &job, at(2))
        .await
    {
        Err(StoreError::QuotaExceeded {
            used: 10,
            requested: 10,
            limit: 19,
        }) => {}
        other => panic!("expected QuotaExceeded {{ 10, 10, 19 }}, got {other:?}"),
    }
    assert_eq!(
        store.get_experiment(u.id, e.id).await.expect("get"),
        e,
        "status unchanged"
    );
    assert_eq!(
        store.get_user(u.id).await.expect("user").quota.prompts_used,
        10
    );
    assert_not_found(store.get_job(job.id).await, "job of a refused request_run");
}

/// Deleting an experiment deletes its runs and iterations and nothing of its siblings.
pub async fn delete_experiment_cascades_runs(store: &DynStore) {
    let u = new_user(store).await;
    let doomed = new_experiment(store, u.id, at(1)).await;
    let kept = new_experiment(store, u.id, at(2)).await;
    let doomed_run = new_batch_run(store, &doomed, at(3)).await;
    let kept_run = new_batch_run(store, &kept, at(3)).await;
    store
        .record_iterations(&[
            iteration(doomed_run.id, 0, at(4)),
            iteration(kept_run.id, 0, at(4)),
        ])
        .await
        .expect("record_iterations");

    store
        .delete_experiment(u.id, doomed.id)
        .await
        .expect("delete_experiment");
    assert_not_found(
        store.get_experiment(u.id, doomed.id).await,
        "deleted experiment",
    );
    assert_not_found(
        store.get_batch_run(u.id, doomed_run.id).await,
        "deleted run",
    );
    assert_not_found(
        store.list_batch_runs(u.id, doomed.id).await,
        "runs of deleted experiment",
    );
    assert_not_found(
        store.list_iterations(u.id, doomed_run.id, 0, 10).await,
        "deleted iterations",
    );
    match store.recorded_indexes(doomed_run.id).await {
        Ok(indexes) => assert!(indexes.is_empty(), "iterations survived: {indexes:?}"),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => panic!("recorded_indexes of a deleted run: {e:?}"),
    }
    assert_not_found(
        store.delete_experiment(u.id, doomed.id).await,
        "deleting twice",
    );

    assert_eq!(
        store.get_experiment(u.id, kept.id).await.expect("sibling"),
        kept
    );
    let kept_runs = store
        .list_batch_runs(u.id, kept.id)
        .await
        .expect("sibling runs");
    assert_eq!(kept_runs.len(), 1);
    assert_eq!(
        store
            .list_iterations(u.id, kept_run.id, 0, 10)
            .await
            .expect("its iterations")
            .len(),
        1
    );
}

/// `due_recurring` returns recurring, non-cancelled experiments due at `now` (any owner),
/// earliest first, at most `limit`.
pub async fn due_recurring_filters_and_orders(store: &DynStore) {
    let a = new_user(store).await;
    let b = new_user(store).await;
    let now = at(0);
    let r1 = recurring(a.id, at(-5_000), Some(at(-10)));
    let r2 = recurring(b.id, at(-5_000), Some(at(-20)));
    let r3 = recurring(a.id, at(-5_000), Some(now));
    let later = recurring(a.id, at(-5_000), Some(at_micros(1)));
    let mut cancelled = recurring(b.id, at(-5_000), Some(at(-30)));
    cancelled.status = ExperimentStatus::Cancelled;
    let one_off = experiment(a.id, at(-5_000));
    let ended = recurring(a.id, at(-5_000), None);
    for e in [&r1, &r2, &r3, &later, &cancelled, &one_off, &ended] {
        store_experiment(store, e).await;
    }
    let due = store.due_recurring(now, 100).await.expect("due_recurring");
    assert_eq!(ids(&due), vec![r2.id, r1.id, r3.id]);
    assert_eq!(due[0], r2, "due rows are the stored experiments");
    let limited = store
        .due_recurring(now, 2)
        .await
        .expect("due_recurring limited");
    assert_eq!(ids(&limited), vec![r2.id, r1.id]);
    assert!(
        store
            .due_recurring(at(-100), 100)
            .await
            .expect("nothing due")
            .is_empty()
    );
    let again = store
        .due_recurring(now, 100)
        .await
        .expect("reading does not claim");
    assert_eq!(ids(&again), vec![r2.id, r1.id, r3.id]);
}

/// `claim_schedule` advances, debits and enqueues once; the same `expected` again is Lost with
/// nothing done; a non-recurring experiment is Lost.
pub async fn claim_schedule_enqueued_then_lost(store: &DynStore) {
    let u = new_user(store).await;
    let e = recurring(u.id, at(-1_000), Some(at(0)));
    store_experiment(store, &e).await;

    let job = run_job(&e, at(0));
    let claim = store
        .claim_schedule(e.id, at(0), Some(at(3_600)), debit(&e), &job)
        .await;
    assert_eq!(claim.expect("claim_schedule"), ScheduleClaim::Enqueued);
    let got = store.get_experiment(u.id, e.id).await.expect("get");
    assert_eq!(got.recurrence.and_then(|r| r.next_run_at), Some(at(3_600)));
    assert_eq!(
        store.get_user(u.id).await.expect("user").quota.prompts_used,
        20
    );
    assert_eq!(store.get_job(job.id).await.expect("get_job"), job);

    let late = run_job(&e, at(1));
    let claim = store
        .claim_schedule(e.id, at(0), Some(at(7_200)), debit(&e), &late)
        .await;
    assert_eq!(claim.expect("second claim"), ScheduleClaim::Lost);
    let got = store.get_experiment(u.id, e.id).await.expect("get");
    assert_eq!(
        got.recurrence.and_then(|r| r.next_run_at),
        Some(at(3_600)),
        "not advanced"
    );
    assert_eq!(
        store.get_user(u.id).await.expect("user").quota.prompts_used,
        20,
        "no debit"
    );
    assert_not_found(store.get_job(late.id).await, "job of a lost claim");

    let next = run_job(&e, at(3_600));
    let claim = store
        .claim_schedule(e.id, at(3_600), Some(at(7_200)), debit(&e), &next)
        .await;
    assert_eq!(
        claim.expect("claim of the next occurrence"),
        ScheduleClaim::Enqueued
    );

    let one_off = new_experiment(store, u.id, at(5)).await;
    let stray = run_job(&one_off, at(6));
    let claim = store
        .claim_schedule(one_off.id, at(6), Some(at(9)), debit(&one_off), &stray)
        .await;
    assert_eq!(claim.expect("claim of a one-off"), ScheduleClaim::Lost);
    assert_not_found(store.get_job(stray.id).await, "job of a lost claim");
    assert_eq!(
        store.get_experiment(u.id, one_off.id).await.expect("get"),
        one_off
    );
}

/// Over quota, `claim_schedule` advances the schedule without a job or a debit.
pub async fn claim_schedule_skips_over_quota(store: &DynStore) {
    let u = new_user(store).await;
    let e = recurring(u.id, at(-1_000), Some(at(0)));
    store_experiment(store, &e).await;
    let job = run_job(&e, at(0));
    let claim = store
        .claim_schedule(e.id, at(0), Some(at(3_600)), debit_with_limit(&e, 15), &job)
        .await;
    assert_eq!(
        claim.expect("claim_schedule"),
        ScheduleClaim::SkippedOverQuota
    );
    let got = store.get_experiment(u.id, e.id).await.expect("get");
    assert_eq!(
        got.recurrence.and_then(|r| r.next_run_at),
        Some(at(3_600)),
        "advanced"
    );
    assert_eq!(
        store.get_user(u.id).await.expect("user").quota.prompts_used,
        10,
        "no debit"
    );
    assert_not_found(store.get_job(job.id).await, "job of a skipped occurrence");

    let retry = run_job(&e, at(1));
    let claim = store
        .claim_schedule(e.id, at(0), Some(at(3_600)), debit(&e), &retry)
        .await;
    assert_eq!(
        claim.expect("claim of the skipped occurrence"),
        ScheduleClaim::Lost
    );
    assert_not_found(store.get_job(retry.id).await, "job of a lost claim");
}

/// `next = None` ends the recurrence: the schedule stays, `next_run_at` is `None`, and the
/// experiment is no longer due.
pub async fn claim_schedule_none_ends_recurrence(store: &DynStore) {
    let u = new_user(store).await;
    let e = recurring(u.id, at(-1_000), Some(at(0)));
    store_experiment(store, &e).await;
    let job = run_job(&e, at(0));
    let claim = store
        .claim_schedule(e.id, at(0), None, debit(&e), &job)
        .await;
    assert_eq!(claim.expect("claim_schedule"), ScheduleClaim::Enqueued);
    let got = store.get_experiment(u.id, e.id).await.expect("get");
    assert_eq!(
        got.recurrence,
        Some(Recurrence {
            schedule: "0 * * * *".into(),
            next_run_at: None,
        })
    );
    assert!(
        store
            .due_recurring(at(1_000_000), 100)
            .await
            .expect("due")
            .is_empty()
    );
    let again = run_job(&e, at(1));
    let claim = store
        .claim_schedule(e.id, at(0), None, debit(&e), &again)
        .await;
    assert_eq!(claim.expect("claim after the end"), ScheduleClaim::Lost);
    assert_not_found(store.get_job(again.id).await, "job of a lost claim");
}

/// Race: of 16 concurrent `claim_schedule` calls with the same `expected`, exactly one wins,
/// exactly one job is enqueued and the quota is debited once.
pub async fn claim_schedule_race_has_one_winner(store: &DynStore) {
    let u = new_user(store).await;
    let e = recurring(u.id, at(-1_000), Some(at(0)));
    store_experiment(store, &e).await;
    let jobs: Vec<_> = (0..16).map(|_| run_job(&e, at(0))).collect();
    let e = &e;
    let results = join_all(jobs.iter().enumerate().map(|(i, job)| {
        let next = Some(at(3_600 + i as i64));
        async move { store.claim_schedule(e.id, at(0), next, debit(e), job).await }
    }))
    .await;
    let mut winners = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r.expect("claim_schedule") {
            ScheduleClaim::Enqueued => winners.push(i),
            ScheduleClaim::Lost => {}
            ScheduleClaim::SkippedOverQuota => panic!("claim {i} skipped with a generous limit"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner, got {winners:?}");
    let winner = winners[0];
    for (i, job) in jobs.iter().enumerate() {
        let stored = store.get_job(job.id).await;
        if i == winner {
            assert_eq!(stored.expect("winner's job"), *job);
        } else {
            assert_not_found(stored, "loser's job");
        }
    }
    let got = store.get_experiment(u.id, e.id).await.expect("get");
    assert_eq!(
        got.recurrence.and_then(|r| r.next_run_at),
        Some(at(3_600 + winner as i64))
    );
    assert_eq!(
        store.get_user(u.id).await.expect("user").quota.prompts_used,
        20,
        "one debit"
    );
}

/// Race: many concurrent `create_experiment` calls at the edge of the quota never overspend,
/// and refuse only requests that truly did not fit.
pub async fn quota_edge_race_never_overspends(store: &DynStore) {
    let u = new_user(store).await;
    const LIMIT: u32 = 100;
    let experiments: Vec<_> = (0..24)
        .map(|i| with_iterations(experiment(u.id, at(i)), [7, 10, 13, 4][i as usize % 4]))
        .collect();
    let jobs: Vec<_> = experiments.iter().map(|e| run_job(e, at(0))).collect();
    let results = join_all(experiments.iter().zip(&jobs).map(|(e, job)| async move {
        store
            .create_experiment(e, debit_with_limit(e, LIMIT), job)
            .await
    }))
    .await;

    let used = store.get_user(u.id).await.expect("user").quota.prompts_used;
    let mut spent = 0;
    let mut succeeded = Vec::new();
    for ((e, job), r) in experiments.iter().zip(&jobs).zip(results) {
        match r {
            Ok(()) => {
                spent += e.prompts_per_run();
                succeeded.push(e.id);
                assert_eq!(store.get_job(job.id).await.expect("job of a success"), *job);
            }
            Err(StoreError::QuotaExceeded {
                used: seen,
                requested,
                limit,
            }) => {
                assert_eq!((requested, limit), (e.prompts_per_run(), LIMIT));
                assert!(
                    seen + requested > limit,
                    "refused a debit that fit: {seen}+{requested}"
                );
                assert!(
                    seen <= used,
                    "refusal saw {seen} used, more than the final {used}"
                );
                assert!(
                    used + requested > limit,
                    "refused although it fits the final count"
                );
                assert_not_found(store.get_experiment(u.id, e.id).await, "refused experiment");
                assert_not_found(store.get_job(job.id).await, "job of a refused experiment");
            }
            Err(other) => panic!("create_experiment: {other:?}"),
        }
    }
    assert!(spent <= LIMIT, "overspent: {spent} > {LIMIT}");
    assert_eq!(
        used, spent,
        "prompts_used equals the sum of successful debits"
    );
    let listed = collect_experiment_pages(
        store,
        u.id,
        &ExperimentQuery {
            limit: page_size(100),
            ..ExperimentQuery::default()
        },
    )
    .await
    .expect("list");
    let mut listed = ids(&listed);
    listed.sort();
    succeeded.sort();
    assert_eq!(
        listed, succeeded,
        "exactly the successful experiments are stored"
    );
}
