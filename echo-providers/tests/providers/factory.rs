//! `build`, and the guarantee that no key reaches `Debug` or an error.

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::Secret;
use echo_providers::{BuildError, ProviderSettings, build};

use crate::common::*;

fn settings() -> ProviderSettings {
    ProviderSettings {
        api_key: Some(Secret::new(KEY)),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        extra_headers: vec![("x-team".into(), Secret::new("team-echo-secret"))],
        ..ProviderSettings::default()
    }
}

#[test]
fn every_real_provider_builds_and_its_debug_shows_no_secret() {
    for kind in ProviderKind::ALL
        .iter()
        .filter(|k| **k != ProviderKind::Simulated)
    {
        let provider = build(*kind, settings()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(provider.kind(), *kind);
        let debug = format!("{provider:?}");
        assert_no_key(&debug);
        assert!(!debug.contains("team-echo-secret"), "{debug}");
    }
    assert_no_key(&format!("{:?}", settings()));
}

#[test]
fn the_default_endpoints_are_the_real_ones() {
    for (kind, host) in [
        (
            ProviderKind::OpenAi,
            "https://api.openai.com/v1/chat/completions",
        ),
        (
            ProviderKind::Anthropic,
            "https://api.anthropic.com/v1/messages",
        ),
        (
            ProviderKind::Gemini,
            "https://generativelanguage.googleapis.com/",
        ),
        (
            ProviderKind::Perplexity,
            "https://api.perplexity.ai/chat/completions",
        ),
    ] {
        let provider = build(
            kind,
            ProviderSettings {
                api_key: Some(Secret::new(KEY)),
                ..ProviderSettings::default()
            },
        )
        .unwrap();
        let debug = format!("{provider:?}");
        assert!(debug.contains(host), "{kind}: {debug}");
    }
}

#[test]
fn missing_settings_are_named() {
    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Perplexity,
    ] {
        let error = build(kind, ProviderSettings::default()).unwrap_err();
        assert!(matches!(error, BuildError::MissingApiKey { provider } if provider == kind));
        let blank = ProviderSettings {
            api_key: Some(Secret::new("  ")),
            ..ProviderSettings::default()
        };
        assert!(matches!(
            build(kind, blank),
            Err(BuildError::MissingApiKey { .. })
        ));
    }
    let error = build(ProviderKind::OpenAiCompatible, ProviderSettings::default()).unwrap_err();
    assert!(
        matches!(error, BuildError::MissingBaseUrl { .. }),
        "{error}"
    );
    // A local server needs no key.
    let local = ProviderSettings {
        base_url: Some("http://localhost:11434/v1".into()),
        ..ProviderSettings::default()
    };
    assert!(build(ProviderKind::OpenAiCompatible, local).is_ok());
}

#[test]
fn the_simulator_is_not_built_here() {
    let error = build(ProviderKind::Simulated, settings()).unwrap_err();
    assert!(matches!(error, BuildError::Unsupported { .. }));
    assert!(error.to_string().contains("echo_core::provider::simulated"));
}

#[test]
fn invalid_settings_are_rejected_without_showing_secrets() {
    let bad_url = |url: &str| ProviderSettings {
        base_url: Some(url.into()),
        ..settings()
    };
    for url in [
        "not a url",
        "ftp://example.com",
        "https://user:pw@example.com",
    ] {
        let error = build(ProviderKind::OpenAi, bad_url(url)).unwrap_err();
        assert!(
            matches!(error, BuildError::InvalidBaseUrl { .. }),
            "{url}: {error}"
        );
        assert!(!error.to_string().contains("pw"));
    }
    let zero = ProviderSettings {
        timeout: Some(Duration::ZERO),
        ..settings()
    };
    let error = build(ProviderKind::Anthropic, zero).unwrap_err();
    assert!(error.to_string().contains("`timeout`"), "{error}");

    // A key HTTP cannot carry is refused by header name, never by value.
    let newline_key = format!("{KEY}\r\nx-injected: 1");
    let error = build(
        ProviderKind::Perplexity,
        ProviderSettings {
            api_key: Some(Secret::new(newline_key)),
            ..settings()
        },
    )
    .unwrap_err();
    assert!(matches!(error, BuildError::InvalidHeader { .. }), "{error}");
    assert_no_key(&format!("{error} {error:?}"));
}

#[test]
fn web_search_switches_each_provider_to_its_search_endpoint() {
    let searching = |kind| {
        build(
            kind,
            ProviderSettings {
                api_key: Some(Secret::new(KEY)),
                web_search: true,
                ..ProviderSettings::default()
            },
        )
        .map(|p| format!("{p:?}"))
    };
    let openai = searching(ProviderKind::OpenAi).unwrap();
    assert!(
        openai.contains("https://api.openai.com/v1/responses"),
        "{openai}"
    );
    let anthropic = searching(ProviderKind::Anthropic).unwrap();
    assert!(anthropic.contains("web_search: Some(5)"), "{anthropic}");
    let gemini = searching(ProviderKind::Gemini).unwrap();
    assert!(gemini.contains("google_search: true"), "{gemini}");
    assert!(searching(ProviderKind::Perplexity).is_ok());
    let compatible = build(
        ProviderKind::OpenAiCompatible,
        ProviderSettings {
            base_url: Some("http://127.0.0.1:9/v1".into()),
            web_search: true,
            ..ProviderSettings::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            compatible,
            BuildError::InvalidSetting {
                setting: "web_search",
                ..
            }
        ),
        "{compatible}"
    );
}
