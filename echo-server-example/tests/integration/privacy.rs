//! GDPR through the API: consent at registration and after a policy change, the export of
//! every record kind without secrets, account deletion with its grace period, and the admin
//! audit log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Options, TestServer, experiment_body, send};

#[tokio::test]
async fn registration_requires_the_current_policy_and_policy_changes_ask_again() {
    let s = TestServer::start().await;
    let (_, _, policy) = send(s.client.get(s.url("/api/v1/privacy-policy"))).await;
    let current = policy["version"].as_str().unwrap().to_owned();
    for (version, what) in [(Value::Null, "missing"), (json!("1999-01-01"), "stale")] {
        let (status, _, b) = send(
            s.client
                .post(s.url("/api/v1/auth/register"))
                .json(&json!({"email": "p@example.com", "password": "long enough pw", "privacy_policy_version": version})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {b}");
        assert_eq!(b["invalid-params"][0]["name"], "privacy_policy_version");
    }
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/register"))
            .json(&json!({"email": "p@example.com", "password": "long enough pw", "privacy_policy_version": current, "marketing_consent": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("p@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.consents.privacy_policy_version.as_deref(),
        Some(current.as_str())
    );

    // The same account under a newer policy: consent is required again until accepted.
    let mut options = Options::default();
    options.config.privacy.policy_version = "2027-01-01".into();
    let s2 = TestServer::start_with(options).await;
    let a = s2.user("q@example.com").await;
    let stale = s2
        .store
        .find_user_by_email(&echo_core::model::Email::parse("q@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let older_policy = echo_core::model::ConsentChange {
        privacy_policy_version: Some("2026-12-01".into()),
        ..Default::default()
    };
    s2.store
        .update_consents(stale.id, &older_policy, echo_core::model::Timestamp::now())
        .await
        .unwrap();
    let (_, _, login) = send(
        s2.client
            .post(s2.url("/api/v1/auth/login"))
            .json(&json!({"email": "q@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(login["consent_required"], true);
    let (status, _, c) = send(
        s2.client
            .post(s2.url("/api/v1/user/consent"))
            .header("x-api-key", &a.key)
            .json(&json!({"privacy_policy_version": "2027-01-01", "marketing": false, "data_processing": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["consent_required"], false);
    assert!(c["privacy_policy_accepted_at"].is_string());
    assert!(c["marketing_consent_at"].is_null());
    let (status, _, _) = send(
        s2.client
            .post(s2.url("/api/v1/user/consent"))
            .header("x-api-key", &a.key)
            .json(&json!({"privacy_policy_version": "2026-12-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let events = s2
        .store
        .list_audit(&echo_core::store::AuditQuery {
            action: Some("update_consent".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1, "a refused change is not recorded");
}

#[tokio::test]
async fn the_export_holds_every_kind_of_record_and_no_secret() {
    let s = TestServer::start().await;
    let a = s.user("x@example.com").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("x-api-key", &a.key)
            .json(&json!({"brand": "HubSpot", "domain": "hubspot.com", "default_competitors": ["Salesforce"]})),
    )
    .await;
    let (_, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    let id = created["experiment_id"].as_str().unwrap();
    s.wait_finished(&a.key, id).await;
    workers.cancel();
    handle.await.unwrap();

    let r = s
        .client
        .get(s.url("/api/v1/user/data-export"))
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = r.text().await.unwrap();
    let export: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(export["format"], "echo.export.v3");
    assert_eq!(export["prompt_sets"], serde_json::json!([]));
    assert_eq!(export["user"]["email"], "x@example.com");
    assert!(export["consents"]["privacy_policy_accepted_at"].is_string());
    assert_eq!(export["brand_profile"]["domain"], "hubspot.com");
    assert_eq!(export["api_keys"].as_array().unwrap().len(), 1);
    let experiment = &export["experiments"][0];
    assert_eq!(experiment["id"], id);
    let run = &experiment["batch_runs"][0];
    assert_eq!(run["iterations"].as_array().unwrap().len(), 20);
    assert!(run["iterations"][0]["raw_response"].is_string());
    let actions: Vec<&str> = export["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "register",
        "login_success",
        "create_api_key",
        "create_experiment",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    for secret in [
        a.key.as_str(),
        a.token.as_str(),
        a.csrf.as_str(),
        "$argon2",
        "secret_hash",
        "password",
    ] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    let audited = s
        .store
        .list_audit(&echo_core::store::AuditQuery {
            action: Some("export_user_data".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.items.len(), 1);
}

#[tokio::test]
async fn deletion_blocks_credentials_at_once_mails_and_a_login_in_the_grace_period_restores() {
    let s = TestServer::start().await;
    let a = s.user("del@example.com").await;
    let (status, _, d) = send(
        s.client
            .delete(s.url("/api/v1/user/account"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    let at: echo_core::model::Timestamp =
        serde_json::from_value(d["scheduled_deletion_at"].clone()).unwrap();
    assert!(at > echo_core::model::Timestamp::now() + time::Duration::days(29));
    for (what, req) in [
        (
            "key",
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", &a.key),
        ),
        (
            "session",
            s.client
                .get(s.url("/api/v1/experiments"))
                .bearer_auth(&a.token),
        ),
    ] {
        let (status, _, _) = send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} still works");
    }
    let mail = s.outbox();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("To: del@example.com"));
    assert!(mail[0].contains("Subject: Your Echo account will be deleted"));
    assert!(!mail[0].contains(&a.key) && !mail[0].contains(&a.token));

    // Wrong password: still deleted. Right password: restored.
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": "del@example.com", "password": "not the password"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, login) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": "del@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["account_restored"], true);
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the key works again after the restore"
    );
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("del@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_active && user.scheduled_deletion_at.is_none());

    // After the grace period a login no longer restores.
    let now = echo_core::model::Timestamp::now();
    s.store
        .request_deletion(user.id, now, now - time::Duration::seconds(1))
        .await
        .unwrap();
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": "del@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_audit_log_filters_pages_and_audits_itself() {
    let s = TestServer::start().await;
    let admin = s.user("boss@example.com").await;
    let t = s.user("t@example.com").await;
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/admin/audit-logs"))
            .header("x-api-key", &t.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.make_admin("boss@example.com").await;
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &t.key),
    )
    .await;
    let tid = me["id"].as_str().unwrap();
    let (status, _, page) = send(
        s.client
            .get(s.url(&format!("/api/v1/admin/audit-logs?user={tid}&limit=2")))
            .header("x-api-key", &admin.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|e| e["actor_user_id"] == tid));
    assert!(
        items[0]["seq"].as_u64() > items[1]["seq"].as_u64(),
        "newest first"
    );
    let cursor = page["next_cursor"].as_u64().unwrap();
    let (_, _, next) = send(
        s.client
            .get(s.url(&format!(
                "/api/v1/admin/audit-logs?user={tid}&limit=2&cursor={cursor}"
            )))
            .header("x-api-key", &admin.key),
    )
    .await;
    assert!(next["items"][0]["seq"].as_u64().unwrap() < cursor);
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/admin/audit-logs?from=yesterday"))
            .header("x-api-key", &admin.key),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, _, own) = send(
        s.client
            .get(s.url("/api/v1/admin/audit-logs?action=view_audit_logs"))
            .header("x-api-key", &admin.key),
    )
    .await;
    assert!(
        !own["items"].as_array().unwrap().is_empty(),
        "viewing is audited"
    );
}

#[tokio::test]
async fn withdrawn_consent_refuses_creating_and_running_experiments() {
    let s = TestServer::start().await;
    let a = s.user("noconsent@example.com").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    s.wait_finished(&a.key, &id).await;

    let consent = |given: bool| {
        s.client
            .post(s.url("/api/v1/user/consent"))
            .header("x-api-key", &a.key)
            .json(&json!({"data_processing": given}))
    };
    let (status, _, c) = send(consent(false)).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert!(c["data_processing_consent_at"].is_null());

    let submit = s
        .client
        .post(s.url("/api/v1/experiments"))
        .header("x-api-key", &a.key)
        .json(&experiment_body());
    let rerun = s
        .client
        .post(s.url(&format!("/api/v1/experiments/{id}/run")))
        .header("x-api-key", &a.key);
    for (what, request) in [("submit", submit), ("re-run", rerun)] {
        let (status, headers, problem) = send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {problem}");
        assert_eq!(
            headers[reqwest::header::CONTENT_TYPE],
            "application/problem+json",
            "{what}"
        );
        assert_eq!(
            problem["type"], "urn:echo:problem:consent-required",
            "{what}: {problem}"
        );
    }
    let (_, _, list) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    // Given again, running works again.
    let (status, _, _) = send(consent(true)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(
        s.client
            .post(s.url(&format!("/api/v1/experiments/{id}/run")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.wait_finished(&a.key, &id).await;
    workers.cancel();
    handle.await.unwrap();
}

/// Security review #16 item 4: a consent update racing the account's deletion wrote back the
/// whole row it had read before, reactivating the deleted account with no purge scheduled.
#[tokio::test]
async fn consent_racing_account_deletion_never_leaves_it_active() {
    let s = TestServer::start().await;
    let a = s.user("race@example.com").await;
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("race@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    // 400 requests within the minute: the enterprise tier's rate limit allows them.
    s.store
        .set_tier(
            user.id,
            echo_core::model::PricingTier::Enterprise,
            echo_core::model::Timestamp::now(),
        )
        .await
        .unwrap();
    for round in 0..200 {
        let consent = send(
            s.client
                .post(s.url("/api/v1/user/consent"))
                .header("x-api-key", &a.key)
                .json(&json!({"marketing": round % 2 == 0})),
        );
        let delete = send(
            s.client
                .delete(s.url("/api/v1/user/account"))
                .header("x-api-key", &a.key),
        );
        let ((consented, _, c), (deleted, _, d)) = tokio::join!(consent, delete);
        // The consent request may authenticate after the deletion and be refused.
        assert!(
            matches!(consented, StatusCode::OK | StatusCode::UNAUTHORIZED),
            "round {round}: {consented} {c}"
        );
        assert_eq!(deleted, StatusCode::ACCEPTED, "round {round}: {d}");
        let now = echo_core::model::Timestamp::now();
        let stored = s.store.get_user(user.id).await.unwrap();
        assert!(
            !stored.is_active,
            "round {round}: deleted account is active"
        );
        assert!(
            stored.scheduled_deletion_at.is_some_and(|at| at > now),
            "round {round}: no purge scheduled"
        );
        // Restored for the next round, as a login in the grace period would.
        assert!(s.store.cancel_deletion(user.id, now).await.unwrap());
    }
}

/// Security review #16 item 9: a failed login was recorded with the targeted account as its
/// actor, so anyone could write into a victim's trail and export.
#[tokio::test]
async fn a_failed_login_is_anonymous_with_the_account_as_resource() {
    let s = TestServer::start().await;
    s.user("target@example.com").await;
    let target = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("target@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .header("user-agent", "StrangerBot/6")
            .json(&json!({"email": "target@example.com", "password": "not the password"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let events = s
        .store
        .list_audit(&echo_core::store::AuditQuery {
            action: Some("login_failure".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    let event = &events.items[0].event;
    assert_eq!(event.actor_user_id, None, "the actor is anonymous");
    assert!(event.ip.is_some(), "with its address");
    assert_eq!(event.resource_type, "user");
    assert_eq!(event.resource_id, Some(target.id.to_string()));
    let own = s
        .store
        .list_audit(&echo_core::store::AuditQuery {
            actor_user_id: Some(target.id),
            action: Some("login_failure".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(own.items.is_empty(), "nothing in the target's own trail");
}
