//! Building a provider from flat settings, as a server does from its configuration.

use std::sync::Arc;
use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::{DynProvider, RetryPolicy, Secret};

use crate::BuildError;

/// Settings for [`build`]: what an operator configures per provider. Every field but the
/// retry policy overrides the provider's default only when set.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// The API key; required by every provider but the OpenAI-compatible one.
    pub api_key: Option<Secret>,
    /// The endpoint; required by the OpenAI-compatible provider, a proxy for the others.
    pub base_url: Option<String>,
    /// Limit on a whole call (default [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT)).
    pub timeout: Option<Duration>,
    /// Limit on connecting (default
    /// [`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT)).
    pub connect_timeout: Option<Duration>,
    /// Additional headers; values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
    /// OpenAI-compatible only: how the key is sent.
    pub auth_style: AuthStyle,
    /// OpenAI-compatible only: which field carries the token cap.
    pub max_tokens_field: MaxTokensField,
    /// Search the web and capture the sources each answer cites: OpenAI answers through the
    /// Responses API with the `web_search` tool, Anthropic gets the `web_search_20250305`
    /// tool, Gemini the `google_search` tool. Perplexity always searches and always reports
    /// its sources, so the setting changes nothing there; an OpenAI-compatible server has no
    /// standard search tool, so asking for one is [`BuildError::InvalidSetting`]. Off by default:
    /// searches are billed on top of tokens.
    pub web_search: bool,
    /// The retry policy [`build`] wraps the client in.
    pub retry: RetryPolicy,
}

/// How an OpenAI-compatible server expects its key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI, Ollama behind a proxy, vLLM `--api-key`).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKeyHeader,
    /// `<name>: <key>`, for gateways with their own header.
    Header(String),
}

/// Which request field carries the output-token cap in the chat-completions wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI's current name, required by its reasoning models.
    MaxCompletionTokens,
    /// `max_tokens`: the original name, which Perplexity and most compatible servers (Ollama,
    /// vLLM, LM Studio) read.
    #[default]
    MaxTokens,
}

/// Builds the client for `kind` from `settings`, wrapped in
/// [`Retrying`](echo_core::provider::Retrying) with `settings.retry`.
///
/// # Errors
/// [`BuildError::MissingApiKey`] / [`BuildError::MissingBaseUrl`] when a required setting is
/// absent, the validation errors of the provider's `new`, [`BuildError::FeatureDisabled`] when
/// the provider's feature is off, and [`BuildError::Unsupported`] for
/// [`ProviderKind::Simulated`], which needs a seed and brands and is built from
/// `echo_core::provider::simulated` instead.
pub fn build(
    kind: ProviderKind,
    settings: ProviderSettings,
) -> Result<Arc<DynProvider>, BuildError> {
    // Applies the optional overrides every config shares.
    #[allow(unused_macros)]
    macro_rules! common {
        ($config:expr, $settings:expr) => {{
            let mut config = $config;
            let s = $settings;
            if let Some(url) = s.base_url {
                config.base_url = url;
            }
            if let Some(t) = s.timeout {
                config.timeout = t;
            }
            if let Some(t) = s.connect_timeout {
                config.connect_timeout = t;
            }
            config.extra_headers = s.extra_headers;
            config
        }};
    }
    // The `allow`s cover builds with some provider features off.
    #[allow(unused_variables)]
    let retry = settings.retry;
    // A blank key (an environment variable set to "") is a missing key, reported as such
    // rather than as the provider's 401 on the first call.
    #[allow(unused_variables)]
    let key = |s: &ProviderSettings| {
        s.api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .ok_or(BuildError::MissingApiKey { provider: kind })
    };
    match kind {
        #[cfg(feature = "openai")]
        ProviderKind::OpenAi => {
            let config =
                crate::OpenAiConfig::new(key(&settings)?).with_web_search(settings.web_search);
            let config = common!(config, settings);
            Ok(retrying(crate::OpenAiProvider::new(config)?, retry))
        }
        #[cfg(feature = "anthropic")]
        ProviderKind::Anthropic => {
            let config =
                crate::AnthropicConfig::new(key(&settings)?).with_web_search(settings.web_search);
            let config = common!(config, settings);
            Ok(retrying(crate::AnthropicProvider::new(config)?, retry))
        }
        #[cfg(feature = "gemini")]
        ProviderKind::Gemini => {
            let config =
                crate::GeminiConfig::new(key(&settings)?).with_google_search(settings.web_search);
            let config = common!(config, settings);
            Ok(retrying(crate::GeminiProvider::new(config)?, retry))
        }
        #[cfg(feature = "perplexity")]
        ProviderKind::Perplexity => {
            let config = common!(crate::PerplexityConfig::new(key(&settings)?), settings);
            Ok(retrying(crate::PerplexityProvider::new(config)?, retry))
        }
        #[cfg(feature = "openai-compatible")]
        ProviderKind::OpenAiCompatible => {
            if settings.web_search {
                return Err(BuildError::InvalidSetting {
                    provider: kind,
                    setting: "web_search",
                    reason: "OpenAI-compatible servers have no standard web search tool; use \
                             openai, anthropic, gemini or perplexity for cited sources"
                        .into(),
                });
            }
            let base_url = settings
                .base_url
                .clone()
                .ok_or(BuildError::MissingBaseUrl { provider: kind })?;
            let mut config = crate::OpenAiCompatibleConfig::new(base_url);
            config.api_key = key(&settings).ok();
            config.auth_style = settings.auth_style.clone();
            config.max_tokens_field = settings.max_tokens_field;
            let config = common!(config, settings);
            Ok(retrying(
                crate::OpenAiCompatibleProvider::new(config)?,
                retry,
            ))
        }
        ProviderKind::Simulated => Err(BuildError::Unsupported {
            provider: kind,
            reason: "the simulator needs a seed and brands; build it with \
                     echo_core::provider::simulated",
        }),
        #[allow(unreachable_patterns)]
        other => Err(BuildError::FeatureDisabled {
            provider: other,
            feature: feature_of(other),
        }),
    }
}

#[allow(dead_code)]
fn retrying<P: echo_core::provider::Provider>(
    provider: P,
    policy: RetryPolicy,
) -> Arc<DynProvider> {
    Arc::new(echo_core::provider::Retrying::new(provider, policy))
}

/// The cargo feature that compiles `kind` in.
fn feature_of(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gemini",
        ProviderKind::Perplexity => "perplexity",
        ProviderKind::OpenAiCompatible => "openai-compatible",
        ProviderKind::Simulated => "none",
    }
}
