//! OpenAI Chat Completions (`POST {base}/v1/chat/completions`, Bearer authentication).

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::Secret;

use crate::chat::{ChatEndpoint, chat_provider};
use crate::http::{Credential, Transport, TransportConfig, endpoint};
use crate::{BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MaxTokensField};

/// Settings for [`OpenAiProvider`]. Start from [`OpenAiConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API key, sent as `Authorization: Bearer …`.
    pub api_key: Secret,
    /// Scheme and host, optionally with a path prefix for a proxy; `/v1/chat/completions` is
    /// appended.
    pub base_url: String,
    /// Sent as `OpenAI-Organization` when set.
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project` when set.
    pub project: Option<String>,
    /// Limit on a whole call, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Additional headers (for a gateway in front of the API); values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
}

impl OpenAiConfig {
    /// The public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com";

    /// Defaults for everything but the key.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            organization: None,
            project: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
        }
    }
}

/// An OpenAI Chat Completions client. Sends the token cap as `max_completion_tokens`, which
/// every current model accepts and reasoning models require.
#[derive(Debug)]
pub struct OpenAiProvider {
    chat: ChatEndpoint,
}

impl OpenAiProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: OpenAiConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::OpenAi;
        let url = endpoint(provider, &config.base_url, &["v1", "chat", "completions"])?;
        let public_headers = [
            ("openai-organization", config.organization),
            ("openai-project", config.project),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect();
        let transport = Transport::new(TransportConfig {
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            credentials: std::iter::once(Credential::bearer(&config.api_key))
                .chain(Credential::extra(&config.extra_headers))
                .collect(),
            public_headers,
        })?;
        Ok(Self {
            chat: ChatEndpoint {
                transport,
                url,
                max_tokens_field: MaxTokensField::MaxCompletionTokens,
                lenient: false,
            },
        })
    }
}

chat_provider!(OpenAiProvider, ProviderKind::OpenAi);
