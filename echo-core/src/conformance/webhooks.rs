//! [`WebhookStore`](crate::store::WebhookStore): endpoints listed to their owner only and
//! capped per owner; deliveries stored with their jobs, settled once, listed newest first;
//! everything gone with the endpoint and the owner.

use uuid::Uuid;

use super::fixtures::{assert_conflict, assert_not_found, at, new_user, page_size};
use crate::model::{
    DeliveryAttempt, DeliveryStatus, Job, Timestamp, UserId, WebhookDelivery, WebhookDeliveryId,
    WebhookEndpoint, WebhookEvent, WebhookId, WebhookUrl,
};
use crate::runner::DeliverWebhookPayload;
use crate::store::{DeliveryQuery, DynStore};
use crate::webhook::{WebhookSecret, WebhookUrlPolicy};

fn endpoint(owner: UserId, url: &str, created_at: Timestamp) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookId::new(),
        user_id: owner,
        url: WebhookUrl::parse(url, WebhookUrlPolicy::PRODUCTION).expect("a valid URL"),
        description: "Relay für „alerts“ — ünïcode".to_owned(),
        secret: WebhookSecret::generate().expect("entropy"),
        created_at,
    }
}

async fn new_endpoint(store: &DynStore, owner: UserId, created_at: Timestamp) -> WebhookEndpoint {
    let e = endpoint(owner, "https://hooks.example.com/echo?team=7", created_at);
    store.create_webhook(&e, 10).await.expect("create_webhook");
    e
}

/// The `i`-th of a run of ascending delivery ids.
fn delivery_id(base: u128, i: u128) -> WebhookDeliveryId {
    WebhookDeliveryId::from_uuid(Uuid::from_u128(base + i))
}

fn delivery(
    e: &WebhookEndpoint,
    id: WebhookDeliveryId,
    created_at: Timestamp,
) -> (WebhookDelivery, Job) {
    let d = WebhookDelivery::new(
        e,
        id,
        WebhookEvent::AlertsRaised,
        format!(r#"{{"id":"{id}","type":"alerts.raised","data":{{"brand":"Acme — “ünïcode”"}}}}"#),
        created_at,
    );
    let job = DeliverWebhookPayload {
        user_id: e.user_id,
        delivery_id: id,
    }
    .into_job(created_at);
    (d, job)
}

async fn list_page(
    store: &DynStore,
    owner: UserId,
    endpoint: WebhookId,
    after: Option<WebhookDeliveryId>,
    limit: u32,
) -> crate::store::Page<WebhookDelivery, WebhookDeliveryId> {
    store
        .list_deliveries(
            owner,
            endpoint,
            &DeliveryQuery {
                after,
                limit: page_size(limit),
            },
        )
        .await
        .expect("list_deliveries")
}

/// Endpoints read back exactly (URL, Unicode description, secret), oldest first, and only to
/// their owner: another user's endpoint is not found, for reading and for deleting.
pub async fn webhooks_round_trip_and_are_tenant_isolated(store: &DynStore) {
    let u = new_user(store).await;
    let v = new_user(store).await;
    let first = new_endpoint(store, u.id, at(1)).await;
    let second = endpoint(u.id, "https://8.8.8.8:8443/hook", at(2));
    store.create_webhook(&second, 10).await.expect("create");
    assert_eq!(
        store.list_webhooks(u.id).await.expect("list"),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(store.get_webhook(u.id, first.id).await.expect("get"), first);

    assert!(store.list_webhooks(v.id).await.expect("list").is_empty());
    assert_not_found(
        store.get_webhook(v.id, first.id).await,
        "another user's webhook",
    );
    assert_not_found(
        store.delete_webhook(v.id, first.id).await,
        "deleting another user's webhook",
    );
    assert_eq!(
        store.get_webhook(u.id, first.id).await.expect("kept"),
        first
    );

    store.delete_webhook(u.id, first.id).await.expect("delete");
    assert_not_found(store.get_webhook(u.id, first.id).await, "deleted webhook");
    assert_not_found(store.delete_webhook(u.id, first.id).await, "deleted twice");
    assert_eq!(store.list_webhooks(u.id).await.expect("list"), vec![second]);
}

/// The per-owner cap and a reused id are conflicts that write nothing; one owner's count never
/// limits another's.
pub async fn webhook_limit_and_reused_id_are_conflicts(store: &DynStore) {
    let u = new_user(store).await;
    let v = new_user(store).await;
    let a = endpoint(u.id, "https://a.example.com/", at(1));
    store.create_webhook(&a, 2).await.expect("first");
    assert_conflict(store.create_webhook(&a, 2).await, "reused id");
    let b = endpoint(u.id, "https://b.example.com/", at(2));
    store.create_webhook(&b, 2).await.expect("second");
    let c = endpoint(u.id, "https://c.example.com/", at(3));
    assert_conflict(store.create_webhook(&c, 2).await, "third over a cap of two");
    assert_eq!(store.list_webhooks(u.id).await.expect("list").len(), 2);
    let w = endpoint(v.id, "https://c.example.com/", at(3));
    store
        .create_webhook(&w, 2)
        .await
        .expect("another owner's first");
}

/// Deliveries are stored with their jobs in one transaction: a batch naming another user's
/// endpoint, or reusing an id, writes neither deliveries nor jobs.
pub async fn enqueue_deliveries_writes_deliveries_with_their_jobs(store: &DynStore) {
    let u = new_user(store).await;
    let v = new_user(store).await;
    let mine = new_endpoint(store, u.id, at(1)).await;
    let theirs = new_endpoint(store, v.id, at(1)).await;
    let base = Uuid::now_v7().as_u128();
    let ok = [
        delivery(&mine, delivery_id(base, 1), at(5)),
        delivery(&mine, delivery_id(base, 2), at(5)),
    ];
    store.enqueue_deliveries(&ok).await.expect("enqueue");
    for (d, job) in &ok {
        assert_eq!(
            store.get_delivery(u.id, d.id).await.expect("get_delivery"),
            *d
        );
        let stored = store.get_job(job.id).await.expect("get_job");
        assert_eq!(stored.kind, "deliver_webhook");
        assert_eq!(stored.payload, job.payload);
    }
    assert_not_found(
        store.get_delivery(v.id, ok[0].0.id).await,
        "another user's delivery",
    );

    // A delivery claiming to be u's but aimed at v's endpoint.
    let mut forged = delivery(&theirs, delivery_id(base, 3), at(6));
    forged.0.user_id = u.id;
    let good = delivery(&mine, delivery_id(base, 4), at(6));
    assert_not_found(
        store.enqueue_deliveries(&[good.clone(), forged]).await,
        "a delivery to another user's endpoint",
    );
    assert_not_found(
        store.get_delivery(u.id, good.0.id).await,
        "the batch's valid delivery",
    );
    assert_not_found(store.get_job(good.1.id).await, "the batch's valid job");

    let reused = delivery(&mine, ok[0].0.id, at(7));
    let fresh = delivery(&mine, delivery_id(base, 5), at(7));
    assert_conflict(
        store.enqueue_deliveries(&[fresh.clone(), reused]).await,
        "a reused delivery id",
    );
    assert_not_found(
        store.get_delivery(u.id, fresh.0.id).await,
        "nothing of the batch",
    );
    assert_not_found(store.get_job(fresh.1.id).await, "no job of the batch");
}

/// Attempts update the log; once settled, a delivery takes no further attempt (two workers
/// never both settle it), and another user cannot write to it.
pub async fn delivery_attempts_update_the_log_and_settle_once(store: &DynStore) {
    let u = new_user(store).await;
    let v = new_user(store).await;
    let e = new_endpoint(store, u.id, at(1)).await;
    let (d, job) = delivery(&e, WebhookDeliveryId::new(), at(2));
    store
        .enqueue_deliveries(&[(d.clone(), job)])
        .await
        .expect("enqueue");

    let retry = DeliveryAttempt {
        at: at(3),
        status: DeliveryStatus::Pending,
        response_status: Some(503),
        error: Some("receiver answered 503 — “busy”".to_owned()),
        next_attempt_at: Some(at(20)),
    };
    assert_not_found(
        store.record_delivery_attempt(v.id, d.id, &retry).await,
        "another user's delivery",
    );
    let after_one = store
        .record_delivery_attempt(u.id, d.id, &retry)
        .await
        .expect("first attempt");
    let expected = WebhookDelivery {
        attempts: 1,
        status: DeliveryStatus::Pending,
        response_status: Some(503),
        last_error: retry.error.clone(),
        last_attempt_at: Some(at(3)),
        next_attempt_at: Some(at(20)),
        ..d.clone()
    };
    assert_eq!(after_one, expected);
    assert_eq!(store.get_delivery(u.id, d.id).await.expect("get"), expected);

    let done = DeliveryAttempt {
        at: at(21),
        status: DeliveryStatus::Succeeded,
        response_status: Some(204),
        error: None,
        next_attempt_at: None,
    };
    let settled = store
        .record_delivery_attempt(u.id, d.id, &done)
        .await
        .expect("second attempt");
    assert_eq!(settled.attempts, 2);
    assert_eq!(settled.status, DeliveryStatus::Succeeded);
    assert_eq!(settled.response_status, Some(204));
    assert_eq!(settled.last_error, None);
    assert_eq!(settled.next_attempt_at, None);
    assert_eq!(settled.last_attempt_at, Some(at(21)));
    assert_conflict(
        store.record_delivery_attempt(u.id, d.id, &done).await,
        "an attempt at a settled delivery",
    );
    assert_eq!(store.get_delivery(u.id, d.id).await.expect("get"), settled);
    assert_not_found(
        store
            .record_delivery_attempt(u.id, WebhookDeliveryId::new(), &done)
            .await,
        "a missing delivery",
    );
}

/// An endpoint's deliveries list newest first, a page at a time, and only to its owner.
pub async fn deliveries_list_newest_first_with_cursor(store: &DynStore) {
    let u = new_user(store).await;
    let v = new_user(store).await;
    let e = new_endpoint(store, u.id, at(1)).await;
    let other = new_endpoint(store, u.id, at(1)).await;
    let base = Uuid::now_v7().as_u128();
    let batch: Vec<_> = (1..=5)
        .map(|i| delivery(&e, delivery_id(base, i), at(i as i64)))
        .chain([delivery(&other, delivery_id(base, 6), at(6))])
        .collect();
    store.enqueue_deliveries(&batch).await.expect("enqueue");

    let first = list_page(store, u.id, e.id, None, 2).await;
    let ids = |p: &crate::store::Page<WebhookDelivery, WebhookDeliveryId>| {
        p.items.iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&first),
        vec![delivery_id(base, 5), delivery_id(base, 4)]
    );
    assert_eq!(first.items[0], batch[4].0);
    let second = list_page(store, u.id, e.id, first.next_cursor, 2).await;
    assert_eq!(
        ids(&second),
        vec![delivery_id(base, 3), delivery_id(base, 2)]
    );
    let last = list_page(store, u.id, e.id, second.next_cursor, 2).await;
    assert_eq!(ids(&last), vec![delivery_id(base, 1)]);
    assert_eq!(last.next_cursor, None);

    assert_not_found(
        store
            .list_deliveries(
                v.id,
                e.id,
                &DeliveryQuery {
                    after: None,
                    limit: page_size(10),
                },
            )
            .await,
        "another user's delivery log",
    );
}

/// Deleting an endpoint deletes its deliveries; deleting the owner deletes their endpoints,
/// deliveries and delivery jobs, and nobody else's.
pub async fn webhooks_go_with_endpoint_and_owner(store: &DynStore) {
    let u = new_user(store).await;
    let kept_user = new_user(store).await;
    let a = new_endpoint(store, u.id, at(1)).await;
    let b = new_endpoint(store, u.id, at(2)).await;
    let k = new_endpoint(store, kept_user.id, at(2)).await;
    let (da, ja) = delivery(&a, WebhookDeliveryId::new(), at(3));
    let (db, jb) = delivery(&b, WebhookDeliveryId::new(), at(3));
    let (dk, jk) = delivery(&k, WebhookDeliveryId::new(), at(3));
    store
        .enqueue_deliveries(&[
            (da.clone(), ja),
            (db.clone(), jb.clone()),
            (dk.clone(), jk.clone()),
        ])
        .await
        .expect("enqueue");

    store.delete_webhook(u.id, a.id).await.expect("delete a");
    assert_not_found(store.get_delivery(u.id, da.id).await, "a's delivery");
    assert_eq!(
        store.get_delivery(u.id, db.id).await.expect("b's delivery"),
        db
    );

    store.delete_user(u.id).await.expect("delete_user");
    assert!(store.list_webhooks(u.id).await.expect("list").is_empty());
    assert_not_found(store.get_webhook(u.id, b.id).await, "b");
    assert_not_found(store.get_delivery(u.id, db.id).await, "b's delivery");
    assert_not_found(store.get_job(jb.id).await, "b's delivery job");

    assert_eq!(
        store.get_webhook(kept_user.id, k.id).await.expect("kept"),
        k
    );
    assert_eq!(
        store.get_delivery(kept_user.id, dk.id).await.expect("kept"),
        dk
    );
    store.get_job(jk.id).await.expect("kept job");
}
