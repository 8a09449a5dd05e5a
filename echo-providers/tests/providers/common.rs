//! Fixtures, mock-server helpers and the error scenarios every provider must pass.

// Built with no provider feature, nothing uses these.
#![cfg_attr(
    not(any(
        feature = "openai",
        feature = "anthropic",
        feature = "gemini",
        feature = "perplexity",
        feature = "openai-compatible"
    )),
    allow(dead_code, unused_macros)
)]

use std::time::{Duration, Instant};

use echo_core::provider::{
    CitedSource, Completion, CompletionRequest, DynProvider, PermanentKind, ProviderError,
};
use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The test API key: it must appear in the request's auth header and nowhere else.
pub const KEY: &str = "sk-test-echo-0123456789abcdef-KEY";

/// Timeout for scenarios that are not about time-outs.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How one provider is built against a mock server.
#[derive(Clone, Copy)]
pub struct Case {
    /// Directory under `tests/fixtures/`.
    pub dir: &'static str,
    /// Model named in the request.
    pub model: &'static str,
    /// Builds the provider (without retries) for a base URL and a call timeout.
    pub make: fn(&str, Duration) -> Box<DynProvider>,
}

pub fn fixture(dir: &str, name: &str) -> String {
    let path = format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        prompt: "Which CRM should a startup use?".into(),
        model: model.into(),
        temperature: 0.3,
        max_tokens: Some(256),
        system_prompt: Some("You are a helpful assistant.".into()),
        sample_index: 3,
    }
}

pub fn json(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "application/json")
}

/// A mock server answering every request with `template`.
pub async fn serve(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// Calls `case`'s provider once against a server answering with `template`.
pub async fn call(
    case: Case,
    template: ResponseTemplate,
    timeout: Duration,
) -> (Result<Completion, ProviderError>, MockServer) {
    let server = serve(template).await;
    let provider = (case.make)(&server.uri(), timeout);
    let result = provider.complete(&request(case.model)).await;
    (result, server)
}

pub async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording is on");
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

pub fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

pub fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("request body is JSON")
}

/// Checks what every provider sends: a JSON POST to `path` with Echo's user agent.
pub fn assert_post_json(request: &Request, path: &str) {
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), path);
    assert_eq!(
        header(request, "content-type").as_deref(),
        Some("application/json")
    );
    let agent = header(request, "user-agent").unwrap_or_default();
    assert!(agent.starts_with("echo/"), "user-agent {agent:?}");
}

pub fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the API key leaked into: {text}");
    assert!(
        !text.contains("0123456789abcdef"),
        "part of the API key leaked into: {text}"
    );
}

pub fn assert_clean(error: &ProviderError) {
    assert_no_key(&format!("{error} {error:?}"));
}

pub fn permanent_kind(error: &ProviderError) -> Option<PermanentKind> {
    match error {
        ProviderError::Permanent { kind, .. } => Some(*kind),
        _ => None,
    }
}

pub fn err(result: Result<Completion, ProviderError>) -> ProviderError {
    let error = result.expect_err("expected an error");
    assert_clean(&error);
    error
}

pub async fn unauthorized(case: Case) {
    let (result, _server) = call(
        case,
        json(401, fixture(case.dir, "error_401.json")),
        TIMEOUT,
    )
    .await;
    let error = err(result);
    assert!(
        matches!(
            error,
            ProviderError::Permanent {
                kind: PermanentKind::Authentication,
                status: Some(401),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

pub async fn rate_limited(case: Case) {
    let template = json(429, fixture(case.dir, "error_429.json")).insert_header("retry-after", "7");
    let (result, _server) = call(case, template, TIMEOUT).await;
    match err(result) {
        ProviderError::RateLimited {
            retry_after,
            message,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

pub async fn server_error(case: Case) {
    let (result, _server) = call(
        case,
        json(500, fixture(case.dir, "error_500.json")),
        TIMEOUT,
    )
    .await;
    let error = err(result);
    assert!(
        matches!(
            error,
            ProviderError::Transient {
                status: Some(500),
                ..
            }
        ),
        "{error:?}"
    );
}

pub async fn malformed_json(case: Case) {
    let success = fixture(case.dir, "success.json");
    let truncated: String = success.chars().take(success.chars().count() / 2).collect();
    let (result, _server) = call(case, json(200, truncated), TIMEOUT).await;
    let error = err(result);
    assert_eq!(
        permanent_kind(&error),
        Some(PermanentKind::InvalidResponse),
        "{error:?}"
    );
}

pub async fn wrong_shape(case: Case) {
    let (result, _server) = call(case, json(200, r#"{"unexpected": true}"#), TIMEOUT).await;
    let error = err(result);
    assert_eq!(
        permanent_kind(&error),
        Some(PermanentKind::InvalidResponse),
        "{error:?}"
    );
}

pub async fn empty_answer(case: Case) {
    let (result, _server) = call(case, json(200, fixture(case.dir, "empty.json")), TIMEOUT).await;
    let error = err(result);
    assert_eq!(
        permanent_kind(&error),
        Some(PermanentKind::InvalidResponse),
        "{error:?}"
    );
}

pub async fn hung_connection(case: Case) {
    let limit = Duration::from_millis(200);
    let template = json(200, fixture(case.dir, "success.json")).set_delay(Duration::from_secs(5));
    let started = Instant::now();
    let (result, _server) = call(case, template, limit).await;
    assert_eq!(err(result), ProviderError::Timeout(limit));
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A gateway that echoes the key back must not get it into our errors.
pub async fn echoed_key_is_scrubbed(case: Case) {
    let body = serde_json::json!({"error": {"message": format!("key {KEY} is not allowed here")}});
    let (result, _server) = call(case, json(400, body.to_string()), TIMEOUT).await;
    let error = err(result);
    assert!(error.to_string().contains("<redacted>"), "{error}");
    let provider = (case.make)("http://127.0.0.1:9", TIMEOUT);
    assert_no_key(&format!("{provider:?}"));
}

/// Expands the scenarios every provider must pass into `#[tokio::test]`s.
macro_rules! error_scenarios {
    ($case:expr) => {
        #[tokio::test]
        async fn status_401_is_permanent_authentication() {
            $crate::common::unauthorized($case).await;
        }
        #[tokio::test]
        async fn status_429_is_rate_limited_with_retry_after() {
            $crate::common::rate_limited($case).await;
        }
        #[tokio::test]
        async fn status_500_is_transient() {
            $crate::common::server_error($case).await;
        }
        #[tokio::test]
        async fn malformed_json_is_invalid_response() {
            $crate::common::malformed_json($case).await;
        }
        #[tokio::test]
        async fn unexpected_json_shape_is_invalid_response() {
            $crate::common::wrong_shape($case).await;
        }
        #[tokio::test]
        async fn empty_answer_is_invalid_response() {
            $crate::common::empty_answer($case).await;
        }
        #[tokio::test]
        async fn hung_connection_times_out() {
            $crate::common::hung_connection($case).await;
        }
        #[tokio::test]
        async fn echoed_key_is_scrubbed_and_debug_is_redacted() {
            $crate::common::echoed_key_is_scrubbed($case).await;
        }
    };
}

/// The cited sources' URLs, in order: what most assertions compare.
#[cfg_attr(
    not(any(
        feature = "openai",
        feature = "anthropic",
        feature = "gemini",
        feature = "perplexity"
    )),
    allow(dead_code)
)]
pub fn urls(sources: &[CitedSource]) -> Vec<&str> {
    sources.iter().map(|s| s.url.as_str()).collect()
}

/// The answer text each span of `source` covers; panics on a span that is not valid in
/// `text`, which the normaliser must never let through.
#[cfg_attr(
    not(any(feature = "openai", feature = "anthropic", feature = "gemini")),
    allow(dead_code)
)]
pub fn span_texts<'a>(text: &'a str, source: &CitedSource) -> Vec<&'a str> {
    source
        .spans
        .iter()
        .map(|s| {
            s.slice(text)
                .unwrap_or_else(|| panic!("invalid span {s:?}"))
        })
        .collect()
}

/// The title of each source, in order.
#[cfg_attr(
    not(any(
        feature = "openai",
        feature = "anthropic",
        feature = "gemini",
        feature = "perplexity"
    )),
    allow(dead_code)
)]
pub fn titles(sources: &[CitedSource]) -> Vec<Option<&str>> {
    sources.iter().map(|s| s.title.as_deref()).collect()
}
