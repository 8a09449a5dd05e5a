//! Scenarios for SQL stores that corrupt stored rows with the backend's own SQL, which the
//! traits cannot express: each takes `exec`, which runs one statement on the store's database
//! (standard SQL that every SQL backend accepts), and the store under test. Not part of
//! [`store_conformance_tests!`](crate::store_conformance_tests): call them from the backend's
//! own tests.

use super::fixtures::{at, job, new_batch_run, new_experiment, new_user};
use crate::store::{DynStore, ExperimentQuery, StoreError};

/// Panics unless `result` is [`StoreError::Invalid`] with a message; `what` names the call.
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Invalid(e)) => assert!(!e.to_string().is_empty(), "{what}"),
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// Enum text this build does not know (an experiment or job status, a provider, a tier) reads
/// back as [`StoreError::Invalid`] from every read that decodes it, dashboards included.
pub async fn unknown_enum_text_reads_back_invalid(
    store: &DynStore,
    mut exec: impl AsyncFnMut(&'static str),
) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = new_batch_run(store, &e, at(1)).await;

    exec("UPDATE experiments SET status = 'exploded'").await;
    assert_invalid(store.get_experiment(u.id, e.id).await, "get_experiment");
    assert_invalid(
        store
            .list_experiments(u.id, &ExperimentQuery::default())
            .await,
        "list_experiments",
    );
    assert_invalid(store.dashboard(u.id, at(0)).await, "dashboard counts");

    exec("UPDATE experiments SET status = 'pending'").await;
    exec("UPDATE batch_runs SET provider = 'skynet'").await;
    assert_invalid(store.get_batch_run(u.id, run.id).await, "get_batch_run");
    assert_invalid(store.dashboard(u.id, at(0)).await, "dashboard runs");

    exec("UPDATE users SET pricing_tier = 'platinum'").await;
    assert_invalid(store.get_user(u.id).await, "get_user");

    let j = job(at(0), 3);
    store.enqueue(&j).await.unwrap();
    exec("UPDATE jobs SET status = 'paused'").await;
    assert_invalid(store.get_job(j.id).await, "get_job");
}
