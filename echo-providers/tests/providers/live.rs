//! Calls to the real APIs: `#[ignore]`d, run with `cargo test -p echo-providers -- --ignored`.
//! Each reads its key from the environment and skips (passing, with a note) when it is absent.

use echo_core::model::ProviderKind;
use echo_core::provider::{CompletionRequest, Secret};
use echo_providers::{ProviderSettings, build};

fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

async fn ask(kind: ProviderKind, settings: ProviderSettings, model: String) {
    let provider = build(kind, settings).unwrap();
    let request = CompletionRequest {
        prompt: "Name three CRM products for small businesses. Answer in one line.".into(),
        model,
        temperature: 0.2,
        max_tokens: Some(200),
        system_prompt: Some("Be brief.".into()),
        sample_index: 0,
    };
    let completion = provider.complete(&request).await.unwrap();
    eprintln!("{kind}: {completion:?}");
    assert!(!completion.text.trim().is_empty());
    assert!(completion.input_tokens > 0 || kind == ProviderKind::OpenAiCompatible);
}

async fn hosted(kind: ProviderKind, key_var: &str, model_var: &str, default_model: &str) {
    let Some(key) = env(key_var) else { return };
    let model = std::env::var(model_var).unwrap_or_else(|_| default_model.to_owned());
    let settings = ProviderSettings {
        api_key: Some(Secret::new(key)),
        ..ProviderSettings::default()
    };
    ask(kind, settings, model).await;
}

#[tokio::test]
#[ignore = "calls the OpenAI API; needs OPENAI_API_KEY"]
async fn openai_live() {
    hosted(
        ProviderKind::OpenAi,
        "OPENAI_API_KEY",
        "OPENAI_MODEL",
        "gpt-4o-mini",
    )
    .await;
}

#[tokio::test]
#[ignore = "calls the Anthropic API; needs ANTHROPIC_API_KEY"]
async fn anthropic_live() {
    hosted(
        ProviderKind::Anthropic,
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_MODEL",
        "claude-3-5-haiku-latest",
    )
    .await;
}

#[tokio::test]
#[ignore = "calls the Gemini API; needs GEMINI_API_KEY"]
async fn gemini_live() {
    hosted(
        ProviderKind::Gemini,
        "GEMINI_API_KEY",
        "GEMINI_MODEL",
        "gemini-2.5-flash",
    )
    .await;
}

#[tokio::test]
#[ignore = "calls the Perplexity API; needs PERPLEXITY_API_KEY"]
async fn perplexity_live() {
    hosted(
        ProviderKind::Perplexity,
        "PERPLEXITY_API_KEY",
        "PERPLEXITY_MODEL",
        "sonar",
    )
    .await;
}

#[tokio::test]
#[ignore = "calls an OpenAI-compatible server; needs OPENAI_COMPATIBLE_BASE_URL and _MODEL"]
async fn openai_compatible_live() {
    let (Some(base_url), Some(model)) = (
        env("OPENAI_COMPATIBLE_BASE_URL"),
        env("OPENAI_COMPATIBLE_MODEL"),
    ) else {
        return;
    };
    let settings = ProviderSettings {
        base_url: Some(base_url),
        api_key: std::env::var("OPENAI_COMPATIBLE_API_KEY")
            .ok()
            .map(Secret::new),
        ..ProviderSettings::default()
    };
    ask(ProviderKind::OpenAiCompatible, settings, model).await;
}
