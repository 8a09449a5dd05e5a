//! The HTTP API end to end: success and failure paths of every route, tenant isolation,
//! CSRF, rate limits, quotas, security headers, request ids, OpenAPI and metrics.

use std::time::Duration;

use echo_core::auth::{Quota, RateLimitConfig, TierQuotas};
use echo_core::model::{JobId, Timestamp, UserId};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{Backend, Options, TestServer, experiment_body, send};

pub(crate) fn assert_problem(headers: &HeaderMap, body: &Value, slug: &str) {
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert_eq!(body["type"], format!("urn:echo:problem:{slug}"), "{body}");
    assert!(
        body["status"].is_u64() && body["title"].is_string(),
        "{body}"
    );
}

fn assert_security_headers(h: &HeaderMap) {
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("permissions-policy"));
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert_eq!(h["cross-origin-resource-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-xss-protection"], "0");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert!(!h.contains_key("server"));
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test]
async fn full_lifecycle_on_sqlite() {
    lifecycle(TestServer::on(Backend::Sqlite).await.unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn full_lifecycle_on_postgres() {
    if let Some(s) = TestServer::on(Backend::Postgres).await {
        lifecycle(s).await;
    }
}

/// Register → key → experiment → a worker runs it → metrics → a re-run and the significance
/// test → dashboard → delete.
async fn lifecycle(s: TestServer) {
    let a = s.user("ada@example.com").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));

    let (status, headers, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["prompts_debited"], 20);
    let rl = headers["ratelimit"].to_str().unwrap();
    assert!(
        rl.contains("\"default\"") && rl.contains("\"experiments\""),
        "{rl}"
    );
    let id = created["experiment_id"].as_str().unwrap().to_owned();

    let detail = s.wait_finished(&a.key, &id).await;
    assert_eq!(detail["experiment"]["status"], "completed", "{detail}");
    let provider = &detail["report"]["providers"][0];
    assert_eq!(provider["simulated"], true);
    assert_eq!(provider["recorded"], 20);
    let target = &provider["metrics"]["brands"][0];
    assert_eq!(target["brand"], "HubSpot");
    assert_eq!(target["visibility"]["n"], 20);
    let ci = &target["visibility"]["ci95"];
    assert!(ci["lower"].as_f64().unwrap() <= ci["upper"].as_f64().unwrap());

    // A second run, then the significance test between the two.
    let (status, _, _) = send(
        s.client
            .post(s.url(&format!("/api/v1/experiments/{id}/run")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let detail = s.wait_finished(&a.key, &id).await;
    let runs = detail["batch_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{detail}");
    let (status, _, cmp) = send(
        s.client
            .get(s.url(&format!(
                "/api/v1/experiments/{id}/compare?a={}&b={}",
                runs[0]["id"].as_str().unwrap(),
                runs[1]["id"].as_str().unwrap()
            )))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cmp}");
    assert_eq!(cmp["brands"][0]["brand"], "HubSpot");
    assert_eq!(cmp["brands"][0]["is_target"], true);
    // The same seed and prompt give the same answers: no difference, not significant.
    assert_eq!(cmp["brands"][0]["change"]["difference"], 0.0);
    assert_eq!(cmp["brands"][0]["significant"], false);

    let (status, _, dash) = send(
        s.client
            .get(s.url("/api/v1/dashboard/stats"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dash["experiments_total"], 1);
    assert_eq!(dash["iterations_total"], 40);
    assert_eq!(dash["providers"][0]["completed_runs"], 2);

    let (_, _, list) = send(
        s.client
            .get(s.url("/api/v1/experiments?status=completed&limit=10"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(list["items"][0]["id"], id.as_str());

    let (status, _, me) = send(s.client.get(s.url("/api/v1/auth/me")).bearer_auth(&a.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["prompts_used"], 40);

    // Deleting removes it; afterwards it is not found.
    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/experiments/{id}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, h, body) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &body, "not-found");

    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn bad_credentials_are_401_problems() {
    let s = TestServer::start().await;
    let a = s.user("bob@example.com").await;
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("none", s.client.get(s.url("/api/v1/experiments"))),
        (
            "malformed key",
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", "echo1_live_nope"),
        ),
        (
            "forged key",
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", {
                    // Same public id, other secret: the checksum fails or the digest does.
                    let mut k = a.key.clone();
                    let last = k.pop().unwrap();
                    k.push(if last == 'a' { 'b' } else { 'a' });
                    k
                }),
        ),
        (
            "forged session",
            s.client
                .get(s.url("/api/v1/experiments"))
                .bearer_auth(format!("{}x", a.token)),
        ),
        (
            "wrong scheme",
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("authorization", format!("Basic {}", a.token)),
        ),
    ];
    for (what, req) in cases {
        let (status, h, body) = send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_problem(&h, &body, "unauthenticated");
        assert!(h.contains_key("www-authenticate"));
        assert_security_headers(&h);
    }

    // An expired session: issued long enough ago.
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let old = s
        .state
        .sessions
        .issue(&user, Timestamp::now() - time::Duration::days(30))
        .await
        .unwrap();
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .bearer_auth(old.token.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A revoked key, and a logged-out session.
    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/auth/api-keys/{}", a.key_id)))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, h, _) = send(
        s.client
            .post(s.url("/api/v1/auth/logout"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        h.get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Wrong password and unknown email: the same 401 and type.
    for (email, password) in [
        ("bob@example.com", "wrong password!"),
        ("nobody@example.com", "whatever it is"),
    ] {
        let (status, h, body) = send(
            s.client
                .post(s.url("/api/v1/auth/login"))
                .json(&json!({"email": email, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_problem(&h, &body, "invalid-credentials");
    }
}

#[tokio::test]
async fn another_users_objects_are_not_found_on_sqlite() {
    isolation(TestServer::on(Backend::Sqlite).await.unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn another_users_objects_are_not_found_on_postgres() {
    if let Some(s) = TestServer::on(Backend::Postgres).await {
        isolation(s).await;
    }
}

/// Another user's object answers 404 on every resource route.
async fn isolation(s: TestServer) {
    let a = s.user("owner@example.com").await;
    let b = s.user("other@example.com").await;
    let (_, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    let id = created["experiment_id"].as_str().unwrap();
    let run = "0190a6d0-0000-7000-8000-000000000000";
    let routes = [
        ("GET", format!("/api/v1/experiments/{id}")),
        ("DELETE", format!("/api/v1/experiments/{id}")),
        ("POST", format!("/api/v1/experiments/{id}/run")),
        ("POST", format!("/api/v1/experiments/{id}/cancel")),
        (
            "GET",
            format!("/api/v1/experiments/{id}/compare?a={run}&b={run}"),
        ),
        ("DELETE", format!("/api/v1/auth/api-keys/{}", a.key_id)),
        ("POST", format!("/api/v1/auth/api-keys/{}/rotate", a.key_id)),
        ("GET", "/api/v1/brand/profile".to_owned()),
    ];
    for (method, path) in &routes {
        let req = s
            .client
            .request(method.parse().unwrap(), s.url(path))
            .header("x-api-key", &b.key);
        let (status, h, body) = send(req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_problem(&h, &body, "not-found");
    }
    // B's listing and dashboard show none of A's data; A's key still works.
    let (_, _, list) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (status, _, _) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Garbage ids are 404s too.
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments/not-a-uuid"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cookie_requests_need_the_csrf_token_and_same_origin() {
    let s = TestServer::start().await;
    let a = s.user("carol@example.com").await;
    let cookie = format!("__Host-echo_session={}", a.token);
    let body = json!({"brand": "HubSpot", "domain": "hubspot.com"});

    let (status, h, problem) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("cookie", &cookie)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_problem(&h, &problem, "csrf-check-failed");

    let (status, _, _) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("cookie", &cookie)
            .header("x-csrf-token", "forged")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, _) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &a.csrf)
            .header("sec-fetch-site", "cross-site")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, token) = send(
        s.client
            .get(s.url("/api/v1/csrf-token"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["csrf_token"], a.csrf.as_str());
    let (status, _, profile) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &a.csrf)
            .header("sec-fetch-site", "same-origin")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["brand"]["name"], "HubSpot");

    // Safe methods with the cookie need no token; bearer and key requests are exempt.
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/brand/profile"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .bearer_auth(&a.token)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn login_sets_a_host_prefixed_http_only_cookie() {
    let s = TestServer::start().await;
    s.user("dora@example.com").await;
    let r = s
        .client
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": "DORA@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-echo_session="))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn experiment_creation_is_rate_limited_with_retry_after() {
    let q = Quota::per_minute(2).unwrap();
    let s = TestServer::start_with(Options {
        rate_limits: RateLimitConfig {
            experiment_creation: TierQuotas::uniform(q),
            ..RateLimitConfig::default()
        },
        ..Options::default()
    })
    .await;
    let a = s.user("eve@example.com").await;
    let mut body = experiment_body();
    body["iterations"] = json!(1);
    for _ in 0..2 {
        let (status, _, _) = send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .header("x-api-key", &a.key)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, h, problem) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_problem(&h, &problem, "rate-limited");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert!(
        h["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("\"experiments\";q=2;w=60")
    );
    assert_security_headers(&h);
}

#[tokio::test]
async fn quotas_on_sqlite() {
    quotas(TestServer::on(Backend::Sqlite).await.unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn quotas_on_postgres() {
    if let Some(s) = TestServer::on(Backend::Postgres).await {
        quotas(s).await;
    }
}

/// Over quota: refused with nothing stored; a failed run is refunded.
async fn quotas(s: TestServer) {
    let a = s.user("fay@example.com").await;
    // The free tier allows 500 prompts a month: 2 providers × 300 is 600.
    let mut body = experiment_body();
    body["iterations"] = json!(300);
    body["config"]["providers"] = json!(["simulated", "openai"]);
    let (status, h, problem) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
    assert_problem(&h, &problem, "quota-exceeded");
    assert_eq!(problem["quota"]["limit"], 500);
    let (_, _, list) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(me["prompts_used"], 0);

    // A run on a provider that fails permanently gives its quota back. The workers start only
    // after the debit is read: a worker failing the run first would refund it before the read.
    let mut body = experiment_body();
    body["config"]["providers"] = json!(["openai"]);
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(me["prompts_used"], 20);
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let detail = s
        .wait_finished(&a.key, created["experiment_id"].as_str().unwrap())
        .await;
    assert_eq!(detail["experiment"]["status"], "failed", "{detail}");
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert!(me["prompts_used"].as_u64().unwrap() < 20, "{me}");
    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn bad_bodies_and_routes_are_problems() {
    let s = TestServer::start().await;
    let a = s.user("gus@example.com").await;
    let post = || {
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
    };
    let (status, h, b) = send(
        post()
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(&h, &b, "malformed-body");

    let mut unknown = experiment_body();
    unknown["surprise"] = json!(1);
    let (status, h, b) = send(post().json(&unknown)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&h, &b, "invalid-input");
    assert!(b["detail"].as_str().unwrap().contains("surprise"), "{b}");

    let mut bad = experiment_body();
    bad["iterations"] = json!(0);
    let (status, h, b) = send(post().json(&bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&h, &b, "invalid-input");
    assert_eq!(b["invalid-params"][0]["name"], "iterations");

    let mut bad = experiment_body();
    bad["schedule"] = json!("every tuesday-ish");
    let (status, _, b) = send(post().json(&bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    let mut bad = experiment_body();
    bad["config"]["providers"] = json!(["gemini"]);
    let (status, _, b) = send(post().json(&bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    let (status, h, b) = send(post().header("content-type", "text/plain").body("{}")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_problem(&h, &b, "unsupported-media-type");

    let huge = "x".repeat(2 * 1024 * 1024);
    let (status, h, b) = send(
        post()
            .header("content-type", "application/json")
            .body(format!("{{\"prompt\": \"{huge}\"}}")),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(&h, &b, "payload-too-large");
    assert_security_headers(&h);

    let (status, h, b) = send(s.client.get(s.url("/api/v1/nothing-here"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &b, "not-found");
    assert_security_headers(&h);

    // Authentication comes first (an anonymous caller learns nothing about the route).
    let (status, _, _) = send(s.client.patch(s.url("/api/v1/experiments"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, h, b) = send(
        s.client
            .patch(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_problem(&h, &b, "method-not-allowed");

    let (status, _, b) = send(
        s.client
            .get(s.url("/api/v1/experiments?limit=1000"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (status, _, b) = send(
        s.client
            .get(s.url("/api/v1/experiments?cursor=garbage"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Registration: a taken email is accepted like a new one (nothing tells them apart); a
    // short password is invalid.
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/register"))
            .json(&json!({"email": "GUS@example.com", "password": "long enough password", "privacy_policy_version": "2026-12-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/register"))
            .json(&json!({"email": "new@example.com", "password": "short", "privacy_policy_version": "2026-12-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn request_ids_are_echoed_and_stored_on_jobs() {
    let s = TestServer::start().await;
    let a = s.user("hal@example.com").await;
    let (status, h, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .header("x-request-id", "req-abc-123")
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(h["x-request-id"], "req-abc-123");
    let job: JobId = created["job_id"].as_str().unwrap().parse().unwrap();
    let job = s.store.get_job(job).await.unwrap();
    assert_eq!(job.request_id.as_deref(), Some("req-abc-123"));

    // A malformed incoming id is replaced by a fresh one.
    let (_, h, _) = send(
        s.client
            .get(s.url("/healthz"))
            .header("x-request-id", "bad id with spaces"),
    )
    .await;
    let id = h["x-request-id"].to_str().unwrap();
    assert_ne!(id, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[tokio::test]
async fn cancel_stops_a_queued_experiment_and_refunds_it() {
    let s = TestServer::start().await;
    let a = s.user("ivy@example.com").await;
    let (_, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    let id = created["experiment_id"].as_str().unwrap();
    let (status, _, c) = send(
        s.client
            .post(s.url(&format!("/api/v1/experiments/{id}/cancel")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "cancelled");
    // The worker that picks the job up runs nothing and gives the quota back.
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let job: JobId = created["job_id"].as_str().unwrap().parse().unwrap();
    for _ in 0..200 {
        let j = s.store.get_job(job).await.unwrap();
        if j.status != echo_core::model::JobStatus::Queued
            && j.status != echo_core::model::JobStatus::Running
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(me["prompts_used"], 0, "{me}");
    let (_, _, detail) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(detail["experiment"]["status"], "cancelled");
    // Cancelled and not recurring: a second cancel is a conflict-free no-op, a re-run refused.
    let (status, _, _) = send(
        s.client
            .post(s.url(&format!("/api/v1/experiments/{id}/run")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    workers.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn recurring_experiments_get_a_next_run() {
    let s = TestServer::start().await;
    let a = s.user("jon@example.com").await;
    let mut body = experiment_body();
    body["schedule"] = json!("0 9 * * 1");
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let next: Timestamp = serde_json::from_value(created["next_run_at"].clone()).unwrap();
    assert!(next > Timestamp::now());
    assert!(next <= Timestamp::now() + time::Duration::days(7));
}

#[tokio::test]
async fn api_keys_list_never_shows_secrets_and_rotation_works() {
    let s = TestServer::start().await;
    let a = s.user("kim@example.com").await;
    let (status, _, list) = send(
        s.client
            .get(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    assert!(!text.contains(&a.key));
    assert_eq!(list["items"][0]["status"], "active");
    assert!(
        a.key
            .starts_with(list["items"][0]["start"].as_str().unwrap())
    );

    let (status, _, rotated) = send(
        s.client
            .post(s.url(&format!("/api/v1/auth/api-keys/{}/rotate", a.key_id)))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_key = rotated["new_key"]["key"].as_str().unwrap();
    for key in [new_key, a.key.as_str()] {
        let (status, _, _) = send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", key),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "old key works during the grace period"
        );
    }
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(&a.token)
            .json(&json!({"name": "past", "expires_at": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let s = TestServer::start().await;
    let a = s.user("lee@example.com").await;
    for path in ["/healthz", "/readyz"] {
        let (status, h, b) = send(s.client.get(s.url(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(b["status"], "ok");
        assert_security_headers(&h);
    }
    send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(
        "echo_http_requests_total{route=\"/api/v1/experiments\",method=\"GET\",status=\"200\"} 1"
    ), "{text}");
    assert!(text.contains("echo_http_request_duration_seconds_bucket{route=\"/api/v1/experiments\",method=\"GET\",le=\"+Inf\"} 1"));
    assert!(text.contains("echo_queue_jobs{state=\"due\"}"));

    let (status, _, doc) = send(s.client.get(s.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let routes = [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("post", "/api/v1/auth/verify-email"),
        ("post", "/api/v1/auth/verify-email/resend"),
        ("post", "/api/v1/auth/api-keys"),
        ("get", "/api/v1/auth/api-keys"),
        ("delete", "/api/v1/auth/api-keys/{id}"),
        ("post", "/api/v1/auth/api-keys/{id}/rotate"),
        ("get", "/api/v1/brand/profile"),
        ("put", "/api/v1/brand/profile"),
        ("post", "/api/v1/experiments"),
        ("get", "/api/v1/experiments"),
        ("get", "/api/v1/experiments/{id}"),
        ("delete", "/api/v1/experiments/{id}"),
        ("post", "/api/v1/experiments/{id}/run"),
        ("post", "/api/v1/experiments/{id}/cancel"),
        ("get", "/api/v1/experiments/{id}/compare"),
        ("get", "/api/v1/experiments/{id}/runs/{run_id}/answers"),
        ("get", "/api/v1/experiments/{id}/events"),
        ("get", "/api/v1/experiments/{id}/discovered-brands"),
        ("get", "/api/v1/experiments/{id}/export/runs.csv"),
        ("get", "/api/v1/experiments/{id}/export/answers.csv"),
        ("get", "/api/v1/experiments/{id}/sources"),
        ("post", "/api/v1/brand/profile/competitors"),
        ("post", "/api/v1/brand/prompt-sets"),
        ("get", "/api/v1/brand/prompt-sets"),
        ("get", "/api/v1/brand/prompt-sets/{id}"),
        ("delete", "/api/v1/brand/prompt-sets/{id}"),
        ("post", "/api/v1/brand/prompt-sets/{id}/versions"),
        ("get", "/api/v1/dashboard/stats"),
        ("get", "/api/v1/dashboard/trend"),
        ("get", "/api/v1/alerts"),
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("post", "/api/v1/webhooks/{id}/ping"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        ("get", "/api/v1/csrf-token"),
        ("get", "/api/v1/admin/users/{id}"),
        ("get", "/api/v1/admin/audit-logs"),
        ("get", "/api/v1/privacy-policy"),
        ("post", "/api/v1/user/consent"),
        ("get", "/api/v1/user/data-export"),
        ("delete", "/api/v1/user/account"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len(), "documented operations vs routes");
    for (method, path) in routes {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        // Every documented route answers something other than 404/405 (it is really routed).
        let req = s.client.request(
            method.to_uppercase().parse().unwrap(),
            s.url(&path.replace("{id}", "0190a6d0-0000-7000-8000-000000000000")),
        );
        let status = req.send().await.unwrap().status();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED
                && !(status == StatusCode::NOT_FOUND
                    && !path.contains("{id}")
                    && !path.contains("profile")),
            "{method} {path}: {status}"
        );
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(problem.is_object());
}

#[tokio::test]
async fn a_user_id_guess_never_reaches_another_tenant() {
    // A session is bound to its user: a token of A presented with B's ids changes nothing,
    // since the user id comes from the credential, never from the request.
    let s = TestServer::start().await;
    let a = s.user("max@example.com").await;
    let other = UserId::new();
    let (status, _, _) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments?user_id={other}")))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn admin_routes_are_404_for_tenants_and_audited_for_admins() {
    let s = TestServer::start().await;
    let admin = s.user("root@example.com").await;
    let tenant = s.user("tenant@example.com").await;
    let (_, _, me) = send(
        s.client
            .get(s.url("/api/v1/auth/me"))
            .header("x-api-key", &tenant.key),
    )
    .await;
    let tenant_id = me["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/admin/users/{tenant_id}");

    let (status, h, b) = send(s.client.get(s.url(&path)).header("x-api-key", &tenant.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &b, "not-found");
    let (status, _, _) = send(s.client.get(s.url(&path)).header("x-api-key", &admin.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not an admin yet");

    let user = s.make_admin("root@example.com").await;
    let (status, _, viewed) =
        send(s.client.get(s.url(&path)).header("x-api-key", &admin.key)).await;
    assert_eq!(status, StatusCode::OK, "{viewed}");
    assert_eq!(viewed["email"], "tenant@example.com");
    let events = s
        .store
        .list_audit(&echo_core::store::AuditQuery {
            action: Some("admin_view_user".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].event.actor_user_id, Some(user.id));
    assert_eq!(
        events.items[0].event.resource_id.as_deref(),
        Some(tenant_id.as_str())
    );
}

#[tokio::test]
async fn cors_is_off_unless_an_origin_is_configured() {
    let s = TestServer::start().await;
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/experiments"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    let mut options = Options::default();
    options.config.security.cors_origins = vec!["https://app.example.com".into()];
    let s = TestServer::start_with(options).await;
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/experiments"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/experiments"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

/// Random methods from an anonymous client share one `OTHER` label: `/metrics` grows by a few
/// lines, not one series per method (it grew from 53 KB to 13.9 MB with 250 such requests).
#[tokio::test]
async fn random_methods_do_not_grow_metrics() {
    let s = TestServer::start().await;
    let metrics = || async {
        s.client
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = metrics().await;
    for i in 0..1_000u32 {
        let method = reqwest::Method::from_bytes(
            format!("M{:08X}", i.wrapping_mul(2_654_435_761)).as_bytes(),
        )
        .unwrap();
        let (status, _, _) = send(s.client.request(method, s.url("/api/v1/experiments"))).await;
        assert!(status.is_client_error(), "{status}");
    }
    let after = metrics().await;
    assert!(!after.contains("M0"), "a raw method became a label");
    let grown = after.lines().count().saturating_sub(before.lines().count());
    assert!(grown <= 40, "/metrics grew by {grown} lines:\n{after}");
    assert!(after.contains("method=\"OTHER\""), "{after}");
}

/// Security review #16 item 10: invisible direction and zero-width characters in names are
/// refused at the API, naming the field.
#[tokio::test]
async fn names_with_invisible_characters_are_refused() {
    let s = TestServer::start().await;
    let a = s.user("unicode@example.com").await;
    let mut body = experiment_body();
    body["target_brand"] = json!("Hub\u{202E}Spot");
    let (status, headers, problem) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(
        problem["invalid-params"][0]["name"], "target_brand",
        "{problem}"
    );
    assert!(
        problem["invalid-params"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("U+202E")),
        "{problem}"
    );

    let (status, _, problem) = send(
        s.client
            .post(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(&a.token)
            .json(&json!({"name": "ci\u{200B}key"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["invalid-params"][0]["name"], "label", "{problem}");
}
