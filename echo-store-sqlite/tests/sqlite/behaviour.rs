//! Behaviour specific to this backend: reading back data this build does not understand, error
//! mapping, the SQLite-only constraints, the bulk loader and write contention.

use std::sync::Arc;
use std::time::Duration;

use echo_core::conformance::corrupt::{self, assert_invalid};
use echo_core::conformance::fixtures::{
    at, batch_run, debit, experiment, iteration, job, new_batch_run, new_experiment, new_user,
    run_job, user,
};
use echo_core::model::{BatchRunStatus, BatchRunUpdate, ExperimentStatus, ProviderKind};
use echo_core::store::{
    DynStore, ExperimentQuery, ExperimentStore, JobQueue, QueueStats, RunStore, StoreError,
    UserStore,
};
use echo_store_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test]
async fn unknown_enum_text_reads_back_invalid() {
    let store = crate::temp_store().await;
    let raw = crate::raw(&store);
    corrupt::unknown_enum_text_reads_back_invalid(&store, async |sql| {
        raw.execute(sql, []).unwrap();
    })
    .await;
}

#[tokio::test]
async fn malformed_stored_values_read_back_invalid() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let raw = crate::raw(&store);

    raw.execute("UPDATE experiments SET target = '{\"name\": '", [])
        .unwrap();
    assert_invalid(store.get_experiment(u.id, e.id).await, "truncated JSON");

    // Valid JSON whose content fails the model's validation (an empty brand name).
    raw.execute("UPDATE experiments SET target = '{\"name\": \"  \"}'", [])
        .unwrap();
    assert_invalid(store.get_experiment(u.id, e.id).await, "invalid brand name");

    raw.execute("UPDATE users SET created_at = 9223372036854775807", [])
        .unwrap();
    assert_invalid(store.get_user(u.id).await, "instant out of range");
}

#[tokio::test]
async fn resending_identical_iterations_counts_duplicates() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let batch: Vec<_> = (0..5).map(|i| iteration(run.id, i, at(2))).collect();

    let first = store.record_iterations(&batch).await.unwrap();
    assert_eq!((first.inserted, first.duplicates), (5, 0));
    // Same ids and same (run, index): both unique indexes collide, and the write must still be
    // a duplicate rather than a conflict.
    let again = store.record_iterations(&batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 5));
    let stored = store.get_batch_run(u.id, run.id).await.unwrap();
    assert_eq!(stored.iterations_recorded, 5);
}

#[tokio::test]
async fn iteration_id_reused_at_another_index_is_conflict_and_writes_nothing() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let first = iteration(run.id, 0, at(2));
    store
        .record_iterations(std::slice::from_ref(&first))
        .await
        .unwrap();

    let mut reused = iteration(run.id, 7, at(3));
    reused.id = first.id;
    let fresh = iteration(run.id, 1, at(3));
    let err = store.record_iterations(&[fresh, reused]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.recorded_indexes(run.id).await.unwrap(), vec![0]);
    let stored = store.get_batch_run(u.id, run.id).await.unwrap();
    assert_eq!(stored.iterations_recorded, 1, "counters rolled back too");
}

#[tokio::test]
async fn counters_beyond_sqlite_integers_are_invalid() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let update = BatchRunUpdate {
        status: BatchRunStatus::Completed,
        metrics: None,
        visibility_rate: None,
        cost_micros_usd: u64::MAX,
        error: None,
        started_at: None,
        completed_at: None,
    };
    assert_invalid(
        store.update_batch_run(run.id, &update).await,
        "u64::MAX cost",
    );
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.unwrap(),
        run,
        "nothing written"
    );
}

#[tokio::test]
async fn conflict_messages_are_user_safe() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let mut twin = user();
    twin.email = u.email.clone();
    match store.create_user(&twin).await {
        Err(StoreError::Conflict { message }) => {
            assert_eq!(message, "email is already registered");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn held_write_lock_is_unavailable_after_busy_timeout() {
    let config = SqliteConfig {
        busy_timeout: Duration::from_millis(50),
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open_temporary(config).await.unwrap();
    let raw = crate::raw(&store);
    raw.execute_batch("BEGIN IMMEDIATE").unwrap();

    let u = user();
    let err = store.create_user(&u).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let source = std::error::Error::source(&err).expect("the SQLite error is kept");
    assert!(source.to_string().contains("locked"), "{source}");
    // Readers are not blocked by the writer in WAL mode.
    assert!(matches!(
        store.get_user(u.id).await,
        Err(StoreError::NotFound { .. })
    ));

    raw.execute_batch("COMMIT").unwrap();
    store.create_user(&u).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_wait_instead_of_failing() {
    let store: Arc<DynStore> = Arc::new(crate::temp_store().await);
    let u = new_user(&*store).await;
    let e = new_experiment(&*store, u.id, at(0)).await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(&store);
            let e = e.clone();
            tokio::spawn(async move {
                let run = batch_run(&e, ProviderKind::Simulated, at(t));
                store.create_batch_run(&run).await?;
                for chunk in 0..10u32 {
                    let its: Vec<_> = (chunk * 10..chunk * 10 + 10)
                        .map(|i| iteration(run.id, i, at(t)))
                        .collect();
                    store.record_iterations(&its).await?;
                }
                store.enqueue(&job(at(t), 3)).await?;
                Ok::<_, StoreError>(run.id)
            })
        })
        .collect();
    for task in tasks {
        let run = task.await.unwrap().unwrap();
        assert_eq!(store.recorded_indexes(run).await.unwrap().len(), 100);
    }
    let stats = store.dashboard(u.id, at(0)).await.unwrap();
    assert_eq!(stats.iterations_total, 1_600);
}

#[tokio::test]
async fn import_experiments_is_bulk_atomic_and_side_effect_free() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let mut batch: Vec<_> = (0..1_000).map(|i| experiment(u.id, at(i))).collect();
    batch[10].status = ExperimentStatus::Completed;
    store.import_experiments(&batch).await.unwrap();

    let page = store
        .list_experiments(u.id, &ExperimentQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items[0], batch[999]);
    assert_eq!(
        store
            .dashboard(u.id, at(0))
            .await
            .unwrap()
            .experiments_total,
        1_000
    );
    assert_eq!(store.get_user(u.id).await.unwrap().quota.prompts_used, 0);
    assert_eq!(
        store.queue_stats(at(0)).await.unwrap(),
        QueueStats::default()
    );

    let orphan = experiment(user().id, at(0));
    let good = experiment(u.id, at(0));
    let err = store
        .import_experiments(&[good.clone(), orphan])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { entity: "user" }),
        "{err:?}"
    );
    assert!(matches!(
        store.get_experiment(u.id, good.id).await,
        Err(StoreError::NotFound { .. })
    ));

    let err = store
        .import_experiments(&[batch[0].clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn failed_transaction_leaves_no_partial_write() {
    let store = crate::temp_store().await;
    let u = new_user(&store).await;
    let e = experiment(u.id, at(0));
    let taken = run_job(&e, at(0));
    store.enqueue(&taken).await.unwrap();
    // The experiment insert succeeds before the job insert collides.
    let err = store
        .create_experiment(&e, debit(&e), &taken)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(matches!(
        store.get_experiment(u.id, e.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.get_user(u.id).await.unwrap().quota.prompts_used, 0);
}

/// `audit_links` hashes the stored details text as it is: a row whose details were respelled
/// (same JSON value, other bytes) no longer matches its hash, while the other rows do, and
/// `audit verify` names it as altered instead of accepting an edited row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_links_hash_the_stored_details_text() {
    use echo_core::audit::{BreakKind, ChainStart, ChainVerifier, push_stored_events};
    use echo_core::conformance::fixtures::audit_event;
    use echo_core::store::AuditStore;

    let store = Arc::new(crate::temp_store().await);
    for i in 0..3 {
        store
            .append_audit(&audit_event("login", at(i)))
            .await
            .unwrap();
    }
    let raw = crate::raw(&store);
    let stored: String = raw
        .query_row("SELECT details FROM audit_events WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let respelled = stored.replace(',', ", ");
    assert_ne!(respelled, stored);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&respelled).unwrap(),
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        "the same value"
    );
    raw.execute(
        "UPDATE audit_events SET details = ?1 WHERE seq = 2",
        [&respelled],
    )
    .unwrap();

    let links = store.audit_links(1, 10).await.unwrap();
    let matching: Vec<bool> = links.iter().map(|l| l.recomputed == l.hash).collect();
    assert_eq!(matching, [true, false, true]);
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    let walked = push_stored_events(store, &mut verifier, 1, 10).await;
    let broken = verifier.finish().unwrap_err();
    assert!(walked.is_err());
    assert_eq!((broken.seq, broken.kind), (2, BreakKind::Altered));
}

/// With a checkpoint interval the background thread copies the log into the database file:
/// the file grows though no writer reached the (raised) automatic checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_checkpointer_copies_the_log_into_the_file() {
    use echo_core::conformance::fixtures::audit_event;
    use echo_core::store::AuditStore;

    let config = SqliteConfig {
        checkpoint_interval: Some(Duration::from_millis(10)),
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open_temporary(config).await.unwrap();
    let size = || std::fs::metadata(store.path()).unwrap().len();
    // Let a first pass copy what the migrations left in the log.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = size();
    // About 500 KiB of pages: far below the writers' fallback of 10,000 pages.
    for i in 0..300 {
        let mut e = audit_event("login", at(i));
        e.details = serde_json::json!({ "pad": "x".repeat(1_000) });
        store.append_audit(&e).await.unwrap();
    }
    let mut waited = Duration::ZERO;
    while size() <= before {
        assert!(
            waited < Duration::from_secs(20),
            "the file never grew past {before} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}

#[tokio::test]
async fn a_zero_checkpoint_interval_is_refused() {
    let config = SqliteConfig {
        checkpoint_interval: Some(Duration::ZERO),
        ..SqliteConfig::default()
    };
    match SqliteStore::open_temporary(config).await {
        Err(StoreError::Invalid(e)) => assert!(e.to_string().contains("checkpoint_interval")),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The rows the traits cannot show: the retention pass deletes an anonymized iteration's
/// sources, and a user's erasure deletes the rest (the foreign keys cascade), leaving no
/// source row behind.
#[tokio::test]
async fn retention_and_erasure_leave_no_source_rows() {
    let store = crate::temp_store().await;
    let raw = crate::raw(&store);
    let count = || -> i64 {
        raw.query_row("SELECT count(*) FROM iteration_sources", [], |r| r.get(0))
            .unwrap()
    };
    let u = new_user(&store).await;
    let e = new_experiment(&store, u.id, at(0)).await;
    let run = new_batch_run(&store, &e, at(1)).await;
    let its: Vec<_> = (0..4)
        .map(|i| iteration(run.id, i, at(i64::from(i))))
        .collect();
    store.record_iterations(&its).await.unwrap();
    assert_eq!(count(), 8, "two sources per fixture iteration");

    let changed = store
        .anonymize_iterations(u.tier, at(2), 100, at(10))
        .await
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        count(),
        4,
        "the two anonymized iterations' sources are gone"
    );

    store.delete_user(u.id).await.unwrap();
    assert_eq!(count(), 0);
}
