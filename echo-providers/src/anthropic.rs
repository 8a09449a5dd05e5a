//! Anthropic Messages (`POST {base}/v1/messages`, `x-api-key` and `anthropic-version`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use echo_core::model::ProviderKind;
use echo_core::provider::{
    Completion, CompletionRequest, FinishReason, Provider, ProviderError, Secret, SourceSpan,
    normalize_sources,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{
    Credential, Transport, TransportConfig, display_url, endpoint, json_items, json_str,
    non_empty_answer, raw_source,
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
    /// Let Claude search the web (the `web_search_20250305` server tool), as claude.ai does,
    /// and capture the pages its answer cites. Off by default: searches are billed per use,
    /// and an organisation must enable the tool in its console.
    pub web_search: bool,
    /// Most searches per answer when [`web_search`](Self::web_search) is on (the tool's
    /// `max_uses`); default 5.
    pub web_search_max_uses: u32,
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
            web_search: false,
            web_search_max_uses: 5,
        }
    }

    /// This configuration with [`web_search`](Self::web_search) set to `on`.
    #[must_use]
    pub fn with_web_search(mut self, on: bool) -> Self {
        self.web_search = on;
        self
    }
}

/// An Anthropic Messages client. Text blocks are concatenated (other block types, such as
/// thinking, are not part of the answer).
///
/// Sources are the pages the answer's text blocks cite (`web_search_result_location`
/// citations, with [`AnthropicConfig::web_search`]): each with its title (from the citation,
/// or else from the `web_search_tool_result` block that found it) and, as spans, the byte
/// ranges of the text blocks that cite it in the joined answer. Search results the answer does
/// not cite are what Claude read, not what it showed the user, so they are not sources.
pub struct AnthropicProvider {
    transport: Transport,
    url: Url,
    default_max_tokens: u32,
    web_search: Option<u32>,
}

impl fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("url", &display_url(&self.url))
            .field("default_max_tokens", &self.default_max_tokens)
            .field("web_search", &self.web_search)
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
        if config.web_search && config.web_search_max_uses == 0 {
            return Err(BuildError::InvalidSetting {
                provider,
                setting: "web_search_max_uses",
                reason: "must be greater than zero when web search is on".into(),
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
            web_search: config.web_search.then_some(config.web_search_max_uses),
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
            tools: self
                .web_search
                .map(|max_uses| {
                    vec![WebSearchTool {
                        kind: "web_search_20250305",
                        name: "web_search",
                        max_uses,
                    }]
                })
                .unwrap_or_default(),
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
        let (text, raw) = answer_and_sources(response.content);
        let text = non_empty_answer(self.transport.provider(), text, &finish_reason, None)?;
        let citations = normalize_sources(&text, raw);
        Ok(Completion {
            text,
            model: response.model,
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            latency,
            finish_reason,
            citations,
        })
    }
}

/// The joined text blocks, and the sources their citations name (unchecked), each with the
/// byte range of the citing block.
fn answer_and_sources(blocks: Vec<Block>) -> (String, Vec<echo_core::provider::CitedSource>) {
    let mut titles: HashMap<&str, &str> = HashMap::new();
    for block in blocks.iter().filter(|b| b.kind == "web_search_tool_result") {
        for result in json_items(block.content.as_ref()) {
            if let (Some(url), Some(title)) = (json_str(result, "url"), json_str(result, "title")) {
                titles.entry(url).or_insert(title);
            }
        }
    }
    let mut text = String::new();
    let mut raw = Vec::new();
    for block in blocks.iter().filter(|b| b.kind == "text") {
        let start = text.len();
        text.push_str(block.text.as_deref().unwrap_or_default());
        let span = SourceSpan::from_bytes(start, text.len());
        for citation in json_items(block.citations.as_ref()) {
            let Some(url) = json_str(citation, "url") else {
                continue;
            };
            let title = json_str(citation, "title").or_else(|| titles.get(url).copied());
            let mut source = raw_source(url, title);
            source.spans.extend(span);
            raw.push(source);
        }
    }
    (text, raw)
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WebSearchTool>,
}

#[derive(Debug, Serialize)]
struct WebSearchTool {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    max_uses: u32,
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
    /// Text blocks: `web_search_result_location` citations (`url`, `title`, `cited_text`).
    #[serde(default)]
    citations: Option<Value>,
    /// `web_search_tool_result` blocks: the results (`url`, `title`), or an error object.
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}
