//! `/api/v1/webhooks`: endpoints registered with a secret shown once, signed deliveries of
//! pings and alerts to a real HTTP receiver through the worker pool, retries and the log.

use std::time::Duration;

use echo_core::conformance::fixtures;
use echo_core::model::{BatchRun, Email, ProviderKind, Timestamp};
use echo_core::service::AlertService;
use echo_core::webhook::{DEFAULT_TOLERANCE_SECS, verify};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Account, TestServer, send};
use crate::server::assert_problem;

async fn create(s: &TestServer, who: &Account, body: Value) -> (StatusCode, Value) {
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/webhooks"))
            .header("x-api-key", &who.key)
            .json(&body),
    )
    .await;
    (status, created)
}

async fn get(s: &TestServer, who: &Account, at: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(s.client.get(s.url(at)).header("x-api-key", &who.key)).await;
    (status, body)
}

/// Polls the endpoint's log until its newest delivery is no longer pending (or 15 s pass).
async fn settled(s: &TestServer, who: &Account, id: &str) -> Value {
    for _ in 0..150 {
        let (_, log) = get(s, who, &format!("/api/v1/webhooks/{id}/deliveries")).await;
        if log["items"][0]["status"] != "pending" || log["items"][0]["attempts"] != 0 {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the delivery never settled");
}

#[tokio::test]
async fn endpoints_are_created_once_listed_without_secret_and_isolated() {
    let s = TestServer::start().await;
    let a = s.user("hooks@example.com").await;
    let b = s.user("other-hooks@example.com").await;

    let (status, created) = create(
        &s,
        &a,
        json!({"url": "https://hooks.example.com/echo?team=7", "description": " Slack relay "}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{secret}"
    );
    assert_eq!(created["url"], "https://hooks.example.com/echo?team=7");
    assert_eq!(created["description"], "Slack relay");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = get(&s, &a, "/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(
        !list.to_string().contains(secret) && list["items"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let (status, one) = get(&s, &a, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(
        (status, one["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    // Another user: not found, everywhere.
    for at in [
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
    ] {
        let (status, h, problem) = send(s.client.get(s.url(&at)).header("x-api-key", &b.key)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{at}");
        assert_problem(&h, &problem, "not-found");
    }
    let (status, _, _) = send(
        s.client
            .post(s.url(&format!("/api/v1/webhooks/{id}/ping")))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/webhooks/{id}")))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        get(&s, &b, "/api/v1/webhooks").await.1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Bad input names its field; the tenth endpoint is the last.
    for (body, field) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "http://example.com/hook"}), "url"),
        (json!({"url": "https://user:pw@example.com/"}), "url"),
        (
            json!({"url": "https://example.com/", "description": "x".repeat(201)}),
            "description",
        ),
    ] {
        let (status, h, problem) = send(
            s.client
                .post(s.url("/api/v1/webhooks"))
                .header("x-api-key", &a.key)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_problem(&h, &problem, "invalid-input");
        assert_eq!(problem["invalid-params"][0]["name"], field, "{problem}");
    }
    for i in 1..10 {
        let (status, _) =
            create(&s, &a, json!({"url": format!("https://h{i}.example.com/")})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, h, problem) = send(
        s.client
            .post(s.url("/api/v1/webhooks"))
            .header("x-api-key", &a.key)
            .json(&json!({"url": "https://one-too-many.example.com/"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_problem(&h, &problem, "conflict");

    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/webhooks/{id}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&s, &a, &format!("/api/v1/webhooks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pings_and_alerts_reach_the_receiver_signed_and_are_logged() {
    let s = TestServer::start().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let a = s.user("receiver@example.com").await;
    let (status, created) =
        create(&s, &a, json!({"url": format!("{}/hook", receiver.uri())})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();

    let (status, _, queued) = send(
        s.client
            .post(s.url(&format!("/api/v1/webhooks/{id}/ping")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "pending");

    // Alerts of a recurring experiment's latest run are queued too. Its own run job is
    // settled here, so the workers below only deliver.
    let owner = s
        .store
        .find_user_by_email(&Email::parse("receiver@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let now = Timestamp::now();
    let e = fixtures::recurring(owner.id, now, Some(now + time::Duration::days(1)));
    let run_job = fixtures::run_job(&e, now);
    s.store
        .create_experiment(&e, fixtures::debit(&e), &run_job)
        .await
        .unwrap();
    let claimed = s
        .store
        .claim_job(run_job.id, "test", Duration::from_secs(30), now)
        .await
        .unwrap()
        .unwrap();
    s.store.complete(claimed.lease(), now).await.unwrap();
    for (i, visibility) in [0.7, 0.3].into_iter().enumerate() {
        let at = now + time::Duration::minutes(i as i64 + 1);
        let run = BatchRun::new(e.id, ProviderKind::Simulated, "sim-1", 100, at);
        s.store.create_batch_run(&run).await.unwrap();
        s.store
            .update_batch_run(run.id, &fixtures::completed_update(Some(visibility), at))
            .await
            .unwrap();
    }
    let raised = AlertService::from_store(&s.store)
        .evaluate(owner.id, e.id, now)
        .await
        .unwrap();
    assert_eq!(raised.len(), 2);

    let (stop, workers) = s.start_workers(Duration::from_secs(30));
    let mut log = Value::Null;
    for _ in 0..150 {
        log = get(&s, &a, &format!("/api/v1/webhooks/{id}/deliveries"))
            .await
            .1;
        let items = log["items"].as_array().unwrap();
        if items.len() == 2 && items.iter().all(|d| d["status"] != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    for d in items {
        assert_eq!(d["status"], "succeeded", "{log}");
        assert_eq!(
            (d["response_status"].as_u64(), d["attempts"].as_u64()),
            (Some(204), Some(1))
        );
    }
    stop.cancel();
    workers.await.unwrap();

    let received = receiver.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let clock = Timestamp::now().as_datetime().unix_timestamp();
    let mut events = Vec::new();
    for request in &received {
        let signature = request.headers["echo-signature"].to_str().unwrap();
        verify(
            secret.as_bytes(),
            signature,
            &request.body,
            clock,
            DEFAULT_TOLERANCE_SECS,
        )
        .unwrap();
        assert_eq!(request.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            request.headers["echo-event"].to_str().unwrap(),
            body["type"]
        );
        assert_eq!(
            request.headers["echo-delivery"].to_str().unwrap(),
            body["id"].as_str().unwrap()
        );
        events.push(body);
    }
    events.sort_by_key(|b| b["type"].as_str().unwrap().to_owned());
    assert_eq!(events[0]["type"], "alerts.raised");
    assert_eq!(events[1]["type"], "ping");
    assert_eq!(events[1]["data"]["webhook_id"], id.as_str());
    let alerts = &events[0]["data"];
    assert_eq!(alerts["experiment_id"], e.id.to_string());
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 2);
    assert!(
        alerts["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("simulated: visibility of HubSpot fell from 70% (70 of 100) to 30%"),
        "{alerts}"
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_later_and_a_refusal_is_not() {
    let s = TestServer::start().await;
    let (stop, workers) = s.start_workers(Duration::from_secs(30));
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/busy"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    let a = s.user("busy@example.com").await;
    let mut ids = Vec::new();
    for at in ["/busy", "/gone"] {
        let (_, created) = create(&s, &a, json!({"url": format!("{}{at}", receiver.uri())})).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, _, _) = send(
            s.client
                .post(s.url(&format!("/api/v1/webhooks/{id}/ping")))
                .header("x-api-key", &a.key),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        ids.push(id);
    }
    let busy = settled(&s, &a, &ids[0]).await;
    let d = &busy["items"][0];
    assert_eq!(d["status"], "pending", "{busy}");
    assert_eq!(
        (d["attempts"].as_u64(), d["response_status"].as_u64()),
        (Some(1), Some(503))
    );
    assert_eq!(d["last_error"], "receiver answered 503");
    let next = d["next_attempt_at"].as_str().unwrap();
    let last = d["last_attempt_at"].as_str().unwrap();
    let seconds = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    assert!(
        seconds(next) - seconds(last) >= 15,
        "backs off: {last} → {next}"
    );

    let gone = settled(&s, &a, &ids[1]).await;
    let d = &gone["items"][0];
    assert_eq!(d["status"], "failed", "{gone}");
    assert_eq!(d["last_error"], "receiver answered 410 (not retried)");
    assert!(d["next_attempt_at"].is_null());
    stop.cancel();
    workers.await.unwrap();
}
