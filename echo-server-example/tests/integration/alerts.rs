//! `GET /api/v1/alerts`: the caller's alerts, newest first, a page at a time.

use echo_core::conformance::fixtures;
use echo_core::model::{BatchRun, Email, ProviderKind, Timestamp};
use echo_core::service::AlertService;
use reqwest::StatusCode;

use crate::harness::{TestServer, send};
use crate::server::assert_problem;

#[tokio::test]
async fn alerts_are_listed_to_their_owner_with_a_cursor() {
    let s = TestServer::start().await;
    let a = s.user("alerts@example.com").await;
    let b = s.user("other-alerts@example.com").await;
    let owner = s
        .store
        .find_user_by_email(&Email::parse("alerts@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let now = Timestamp::now();
    let e = fixtures::recurring(owner.id, now, Some(now + time::Duration::days(1)));
    s.store
        .create_experiment(&e, fixtures::debit(&e), &fixtures::run_job(&e, now))
        .await
        .unwrap();
    let mut runs = Vec::new();
    for (i, visibility) in [0.7, 0.3].into_iter().enumerate() {
        let at = now + time::Duration::minutes(i as i64 + 1);
        let run = BatchRun::new(e.id, ProviderKind::Simulated, "sim-1", 100, at);
        s.store.create_batch_run(&run).await.unwrap();
        s.store
            .update_batch_run(run.id, &fixtures::completed_update(Some(visibility), at))
            .await
            .unwrap();
        runs.push(run);
    }
    let raised = AlertService::from_store(&s.store)
        .evaluate(owner.id, e.id, now)
        .await
        .unwrap();
    assert_eq!(raised.len(), 2, "visibility and first place fell");

    let (status, headers, page) = send(
        s.client
            .get(s.url("/api/v1/alerts?limit=1"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let first = &page["items"][0];
    assert_eq!(first["id"], raised[1].id.to_string(), "newest first");
    assert_eq!(first["kind"], "first_place");
    assert_eq!(first["provider"], "simulated");
    assert_eq!(first["brand"], "HubSpot");
    assert_eq!(first["experiment_id"], e.id.to_string());
    assert_eq!(first["batch_run_id"], runs[1].id.to_string());
    assert_eq!(first["previous_run_id"], runs[0].id.to_string());
    assert_eq!(
        (
            first["before"]["successes"].as_u64(),
            first["before"]["n"].as_u64()
        ),
        (Some(70), Some(100))
    );
    assert_eq!(first["after"]["successes"], 30);
    assert!(first["adjusted_p"].as_f64().unwrap() <= 0.05);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    let (status, _, next) = send(
        s.client
            .get(s.url(&format!("/api/v1/alerts?limit=1&cursor={cursor}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["items"][0]["kind"], "visibility");
    assert!(next["next_cursor"].is_null());

    // Another user sees none of them.
    let (status, _, theirs) = send(
        s.client
            .get(s.url("/api/v1/alerts"))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);

    for (url, status, slug) in [
        (
            "/api/v1/alerts?cursor=nope",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
        ),
        (
            "/api/v1/alerts?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
        ),
        (
            "/api/v1/alerts?colour=red",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
        ),
    ] {
        let (got, h, problem) = send(s.client.get(s.url(url)).header("x-api-key", &a.key)).await;
        assert_eq!(got, status, "{url}: {problem}");
        assert_problem(&h, &problem, slug);
    }
    let (got, h, problem) = send(s.client.get(s.url("/api/v1/alerts"))).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
    assert_problem(&h, &problem, "unauthenticated");
}

/// Stores, for `owner`, a recurring experiment with two completed runs and one alert per
/// brand in `brands` (oldest first: the last is the newest), each saying the brand's
/// visibility fell from 62 of 100 to 41 of 100 with adjusted p = 0.003, straight through the
/// store (so a brand can be any text). Returns the experiment, its two runs (previous, newer)
/// and the alerts.
pub async fn seed_alerts(
    store: &std::sync::Arc<echo_core::store::DynStore>,
    owner: echo_core::model::UserId,
    brands: &[&str],
) -> (
    echo_core::model::Experiment,
    [BatchRun; 2],
    Vec<echo_core::model::Alert>,
) {
    use echo_core::analysis::alerts::AlertFinding;
    use echo_core::analysis::{Proportion, ProportionChange};
    use echo_core::model::{Alert, AlertId, AlertKind};

    let now = Timestamp::now();
    let e = fixtures::recurring(owner, now, Some(now + time::Duration::days(1)));
    store
        .create_experiment(&e, fixtures::debit(&e), &fixtures::run_job(&e, now))
        .await
        .unwrap();
    let mut runs = Vec::new();
    for (i, visibility) in [0.62, 0.41].into_iter().enumerate() {
        let at = now + time::Duration::minutes(i as i64 + 1);
        let run = BatchRun::new(e.id, ProviderKind::Simulated, "sim-1", 100, at);
        store.create_batch_run(&run).await.unwrap();
        store
            .update_batch_run(run.id, &fixtures::completed_update(Some(visibility), at))
            .await
            .unwrap();
        runs.push(run);
    }
    let alerts: Vec<Alert> = brands
        .iter()
        .enumerate()
        .map(|(i, brand)| Alert {
            id: AlertId::new(),
            user_id: owner,
            experiment_id: e.id,
            batch_run_id: runs[1].id,
            previous_run_id: runs[0].id,
            finding: AlertFinding {
                provider: ProviderKind::Simulated,
                kind: AlertKind::Visibility,
                brand: (*brand).to_owned(),
                target: (*brand).to_owned(),
                change: ProportionChange::between(
                    Proportion::new(62, 100),
                    Proportion::new(41, 100),
                ),
                target_visibility: (Some(0.62), Some(0.41)),
                adjusted_p: 0.003,
            },
            created_at: now + time::Duration::minutes(3 + i as i64),
        })
        .collect();
    assert_eq!(
        store.record_alerts(&alerts).await.unwrap() as usize,
        alerts.len()
    );
    let runs: [BatchRun; 2] = runs.try_into().unwrap();
    (e, runs, alerts)
}
