use std::time::Duration;

use echo_core::provider::{DynProvider, FinishReason, PermanentKind, ProviderError, Secret};
use echo_providers::{GeminiConfig, GeminiProvider};

use crate::common::*;

fn make(base: &str, timeout: Duration) -> Box<DynProvider> {
    let config = GeminiConfig {
        base_url: base.into(),
        timeout,
        ..GeminiConfig::new(Secret::new(KEY))
    };
    Box::new(GeminiProvider::new(config).unwrap())
}

const CASE: Case = Case {
    dir: "gemini",
    model: "gemini-2.5-flash",
    make,
};

error_scenarios!(CASE);

#[tokio::test]
async fn success_sends_the_documented_request_and_reads_the_answer() {
    let (result, server) = call(CASE, json(200, fixture("gemini", "success.json")), TIMEOUT).await;
    let completion = result.unwrap();
    // Thought parts are not part of the answer.
    assert_eq!(
        completion.text,
        "For a startup, **HubSpot CRM** is the easiest place to begin. \
         **Zoho CRM** and **Pipedrive** are cheaper paid alternatives."
    );
    assert_eq!(completion.model, "gemini-2.5-flash");
    // Thinking tokens are billed as output.
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (12, 140 + 108)
    );
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert!(completion.citations.is_empty());

    let request = only_request(&server).await;
    assert_post_json(&request, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(header(&request, "x-goog-api-key").as_deref(), Some(KEY));
    // The key never goes in the URL, where it would reach access logs.
    assert!(request.url.query().is_none());
    assert_no_key(request.url.as_str());
    let body = body(&request);
    assert_eq!(
        body["contents"],
        serde_json::json!([{"role": "user", "parts": [{"text": "Which CRM should a startup use?"}]}])
    );
    assert_eq!(
        body["systemInstruction"],
        serde_json::json!({"parts": [{"text": "You are a helpful assistant."}]})
    );
    assert_eq!(body["generationConfig"]["temperature"].as_f64(), Some(0.3));
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn grounding_chunks_become_citations_and_search_is_requested() {
    let server = serve(json(200, fixture("gemini", "success_grounded.json"))).await;
    let config = GeminiConfig {
        base_url: server.uri(),
        google_search: true,
        ..GeminiConfig::new(Secret::new(KEY))
    };
    let provider = GeminiProvider::new(config).unwrap();
    let completion =
        echo_core::provider::Provider::complete(&provider, &request("models/gemini-2.0-flash"))
            .await
            .unwrap();
    assert_eq!(completion.model, "gemini-2.0-flash");
    assert_eq!(
        urls(&completion.citations),
        [
            "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQHhubspot",
            "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQHpipedrive"
        ]
    );
    let request = only_request(&server).await;
    // A `models/` prefix in the model name is not doubled.
    assert_eq!(
        request.url.path(),
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        body(&request)["tools"],
        serde_json::json!([{"google_search": {}}])
    );
}

#[tokio::test]
async fn blocked_prompt_is_content_refused() {
    let (result, _server) = call(CASE, json(200, fixture("gemini", "blocked.json")), TIMEOUT).await;
    let error = err(result);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::ContentRefused));
    assert!(error.to_string().contains("SAFETY"), "{error}");
}

#[tokio::test]
async fn safety_stop_without_text_is_content_refused() {
    let body = r#"{"candidates":[{"finishReason":"SAFETY","index":0}],
                   "usageMetadata":{"promptTokenCount":8},"modelVersion":"gemini-2.5-flash"}"#;
    let (result, _server) = call(CASE, json(200, body), TIMEOUT).await;
    assert_eq!(
        permanent_kind(&err(result)),
        Some(PermanentKind::ContentRefused)
    );
}

#[tokio::test]
async fn invalid_api_key_400_is_authentication() {
    let (result, _server) = call(
        CASE,
        json(400, fixture("gemini", "error_400_api_key.json")),
        TIMEOUT,
    )
    .await;
    assert_eq!(
        permanent_kind(&err(result)),
        Some(PermanentKind::Authentication)
    );
}

#[tokio::test]
async fn retry_delay_in_the_body_is_used_without_a_header() {
    let (result, _server) = call(
        CASE,
        json(429, fixture("gemini", "error_429.json")),
        TIMEOUT,
    )
    .await;
    assert!(matches!(
        err(result),
        ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(37)
    ));
}

#[tokio::test]
async fn unavailable_503_is_transient() {
    let (result, _server) = call(
        CASE,
        json(503, fixture("gemini", "error_503.json")),
        TIMEOUT,
    )
    .await;
    assert!(matches!(
        err(result),
        ProviderError::Transient {
            status: Some(503),
            ..
        }
    ));
}

#[tokio::test]
async fn a_model_name_that_would_change_the_path_is_rejected_before_sending() {
    let server = serve(json(200, fixture("gemini", "success.json"))).await;
    let provider = make(&server.uri(), TIMEOUT);
    let error = err(provider.complete(&request("../../v1/files")).await);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::BadRequest));
    assert!(server.received_requests().await.unwrap().is_empty());
}

fn make_grounded(base: &str) -> GeminiProvider {
    let config = GeminiConfig {
        base_url: base.into(),
        ..GeminiConfig::new(Secret::new(KEY))
    }
    .with_google_search(true);
    GeminiProvider::new(config).unwrap()
}

#[tokio::test]
async fn grounding_supports_become_spans_of_the_joined_answer() {
    let server = serve(json(200, fixture("gemini", "grounded_spans.json"))).await;
    let completion = echo_core::provider::Provider::complete(
        &make_grounded(&server.uri()),
        &request("gemini-2.5-flash"),
    )
    .await
    .unwrap();
    // The thought part is not in the answer, so part 1 starts at byte 0 and part 2 after it.
    assert_eq!(
        completion.text,
        "HubSpot’s free plan suits most startups. Pipedrive is simpler for small sales teams."
    );
    let sources = &completion.citations;
    assert_eq!(
        titles(sources),
        [
            Some("hubspot.com"),
            Some("zapier.com"),
            Some("pipedrive.com")
        ]
    );
    let first = "HubSpot’s free plan suits most startups.";
    let second = "Pipedrive is simpler for small sales teams.";
    assert_eq!(span_texts(&completion.text, &sources[0]), [first]);
    assert_eq!(span_texts(&completion.text, &sources[1]), [first, second]);
    assert_eq!(span_texts(&completion.text, &sources[2]), [second]);
}

#[tokio::test]
async fn malformed_grounding_is_dropped_piece_by_piece() {
    let server = serve(json(200, fixture("gemini", "grounded_malformed.json"))).await;
    let completion = echo_core::provider::Provider::complete(
        &make_grounded(&server.uri()),
        &request("gemini-2.5-flash"),
    )
    .await
    .unwrap();
    assert_eq!(completion.text, "HubSpot’s free plan suits most startups.");
    let sources = &completion.citations;
    assert_eq!(
        urls(sources),
        ["https://vertexaisearch.cloud.google.com/grounding-api-redirect/ok"]
    );
    assert_eq!(titles(sources), [Some("hubspot.com")]);
    // Only the one segment that is inside the part, on character boundaries and in order
    // survives; a segment ending inside "’" (three bytes) does not.
    assert_eq!(span_texts(&completion.text, &sources[0]), ["HubSpot"]);
}
