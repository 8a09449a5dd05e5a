#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::conformance::fixtures::{at, completed_update, experiment, recurring};
use crate::mail::{MailError, Mailer};
use crate::model::{Experiment, Job};
use crate::service::test_support::user;
use crate::store::memory::MemoryStore;
use crate::store::{PageSize, StoreError};

#[derive(Debug, Default)]
struct Kept(Mutex<Vec<MailMessage>>);

#[async_trait]
impl Mailer for Kept {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(())
    }
}

async fn stored(store: &Arc<DynStore>, e: &Experiment) {
    let debit = crate::conformance::fixtures::debit(e);
    let job: Job = crate::conformance::fixtures::run_job(e, at(0));
    store.create_experiment(e, debit, &job).await.unwrap();
}

/// A completed run of `e` whose target is named in `visibility` of 100 answers, completed at
/// `at(secs)`.
async fn completed(store: &Arc<DynStore>, e: &Experiment, visibility: f64, secs: i64) -> BatchRun {
    let run = BatchRun::new(e.id, ProviderKind::Simulated, "sim-1", 100, at(secs - 1));
    store.create_batch_run(&run).await.unwrap();
    store
        .update_batch_run(run.id, &completed_update(Some(visibility), at(secs)))
        .await
        .unwrap();
    run
}

fn all() -> AlertQuery {
    AlertQuery {
        after: None,
        limit: PageSize::DEFAULT,
    }
}

#[tokio::test]
async fn a_real_drop_is_stored_and_mailed_once() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let mailer = Arc::new(Kept::default());
    let service = AlertService::from_store(&store).with_mailer(mailer.clone());
    let owner = user(&store, true).await;
    let e = recurring(owner.id, at(0), Some(at(3600)));
    stored(&store, &e).await;
    let first = completed(&store, &e, 0.7, 10).await;
    assert!(
        service
            .evaluate(owner.id, e.id, at(11))
            .await
            .unwrap()
            .is_empty(),
        "one run"
    );
    let second = completed(&store, &e, 0.3, 20).await;

    let alerts = service.evaluate(owner.id, e.id, at(21)).await.unwrap();
    let kinds: Vec<_> = alerts.iter().map(|a| a.finding.kind).collect();
    assert_eq!(kinds, [AlertKind::Visibility, AlertKind::FirstPlace]);
    for a in &alerts {
        assert_eq!((a.batch_run_id, a.previous_run_id), (second.id, first.id));
        assert_eq!(a.finding.brand, "HubSpot");
        assert_eq!(a.created_at, at(21));
    }
    let mails = mailer.0.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, owner.email);
    assert_eq!(mails[0].subject, "Echo alert: 2 significant changes");
    assert!(
        mails[0].body.contains(
            "simulated: visibility of HubSpot fell from 70% (70 of 100) to 30% (30 of 100)"
        ),
        "{}",
        mails[0].body
    );

    // Evaluating the same runs again (a retried job) stores and mails nothing.
    assert!(
        service
            .evaluate(owner.id, e.id, at(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(mailer.0.lock().unwrap().len(), 1);
    let listed = service.list(owner.id, &all()).await.unwrap().items;
    assert_eq!(listed.len(), 2);

    // Another user sees none of it and cannot evaluate the experiment.
    let other = user(&store, true).await;
    assert!(
        service
            .list(other.id, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        service.evaluate(other.id, e.id, at(31)).await,
        Err(ServiceError::Store(StoreError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn noise_and_one_off_experiments_raise_nothing() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = AlertService::from_store(&store);
    let owner = user(&store, true).await;
    let e = recurring(owner.id, at(0), Some(at(3600)));
    stored(&store, &e).await;
    completed(&store, &e, 0.52, 10).await;
    completed(&store, &e, 0.47, 20).await;
    assert!(
        service
            .evaluate(owner.id, e.id, at(21))
            .await
            .unwrap()
            .is_empty()
    );

    let once = experiment(owner.id, at(0));
    stored(&store, &once).await;
    completed(&store, &once, 0.9, 10).await;
    completed(&store, &once, 0.1, 20).await;
    assert!(
        service
            .evaluate(owner.id, once.id, at(21))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        service
            .list(owner.id, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn describe_names_the_competitor_and_direction() {
    let finding = AlertFinding {
        provider: ProviderKind::OpenAi,
        kind: AlertKind::CompetitorOvertook,
        brand: "Globex".into(),
        target: "Acme".into(),
        change: crate::analysis::ProportionChange::between(
            Proportion::new(20, 100),
            Proportion::new(60, 100),
        ),
        target_visibility: (Some(0.5), Some(0.5)),
        adjusted_p: 0.000_01,
    };
    assert_eq!(
        describe_alert(&finding),
        "openai: visibility of Globex (now ahead of Acme) rose from 20% (20 of 100) to 60% (60 of \
         100) (adjusted p = 0.0000)"
    );
}
