//! The security review's hardening (issue #16): per-account rate limits and the key cap,
//! login throttling by address, failed-authentication limits, slow clients and connection
//! caps, and start-up and `/metrics` settings.

use std::time::Duration;

use echo_core::auth::{Quota, RateLimitConfig, TierQuotas};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Options, TestServer, experiment_body, send};
use crate::server::assert_problem;

/// A quota whose window is an hour, so refill during a test (one request per minute) cannot
/// blur the counts.
fn hourly(n: u32) -> Quota {
    Quota::new(n, Duration::from_secs(3600)).unwrap()
}

async fn create_key(s: &TestServer, token: &str) -> (StatusCode, serde_json::Value) {
    let (status, h, body) = send(
        s.client
            .post(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(token)
            .json(&json!({"name": "more"})),
    )
    .await;
    if status != StatusCode::CREATED {
        assert_problem(&h, &body, "conflict");
    }
    (status, body)
}

#[tokio::test]
async fn four_keys_and_a_session_of_one_user_share_one_budget() {
    let s = TestServer::start_with(Options {
        rate_limits: RateLimitConfig {
            general: TierQuotas::uniform(hourly(60)),
            ..RateLimitConfig::default()
        },
        ..Options::default()
    })
    .await;
    let a = s.user("quinn@example.com").await; // one authenticated request: its first key
    let mut keys = vec![a.key.clone()];
    for _ in 0..3 {
        let (status, body) = create_key(&s, &a.token).await;
        assert_eq!(status, StatusCode::CREATED);
        keys.push(body["key"].as_str().unwrap().to_owned());
    }
    // 4 requests spent on keys; the remaining 56 are shared by the four keys.
    let mut ok = 0;
    for i in 0..120 {
        let (status, h, body) = send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", &keys[i % 4]),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(&h, &body, "rate-limited");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        ok += 1;
    }
    assert_eq!(ok, 56, "four keys must share one 60-request budget");
    // Every key, and the user's session, are now refused alike.
    for key in &keys {
        let (status, _, _) = send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", key),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another user is unaffected.
    let b = s.user("rene@example.com").await;
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_key_does_not_double_the_experiment_creation_limit() {
    let s = TestServer::start_with(Options {
        rate_limits: RateLimitConfig {
            experiment_creation: TierQuotas::uniform(hourly(2)),
            ..RateLimitConfig::default()
        },
        ..Options::default()
    })
    .await;
    let a = s.user("sam@example.com").await;
    let (_, second) = create_key(&s, &a.token).await;
    let second = second["key"].as_str().unwrap().to_owned();
    let mut body = experiment_body();
    body["iterations"] = json!(1);
    let create = |key: String| {
        send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .header("x-api-key", key)
                .json(&body),
        )
    };
    assert_eq!(create(a.key.clone()).await.0, StatusCode::ACCEPTED);
    assert_eq!(create(a.key.clone()).await.0, StatusCode::ACCEPTED);
    let (status, h, problem) = create(second).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_problem(&h, &problem, "rate-limited");
}

#[tokio::test]
async fn the_26th_active_key_is_refused_naming_the_cap() {
    let s = TestServer::start().await;
    let a = s.user("tess@example.com").await; // key 1
    for i in 2..=25 {
        let (status, body) = create_key(&s, &a.token).await;
        assert_eq!(status, StatusCode::CREATED, "key {i}: {body}");
    }
    let (status, problem) = create_key(&s, &a.token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("25") && detail.contains("max_api_keys"),
        "{detail}"
    );
    // Revoking one frees a slot.
    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/auth/api-keys/{}", a.key_id)))
            .bearer_auth(&a.token)
            .header("x-csrf-token", &a.csrf),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(create_key(&s, &a.token).await.0, StatusCode::CREATED);
}
