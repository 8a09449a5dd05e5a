//! OpenAI (Bearer authentication): Chat Completions (`POST {base}/v1/chat/completions`) by
//! default, or the Responses API (`POST {base}/v1/responses`) with the `web_search` tool when
//! [`OpenAiConfig::web_search`] is on.

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::Secret;

use async_trait::async_trait;
use echo_core::provider::{Completion, CompletionRequest, Provider, ProviderError};

use crate::chat::ChatEndpoint;
use crate::http::{Credential, Transport, TransportConfig, endpoint};
use crate::responses::ResponsesEndpoint;
use crate::{BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MaxTokensField};

/// Settings for [`OpenAiProvider`]. Start from [`OpenAiConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API key, sent as `Authorization: Bearer …`.
    pub api_key: Secret,
    /// Scheme and host, optionally with a path prefix for a proxy; `/v1/chat/completions` (or
    /// `/v1/responses` with [`web_search`](Self::web_search)) is appended.
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
    /// Answer through the Responses API with the hosted `web_search` tool, as ChatGPT with
    /// search does, and capture the pages each answer cites (URL, title, and the span of the
    /// answer each supports). Off by default: searches are billed per call, and the model must
    /// support the tool.
    pub web_search: bool,
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
            web_search: false,
        }
    }

    /// This configuration with [`web_search`](Self::web_search) set to `on`.
    #[must_use]
    pub fn with_web_search(mut self, on: bool) -> Self {
        self.web_search = on;
        self
    }
}

/// An OpenAI client. Through Chat Completions it sends the token cap as
/// `max_completion_tokens`, which every current model accepts and reasoning models require;
/// search models' `url_citation` annotations become sources. With
/// [`OpenAiConfig::web_search`] it calls the Responses API with the `web_search` tool instead
/// and captures each cited page's URL, title and supported span.
#[derive(Debug)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
}

#[derive(Debug)]
enum Endpoint {
    Chat(ChatEndpoint),
    Responses(ResponsesEndpoint),
}

impl OpenAiProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: OpenAiConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::OpenAi;
        let path: &[&str] = if config.web_search {
            &["v1", "responses"]
        } else {
            &["v1", "chat", "completions"]
        };
        let url = endpoint(provider, &config.base_url, path)?;
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
        let endpoint = if config.web_search {
            Endpoint::Responses(ResponsesEndpoint { transport, url })
        } else {
            Endpoint::Chat(ChatEndpoint {
                transport,
                url,
                max_tokens_field: MaxTokensField::MaxCompletionTokens,
                lenient: false,
            })
        };
        Ok(Self { endpoint })
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        match &self.endpoint {
            Endpoint::Chat(chat) => chat.complete(request).await,
            Endpoint::Responses(responses) => responses.complete(request).await,
        }
    }
}
