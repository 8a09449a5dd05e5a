//! Anthropic Messages (`POST {base}/v1/messages`, `x-api-key` and `anthropic-version`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use echo_core::model::ProviderKind;
use echo_core::provider::{
    Completion, CompletionRequest, FinishReason, Provider, ProviderError, Secret,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::http::{
    Credential, Transport, TransportConfig, dedup_citations, display_url, endpoint,
    non_empty_answer,
};
use crate::{BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};

/// The API version this client's wire types follow.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Settings for [`AnthropicProvider`]. Start from [`AnthropicConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// The API key, sent as `x-api-key`.
    pub api_key: Secret,
    /// Scheme and host, optionally with a path prefix; `/v1/messages` is appended.
    pub base_url: String,
    /// The token cap sent when a request has none: the Messages API requires one.
    pub default_max_tokens: u32,
    /// Limit on a whole call.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Additional headers (for example `anthropic-beta`); values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
}

impl AnthropicConfig {
    /// The public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";

    /// Defaults for everything but the key; `default_max_tokens` is 1024, room for a full
    /// recommendation list.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            default_max_tokens: 1024,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
        }
    }
}

/// An Anthropic Messages client. Text blocks are concatenated (other block types, such as
/// thinking, are not part of the answer); URLs cited by text blocks (web search) become
/// [`Completion::citations`].
pub struct AnthropicProvider {
    transport: Transport,
    url: Url,
    default_max_tokens: u32,
}

impl fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("url", &display_url(&self.url))
            .field("default_max_tokens", &self.default_max_tokens)
            .field("transport", &self.transport)
            .finish()
    }
}

impl AnthropicProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: AnthropicConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::Anthropic;
        if config.default_max_tokens == 0 {
            return Err(BuildError::InvalidSetting {
                provider,
                setting: "default_max_tokens",
                reason: "must be greater than zero".into(),
            });
        }
        let url = endpoint(provider, &config.base_url, &["v1", "messages"])?;
        let transport = Transport::new(TransportConfig {
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            credentials: std::iter::once(Credential::header("x-api-key", &config.api_key))
                .chain(Credential::extra(&config.extra_headers))
                .collect(),
            public_headers: vec![("anthropic-version".into(), ANTHROPIC_VERSION.into())],
        })?;
        Ok(Self {
            transport,
            url,
            default_max_tokens: config.default_max_tokens,
        })
    }

    async fn call(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let body = MessagesRequest {
            model: &request.model,
            max_tokens: request.max_tokens.unwrap_or(self.default_max_tokens),
            system: request.system_prompt.as_deref(),
            messages: [Message {
                role: "user",
                content: &request.prompt,
            }],
            temperature: request.temperature,
        };
        let (response, latency) = self
            .transport
            .post_json::<_, MessagesResponse>(&self.url, &body)
            .await?;
        let finish_reason = match response.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") => FinishReason::Stop,
            Some("max_tokens") => FinishReason::Length,
            Some("refusal") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
            None => FinishReason::Other("unspecified".to_owned()),
        };
        let mut text = String::new();
        let mut cited = Vec::new();
        for block in response.content.into_iter().filter(|b| b.kind == "text") {
            text.push_str(block.text.as_deref().unwrap_or_default());
            cited.extend(block.citations.into_iter().flatten().filter_map(|c| c.url));
        }
        let text = non_empty_answer(self.transport.provider(), text, &finish_reason, None)?;
        Ok(Completion {
            text,
            model: response.model,
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            latency,
            finish_reason,
            citations: dedup_citations(cited),
        })
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        self.call(request)
            .await
            .map_err(|e| self.transport.sanitize(e))
    }
}

#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [Message<'a>; 1],
    temperature: f32,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    model: String,
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    citations: Option<Vec<BlockCitation>>,
}

#[derive(Debug, Deserialize)]
struct BlockCitation {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}
