#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::conformance::fixtures::{at, completed_update, recurring};
use crate::model::{BatchRun, DeliveryStatus, JobStatus, ProviderKind};
use crate::runner::{ExperimentRunner, JobExecutor, RunnerConfig};
use crate::service::AlertService;
use crate::service::test_support::user;
use crate::store::memory::MemoryStore;
use crate::store::{PageSize, StoreError};
use crate::webhook::{
    AttemptOutcome, DEFAULT_TOLERANCE_SECS, TransportError, WebhookRequest, WebhookResponse,
    WebhookTransport, verify,
};

/// What a receiver got: URL, body, signature header, delivery and event headers.
type Received = (String, Vec<u8>, String, String, String);

/// A receiver that answers from a script (then 204) and keeps what it received.
#[derive(Debug, Default)]
struct Receiver {
    script: Mutex<VecDeque<Result<WebhookResponse, TransportError>>>,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    fn answering(
        script: impl IntoIterator<Item = Result<WebhookResponse, TransportError>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            received: Mutex::default(),
        })
    }
}

#[async_trait]
impl WebhookTransport for Receiver {
    async fn post(&self, r: WebhookRequest<'_>) -> Result<WebhookResponse, TransportError> {
        self.received.lock().unwrap().push((
            r.url.to_string(),
            r.body.to_vec(),
            r.signature.to_owned(),
            r.delivery_id.to_string(),
            r.event.as_str().to_owned(),
        ));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(WebhookResponse { status: 204 }))
    }
}

fn service(store: &Arc<DynStore>) -> WebhookService {
    WebhookService::from_store(store, WebhookUrlPolicy::PRODUCTION)
}

fn draft(url: &str) -> WebhookDraft {
    WebhookDraft {
        url: url.to_owned(),
        description: "  Slack relay ".to_owned(),
    }
}

fn all() -> DeliveryQuery {
    DeliveryQuery {
        after: None,
        limit: PageSize::DEFAULT,
    }
}

fn executor(store: &Arc<DynStore>, transport: Arc<Receiver>) -> JobExecutor {
    let runner = Arc::new(ExperimentRunner::new(
        store.clone(),
        RunnerConfig::default(),
    ));
    JobExecutor::new(store.clone(), runner, Duration::from_secs(30))
        .with_webhook_transport(transport)
}

/// Claims and executes every due job, as a worker would; returns their statuses.
async fn work(store: &Arc<DynStore>, executor: &JobExecutor) -> Vec<JobStatus> {
    let jobs = store
        .claim("w1", 50, executor.lease(), Timestamp::now())
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for job in jobs {
        let (status, _) = executor
            .execute(&job, crate::CancellationToken::new(), None)
            .await
            .unwrap();
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn create_checks_the_url_and_caps_the_count() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = user(&store, true).await;
    let s = service(&store);
    let created = s
        .create(owner.id, &draft("https://hooks.example.com/echo"), at(1))
        .await
        .unwrap();
    assert_eq!(created.description, "Slack relay");
    assert!(created.secret.expose().starts_with("whsec_"));
    assert_eq!(s.list(owner.id).await.unwrap(), vec![created.clone()]);

    for (url, field) in [
        ("http://hooks.example.com/echo", "url"),
        ("https://169.254.169.254/latest/meta-data", "url"),
        ("https://localhost/hook", "url"),
    ] {
        match s.create(owner.id, &draft(url), at(2)).await {
            Err(ServiceError::Invalid(e)) => assert_eq!(e.field, field, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    let long = WebhookDraft {
        url: "https://example.com/".to_owned(),
        description: "x".repeat(201),
    };
    assert!(matches!(
        s.create(owner.id, &long, at(2)).await,
        Err(ServiceError::Invalid(e)) if e.field == "description"
    ));
    for i in 1..MAX_WEBHOOKS_PER_USER {
        s.create(
            owner.id,
            &draft(&format!("https://h{i}.example.com/")),
            at(3),
        )
        .await
        .unwrap();
    }
    assert!(matches!(
        s.create(owner.id, &draft("https://one-too-many.example.com/"), at(4))
            .await,
        Err(ServiceError::Store(StoreError::Conflict { .. }))
    ));

    // Development lets a developer receive on their own machine.
    let dev = WebhookService::from_store(&store, WebhookUrlPolicy::DEVELOPMENT);
    let other = user(&store, true).await;
    dev.create(other.id, &draft("http://localhost:9000/hook"), at(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_ping_is_signed_delivered_and_logged() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = user(&store, true).await;
    let s = service(&store);
    let endpoint = s
        .create(owner.id, &draft("https://hooks.example.com/echo"), at(1))
        .await
        .unwrap();
    let queued = s
        .ping(owner.id, endpoint.id, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(queued.status, DeliveryStatus::Pending);

    let receiver = Receiver::answering([]);
    let ex = executor(&store, receiver.clone());
    assert_eq!(work(&store, &ex).await, [JobStatus::Succeeded]);

    let got = receiver.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (url, body, signature, delivery, event) = &got[0];
    assert_eq!(url, "https://hooks.example.com/echo");
    assert_eq!(body, queued.body.as_bytes());
    assert_eq!(delivery, &queued.id.to_string());
    assert_eq!(event, "ping");
    // The receiver's recipe accepts it with the secret the owner was shown.
    let now = Timestamp::now().as_datetime().unix_timestamp();
    verify(
        endpoint.secret.expose().as_bytes(),
        signature,
        body,
        now,
        DEFAULT_TOLERANCE_SECS,
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["type"], "ping");
    assert_eq!(json["id"], queued.id.to_string());
    assert_eq!(json["data"]["webhook_id"], endpoint.id.to_string());

    let log = s
        .deliveries(owner.id, endpoint.id, &all())
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Succeeded);
    assert_eq!((log[0].attempts, log[0].response_status), (1, Some(204)));

    // Another user can neither ping nor read the log.
    let other = user(&store, true).await;
    assert!(matches!(
        s.ping(other.id, endpoint.id, at(9)).await,
        Err(ServiceError::Store(StoreError::NotFound { .. }))
    ));
    assert!(matches!(
        s.deliveries(other.id, endpoint.id, &all()).await,
        Err(ServiceError::Store(StoreError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn failures_back_off_then_succeed_and_refusals_stop() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = user(&store, true).await;
    let s = service(&store);
    let endpoint = s
        .create(owner.id, &draft("https://hooks.example.com/echo"), at(1))
        .await
        .unwrap();
    let receiver = Receiver::answering([
        Ok(WebhookResponse { status: 503 }),
        Err(TransportError::Timeout),
        Ok(WebhookResponse { status: 404 }),
    ]);
    let ex = executor(&store, receiver.clone());
    let first = s
        .ping(owner.id, endpoint.id, Timestamp::now())
        .await
        .unwrap();

    let before = Timestamp::now();
    assert_eq!(
        work(&store, &ex).await,
        [JobStatus::Queued],
        "503 is retried"
    );
    let d = store.get_delivery(owner.id, first.id).await.unwrap();
    assert_eq!(
        (d.status, d.attempts, d.response_status),
        (DeliveryStatus::Pending, 1, Some(503))
    );
    assert_eq!(d.last_error.as_deref(), Some("receiver answered 503"));
    let next = d.next_attempt_at.unwrap();
    assert!(
        next >= before + time::Duration::seconds(16),
        "backs off: {next:?}"
    );
    // Nothing is due before the backoff ends.
    assert!(work(&store, &ex).await.is_empty());

    // The retry comes when due: claim as if the clock had reached it.
    let jobs = store.claim("w1", 10, ex.lease(), next).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let (status, _) = ex
        .execute(&jobs[0], crate::CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Queued, "a timeout is retried");
    let d = store.get_delivery(owner.id, first.id).await.unwrap();
    assert_eq!((d.attempts, d.response_status), (2, None));
    assert_eq!(d.last_error.as_deref(), Some("timed out"));

    let later = d.next_attempt_at.unwrap();
    let jobs = store.claim("w1", 10, ex.lease(), later).await.unwrap();
    let (status, _) = ex
        .execute(&jobs[0], crate::CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Failed, "a 404 is not retried");
    let d = store.get_delivery(owner.id, first.id).await.unwrap();
    assert_eq!(
        (d.status, d.attempts, d.response_status),
        (DeliveryStatus::Failed, 3, Some(404))
    );
    assert_eq!(d.next_attempt_at, None);
    assert_eq!(receiver.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn the_last_attempt_gives_up_and_a_deleted_endpoint_sends_nothing() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = user(&store, true).await;
    let s = service(&store);
    let endpoint = s
        .create(owner.id, &draft("https://hooks.example.com/echo"), at(1))
        .await
        .unwrap();
    let receiver = Receiver::answering((0..20).map(|_| Ok(WebhookResponse { status: 500 })));
    let deliverer = crate::webhook::WebhookDeliverer::new(store.clone(), receiver.clone());
    let d = s.ping(owner.id, endpoint.id, at(2)).await.unwrap();
    assert_eq!(
        deliverer.attempt(owner.id, d.id, None).await.unwrap(),
        AttemptOutcome::GaveUp {
            reason: "receiver answered 500 (last attempt)".to_owned()
        }
    );
    assert_eq!(
        store.get_delivery(owner.id, d.id).await.unwrap().status,
        DeliveryStatus::Failed
    );
    // A repeated job finds it settled and sends nothing.
    assert_eq!(
        deliverer.attempt(owner.id, d.id, None).await.unwrap(),
        AttemptOutcome::AlreadySettled
    );
    assert_eq!(receiver.received.lock().unwrap().len(), 1);

    let queued = s.ping(owner.id, endpoint.id, at(3)).await.unwrap();
    s.delete(owner.id, endpoint.id).await.unwrap();
    let ex = executor(&store, receiver.clone());
    assert_eq!(
        work(&store, &ex).await,
        [JobStatus::Succeeded, JobStatus::Succeeded],
        "the first job finds its delivery settled, the second finds it gone"
    );
    assert_eq!(receiver.received.lock().unwrap().len(), 1);
    assert_eq!(
        deliverer
            .attempt(owner.id, queued.id, Some(at(9)))
            .await
            .unwrap(),
        AttemptOutcome::Gone
    );
}

/// A completed run of `e` whose target is named in `visibility` of 100 answers.
async fn completed(
    store: &Arc<DynStore>,
    e: &crate::model::Experiment,
    visibility: f64,
    secs: i64,
) {
    let run = BatchRun::new(e.id, ProviderKind::Simulated, "sim-1", 100, at(secs - 1));
    store.create_batch_run(&run).await.unwrap();
    store
        .update_batch_run(run.id, &completed_update(Some(visibility), at(secs)))
        .await
        .unwrap();
}

#[tokio::test]
async fn new_alerts_are_queued_to_every_endpoint_once() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = user(&store, true).await;
    let s = service(&store);
    let a = s
        .create(owner.id, &draft("https://a.example.com/"), at(1))
        .await
        .unwrap();
    let b = s
        .create(owner.id, &draft("https://b.example.com/"), at(1))
        .await
        .unwrap();
    let e = recurring(owner.id, at(0), Some(at(3600)));
    let debit = crate::conformance::fixtures::debit(&e);
    let job = crate::conformance::fixtures::run_job(&e, at(0));
    store.create_experiment(&e, debit, &job).await.unwrap();
    completed(&store, &e, 0.7, 10).await;
    completed(&store, &e, 0.3, 20).await;

    let alerts = AlertService::from_store(&store)
        .evaluate(owner.id, e.id, at(21))
        .await
        .unwrap();
    assert_eq!(alerts.len(), 2);
    for endpoint in [&a, &b] {
        let log = s
            .deliveries(owner.id, endpoint.id, &all())
            .await
            .unwrap()
            .items;
        assert_eq!(log.len(), 1, "one delivery per endpoint");
        assert_eq!(log[0].event, WebhookEvent::AlertsRaised);
        let body: serde_json::Value = serde_json::from_str(&log[0].body).unwrap();
        assert_eq!(body["type"], "alerts.raised");
        assert_eq!(body["id"], log[0].id.to_string());
        assert_eq!(body["data"]["experiment_id"], e.id.to_string());
        let sent = body["data"]["alerts"].as_array().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0]["id"], alerts[0].id.to_string());
        assert_eq!(
            sent[0]["summary"],
            "simulated: visibility of HubSpot fell from 70% (70 of 100) to 30% (30 of 100) \
             (adjusted p = 0.0000)"
        );
    }
    // Re-evaluating the same runs queues nothing more.
    AlertService::from_store(&store)
        .evaluate(owner.id, e.id, at(30))
        .await
        .unwrap();
    let log = s.deliveries(owner.id, a.id, &all()).await.unwrap().items;
    assert_eq!(log.len(), 1);
}
