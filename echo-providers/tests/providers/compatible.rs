use std::time::Duration;

use echo_core::provider::{DynProvider, PermanentKind, Provider, Secret};
use echo_providers::{AuthStyle, MaxTokensField, OpenAiCompatibleConfig, OpenAiCompatibleProvider};

use crate::common::*;

fn make(base: &str, timeout: Duration) -> Box<DynProvider> {
    let config = OpenAiCompatibleConfig {
        api_key: Some(Secret::new(KEY)),
        timeout,
        ..OpenAiCompatibleConfig::new(format!("{base}/v1"))
    };
    Box::new(OpenAiCompatibleProvider::new(config).unwrap())
}

const CASE: Case = Case {
    dir: "openai_compatible",
    model: "llama3.2:3b",
    make,
};

error_scenarios!(CASE);

#[tokio::test]
async fn success_against_an_ollama_style_server() {
    let (result, server) = call(
        CASE,
        json(200, fixture("openai_compatible", "success.json")),
        TIMEOUT,
    )
    .await;
    let completion = result.unwrap();
    assert!(completion.text.contains("HubSpot CRM"));
    assert_eq!(completion.model, "llama3.2:3b");
    assert_eq!(
        (completion.input_tokens, completion.output_tokens),
        (30, 95)
    );

    let request = only_request(&server).await;
    assert_post_json(&request, "/v1/chat/completions");
    assert_eq!(
        header(&request, "authorization"),
        Some(format!("Bearer {KEY}"))
    );
    let body = body(&request);
    assert_eq!(body["model"], "llama3.2:3b");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][1]["content"],
        "Which CRM should a startup use?"
    );
    assert_eq!(body["temperature"].as_f64(), Some(0.3));
    assert_eq!(body["max_tokens"], 256);
}

#[tokio::test]
async fn no_key_means_no_auth_header_and_missing_model_or_usage_is_tolerated() {
    let server = serve(json(
        200,
        fixture("openai_compatible", "success_minimal.json"),
    ))
    .await;
    let provider =
        OpenAiCompatibleProvider::new(OpenAiCompatibleConfig::new(server.uri())).unwrap();
    let completion = provider.complete(&request("qwen2.5")).await.unwrap();
    assert_eq!(completion.text, "Try Pipedrive.");
    assert_eq!(completion.model, "qwen2.5");
    assert_eq!((completion.input_tokens, completion.output_tokens), (0, 0));
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/chat/completions");
    assert!(header(&request, "authorization").is_none());
}

#[tokio::test]
async fn azure_style_api_key_header_query_string_and_extra_headers() {
    let server = serve(json(200, fixture("openai_compatible", "success.json"))).await;
    let config = OpenAiCompatibleConfig {
        api_key: Some(Secret::new(KEY)),
        auth_style: AuthStyle::ApiKeyHeader,
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        extra_headers: vec![("x-gateway-team".into(), Secret::new("team-echo"))],
        ..OpenAiCompatibleConfig::new(format!(
            "{}/openai/deployments/gpt-4o?api-version=2024-10-21",
            server.uri()
        ))
    };
    let provider = OpenAiCompatibleProvider::new(config).unwrap();
    assert!(!format!("{provider:?}").contains("api-version"));
    provider.complete(&request("gpt-4o")).await.unwrap();
    let request = only_request(&server).await;
    assert_eq!(
        request.url.path(),
        "/openai/deployments/gpt-4o/chat/completions"
    );
    assert_eq!(request.url.query(), Some("api-version=2024-10-21"));
    assert_eq!(header(&request, "api-key").as_deref(), Some(KEY));
    assert!(header(&request, "authorization").is_none());
    assert_eq!(
        header(&request, "x-gateway-team").as_deref(),
        Some("team-echo")
    );
    assert_eq!(body(&request)["max_completion_tokens"], 256);
}

#[tokio::test]
async fn custom_auth_header() {
    let server = serve(json(200, fixture("openai_compatible", "success.json"))).await;
    let config = OpenAiCompatibleConfig {
        api_key: Some(Secret::new(KEY)),
        auth_style: AuthStyle::Header("x-litellm-key".into()),
        ..OpenAiCompatibleConfig::new(server.uri())
    };
    OpenAiCompatibleProvider::new(config)
        .unwrap()
        .complete(&request("m"))
        .await
        .unwrap();
    let request = only_request(&server).await;
    assert_eq!(header(&request, "x-litellm-key").as_deref(), Some(KEY));
}

#[tokio::test]
async fn ollama_model_not_found_is_bad_request_with_its_message() {
    let (result, _server) = call(
        CASE,
        json(404, fixture("openai_compatible", "error_404.json")),
        TIMEOUT,
    )
    .await;
    let error = err(result);
    assert_eq!(permanent_kind(&error), Some(PermanentKind::BadRequest));
    assert!(
        error.to_string().contains("try pulling it first"),
        "{error}"
    );
}

#[tokio::test]
async fn plain_string_error_body_is_the_message() {
    let (result, _server) = call(
        CASE,
        json(401, fixture("openai_compatible", "error_401.json")),
        TIMEOUT,
    )
    .await;
    assert!(err(result).to_string().ends_with("HTTP 401: Unauthorized"));
}
