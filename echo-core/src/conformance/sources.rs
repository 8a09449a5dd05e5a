//! The cited sources stored with each iteration ([`Iteration::sources`]): written in the
//! iteration's call, read back with it in position order, never half-written, scoped to the
//! owner.

use super::fixtures::{
    assert_conflict, assert_not_found, at, failed_iteration, iteration, new_batch_run,
    new_experiment, new_user,
};
use crate::model::{Iteration, IterationSource};
use crate::provider::SourceSpan;
use crate::store::DynStore;

/// Sources with gaps in their positions (dropped invalid entries), a multi-byte title and
/// several spans, as the runner stores them.
fn many_sources(tag: &str) -> Vec<IterationSource> {
    [1u32, 3, 4, 9]
        .into_iter()
        .map(|position| IterationSource {
            position,
            url: format!("https://{tag}{position}.example.co.uk/a?q=\"x\"&r='y'"),
            domain: format!("{tag}{position}.example.co.uk"),
            title: (position % 3 != 0).then(|| format!("Título «{tag}» {position} 🦀")),
            spans: (0..position)
                .map(|i| SourceSpan {
                    start: i * 2,
                    end: i * 2 + 1,
                })
                .collect(),
        })
        .collect()
}

async fn read_all(
    store: &DynStore,
    owner: crate::model::UserId,
    run: crate::model::BatchRunId,
) -> Vec<Iteration> {
    store
        .list_iterations(owner, run, 0, 1_000)
        .await
        .expect("list_iterations")
}

/// Iterations with many, two, or no sources and failed ones read back equal (order by
/// position, titles, spans byte-exact), on every page boundary, and two runs with the same
/// indexes never mix their sources.
pub async fn sources_round_trip_in_order(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let other = new_batch_run(store, &e, at(1)).await;
    let mut its: Vec<Iteration> = (0..6)
        .map(|i| match i {
            0 => Iteration {
                sources: many_sources("a"),
                ..iteration(run.id, i, at(2))
            },
            1 => Iteration {
                sources: Vec::new(),
                ..iteration(run.id, i, at(2))
            },
            2 => failed_iteration(run.id, i, at(2)),
            _ => iteration(run.id, i, at(2)),
        })
        .collect();
    its[4].sources = many_sources("b");
    // Written out of order, in one call.
    its.reverse();
    store.record_iterations(&its).await.expect("record");
    its.reverse();
    let others: Vec<Iteration> = (0..6)
        .map(|i| Iteration {
            sources: many_sources("z"),
            ..iteration(other.id, i, at(2))
        })
        .collect();
    store
        .record_iterations(&others)
        .await
        .expect("record other run");

    assert_eq!(read_all(store, u.id, run.id).await, its, "whole run");
    assert_eq!(read_all(store, u.id, other.id).await, others, "other run");
    for from in 0..6u32 {
        for limit in 1..4u32 {
            let page = store
                .list_iterations(u.id, run.id, from, limit)
                .await
                .expect("page");
            let want: Vec<Iteration> = its
                .iter()
                .filter(|it| it.index >= from)
                .take(limit as usize)
                .cloned()
                .collect();
            assert_eq!(page, want, "page from {from}, limit {limit}");
        }
    }
    assert!(
        read_all(store, u.id, run.id).await[0]
            .sources
            .windows(2)
            .all(|w| w[0].position < w[1].position)
    );
}

/// A batch whose sources fill several multi-row statements plus a remainder (37 iterations
/// citing 1 to 9 sources at positions from 1, 181 rows), with duplicates of stored
/// iterations in the same call,
/// reads back exactly: every inserted iteration's sources and none for the skipped repeats.
pub async fn many_sources_in_one_batch_round_trip(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let source = |i: u32, position: u32| IterationSource {
        position,
        url: format!("https://s{position}.example.org/{i}"),
        domain: format!("s{position}.example.org"),
        title: position
            .is_multiple_of(2)
            .then(|| format!("Source {i}/{position}")),
        spans: vec![SourceSpan {
            start: position,
            end: position + i + 1,
        }],
    };
    let its: Vec<Iteration> = (0..37u32)
        .map(|i| Iteration {
            sources: (1..=(i % 9) + 1).map(|p| source(i, p)).collect(),
            ..iteration(run.id, i, at(2))
        })
        .collect();
    assert_eq!(its.iter().map(|it| it.sources.len()).sum::<usize>(), 181);
    store
        .record_iterations(&its[..10])
        .await
        .expect("first part");
    // The first 10 again (skipped, their sources too), with the rest.
    let again: Vec<Iteration> = its
        .iter()
        .enumerate()
        .map(|(k, it)| {
            if k < 10 {
                Iteration {
                    id: it.id,
                    sources: vec![source(99, 50)],
                    ..it.clone()
                }
            } else {
                it.clone()
            }
        })
        .collect();
    let outcome = store.record_iterations(&again).await.expect("the rest");
    assert_eq!((outcome.inserted, outcome.duplicates), (27, 10));
    assert_eq!(read_all(store, u.id, run.id).await, its);
}

/// `list_iterations_without_sources` is `list_iterations` with every `sources` empty, page
/// for page, and scoped to the owner the same way.
pub async fn iterations_without_sources_match_the_listing(store: &DynStore) {
    let u = new_user(store).await;
    let intruder = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let its: Vec<Iteration> = (0..5)
        .map(|i| match i {
            1 => failed_iteration(run.id, i, at(2)),
            _ => Iteration {
                sources: many_sources(&format!("w{i}")),
                ..iteration(run.id, i, at(2))
            },
        })
        .collect();
    store.record_iterations(&its).await.expect("record");
    for (from, limit) in [(0, 100), (0, 2), (2, 2), (4, 10), (5, 10)] {
        let bare = store
            .list_iterations_without_sources(u.id, run.id, from, limit)
            .await
            .expect("without sources");
        let mut want = store
            .list_iterations(u.id, run.id, from, limit)
            .await
            .expect("with sources");
        for it in &mut want {
            it.sources = Vec::new();
        }
        assert_eq!(bare, want, "from {from}, limit {limit}");
    }
    assert_not_found(
        store
            .list_iterations_without_sources(intruder.id, run.id, 0, 10)
            .await,
        "another user's run",
    );
}

/// Another user's run is NotFound, sources and all.
pub async fn sources_are_tenant_isolated(store: &DynStore) {
    let u = new_user(store).await;
    let intruder = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    store
        .record_iterations(&[iteration(run.id, 0, at(2))])
        .await
        .expect("record");
    assert_not_found(
        store.list_iterations(intruder.id, run.id, 0, 10).await,
        "another user's iterations",
    );
    assert_eq!(read_all(store, u.id, run.id).await[0].sources.len(), 2);
}

/// A refused call writes no source; a re-sent index keeps the sources first stored (the
/// idempotent write ignores the new copy's); the refused iteration's sources can then be
/// written once.
pub async fn sources_are_written_with_their_iteration_only(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let first = iteration(run.id, 0, at(2));
    store
        .record_iterations(std::slice::from_ref(&first))
        .await
        .expect("first");

    let resent = Iteration {
        id: crate::model::IterationId::new(),
        sources: many_sources("new"),
        ..first.clone()
    };
    let outcome = store
        .record_iterations(std::slice::from_ref(&resent))
        .await
        .expect("re-send");
    assert_eq!((outcome.inserted, outcome.duplicates), (0, 1));
    assert_eq!(read_all(store, u.id, run.id).await, vec![first.clone()]);

    // One call: a fresh iteration with sources, and a stored id under another index.
    let fresh = Iteration {
        sources: many_sources("f"),
        ..iteration(run.id, 1, at(3))
    };
    let mut moved = first.clone();
    moved.index = 7;
    assert_conflict(
        store.record_iterations(&[fresh.clone(), moved]).await,
        "a stored id sent for another index",
    );
    assert_eq!(
        read_all(store, u.id, run.id).await,
        vec![first.clone()],
        "nothing of the refused call, sources included"
    );
    store
        .record_iterations(std::slice::from_ref(&fresh))
        .await
        .expect("the fresh row alone, its sources written once");
    assert_eq!(read_all(store, u.id, run.id).await, vec![first, fresh]);

    // The same index twice in one call: the first copy and its sources are stored.
    let a = Iteration {
        sources: many_sources("a"),
        ..iteration(run.id, 5, at(4))
    };
    let b = Iteration {
        id: crate::model::IterationId::new(),
        sources: many_sources("b"),
        ..a.clone()
    };
    let outcome = store
        .record_iterations(&[a.clone(), b])
        .await
        .expect("repeat");
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 1));
    let stored = store
        .list_iterations(u.id, run.id, 5, 1)
        .await
        .expect("list");
    assert_eq!(stored, vec![a]);
}

/// Deleting the experiment removes its iterations' sources with them: a new run reusing the
/// same iteration ids stores its own sources without conflict.
pub async fn delete_experiment_removes_sources(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;
    let its: Vec<Iteration> = (0..3).map(|i| iteration(run.id, i, at(2))).collect();
    store.record_iterations(&its).await.expect("record");
    store
        .set_experiment_status(u.id, e.id, crate::model::ExperimentStatus::Completed, at(3))
        .await
        .expect("complete");
    store.delete_experiment(u.id, e.id).await.expect("delete");
    assert_not_found(
        store.list_iterations(u.id, run.id, 0, 10).await,
        "deleted run",
    );

    let e2 = new_experiment(store, u.id, at(4)).await;
    let run2 = new_batch_run(store, &e2, at(5)).await;
    let again: Vec<Iteration> = its
        .iter()
        .map(|it| Iteration {
            batch_run_id: run2.id,
            sources: many_sources("again"),
            ..it.clone()
        })
        .collect();
    store
        .record_iterations(&again)
        .await
        .expect("same ids after the delete");
    assert_eq!(read_all(store, u.id, run2.id).await, again);
}
