//! Behaviour specific to this backend: reading back data this build does not understand, error
//! mapping, the bulk loaders, transactional completion, wake-ups and pool statistics.

use std::time::Duration;

use echo_core::conformance::corrupt::{self, assert_invalid};
use echo_core::conformance::fixtures::{
    api_key, at, batch_run, completed_update, experiment, job, new_batch_run, new_experiment,
    new_user, recurring, user,
};
use echo_core::model::{BatchRunUpdate, ExperimentStatus, JobStatus};
use echo_core::store::{ApiKeyStore, ExperimentStore, JobQueue, RunStore, StoreError, UserStore};
use echo_store_postgres::{ACQUIRE_BUCKETS_SECONDS, PgStore, Wakeup};
use sqlx::PgConnection;

async fn exec(conn: &mut PgConnection, sql: &'static str) {
    sqlx::query(sql).execute(conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_text_reads_back_invalid() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let mut raw = crate::raw(&store).await;
    corrupt::unknown_enum_text_reads_back_invalid(&store, async |sql| exec(&mut raw, sql).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stored_values_read_back_invalid() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let mut raw = crate::raw(&store).await;

    // Valid JSON whose content fails the model's validation (an empty brand name).
    exec(
        &mut raw,
        r#"UPDATE experiments SET target = '{"name": "  "}'"#,
    )
    .await;
    assert_invalid(store.get_experiment(u.id, e.id).await, "invalid brand name");
    exec(&mut raw, r#"UPDATE experiments SET target = '[1, 2]'"#).await;
    assert_invalid(
        store.get_experiment(u.id, e.id).await,
        "JSON of the wrong shape",
    );

    // Instants PostgreSQL stores but `Timestamp` cannot hold (sqlx's own decoder would panic).
    exec(&mut raw, "UPDATE users SET created_at = 'infinity'").await;
    assert_invalid(store.get_user(u.id).await, "infinite instant");
    exec(&mut raw, "UPDATE users SET created_at = '-infinity'").await;
    assert_invalid(store.get_user(u.id).await, "minus infinity");
    exec(&mut raw, "UPDATE users SET created_at = now()").await;

    exec(&mut raw, "UPDATE users SET prompts_used = 5000000000").await;
    assert_invalid(store.get_user(u.id).await, "u32 counter out of range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_beyond_bigint_are_invalid_not_wrapped() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let update = BatchRunUpdate {
        cost_micros_usd: u64::MAX,
        ..completed_update(Some(0.5), at(2))
    };
    assert_invalid(store.update_batch_run(run.id, &update).await, "u64 cost");
    let mut big = batch_run(&e, echo_core::model::ProviderKind::OpenAi, at(3));
    big.input_tokens = i64::MAX as u64 + 1;
    assert_invalid(store.create_batch_run(&big).await, "u64 tokens");
    let max = BatchRunUpdate {
        cost_micros_usd: i64::MAX as u64,
        ..completed_update(Some(0.5), at(2))
    };
    store.update_batch_run(run.id, &max).await.unwrap();
    assert_eq!(
        store
            .get_batch_run(u.id, run.id)
            .await
            .unwrap()
            .cost_micros_usd,
        i64::MAX as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_have_user_safe_messages_and_keep_the_source() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let u = new_user(&store).await;
    let mut twin = user();
    twin.email = u.email.clone();
    match store.create_user(&twin).await {
        Err(StoreError::Conflict { message }) => {
            assert_eq!(message, "email is already registered")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let key = api_key(u.id, at(0));
    store.create_api_key(&key).await.unwrap();
    let mut clash = api_key(u.id, at(1));
    clash.public_id = key.public_id.clone();
    match store.create_api_key(&clash).await {
        Err(StoreError::Conflict { message }) => assert_eq!(message, "API key id already exists"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // A foreign-key violation names the missing parent.
    let orphan = api_key(echo_core::model::UserId::new(), at(2));
    match store.create_api_key(&orphan).await {
        Err(StoreError::NotFound { entity }) => assert_eq!(entity, "user"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_loaders_round_trip_and_are_all_or_nothing() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let u = new_user(&store).await;
    let mut experiments: Vec<_> = (0..12_000)
        .map(|i| {
            let mut e = if i % 7 == 0 {
                recurring(u.id, at(i), Some(at(i + 60)))
            } else {
                experiment(u.id, at(i))
            };
            e.status = ExperimentStatus::ALL[i as usize % ExperimentStatus::ALL.len()];
            e
        })
        .collect();
    store.import_experiments(&experiments).await.unwrap();
    for e in [&experiments[0], &experiments[7], &experiments[11_999]] {
        assert_eq!(&store.get_experiment(u.id, e.id).await.unwrap(), e);
    }
    // One bad row (a missing owner) rejects the whole batch.
    let before = store
        .dashboard(u.id, at(0))
        .await
        .unwrap()
        .experiments_total;
    let mut bad = vec![experiment(u.id, at(1)), experiment(u.id, at(2))];
    bad[1].user_id = echo_core::model::UserId::new();
    assert!(matches!(
        store.import_experiments(&bad).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store
            .dashboard(u.id, at(0))
            .await
            .unwrap()
            .experiments_total,
        before
    );
    experiments.truncate(2);

    let runs: Vec<_> = experiments
        .iter()
        .map(|e| batch_run(e, echo_core::model::ProviderKind::Gemini, at(5)))
        .collect();
    store.import_batch_runs(&runs).await.unwrap();
    assert_eq!(
        store.get_batch_run(u.id, runs[1].id).await.unwrap(),
        runs[1]
    );

    let keys: Vec<_> = (0..100).map(|i| api_key(u.id, at(i))).collect();
    store.import_api_keys(&keys).await.unwrap();
    assert_eq!(
        store.find_api_key(&keys[42].public_id).await.unwrap(),
        Some(keys[42].clone())
    );
    let jobs: Vec<_> = (0..100).map(|i| job(at(i), 3)).collect();
    store.enqueue_many(&jobs).await.unwrap();
    assert_eq!(store.get_job(jobs[99].id).await.unwrap(), jobs[99]);
    assert!(matches!(
        store.enqueue_many(&jobs[..1]).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_in_the_callers_transaction_is_fenced() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let j = job(at(0), 3);
    store.enqueue(&j).await.unwrap();
    let lease = Duration::from_secs(30);
    let zombie = store.claim("w1", 1, lease, at(0)).await.unwrap().remove(0);
    let current = store.claim("w2", 1, lease, at(31)).await.unwrap().remove(0);

    // The zombie's completion fails, so whatever it wrote in its transaction rolls back.
    let mut tx = store.begin().await.unwrap();
    let err = store
        .complete_in(&mut tx, zombie.lease(), at(32))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost), "{err:?}");
    tx.rollback().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let next = job(at(40), 3);
    store.enqueue_in(&mut tx, &next).await.unwrap();
    store
        .complete_in(&mut tx, current.lease(), at(33))
        .await
        .unwrap();
    // Not visible to others before the commit.
    assert!(matches!(
        store.get_job(next.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.get_job(j.id).await.unwrap().status,
        JobStatus::Running
    );
    tx.commit().await.unwrap();
    store.notify_job_workers();
    assert_eq!(
        store.get_job(j.id).await.unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(store.get_job(next.id).await.unwrap(), next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_many_is_fenced_per_job() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let jobs: Vec<_> = (0..5).map(|i| job(at(i), 3)).collect();
    store.enqueue_many(&jobs).await.unwrap();
    let lease = Duration::from_secs(30);
    let claimed = store.claim("w1", 5, lease, at(10)).await.unwrap();
    assert_eq!(claimed.len(), 5);
    // The first job's lease expires and another worker takes it over.
    store.heartbeat(claimed[1].lease(), at(100)).await.unwrap();
    store.heartbeat(claimed[2].lease(), at(100)).await.unwrap();
    store.heartbeat(claimed[3].lease(), at(100)).await.unwrap();
    store.heartbeat(claimed[4].lease(), at(100)).await.unwrap();
    let taken = store
        .claim_job(claimed[0].id, "w2", lease, at(41))
        .await
        .unwrap()
        .unwrap();
    let leases: Vec<_> = claimed.iter().map(|j| j.lease()).collect();
    let lost = store.complete_many(&leases, at(42)).await.unwrap();
    assert_eq!(lost, vec![claimed[0].lease()]);
    for j in &claimed[1..] {
        assert_eq!(
            store.get_job(j.id).await.unwrap().status,
            JobStatus::Succeeded
        );
    }
    assert_eq!(
        store.get_job(taken.id).await.unwrap().status,
        JobStatus::Running
    );
    assert!(store.complete_many(&[], at(43)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_wakes_a_listening_worker() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let mut wakeups = store.job_notifications().await.unwrap();
    assert_eq!(
        wakeups.wait(Duration::from_millis(50)).await.unwrap(),
        Wakeup::TimedOut
    );
    // Another process's store (a separate pool and notifier) enqueues.
    let url = sqlx::ConnectOptions::to_url_lossy(&*store.pool().connect_options()).to_string();
    let other = PgStore::connect(&url, crate::test_config()).await.unwrap();
    for _ in 0..20 {
        other.enqueue(&job(at(0), 3)).await.unwrap();
    }
    assert_eq!(
        wakeups.wait(Duration::from_secs(5)).await.unwrap(),
        Wakeup::Notified
    );
    // The notifications of those enqueues (coalesced by the debounce) that arrived meanwhile
    // are drained by one wait.
    tokio::time::sleep(Duration::from_millis(100)).await;
    wakeups.wait(Duration::from_millis(30)).await.unwrap();
    assert_eq!(
        wakeups.wait(Duration::from_millis(30)).await.unwrap(),
        Wakeup::TimedOut,
        "nothing left after one wait"
    );

    let disabled = PgStore::connect(
        &url,
        echo_store_postgres::PgConfig {
            notify_on_enqueue: false,
            ..crate::test_config()
        },
    )
    .await
    .unwrap();
    disabled.enqueue(&job(at(0), 3)).await.unwrap();
    assert_eq!(
        wakeups.wait(Duration::from_millis(200)).await.unwrap(),
        Wakeup::TimedOut
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_stats_count_acquires() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let before = store.pool_stats();
    for _ in 0..10 {
        new_user(&store).await;
    }
    let after = store.pool_stats();
    assert_eq!(after.max_connections, 10);
    assert!(after.acquires >= before.acquires + 10, "{after:?}");
    assert_eq!(
        after.acquire_buckets.len(),
        ACQUIRE_BUCKETS_SECONDS.len() + 1
    );
    assert_eq!(*after.acquire_buckets.last().unwrap(), after.acquires);
    assert!(after.acquire_seconds_sum > 0.0);
    assert!(after.size >= 1 && after.in_use <= after.size, "{after:?}");
}

/// The rows the traits cannot show: the retention pass deletes an anonymized iteration's
/// sources in its own statement, and a user's erasure deletes the rest (the foreign keys
/// cascade), leaving no source row behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_erasure_leave_no_source_rows() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let mut raw = crate::raw(&store).await;
    async fn count(raw: &mut PgConnection) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM iteration_sources")
            .fetch_one(raw)
            .await
            .unwrap()
    }
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let its: Vec<_> = (0..4)
        .map(|i| echo_core::conformance::fixtures::iteration(run.id, i, at(i64::from(i))))
        .collect();
    store.record_iterations(&its).await.unwrap();
    assert_eq!(
        count(&mut raw).await,
        8,
        "two sources per fixture iteration"
    );

    let changed = store
        .anonymize_iterations(u.tier, at(2), 100, at(10))
        .await
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        count(&mut raw).await,
        4,
        "the two anonymized iterations' sources are gone"
    );

    store.delete_user(u.id).await.unwrap();
    assert_eq!(count(&mut raw).await, 0);
}
