//! Behaviour of the shared HTTP layer that does not depend on the provider.

use std::time::Duration;

use echo_core::provider::{PermanentKind, ProviderError, Secret};
use echo_providers::{OpenAiConfig, OpenAiProvider};
use wiremock::ResponseTemplate;

use crate::common::*;

fn openai(base: &str) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: base.into(),
        ..OpenAiConfig::new(Secret::new(KEY))
    })
    .unwrap()
}

async fn complete(p: &OpenAiProvider) -> Result<echo_core::provider::Completion, ProviderError> {
    echo_core::provider::Provider::complete(p, &request("gpt-4o-mini")).await
}

#[tokio::test]
async fn connection_refused_is_transient_without_status() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = err(complete(&openai(&format!("http://127.0.0.1:{port}"))).await);
    assert!(
        matches!(error, ProviderError::Transient { status: None, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("could not connect"), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server =
        serve(ResponseTemplate::new(301).insert_header("location", "https://elsewhere.invalid/v1"))
            .await;
    let error = err(complete(&openai(&server.uri())).await);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::BadRequest));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_non_json_error_page_is_quoted_and_truncated() {
    let page = format!("<html><body>{}</body></html>", "Bad gateway. ".repeat(200));
    let server = serve(ResponseTemplate::new(502).set_body_string(page)).await;
    let error = err(complete(&openai(&server.uri())).await);
    let ProviderError::Transient {
        status: Some(502),
        message,
    } = error
    else {
        panic!("expected Transient 502, got {error:?}");
    };
    assert!(message.contains("Bad gateway."));
    assert!(
        message.chars().count() <= 501,
        "{}",
        message.chars().count()
    );
}

#[tokio::test]
async fn an_error_without_a_body_still_names_the_status() {
    let server = serve(ResponseTemplate::new(503)).await;
    let error = err(complete(&openai(&server.uri())).await);
    assert!(
        error.to_string().contains("HTTP 503 Service Unavailable"),
        "{error}"
    );
}

#[tokio::test]
async fn a_retry_after_date_is_a_duration_from_now() {
    let at = std::time::SystemTime::now() + Duration::from_secs(30);
    let date = time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap()
        .replace("+0000", "GMT");
    let server = serve(
        json(429, fixture("openai", "error_429.json")).insert_header("retry-after", date.as_str()),
    )
    .await;
    let error = err(complete(&openai(&server.uri())).await);
    let ProviderError::RateLimited {
        retry_after: Some(wait),
        ..
    } = error
    else {
        panic!("expected RateLimited with a wait, got {error:?}");
    };
    assert!(
        wait <= Duration::from_secs(30) && wait >= Duration::from_secs(27),
        "{wait:?}"
    );
}
