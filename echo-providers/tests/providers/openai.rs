use std::time::Duration;

use echo_core::provider::{DynProvider, FinishReason, PermanentKind, ProviderError, Secret};
use echo_providers::{OpenAiConfig, OpenAiProvider};

use crate::common::*;

fn make(base: &str, timeout: Duration) -> Box<DynProvider> {
    let config = OpenAiConfig {
        base_url: base.into(),
        timeout,
        ..OpenAiConfig::new(Secret::new(KEY))
    };
    Box::new(OpenAiProvider::new(config).unwrap())
}

const CASE: Case = Case {
    dir: "openai",
    model: "gpt-4o-mini",
    make,
};

error_scenarios!(CASE);

#[tokio::test]
async fn success_sends_the_documented_request_and_reads_the_answer() {
    let (result, server) = call(CASE, json(200, fixture("openai", "success.json")), TIMEOUT).await;
    let completion = result.unwrap();
    assert!(
        completion
            .text
            .starts_with("For an early-stage startup, **HubSpot CRM**")
    );
    assert_eq!(completion.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (27, 118)
    );
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert!(completion.citations.is_empty());
    assert!(completion.latency > Duration::ZERO);

    let request = only_request(&server).await;
    assert_post_json(&request, "/v1/chat/completions");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {KEY}"))
    );
    let body = body(&request);
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Which CRM should a startup use?"},
        ])
    );
    assert_eq!(body["temperature"].as_f64(), Some(0.3));
    assert_eq!(body["max_completion_tokens"], 256);
    assert!(body.get("max_tokens").is_none());
    // Real providers must not get a seed: samples would be correlated.
    assert!(body.get("seed").is_none());
}

#[tokio::test]
async fn without_system_prompt_or_token_cap_those_fields_are_absent() {
    let server = serve(json(200, fixture("openai", "success.json"))).await;
    let mut req = request("gpt-4o-mini");
    req.system_prompt = None;
    req.max_tokens = None;
    make(&server.uri(), TIMEOUT).complete(&req).await.unwrap();
    let body = body(&only_request(&server).await);
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert!(body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn search_model_annotations_become_citations() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("openai", "success_citations.json")),
        TIMEOUT,
    )
    .await;
    assert_eq!(
        urls(&result.unwrap().citations),
        [
            "https://www.hubspot.com/products/crm?utm_source=openai",
            "https://www.pipedrive.com/?utm_source=openai"
        ]
    );
}

#[tokio::test]
async fn refusal_is_content_refused() {
    let (result, _server) = call(CASE, json(200, fixture("openai", "refusal.json")), TIMEOUT).await;
    let error = err(result);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::ContentRefused));
    assert!(error.to_string().contains("can't help"));
}

#[tokio::test]
async fn insufficient_quota_429_is_permanent_not_rate_limited() {
    let template =
        json(429, fixture("openai", "error_429_quota.json")).insert_header("retry-after", "1");
    let (result, _server) = call(CASE, template, TIMEOUT).await;
    let error = err(result);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::QuotaExhausted));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn retry_after_ms_is_preferred() {
    let template = json(429, fixture("openai", "error_429.json"))
        .insert_header("retry-after-ms", "1500")
        .insert_header("retry-after", "2");
    let (result, _server) = call(CASE, template, TIMEOUT).await;
    assert!(matches!(
        err(result),
        ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(1500)
    ));
}

#[tokio::test]
async fn unknown_model_is_bad_request_with_the_providers_message() {
    let (result, _server) = call(
        CASE,
        json(404, fixture("openai", "error_404.json")),
        TIMEOUT,
    )
    .await;
    let error = err(result);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::BadRequest));
    assert!(
        error.to_string().contains("`gpt-9` does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn masked_key_in_401_message_is_redacted() {
    let (result, _server) = call(
        CASE,
        json(401, fixture("openai", "error_401.json")),
        TIMEOUT,
    )
    .await;
    let message = err(result).to_string();
    assert!(
        message.contains("Incorrect API key provided: <redacted>"),
        "{message}"
    );
    assert!(!message.contains("****"), "{message}");
}

#[tokio::test]
async fn organization_and_project_headers_are_sent() {
    let server = serve(json(200, fixture("openai", "success.json"))).await;
    let config = OpenAiConfig {
        base_url: server.uri(),
        organization: Some("org-echo".into()),
        project: Some("proj_echo".into()),
        ..OpenAiConfig::new(Secret::new(KEY))
    };
    let provider = OpenAiProvider::new(config).unwrap();
    echo_core::provider::Provider::complete(&provider, &request("gpt-4o-mini"))
        .await
        .unwrap();
    let request = only_request(&server).await;
    assert_eq!(
        header(&request, "openai-organization").as_deref(),
        Some("org-echo")
    );
    assert_eq!(
        header(&request, "openai-project").as_deref(),
        Some("proj_echo")
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_it() {
    let server = serve(json(200, fixture("openai", "success.json"))).await;
    let provider = make(&format!("{}/gateway/openai/", server.uri()), TIMEOUT);
    provider.complete(&request("gpt-4o-mini")).await.unwrap();
    assert_eq!(
        only_request(&server).await.url.path(),
        "/gateway/openai/v1/chat/completions"
    );
}

fn make_searching(base: &str) -> OpenAiProvider {
    let config = OpenAiConfig {
        base_url: base.into(),
        ..OpenAiConfig::new(Secret::new(KEY))
    }
    .with_web_search(true);
    OpenAiProvider::new(config).unwrap()
}

#[tokio::test]
async fn chat_annotations_keep_titles_and_character_spans() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("openai", "success_citations.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    let sources = &completion.citations;
    assert_eq!(
        titles(sources),
        [Some("Free CRM Software | HubSpot"), Some("Pipedrive CRM")]
    );
    assert_eq!(
        span_texts(&completion.text, &sources[0]),
        ["[hubspot.com](https://www.hubspot.com/products/crm?utm_source=openai)"]
    );
}

#[tokio::test]
async fn web_search_uses_the_responses_api_and_captures_spans() {
    let server = serve(json(200, fixture("openai", "responses_web_search.json"))).await;
    let provider = make_searching(&server.uri());
    let completion = echo_core::provider::Provider::complete(&provider, &request("gpt-4.1"))
        .await
        .unwrap();
    assert_eq!(
        completion.text,
        "HubSpot — free to start — is the usual pick for café-sized startups. \
         Pipedrive suits small sales teams; Zoë's team uses it."
    );
    assert_eq!(completion.model, "gpt-4.1-2025-04-14");
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (328, 356)
    );
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    let sources = &completion.citations;
    assert_eq!(
        urls(sources),
        [
            "https://www.hubspot.com/products/crm?utm_source=openai",
            "https://zapier.com/blog/best-crm-app/?utm_source=openai"
        ]
    );
    assert_eq!(
        titles(sources),
        [
            Some("Free CRM Software | HubSpot"),
            Some("The best CRM software in 2025 | Zapier")
        ]
    );
    // The API's character indices, converted to bytes of the joined answer: the multi-byte
    // dashes, "é" and "ë" would shift byte offsets if they were taken as bytes.
    let first = "HubSpot — free to start — is the usual pick for café-sized startups.";
    let second = "Pipedrive suits small sales teams; Zoë's team uses it.";
    assert_eq!(span_texts(&completion.text, &sources[0]), [first]);
    assert_eq!(span_texts(&completion.text, &sources[1]), [first, second]);

    let request = only_request(&server).await;
    assert_post_json(&request, "/v1/responses");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {KEY}"))
    );
    let body = body(&request);
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["input"], "Which CRM should a startup use?");
    assert_eq!(body["instructions"], "You are a helpful assistant.");
    assert_eq!(body["tools"], serde_json::json!([{"type": "web_search"}]));
    assert_eq!(body["max_output_tokens"], 256);
    assert_eq!(body["temperature"].as_f64(), Some(0.3));
    assert!(body.get("messages").is_none());
}

#[tokio::test]
async fn malformed_responses_citations_are_dropped_one_by_one() {
    let server = serve(json(
        200,
        fixture("openai", "responses_malformed_citations.json"),
    ))
    .await;
    let completion =
        echo_core::provider::Provider::complete(&make_searching(&server.uri()), &request("m"))
            .await
            .unwrap();
    assert_eq!(
        completion.text,
        "HubSpot is the usual pick. Pipedrive suits small teams."
    );
    let sources = &completion.citations;
    assert_eq!(
        urls(sources),
        [
            "https://www.hubspot.com/",
            "https://reversed.example/",
            "https://past-end.example/",
            "https://bad-index.example/"
        ]
    );
    assert_eq!(
        titles(sources),
        [
            Some("HubSpot"),
            Some("reversed span"),
            Some("span past the end"),
            None
        ]
    );
    // The upper-case duplicate is the same page: its span joins the first entry's.
    assert_eq!(
        span_texts(&completion.text, &sources[0]),
        ["HubSpot is the usual pick.", "Pipedrive suits small teams."]
    );
    assert!(sources[1..].iter().all(|s| s.spans.is_empty()));
}

#[tokio::test]
async fn a_flood_of_annotations_is_capped_and_the_answer_kept() {
    let annotations: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({"type": "url_citation", "start_index": 0, "end_index": 5,
                               "url": format!("https://site{}.example/", i % 5_000),
                               "title": format!("Site {i}")})
        })
        .collect();
    let body = serde_json::json!({
        "model": "gpt-4.1", "status": "completed",
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "output": [{"type": "message", "content": [
            {"type": "output_text", "text": "Hello world", "annotations": annotations}]}]
    });
    let server = serve(json(200, body.to_string())).await;
    let completion =
        echo_core::provider::Provider::complete(&make_searching(&server.uri()), &request("m"))
            .await
            .unwrap();
    assert_eq!(completion.text, "Hello world");
    assert_eq!(
        completion.citations.len(),
        echo_core::provider::MAX_SOURCES_PER_ANSWER
    );
    assert_eq!(completion.citations[0].url, "https://site0.example/");
    assert_eq!(
        span_texts(&completion.text, &completion.citations[0]),
        ["Hello"]
    );
}

#[tokio::test]
async fn responses_truncation_and_refusal_are_classified() {
    let truncated = serde_json::json!({
        "model": "gpt-4.1", "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 1, "output_tokens": 256},
        "output": [{"type": "message", "content": [
            {"type": "output_text", "text": "HubSpot is", "annotations": []}]}]
    });
    let server = serve(json(200, truncated.to_string())).await;
    let completion =
        echo_core::provider::Provider::complete(&make_searching(&server.uri()), &request("m"))
            .await
            .unwrap();
    assert_eq!(completion.finish_reason, FinishReason::Length);

    let refused = serde_json::json!({
        "model": "gpt-4.1", "status": "completed",
        "usage": {"input_tokens": 1, "output_tokens": 5},
        "output": [{"type": "message", "content": [
            {"type": "refusal", "refusal": "I can't help with that."}]}]
    });
    let server = serve(json(200, refused.to_string())).await;
    let error =
        echo_core::provider::Provider::complete(&make_searching(&server.uri()), &request("m"))
            .await
            .unwrap_err();
    assert_eq!(permanent_kind(&error), Some(PermanentKind::ContentRefused));
}
