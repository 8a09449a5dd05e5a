//! Registration that reveals nothing, and email verification (#16 item 8).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Options, TestServer, experiment_body, send};
use crate::server::assert_problem;

fn verifying() -> Options {
    let mut options = Options::default();
    options.config.security.require_email_verification = Some(true);
    options.config.http.public_base_url = Some("https://echo.example.com/".into());
    options
}

async fn register(s: &TestServer, email: &str, password: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(s.client.post(s.url("/api/v1/auth/register")).json(
        &json!({"email": email, "password": password, "privacy_policy_version": "2026-12-01"}),
    ))
    .await;
    (status, body)
}

async fn verify(s: &TestServer, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        s.client
            .post(s.url("/api/v1/auth/verify-email"))
            .json(&json!({"token": token})),
    )
    .await
}

async fn create(s: &TestServer, key: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", key)
            .json(&experiment_body()),
    )
    .await
}

async fn resend(s: &TestServer, key: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        s.client
            .post(s.url("/api/v1/auth/verify-email/resend"))
            .header("x-api-key", key),
    )
    .await
}

#[tokio::test]
async fn registering_a_new_and_a_taken_email_answer_alike_and_the_owner_is_told() {
    let s = TestServer::start_with(verifying()).await;
    let (new_status, new_body) = register(&s, "ann@example.com", "first password here").await;
    let mail_before = s.outbox().len();
    let (taken_status, taken_body) = register(&s, "ANN@example.com", "another password here").await;
    assert_eq!(new_status, StatusCode::ACCEPTED, "{new_body}");
    assert_eq!((taken_status, &taken_body), (new_status, &new_body));
    assert_eq!(new_body["status"], "accepted");

    let mail = s.outbox();
    assert_eq!(mail.len(), mail_before + 1, "one message to the owner");
    let notice = mail.last().unwrap();
    assert!(notice.contains("To: ann@example.com\r\n"), "{notice}");
    assert!(notice.contains("tried to register"), "{notice}");
    assert!(!notice.contains("token="), "{notice}");

    // The first password still logs in: the attempt changed nothing.
    let (status, _, _) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": "ann@example.com", "password": "first password here"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unverified_account_cannot_create_until_its_token_is_used_once() {
    let s = TestServer::start_with(verifying()).await;
    let a = s.user("bea@example.com").await;
    let (status, h, b) = create(&s, &a.key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
    assert_problem(&h, &b, "email-unverified");

    let token = s.mailed_token("bea@example.com");
    let mail = s.outbox();
    assert!(
        mail.iter().any(|m| m.contains(&format!(
            "https://echo.example.com/verify-email?token={token}"
        ))),
        "the link is built from the public base URL"
    );
    let (status, _, b) = verify(&s, &token).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["email_verified"], true);
    let (status, h, b) = verify(&s, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(&h, &b, "verification-token-invalid");

    let (status, _, b) = create(&s, &a.key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");

    let (_, _, events) = send(
        s.client
            .get(s.url("/api/v1/user/data-export"))
            .header("x-api-key", &a.key),
    )
    .await;
    let text = events.to_string();
    assert!(
        text.contains("verify_email"),
        "the verification is audited: {text}"
    );
    assert!(
        text.contains("email_verified_at"),
        "the export shows the state: {text}"
    );
    assert!(!text.contains(&token), "the export holds no token");
}

#[tokio::test]
async fn an_expired_token_fails_and_a_resend_mails_a_working_one() {
    let s = TestServer::start_with(verifying()).await;
    let a = s.user("cal@example.com").await;
    let old = s.mailed_token("cal@example.com");
    // Age the pending token past its 24 hours by replacing it with an expired copy.
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("cal@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let digest = |t: &str| {
        use sha2::Digest as _;
        echo_core::model::SecretDigest(sha2::Sha256::digest(t.as_bytes()).into())
    };
    let past = echo_core::model::Timestamp::now()
        .checked_add(time::Duration::hours(-25))
        .unwrap();
    s.store
        .put_email_verification_token(&echo_core::model::EmailVerificationToken {
            user_id: user.id,
            token_hash: digest(&old),
            created_at: past,
            expires_at: past.checked_add(time::Duration::hours(24)).unwrap(),
        })
        .await
        .unwrap();
    let (status, h, b) = verify(&s, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
    assert_problem(&h, &b, "verification-token-expired");

    let (status, _, b) = resend(&s, &a.key).await;
    assert_eq!(
        (status, b["status"].as_str()),
        (StatusCode::OK, Some("sent"))
    );
    let new = s.mailed_token("cal@example.com");
    assert_ne!(new, old);
    assert_eq!(verify(&s, &new).await.0, StatusCode::OK);
    let (status, _, b) = resend(&s, &a.key).await;
    assert_eq!(
        (status, b["status"].as_str()),
        (StatusCode::OK, Some("already_verified"))
    );
}

#[tokio::test]
async fn resends_are_rate_limited_per_account() {
    let s = TestServer::start_with(verifying()).await;
    let a = s.user("dan@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, h, b) = resend(&s, &a.key).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(&h, &b, "rate-limited");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused_as_invalid() {
    let s = TestServer::start_with(verifying()).await;
    for token in ["", "nope", &"z".repeat(64)] {
        let (status, h, b) = verify(&s, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token:?}: {b}");
        assert_problem(&h, &b, "verification-token-invalid");
    }
}

#[tokio::test]
async fn with_the_setting_off_accounts_work_at_once_and_no_link_is_mailed() {
    let s = TestServer::start().await;
    assert!(!s.state.config.require_email_verification());
    let a = s.user("eli@example.com").await;
    let (status, _, b) = create(&s, &a.key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    assert!(
        !s.outbox().iter().any(|m| m.contains("token=")),
        "no verification mail"
    );
    // A taken address still answers alike and tells its owner.
    let (status, b) = register(&s, "eli@example.com", "some other password").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    assert!(s.outbox().iter().any(|m| m.contains("tried to register")));
}
