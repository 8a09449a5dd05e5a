use std::time::Duration;

use echo_core::provider::{DynProvider, FinishReason, Secret};
use echo_providers::{PerplexityConfig, PerplexityProvider};

use crate::common::*;

fn make(base: &str, timeout: Duration) -> Box<DynProvider> {
    let config = PerplexityConfig {
        base_url: base.into(),
        timeout,
        ..PerplexityConfig::new(Secret::new(KEY))
    };
    Box::new(PerplexityProvider::new(config).unwrap())
}

const CASE: Case = Case {
    dir: "perplexity",
    model: "sonar",
    make,
};

error_scenarios!(CASE);

#[tokio::test]
async fn success_sends_the_documented_request_and_collects_citations() {
    let (result, server) = call(
        CASE,
        json(200, fixture("perplexity", "success.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert!(
        completion
            .text
            .starts_with("Startups most often choose **HubSpot CRM**")
    );
    assert_eq!(completion.model, "sonar");
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (14, 180)
    );
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    // `citations` first, in Perplexity's numbering, then search results not already cited.
    assert_eq!(
        urls(&completion.citations),
        [
            "https://www.hubspot.com/products/crm",
            "https://www.pipedrive.com/",
            "https://zapier.com/blog/best-crm-app/",
            "https://www.forbes.com/advisor/business/software/best-crm-small-business/"
        ]
    );

    let request = only_request(&server).await;
    assert_post_json(&request, "/chat/completions");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {KEY}"))
    );
    let body = body(&request);
    assert_eq!(body["model"], "sonar");
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Which CRM should a startup use?"},
        ])
    );
    assert_eq!(body["temperature"].as_f64(), Some(0.3));
    assert_eq!(body["max_tokens"], 256);
    assert!(body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn reasoning_block_is_not_part_of_the_answer() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("perplexity", "success_reasoning.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert_eq!(
        completion.text,
        "**Pipedrive** is the best fit for a small sales team[1]."
    );
    assert!(!completion.text.contains("HubSpot"));
}

#[tokio::test]
async fn search_result_titles_are_matched_to_citations_by_url() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("perplexity", "success.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert_eq!(
        titles(&completion.citations),
        [
            Some("Free CRM Software | HubSpot"),
            None,
            None,
            Some("Best CRM For Small Business Of 2025")
        ]
    );
    // Perplexity marks support with `[n]` in the text, not with offsets: no spans.
    assert!(completion.citations.iter().all(|s| s.spans.is_empty()));
}

#[tokio::test]
async fn malformed_citations_are_dropped_and_the_answer_kept() {
    let (result, _server) = call(
        CASE,
        json(200, fixture("perplexity", "malformed_citations.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert!(completion.text.starts_with("Startups most often choose"));
    assert_eq!(
        urls(&completion.citations),
        [
            "https://www.hubspot.com/products/crm",
            "https://www.pipedrive.com/"
        ]
    );
    assert_eq!(
        titles(&completion.citations),
        [
            Some("Free CRM Software | HubSpot"),
            Some("Pipedrive: the CRM")
        ]
    );
}

#[tokio::test]
async fn ten_thousand_citations_are_capped() {
    let mut body: serde_json::Value =
        serde_json::from_str(&fixture("perplexity", "success.json")).unwrap();
    body["citations"] = (0..10_000)
        .map(|i| format!("https://news{i}.example/story"))
        .collect();
    let (result, _server) = call(CASE, json(200, body.to_string()), TIMEOUT).await;
    let completion = result.unwrap();
    assert_eq!(
        completion.citations.len(),
        echo_core::provider::MAX_SOURCES_PER_ANSWER
    );
    assert_eq!(completion.citations[0].url, "https://news0.example/story");
}
