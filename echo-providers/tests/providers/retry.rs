//! `build` wraps clients in echo-core's `Retrying`; these check it against real HTTP.

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::{DynProvider, PermanentKind, RetryPolicy, Secret};
use echo_providers::{ProviderSettings, build};
use std::sync::Arc;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

fn fast_retries(server: &MockServer) -> Arc<DynProvider> {
    build(
        ProviderKind::OpenAi,
        ProviderSettings {
            api_key: Some(Secret::new(KEY)),
            base_url: Some(server.uri()),
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            },
            ..ProviderSettings::default()
        },
    )
    .unwrap()
}

/// The first request gets `first`, every later one the success fixture.
async fn fail_once(first: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(json(200, fixture("openai", "success.json")))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = fail_once(json(500, fixture("openai", "error_500.json"))).await;
    let completion = fast_retries(&server)
        .complete(&request("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(completion.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let server = fail_once(
        json(429, fixture("openai", "error_429.json")).insert_header("retry-after-ms", "50"),
    )
    .await;
    let started = std::time::Instant::now();
    fast_retries(&server)
        .complete(&request("gpt-4o-mini"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_401_is_not_retried() {
    let server = fail_once(json(401, fixture("openai", "error_401.json"))).await;
    let error = err(fast_retries(&server)
        .complete(&request("gpt-4o-mini"))
        .await);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::Authentication));
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn retries_stop_after_the_policy_limit() {
    let server = serve(json(503, fixture("openai", "error_500.json"))).await;
    let error = err(fast_retries(&server)
        .complete(&request("gpt-4o-mini"))
        .await);
    assert!(error.is_retryable());
    assert_eq!(
        requests(&server).await,
        RetryPolicy::default().max_retries as usize + 1
    );
}
