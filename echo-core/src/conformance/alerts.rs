//! [`AlertStore`](crate::store::AlertStore): alerts on significant change, stored once per
//! change, listed newest first to their owner only, and deleted with their experiment and
//! owner.

use uuid::Uuid;

use super::fixtures::{
    assert_conflict, assert_not_found, at, new_batch_run, new_experiment, new_user, page_size,
};
use crate::analysis::alerts::AlertFinding;
use crate::analysis::{Proportion, ProportionChange};
use crate::model::{Alert, AlertId, AlertKind, BatchRun, Experiment, ProviderKind, UserId};
use crate::store::{AlertQuery, DynStore};

/// The `i`-th of a run of ascending alert ids.
fn alert_id(base: u128, i: u128) -> AlertId {
    AlertId::from_uuid(Uuid::from_u128(base + i))
}

fn base() -> u128 {
    Uuid::now_v7().as_u128()
}

/// An alert of `kind` about `brand` for the newer run `after` against `before`.
fn alert(
    id: AlertId,
    owner: UserId,
    e: &Experiment,
    (before, after): (&BatchRun, &BatchRun),
    kind: AlertKind,
    brand: &str,
) -> Alert {
    Alert {
        id,
        user_id: owner,
        experiment_id: e.id,
        batch_run_id: after.id,
        previous_run_id: before.id,
        finding: AlertFinding {
            provider: ProviderKind::Simulated,
            kind,
            brand: brand.to_owned(),
            target: "Acme — “ünïcode”".to_owned(),
            change: ProportionChange::between(Proportion::new(61, 100), Proportion::new(39, 97)),
            target_visibility: (Some(0.61), Some(39.0 / 97.0)),
            adjusted_p: 0.003_141_592_653_589_793,
        },
        created_at: at(60),
    }
}

/// A user with an experiment and two runs of it.
async fn setup(store: &DynStore) -> (UserId, Experiment, BatchRun, BatchRun) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let r1 = new_batch_run(store, &e, at(1)).await;
    let r2 = new_batch_run(store, &e, at(2)).await;
    (u.id, e, r1, r2)
}

async fn list_all(store: &DynStore, owner: UserId) -> Vec<Alert> {
    store
        .list_alerts(
            owner,
            &AlertQuery {
                after: None,
                limit: page_size(100),
            },
        )
        .await
        .expect("list_alerts")
        .items
}

/// Alerts read back exactly (floats, Unicode, the whole finding), newest first, a page at a
/// time with a cursor.
pub async fn alerts_round_trip_newest_first_with_cursor(store: &DynStore) {
    let (u, e, r1, r2) = setup(store).await;
    let b = base();
    let alerts = [
        alert(
            alert_id(b, 0),
            u,
            &e,
            (&r1, &r2),
            AlertKind::Visibility,
            "Acme",
        ),
        alert(
            alert_id(b, 1),
            u,
            &e,
            (&r1, &r2),
            AlertKind::FirstPlace,
            "Acme",
        ),
        alert(
            alert_id(b, 2),
            u,
            &e,
            (&r1, &r2),
            AlertKind::CompetitorOvertook,
            "Globex",
        ),
    ];
    assert_eq!(store.record_alerts(&alerts).await.expect("record"), 3);
    let first = store
        .list_alerts(
            u,
            &AlertQuery {
                after: None,
                limit: page_size(2),
            },
        )
        .await
        .expect("first page");
    assert_eq!(first.items, [alerts[2].clone(), alerts[1].clone()]);
    assert_eq!(first.next_cursor, Some(alerts[1].id));
    let second = store
        .list_alerts(
            u,
            &AlertQuery {
                after: first.next_cursor,
                limit: page_size(2),
            },
        )
        .await
        .expect("second page");
    assert_eq!(second.items, [alerts[0].clone()]);
    assert_eq!(second.next_cursor, None);
}

/// Recording the same changes again (a re-evaluated run, even with new ids) stores nothing;
/// a repeat within one call is stored once.
pub async fn record_alerts_is_idempotent(store: &DynStore) {
    let (u, e, r1, r2) = setup(store).await;
    let b = base();
    let vis = alert(
        alert_id(b, 0),
        u,
        &e,
        (&r1, &r2),
        AlertKind::Visibility,
        "Acme",
    );
    let dup = alert(
        alert_id(b, 1),
        u,
        &e,
        (&r1, &r2),
        AlertKind::Visibility,
        "Acme",
    );
    assert_eq!(store.record_alerts(&[vis.clone(), dup]).await.unwrap(), 1);
    assert_eq!(
        store
            .record_alerts(std::slice::from_ref(&vis))
            .await
            .unwrap(),
        0
    );
    let again = alert(
        alert_id(b, 2),
        u,
        &e,
        (&r1, &r2),
        AlertKind::Visibility,
        "Acme",
    );
    let other = alert(
        alert_id(b, 3),
        u,
        &e,
        (&r1, &r2),
        AlertKind::FirstPlace,
        "Acme",
    );
    assert_eq!(
        store.record_alerts(&[again, other.clone()]).await.unwrap(),
        1
    );
    // The same change of a later run is a new alert.
    let r3 = new_batch_run(store, &e, at(3)).await;
    let later = alert(
        alert_id(b, 4),
        u,
        &e,
        (&r2, &r3),
        AlertKind::Visibility,
        "Acme",
    );
    assert_eq!(
        store
            .record_alerts(std::slice::from_ref(&later))
            .await
            .unwrap(),
        1
    );
    assert_eq!(list_all(store, u).await, [later, other, vis]);
    assert_eq!(store.record_alerts(&[]).await.unwrap(), 0);
}

/// Another user's alerts are never listed, and an alert naming another user's experiment, or
/// a run of another experiment, is not found and writes nothing (not even the valid alerts of
/// the same call).
pub async fn alerts_are_tenant_isolated(store: &DynStore) {
    let (a, ea, a1, a2) = setup(store).await;
    let (b, eb, b1, b2) = setup(store).await;
    let id = base();
    let mine = alert(
        alert_id(id, 0),
        a,
        &ea,
        (&a1, &a2),
        AlertKind::Visibility,
        "Acme",
    );
    store
        .record_alerts(std::slice::from_ref(&mine))
        .await
        .unwrap();
    assert!(list_all(store, b).await.is_empty());
    let valid = alert(
        alert_id(id, 1),
        b,
        &eb,
        (&b1, &b2),
        AlertKind::Visibility,
        "Acme",
    );
    let stolen = alert(
        alert_id(id, 2),
        b,
        &ea,
        (&a1, &a2),
        AlertKind::FirstPlace,
        "Acme",
    );
    assert_not_found(
        store.record_alerts(&[valid.clone(), stolen]).await,
        "alert on another user's experiment",
    );
    let foreign_run = alert(
        alert_id(id, 3),
        b,
        &eb,
        (&b1, &a2),
        AlertKind::FirstPlace,
        "Acme",
    );
    assert_not_found(
        store.record_alerts(&[valid.clone(), foreign_run]).await,
        "alert on another experiment's run",
    );
    assert!(list_all(store, b).await.is_empty(), "nothing written");
    assert_eq!(list_all(store, a).await, [mine]);
}

/// An id already stored for another change is a conflict, and the call writes nothing.
pub async fn record_alerts_duplicate_id_is_conflict(store: &DynStore) {
    let (u, e, r1, r2) = setup(store).await;
    let b = base();
    let vis = alert(
        alert_id(b, 0),
        u,
        &e,
        (&r1, &r2),
        AlertKind::Visibility,
        "Acme",
    );
    store
        .record_alerts(std::slice::from_ref(&vis))
        .await
        .unwrap();
    let fresh = alert(
        alert_id(b, 1),
        u,
        &e,
        (&r1, &r2),
        AlertKind::FirstPlace,
        "Acme",
    );
    let clash = alert(
        vis.id,
        u,
        &e,
        (&r1, &r2),
        AlertKind::CompetitorOvertook,
        "Globex",
    );
    assert_conflict(
        store.record_alerts(&[fresh, clash]).await,
        "alert id reused",
    );
    assert_eq!(list_all(store, u).await, [vis]);
}

/// Alerts go with their experiment and with their owner.
pub async fn alerts_go_with_experiment_and_owner(store: &DynStore) {
    let (u, e, r1, r2) = setup(store).await;
    let e2 = new_experiment(store, u, at(5)).await;
    let s1 = new_batch_run(store, &e2, at(6)).await;
    let s2 = new_batch_run(store, &e2, at(7)).await;
    let b = base();
    let first = alert(
        alert_id(b, 0),
        u,
        &e,
        (&r1, &r2),
        AlertKind::Visibility,
        "Acme",
    );
    let second = alert(
        alert_id(b, 1),
        u,
        &e2,
        (&s1, &s2),
        AlertKind::Visibility,
        "Acme",
    );
    store.record_alerts(&[first, second.clone()]).await.unwrap();
    store.delete_experiment(u, e.id).await.unwrap();
    assert_eq!(list_all(store, u).await, [second]);
    store.delete_user(u).await.unwrap();
    assert!(list_all(store, u).await.is_empty());
}
