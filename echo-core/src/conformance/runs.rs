//! [`RunStore`](crate::store::RunStore): batch runs, idempotent iteration writes, the
//! dashboard.

use std::collections::BTreeMap;

use proptest::prelude::*;
use time::macros::datetime;

use super::fixtures::{
    assert_close, assert_conflict, assert_not_found, at, at_micros, batch_metrics, batch_run,
    check_property, completed_update, experiment, failed_iteration, iteration, new_batch_run,
    new_experiment, new_user, store_experiment,
};
use crate::model::{
    BatchRun, BatchRunId, BatchRunStatus, BatchRunUpdate, Experiment, ExperimentId,
    ExperimentStatus, Iteration, ProviderKind, RecordOutcome, Timestamp,
};
use crate::store::{DashboardStats, DynStore, TrendRun};

/// The run's counters and token totals after storing `iterations` (first writes only).
fn with_counters(run: &BatchRun, iterations: &[Iteration]) -> BatchRun {
    let mut run = run.clone();
    run.iterations_recorded = iterations.len() as u32;
    run.iterations_succeeded = iterations.iter().filter(|i| i.is_success).count() as u32;
    run.input_tokens = iterations.iter().map(|i| u64::from(i.input_tokens)).sum();
    run.output_tokens = iterations.iter().map(|i| u64::from(i.output_tokens)).sum();
    run
}

/// `run` with the executor-owned fields of `update`.
fn with_update(run: &BatchRun, update: &BatchRunUpdate) -> BatchRun {
    let mut run = run.clone();
    run.status = update.status;
    run.metrics = update.metrics.clone();
    run.visibility_rate = update.visibility_rate;
    run.cost_micros_usd = update.cost_micros_usd;
    run.error = update.error.clone();
    run.started_at = update.started_at;
    run.completed_at = update.completed_at;
    run
}

/// A run reads back equal; a run of a missing experiment is NotFound and not stored; unknown
/// ids and other owners are NotFound.
pub async fn create_batch_run_round_trip(store: &DynStore) {
    let u = new_user(store).await;
    let intruder = new_user(store).await;
    let e = new_experiment(store, u.id, at(1)).await;
    let mut run = batch_run(&e, ProviderKind::Anthropic, at_micros(2_000_001));
    run.model = "claude-sonnet-4-5".into();
    run.iterations_planned = 250;
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");
    assert_eq!(
        store
            .get_batch_run(u.id, run.id)
            .await
            .expect("get_batch_run"),
        run
    );
    assert_not_found(
        store.get_batch_run(intruder.id, run.id).await,
        "another owner's run",
    );
    assert_not_found(
        store.get_batch_run(u.id, BatchRunId::new()).await,
        "unknown run",
    );

    let mut orphan = batch_run(&e, ProviderKind::Simulated, at(3));
    orphan.experiment_id = ExperimentId::new();
    assert_not_found(
        store.create_batch_run(&orphan).await,
        "run of a missing experiment",
    );
    assert_not_found(
        store.get_batch_run(u.id, orphan.id).await,
        "the refused run",
    );
}

/// `list_batch_runs` is oldest first, holds only that experiment's runs, and is NotFound for
/// another owner or a missing experiment.
pub async fn list_batch_runs_oldest_first_and_scoped(store: &DynStore) {
    let u = new_user(store).await;
    let intruder = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let sibling = new_experiment(store, u.id, at(0)).await;
    let r30 = batch_run(&e, ProviderKind::OpenAi, at(30));
    let r10 = batch_run(&e, ProviderKind::Gemini, at(10));
    let r20 = batch_run(&e, ProviderKind::Perplexity, at(20));
    let other = batch_run(&sibling, ProviderKind::OpenAi, at(15));
    for r in [&r30, &r10, &other, &r20] {
        store.create_batch_run(r).await.expect("create_batch_run");
    }
    assert_eq!(
        store.list_batch_runs(u.id, e.id).await.expect("list"),
        vec![r10, r20, r30]
    );
    assert_eq!(
        store
            .list_batch_runs(u.id, sibling.id)
            .await
            .expect("list sibling"),
        vec![other]
    );
    let empty = new_experiment(store, u.id, at(0)).await;
    assert!(
        store
            .list_batch_runs(u.id, empty.id)
            .await
            .expect("no runs")
            .is_empty()
    );
    assert_not_found(
        store.list_batch_runs(intruder.id, e.id).await,
        "another owner",
    );
    assert_not_found(
        store.list_batch_runs(u.id, ExperimentId::new()).await,
        "missing experiment",
    );
}

/// `update_batch_run` writes every executor-owned field (including `None`s) and never the
/// counters; an unknown run is NotFound.
pub async fn update_batch_run_writes_fields_not_counters(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let recorded = [
        iteration(run.id, 0, at(2)),
        iteration(run.id, 1, at(2)),
        failed_iteration(run.id, 2, at(2)),
    ];
    store
        .record_iterations(&recorded)
        .await
        .expect("record_iterations");
    let counted = with_counters(&run, &recorded);

    let done = BatchRunUpdate {
        status: BatchRunStatus::Completed,
        metrics: Some(batch_metrics(0.5)),
        visibility_rate: Some(0.5),
        cost_micros_usd: 12_345,
        error: None,
        started_at: Some(at(5)),
        completed_at: Some(at_micros(60_000_001)),
    };
    store
        .update_batch_run(run.id, &done)
        .await
        .expect("update_batch_run");
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("get"),
        with_update(&counted, &done)
    );

    let failed = BatchRunUpdate {
        status: BatchRunStatus::Failed,
        metrics: None,
        visibility_rate: None,
        cost_micros_usd: 0,
        error: Some("provider returned 401".into()),
        started_at: None,
        completed_at: Some(at(70)),
    };
    store
        .update_batch_run(run.id, &failed)
        .await
        .expect("second update");
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("get"),
        with_update(&counted, &failed)
    );

    assert_not_found(
        store.update_batch_run(BatchRunId::new(), &done).await,
        "unknown run",
    );
}

/// `record_iterations` stores rows of several runs in one call and keeps each run's counters and
/// token totals exact.
pub async fn record_iterations_maintains_counters(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let a = new_batch_run(store, &e, at(1)).await;
    let b = new_batch_run(store, &e, at(1)).await;
    let rows_a = [
        iteration(a.id, 0, at(2)),
        failed_iteration(a.id, 1, at(2)),
        iteration(a.id, 2, at(2)),
    ];
    let rows_b = [iteration(b.id, 0, at(2))];
    let all: Vec<_> = rows_a.iter().chain(&rows_b).cloned().collect();
    let outcome = store
        .record_iterations(&all)
        .await
        .expect("record_iterations");
    assert_eq!(
        outcome,
        RecordOutcome {
            inserted: 4,
            duplicates: 0,
        }
    );
    assert_eq!(
        store.get_batch_run(u.id, a.id).await.expect("get a"),
        with_counters(&a, &rows_a)
    );
    assert_eq!(
        store.get_batch_run(u.id, b.id).await.expect("get b"),
        with_counters(&b, &rows_b)
    );

    let more = [iteration(a.id, 3, at(3))];
    store.record_iterations(&more).await.expect("record more");
    let rows_a: Vec<_> = rows_a.iter().chain(&more).cloned().collect();
    assert_eq!(
        store.get_batch_run(u.id, a.id).await.expect("get a"),
        with_counters(&a, &rows_a)
    );

    let outcome = store.record_iterations(&[]).await.expect("empty batch");
    assert_eq!(outcome, RecordOutcome::default());
}

/// Re-sending stored indexes (with different content) counts them as duplicates and changes
/// neither the counters nor the stored rows.
pub async fn record_iterations_is_idempotent(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let originals = vec![
        iteration(run.id, 0, at(2)),
        iteration(run.id, 1, at(2)),
        failed_iteration(run.id, 2, at(2)),
    ];
    let outcome = store
        .record_iterations(&originals)
        .await
        .expect("first write");
    assert_eq!(
        outcome,
        RecordOutcome {
            inserted: 3,
            duplicates: 0,
        }
    );

    let resent: Vec<_> = originals
        .iter()
        .map(|i| Iteration {
            id: crate::model::IterationId::new(),
            raw_response: Some("a different answer".into()),
            is_success: !i.is_success,
            input_tokens: 999,
            output_tokens: 999,
            created_at: at(50),
            ..i.clone()
        })
        .collect();
    let outcome = store.record_iterations(&resent).await.expect("re-send");
    assert_eq!(
        outcome,
        RecordOutcome {
            inserted: 0,
            duplicates: 3,
        }
    );
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("get"),
        with_counters(&run, &originals)
    );
    assert_eq!(
        store
            .list_iterations(u.id, run.id, 0, 100)
            .await
            .expect("list"),
        originals
    );
}

/// A batch mixing new and stored indexes inserts only the new ones.
pub async fn record_iterations_mixed_batch(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let first = [iteration(run.id, 0, at(2)), iteration(run.id, 1, at(2))];
    store.record_iterations(&first).await.expect("first write");
    let second = [
        failed_iteration(run.id, 1, at(3)),
        iteration(run.id, 2, at(3)),
        failed_iteration(run.id, 3, at(3)),
    ];
    let outcome = store.record_iterations(&second).await.expect("mixed batch");
    assert_eq!(
        outcome,
        RecordOutcome {
            inserted: 2,
            duplicates: 1,
        }
    );
    let stored = vec![
        first[0].clone(),
        first[1].clone(),
        second[1].clone(),
        second[2].clone(),
    ];
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("get"),
        with_counters(&run, &stored)
    );
    assert_eq!(
        store
            .list_iterations(u.id, run.id, 0, 100)
            .await
            .expect("list"),
        stored
    );
}

/// A batch naming an unknown run is NotFound and writes none of its rows.
pub async fn record_iterations_unknown_run_writes_nothing(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let unknown = BatchRunId::new();
    let batch = [
        iteration(run.id, 0, at(2)),
        iteration(unknown, 0, at(2)),
        iteration(run.id, 1, at(2)),
    ];
    assert_not_found(
        store.record_iterations(&batch).await,
        "batch with an unknown run",
    );
    assert!(
        store
            .recorded_indexes(run.id)
            .await
            .expect("recorded_indexes")
            .is_empty()
    );
    assert_eq!(
        store.get_batch_run(u.id, run.id).await.expect("get"),
        run,
        "counters untouched"
    );
    assert_not_found(
        store
            .record_iterations(&[iteration(unknown, 0, at(2))])
            .await,
        "unknown run only",
    );

    let outcome = store
        .record_iterations(&batch[..1])
        .await
        .expect("the valid row alone");
    assert_eq!(outcome.inserted, 1, "the refused call left index 0 free");
}

/// An iteration id already stored at another index is a Conflict that writes nothing from the
/// call; re-sending the same iteration (same id, same index) stays a duplicate.
pub async fn record_iterations_reused_id_is_conflict(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let first = iteration(run.id, 0, at(2));
    store
        .record_iterations(std::slice::from_ref(&first))
        .await
        .expect("first");
    let again = store
        .record_iterations(std::slice::from_ref(&first))
        .await
        .expect("resend");
    assert_eq!(
        (again.inserted, again.duplicates),
        (0, 1),
        "same id, same index"
    );

    let mut moved = first.clone();
    moved.index = 1;
    let fresh = iteration(run.id, 2, at(2));
    assert_conflict(
        store.record_iterations(&[fresh.clone(), moved]).await,
        "an id stored at index 0 sent for index 1",
    );
    assert_eq!(
        store
            .recorded_indexes(run.id)
            .await
            .expect("recorded_indexes"),
        vec![0],
        "nothing from the refused call"
    );
    let stored = store.get_batch_run(u.id, run.id).await.expect("get");
    assert_eq!(stored.iterations_recorded, 1, "counters untouched");
    store
        .record_iterations(&[fresh])
        .await
        .expect("the fresh row alone");
}

/// `list_iterations` is ordered by index, starts at `from_index`, stops at `limit`, and is
/// NotFound for another owner or an unknown run.
pub async fn list_iterations_order_from_and_limit(store: &DynStore) {
    let u = new_user(store).await;
    let intruder = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let rows: BTreeMap<u32, Iteration> = [7, 2, 0, 9, 4, 1]
        .into_iter()
        .map(|i| {
            (
                i,
                if i % 3 == 0 {
                    failed_iteration(run.id, i, at(2))
                } else {
                    iteration(run.id, i, at(2))
                },
            )
        })
        .collect();
    let inserted: Vec<_> = [7, 2, 0].iter().map(|i| rows[i].clone()).collect();
    store
        .record_iterations(&inserted)
        .await
        .expect("first part");
    let inserted: Vec<_> = [9, 4, 1].iter().map(|i| rows[i].clone()).collect();
    store
        .record_iterations(&inserted)
        .await
        .expect("second part");

    let slice = |indexes: &[u32]| indexes.iter().map(|i| rows[i].clone()).collect::<Vec<_>>();
    let list = |from, limit| store.list_iterations(u.id, run.id, from, limit);
    assert_eq!(list(0, 100).await.expect("all"), slice(&[0, 1, 2, 4, 7, 9]));
    assert_eq!(list(2, 3).await.expect("from 2"), slice(&[2, 4, 7]));
    assert_eq!(list(3, 1).await.expect("from a gap"), slice(&[4]));
    assert_eq!(list(9, 10).await.expect("last"), slice(&[9]));
    assert!(list(10, 10).await.expect("past the end").is_empty());
    assert_not_found(
        store.list_iterations(intruder.id, run.id, 0, 100).await,
        "another owner",
    );
    assert_not_found(
        store.list_iterations(u.id, BatchRunId::new(), 0, 100).await,
        "unknown run",
    );
}

/// `recorded_indexes` is ascending and without duplicates; empty for a run without iterations.
pub async fn recorded_indexes_ascending(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let empty = new_batch_run(store, &e, at(1)).await;
    store
        .record_iterations(&[iteration(run.id, 5, at(2)), iteration(run.id, 1, at(2))])
        .await
        .expect("record");
    store
        .record_iterations(&[iteration(run.id, 3, at(2)), iteration(run.id, 5, at(3))])
        .await
        .expect("record");
    assert_eq!(
        store
            .recorded_indexes(run.id)
            .await
            .expect("recorded_indexes"),
        vec![1, 3, 5]
    );
    assert!(
        store
            .recorded_indexes(empty.id)
            .await
            .expect("none")
            .is_empty()
    );
}

/// Property: random sequences of iteration batches with repeated indexes leave counters equal to
/// the distinct indexes' first writes, and report inserted/duplicate counts exactly.
pub async fn prop_iteration_counters_match_distinct_indexes(store: &DynStore) {
    let strategy = proptest::collection::vec(
        proptest::collection::btree_map(0u32..16, any::<bool>(), 0..8),
        1..6,
    );
    check_property("iteration counters", 24, strategy, |batches| async move {
        let u = new_user(store).await;
        let e = experiment(u.id, at(0));
        store_experiment(store, &e).await;
        let run = batch_run(&e, ProviderKind::Simulated, at(1));
        store
            .create_batch_run(&run)
            .await
            .map_err(|err| format!("create_batch_run: {err:?}"))?;
        let mut first_writes: BTreeMap<u32, Iteration> = BTreeMap::new();
        for batch in &batches {
            let rows: Vec<_> = batch
                .iter()
                .map(|(&i, &ok)| {
                    if ok {
                        iteration(run.id, i, at(2))
                    } else {
                        failed_iteration(run.id, i, at(2))
                    }
                })
                .collect();
            let fresh = rows
                .iter()
                .filter(|r| !first_writes.contains_key(&r.index))
                .count() as u32;
            let outcome = store
                .record_iterations(&rows)
                .await
                .map_err(|err| format!("record: {err:?}"))?;
            let want = RecordOutcome {
                inserted: fresh,
                duplicates: rows.len() as u32 - fresh,
            };
            if outcome != want {
                return Err(format!("outcome {outcome:?}, want {want:?}"));
            }
            for r in rows {
                first_writes.entry(r.index).or_insert(r);
            }
        }
        let stored: Vec<_> = first_writes.values().cloned().collect();
        let got = store
            .get_batch_run(u.id, run.id)
            .await
            .map_err(|err| format!("get: {err:?}"))?;
        if got != with_counters(&run, &stored) {
            return Err(format!(
                "run {got:?} does not match {} distinct writes",
                stored.len()
            ));
        }
        let indexes = store
            .recorded_indexes(run.id)
            .await
            .map_err(|err| format!("{err:?}"))?;
        if indexes != first_writes.keys().copied().collect::<Vec<_>>() {
            return Err(format!("recorded_indexes {indexes:?}"));
        }
        let listed = store
            .list_iterations(u.id, run.id, 0, 100)
            .await
            .map_err(|err| format!("{err:?}"))?;
        if listed != stored {
            return Err("listed iterations differ from the first writes".into());
        }
        Ok(())
    })
    .await;
}

/// Stores a run of `e` on `provider`, records the `(index, success)` iterations, and applies
/// `update` when given.
async fn run_with(
    store: &DynStore,
    e: &Experiment,
    provider: ProviderKind,
    update: Option<BatchRunUpdate>,
    iterations: &[(u32, bool)],
) -> BatchRun {
    let run = batch_run(e, provider, at(0));
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");
    let rows: Vec<_> = iterations
        .iter()
        .map(|&(i, ok)| {
            if ok {
                iteration(run.id, i, at(1))
            } else {
                failed_iteration(run.id, i, at(1))
            }
        })
        .collect();
    store
        .record_iterations(&rows)
        .await
        .expect("record_iterations");
    if let Some(update) = update {
        store
            .update_batch_run(run.id, &update)
            .await
            .expect("update_batch_run");
    }
    run
}

/// The dashboard, checked by hand: experiments by status, iteration totals, per-provider mean
/// visibility of completed runs (all time), the daily trend since `trend_since`, with other
/// users' data excluded and no NaN.
pub async fn dashboard_hand_checked(store: &DynStore) {
    let a = new_user(store).await;
    let b = new_user(store).await;
    let ts = |dt| Timestamp::from_datetime(dt);
    let with_status = |owner, status| {
        let mut e = experiment(owner, at(0));
        e.status = status;
        e
    };
    let e1 = with_status(a.id, ExperimentStatus::Completed);
    let e2 = with_status(a.id, ExperimentStatus::Completed);
    let e3 = with_status(a.id, ExperimentStatus::Failed);
    let e4 = with_status(a.id, ExperimentStatus::Pending);
    let eb = with_status(b.id, ExperimentStatus::Completed);
    for e in [&e1, &e2, &e3, &e4, &eb] {
        store_experiment(store, e).await;
    }
    let done = |vis, dt| Some(completed_update(vis, ts(dt)));
    use ProviderKind::{Anthropic, Gemini, Simulated};
    let ok = |n: u32| (0..n).map(|i| (i, true)).collect::<Vec<_>>();
    // Day 1 (2026-03-10): two completed runs, 0.5 and 0.25.
    run_with(
        store,
        &e1,
        Anthropic,
        done(Some(0.5), datetime!(2026-03-10 10:00 UTC)),
        &[(0, true), (1, true), (2, false)],
    )
    .await;
    run_with(
        store,
        &e1,
        Gemini,
        done(Some(0.25), datetime!(2026-03-10 23:59:59.999999 UTC)),
        &[],
    )
    .await;
    // Day 2: 1.0 and a completed run without a figure.
    run_with(
        store,
        &e2,
        Anthropic,
        done(Some(1.0), datetime!(2026-03-11 00:00 UTC)),
        &ok(2),
    )
    .await;
    run_with(
        store,
        &e2,
        Anthropic,
        done(None, datetime!(2026-03-11 10:00 UTC)),
        &[],
    )
    .await;
    // Day 3: only a run without a figure.
    run_with(
        store,
        &e2,
        Simulated,
        done(None, datetime!(2026-03-12 08:00 UTC)),
        &[],
    )
    .await;
    // Before trend_since: counts for the provider means (all time), not for the trend.
    run_with(
        store,
        &e2,
        Gemini,
        done(Some(0.75), datetime!(2026-03-09 15:00 UTC)),
        &[],
    )
    .await;
    // Not completed: excluded from means and trend, but its iterations count.
    let failed = BatchRunUpdate {
        status: BatchRunStatus::Failed,
        error: Some("timed out".into()),
        ..completed_update(Some(0.9), ts(datetime!(2026-03-10 11:00 UTC)))
    };
    run_with(store, &e3, Anthropic, Some(failed), &[(0, false)]).await;
    let running = BatchRunUpdate {
        status: BatchRunStatus::Running,
        completed_at: None,
        ..completed_update(None, ts(datetime!(2026-03-10 09:00 UTC)))
    };
    run_with(
        store,
        &e4,
        Simulated,
        Some(running),
        &[(0, true), (1, true), (2, true), (3, false)],
    )
    .await;
    // Another user's data, on the same days.
    run_with(
        store,
        &eb,
        Anthropic,
        done(Some(0.0), datetime!(2026-03-10 13:00 UTC)),
        &ok(5),
    )
    .await;
    run_with(
        store,
        &eb,
        Gemini,
        done(Some(1.0), datetime!(2026-03-11 13:00 UTC)),
        &[],
    )
    .await;

    let stats = store
        .dashboard(a.id, ts(datetime!(2026-03-10 00:00 UTC)))
        .await
        .expect("dashboard");
    let by_status: BTreeMap<_, _> = [
        (ExperimentStatus::Completed, 2),
        (ExperimentStatus::Failed, 1),
        (ExperimentStatus::Pending, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(stats.experiments_by_status, by_status);
    assert_eq!(stats.experiments_total, 4);
    assert_eq!(stats.iterations_total, 3 + 2 + 1 + 4);
    assert_eq!(stats.iterations_succeeded, 2 + 2 + 3);

    let providers: Vec<_> = stats
        .providers
        .iter()
        .map(|p| (p.provider, p.completed_runs))
        .collect();
    assert_eq!(
        providers,
        vec![(Anthropic, 2), (Gemini, 2)],
        "providers: {:?}",
        stats.providers
    );
    assert_close(stats.providers[0].mean_visibility, 0.75, "anthropic mean");
    assert_close(stats.providers[1].mean_visibility, 0.5, "gemini mean");

    let trend: Vec<_> = stats
        .trend
        .iter()
        .map(|p| (p.day, p.completed_runs))
        .collect();
    assert_eq!(
        trend,
        vec![
            (ts(datetime!(2026-03-10 00:00 UTC)), 2),
            (ts(datetime!(2026-03-11 00:00 UTC)), 2),
            (ts(datetime!(2026-03-12 00:00 UTC)), 1),
        ],
        "trend: {:?}",
        stats.trend
    );
    assert_close(
        stats.trend[0].mean_visibility.expect("day 1 has figures"),
        0.375,
        "day 1 mean",
    );
    assert_close(
        stats.trend[1].mean_visibility.expect("day 2 has a figure"),
        1.0,
        "day 2 mean",
    );
    assert_eq!(stats.trend[2].mean_visibility, None, "day 3 has no figure");
}

/// A user with nothing has an all-zero dashboard; one with only unfinished runs has no means
/// and no trend, and no NaN anywhere.
pub async fn dashboard_empty_and_unfinished(store: &DynStore) {
    let nobody = new_user(store).await;
    let busy = new_user(store).await;
    let other = new_user(store).await;
    let oe = new_experiment(store, other.id, at(0)).await;
    run_with(
        store,
        &oe,
        ProviderKind::OpenAi,
        Some(completed_update(Some(0.4), at(10))),
        &[(0, true)],
    )
    .await;

    let since = at(-86_400);
    let stats = store.dashboard(nobody.id, since).await.expect("dashboard");
    assert_eq!(stats, DashboardStats::default());

    let mut e = experiment(busy.id, at(0));
    e.status = ExperimentStatus::Running;
    store_experiment(store, &e).await;
    run_with(
        store,
        &e,
        ProviderKind::OpenAi,
        None,
        &[(0, true), (1, false)],
    )
    .await;
    let stats = store.dashboard(busy.id, since).await.expect("dashboard");
    assert_eq!(
        stats,
        DashboardStats {
            experiments_by_status: [(ExperimentStatus::Running, 1)].into_iter().collect(),
            experiments_total: 1,
            iterations_total: 2,
            iterations_succeeded: 1,
            providers: vec![],
            trend: vec![],
        }
    );
}

/// The dashboard's points over time: only the owner's completed runs, newest completion first
/// (across days and before 1970 too), cut at `limit`, each read back whole with its metrics.
pub async fn recent_completed_runs_newest_first_and_scoped(store: &DynStore) {
    let a = new_user(store).await;
    let b = new_user(store).await;
    let nobody = new_user(store).await;
    let ea = new_experiment(store, a.id, at(0)).await;
    let eb = new_experiment(store, b.id, at(0)).await;
    let done = |vis, t| Some(completed_update(Some(vis), t));
    // Completion order differs from creation order, and spans midnight and a day before 1970.
    let old = run_with(
        store,
        &ea,
        ProviderKind::OpenAi,
        done(0.1, at(-86_400 * 3)),
        &[],
    )
    .await;
    let newest = run_with(
        store,
        &ea,
        ProviderKind::Gemini,
        done(0.9, at(7_200)),
        &[(0, true)],
    )
    .await;
    let middle = run_with(store, &ea, ProviderKind::Anthropic, done(0.5, at(60)), &[]).await;
    let pre_epoch = run_with(
        store,
        &ea,
        ProviderKind::OpenAi,
        done(
            0.2,
            Timestamp::from_datetime(datetime!(1969-12-31 23:00 UTC)),
        ),
        &[],
    )
    .await;
    // Not completed: never a point.
    let failed = BatchRunUpdate {
        status: BatchRunStatus::Failed,
        error: Some("timed out".into()),
        ..completed_update(Some(0.3), at(9_000))
    };
    run_with(store, &ea, ProviderKind::OpenAi, Some(failed), &[]).await;
    run_with(store, &ea, ProviderKind::OpenAi, None, &[]).await;
    // Another user's run, newer than all of them.
    run_with(store, &eb, ProviderKind::Gemini, done(1.0, at(10_000)), &[]).await;

    let all = store
        .recent_completed_runs(a.id, 10)
        .await
        .expect("recent_completed_runs");
    let ids: Vec<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![newest.id, middle.id, old.id, pre_epoch.id]);
    let first = &all[0];
    assert_eq!(first.provider, ProviderKind::Gemini);
    assert_eq!(first.iterations_recorded, 1);
    assert_eq!(first.visibility_rate, Some(0.9));
    assert_eq!(first.metrics, Some(batch_metrics(0.9)));
    assert_eq!(first.completed_at, Some(at(7_200)));

    let two = store
        .recent_completed_runs(a.id, 2)
        .await
        .expect("recent_completed_runs");
    assert_eq!(
        two.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![newest.id, middle.id]
    );
    assert!(
        store
            .recent_completed_runs(a.id, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    assert!(
        store
            .recent_completed_runs(nobody.id, 10)
            .await
            .expect("nobody")
            .is_empty()
    );
}

/// The charts' narrow read: the same runs as `recent_completed_runs`, in the same order and
/// scoped the same way, each with exactly its brands' figures from the stored metrics (the
/// target first) and none for a completed run without metrics.
pub async fn recent_trend_runs_are_the_completed_runs_narrowed(store: &DynStore) {
    let a = new_user(store).await;
    let b = new_user(store).await;
    let ea = new_experiment(store, a.id, at(0)).await;
    let eb = new_experiment(store, b.id, at(0)).await;
    let done = |vis, t| Some(completed_update(Some(vis), t));
    let low = run_with(
        store,
        &ea,
        ProviderKind::OpenAi,
        done(0.1, at(-86_400)),
        &[],
    )
    .await;
    let high = run_with(
        store,
        &ea,
        ProviderKind::Gemini,
        done(0.9, at(7_200)),
        &[(0, true)],
    )
    .await;
    let bare = run_with(
        store,
        &ea,
        ProviderKind::Anthropic,
        Some(completed_update(None, at(60))),
        &[],
    )
    .await;
    run_with(store, &ea, ProviderKind::OpenAi, None, &[]).await;
    run_with(store, &eb, ProviderKind::Gemini, done(1.0, at(10_000)), &[]).await;

    let trend = store
        .recent_trend_runs(a.id, 10)
        .await
        .expect("recent_trend_runs");
    let whole = store
        .recent_completed_runs(a.id, 10)
        .await
        .expect("recent_completed_runs");
    let narrowed: Vec<TrendRun> = whole.iter().filter_map(TrendRun::of).collect();
    assert_eq!(trend, narrowed);
    assert_eq!(
        trend.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![high.id, bare.id, low.id]
    );
    let first = &trend[0];
    assert_eq!(first.experiment_id, ea.id);
    assert_eq!(first.provider, ProviderKind::Gemini);
    assert_eq!(first.completed_at, at(7_200));
    let expected: Vec<(String, bool, crate::analysis::Proportion, u64)> = batch_metrics(0.9)
        .metrics
        .brands
        .into_iter()
        .map(|m| (m.brand, m.is_target, m.visibility, m.mentions))
        .collect();
    let got: Vec<_> = first
        .brands
        .iter()
        .map(|m| (m.brand.clone(), m.is_target, m.visibility, m.mentions))
        .collect();
    assert_eq!(got, expected);
    assert!(first.brands[0].is_target && first.brands.len() > 1);
    assert!(trend[1].brands.is_empty(), "no metrics, no brands");
    assert_eq!(
        trend[2].brands[0].visibility,
        batch_metrics(0.1).metrics.brands[0].visibility
    );

    let one = store.recent_trend_runs(a.id, 1).await.expect("limit 1");
    assert_eq!(one.iter().map(|r| r.id).collect::<Vec<_>>(), vec![high.id]);
    assert!(
        store
            .recent_trend_runs(a.id, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    let theirs = store.recent_trend_runs(b.id, 10).await.expect("theirs");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].experiment_id, eb.id);
}
