use std::time::Duration;

use echo_core::provider::{DynProvider, FinishReason, PermanentKind, ProviderError, Secret};
use echo_providers::{ANTHROPIC_VERSION, AnthropicConfig, AnthropicProvider};

use crate::common::*;

fn make(base: &str, timeout: Duration) -> Box<DynProvider> {
    let config = AnthropicConfig {
        base_url: base.into(),
        timeout,
        ..AnthropicConfig::new(Secret::new(KEY))
    };
    Box::new(AnthropicProvider::new(config).unwrap())
}

const CASE: Case = Case {
    dir: "anthropic",
    model: "claude-sonnet-4-20250514",
    make,
};

error_scenarios!(CASE);

#[tokio::test]
async fn success_sends_the_documented_request_and_reads_the_answer() {
    let (result, server) = call(
        CASE,
        json(200, fixture("anthropic", "success.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    // Text blocks concatenated; the thinking block is not part of the answer.
    assert_eq!(
        completion.text,
        "For most startups I'd start with **HubSpot CRM**: its free tier is generous. \
         If your team is sales-led, **Pipedrive** is simpler and cheaper than Salesforce."
    );
    assert_eq!(completion.model, "claude-sonnet-4-20250514");
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (31, 142)
    );
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert!(completion.citations.is_empty());

    let request = only_request(&server).await;
    assert_post_json(&request, "/v1/messages");
    assert_eq!(header(&request, "x-api-key").as_deref(), Some(KEY));
    assert_eq!(
        header(&request, "anthropic-version").as_deref(),
        Some(ANTHROPIC_VERSION)
    );
    assert!(header(&request, "authorization").is_none());
    let body = body(&request);
    assert_eq!(body["model"], "claude-sonnet-4-20250514");
    assert_eq!(body["system"], "You are a helpful assistant.");
    assert_eq!(
        body["messages"],
        serde_json::json!([{"role": "user", "content": "Which CRM should a startup use?"}])
    );
    assert_eq!(body["temperature"].as_f64(), Some(0.3));
    assert_eq!(body["max_tokens"], 256);
}

#[tokio::test]
async fn max_tokens_defaults_because_the_api_requires_it() {
    let server = serve(json(200, fixture("anthropic", "success.json"))).await;
    let mut req = request("claude-3-5-haiku-latest");
    req.max_tokens = None;
    req.system_prompt = None;
    make(&server.uri(), TIMEOUT).complete(&req).await.unwrap();
    let body = body(&only_request(&server).await);
    assert_eq!(body["max_tokens"], 1024);
    assert!(body.get("system").is_none());
}

#[tokio::test]
async fn web_search_citations_are_collected() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("anthropic", "success_citations.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert_eq!(
        completion.text,
        "According to recent reviews, HubSpot is the most recommended free CRM for startups."
    );
    assert_eq!(
        urls(&completion.citations),
        [
            "https://zapier.com/blog/best-crm-app/",
            "https://www.forbes.com/advisor/business/software/best-crm-small-business/"
        ]
    );
}

#[tokio::test]
async fn refusal_is_content_refused() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("anthropic", "refusal.json")),
        TIMEOUT,
    )
    .await;
    assert_eq!(
        permanent_kind(&err(result)),
        Some(PermanentKind::ContentRefused)
    );
}

#[tokio::test]
async fn overloaded_529_is_transient() {
    let (result, _server) = call(
        CASE,
        json(529, fixture("anthropic", "error_529.json")),
        TIMEOUT,
    )
    .await;
    let error = err(result);
    assert!(
        matches!(
            error,
            ProviderError::Transient {
                status: Some(529),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("Overloaded"));
}

#[tokio::test]
async fn low_credit_balance_is_quota_exhausted() {
    let (result, _server) = call(
        CASE,
        json(400, fixture("anthropic", "error_400_credit.json")),
        TIMEOUT,
    )
    .await;
    assert_eq!(
        permanent_kind(&err(result)),
        Some(PermanentKind::QuotaExhausted)
    );
}

fn make_searching(base: &str) -> AnthropicProvider {
    let config = AnthropicConfig {
        base_url: base.into(),
        ..AnthropicConfig::new(Secret::new(KEY))
    }
    .with_web_search(true);
    AnthropicProvider::new(config).unwrap()
}

#[tokio::test]
async fn web_search_sends_the_tool_and_spans_are_the_citing_blocks() {
    let server = serve(json(200, fixture("anthropic", "success_citations.json"))).await;
    let completion = echo_core::provider::Provider::complete(
        &make_searching(&server.uri()),
        &request("claude-sonnet-4-20250514"),
    )
    .await
    .unwrap();
    let sources = &completion.citations;
    assert_eq!(
        titles(sources),
        [
            Some("The best CRM software in 2025 | Zapier"),
            Some("Best CRM For Small Business Of 2025 | Forbes Advisor")
        ]
    );
    for source in sources {
        assert_eq!(
            span_texts(&completion.text, source),
            ["HubSpot is the most recommended free CRM for startups"]
        );
    }
    let body = body(&only_request(&server).await);
    assert_eq!(
        body["tools"],
        serde_json::json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
    );
}

#[tokio::test]
async fn without_web_search_no_tool_is_sent() {
    let server = serve(json(200, fixture("anthropic", "success.json"))).await;
    make(&server.uri(), TIMEOUT)
        .complete(&request("claude-sonnet-4-20250514"))
        .await
        .unwrap();
    assert!(body(&only_request(&server).await).get("tools").is_none());
}

#[tokio::test]
async fn malformed_web_search_data_is_dropped_and_titles_come_from_results() {
    let server = serve(json(200, fixture("anthropic", "web_search_malformed.json"))).await;
    let completion = echo_core::provider::Provider::complete(
        &make_searching(&server.uri()),
        &request("claude-sonnet-4-20250514"),
    )
    .await
    .unwrap();
    assert_eq!(
        completion.text,
        "HubSpot is free to start. Pipedrive is simpler."
    );
    let sources = &completion.citations;
    // An empty text block's citation is still a cited page, only without a span.
    assert_eq!(
        urls(sources),
        [
            "https://www.g2.com/categories/crm",
            "https://empty-block.example/"
        ]
    );
    // The first citation has no title; the search result that found the page has one.
    assert_eq!(
        titles(sources),
        [Some("Best CRM Software | G2"), Some("empty")]
    );
    assert!(sources[1].spans.is_empty());
    assert_eq!(
        span_texts(&completion.text, &sources[0]),
        ["HubSpot is free to start. "]
    );
}
