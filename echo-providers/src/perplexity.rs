//! Perplexity (`POST {base}/chat/completions`, OpenAI's wire format plus `citations` and
//! `search_results`).

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::Secret;

use crate::chat::{ChatEndpoint, chat_provider};
use crate::http::{Credential, Transport, TransportConfig, endpoint};
use crate::{BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MaxTokensField};

/// Settings for [`PerplexityProvider`]. Start from [`PerplexityConfig::new`] and override
/// fields.
#[derive(Debug, Clone)]
pub struct PerplexityConfig {
    /// The API key, sent as `Authorization: Bearer …`.
    pub api_key: Secret,
    /// Scheme and host; `/chat/completions` is appended (Perplexity has no `/v1`).
    pub base_url: String,
    /// Limit on a whole call. Perplexity searches before answering, so calls run longer than
    /// plain completions.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Additional headers; values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
}

impl PerplexityConfig {
    /// The public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.perplexity.ai";

    /// Defaults for everything but the key.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
        }
    }
}

/// A Perplexity client. The URLs in the response's `citations` and `search_results` become
/// [`Completion::citations`](echo_core::provider::Completion::citations), de-duplicated, in the order Perplexity numbered them.
#[derive(Debug)]
pub struct PerplexityProvider {
    chat: ChatEndpoint,
}

impl PerplexityProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: PerplexityConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::Perplexity;
        let url = endpoint(provider, &config.base_url, &["chat", "completions"])?;
        let transport = Transport::new(TransportConfig {
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            credentials: std::iter::once(Credential::bearer(&config.api_key))
                .chain(Credential::extra(&config.extra_headers))
                .collect(),
            public_headers: Vec::new(),
        })?;
        Ok(Self {
            chat: ChatEndpoint {
                transport,
                url,
                max_tokens_field: MaxTokensField::MaxTokens,
                lenient: false,
            },
        })
    }
}

chat_provider!(PerplexityProvider, ProviderKind::Perplexity);
