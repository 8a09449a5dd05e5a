//! Any server that speaks OpenAI's Chat Completions: Ollama, vLLM, LM Studio, llama.cpp,
//! Azure OpenAI and other gateways.

use std::time::Duration;

use echo_core::model::ProviderKind;
use echo_core::provider::Secret;

use crate::chat::{ChatEndpoint, chat_provider};
use crate::http::{Credential, Transport, TransportConfig, endpoint};
use crate::{AuthStyle, BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MaxTokensField};

/// Settings for [`OpenAiCompatibleProvider`]. Start from [`OpenAiCompatibleConfig::new`] and
/// override fields.
#[derive(Debug, Clone)]
pub struct OpenAiCompatibleConfig {
    /// The endpoint's base, including any version prefix: `/chat/completions` is appended and
    /// a query string is kept. Examples: `http://localhost:11434/v1` (Ollama),
    /// `http://localhost:8000/v1` (vLLM), `http://localhost:1234/v1` (LM Studio),
    /// `https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=2024-10-21`.
    pub base_url: String,
    /// The key, if the server wants one (local servers usually do not).
    pub api_key: Option<Secret>,
    /// How the key is sent.
    pub auth_style: AuthStyle,
    /// Which field carries the token cap.
    pub max_tokens_field: MaxTokensField,
    /// Limit on a whole call. Local models on a CPU can be slow; raise it for them.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Additional headers; values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
}

impl OpenAiCompatibleConfig {
    /// Defaults for everything but the endpoint: no key, `max_tokens`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            auth_style: AuthStyle::default(),
            max_tokens_field: MaxTokensField::default(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
        }
    }
}

/// A client for an OpenAI-compatible server.
///
/// Unlike the hosted APIs, such servers may omit `model` (the requested model is reported
/// instead) or `usage` (tokens are reported as 0, so the cost shows as zero, not guessed).
#[derive(Debug)]
pub struct OpenAiCompatibleProvider {
    chat: ChatEndpoint,
}

impl OpenAiCompatibleProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: OpenAiCompatibleConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::OpenAiCompatible;
        let url = endpoint(provider, &config.base_url, &["chat", "completions"])?;
        let auth = config.api_key.as_ref().map(|key| match &config.auth_style {
            AuthStyle::Bearer => Credential::bearer(key),
            AuthStyle::ApiKeyHeader => Credential::header("api-key", key),
            AuthStyle::Header(name) => Credential::header(name, key),
        });
        let transport = Transport::new(TransportConfig {
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            credentials: auth
                .into_iter()
                .chain(Credential::extra(&config.extra_headers))
                .collect(),
            public_headers: Vec::new(),
        })?;
        Ok(Self {
            chat: ChatEndpoint {
                transport,
                url,
                max_tokens_field: config.max_tokens_field,
                lenient: true,
            },
        })
    }
}

chat_provider!(OpenAiCompatibleProvider, ProviderKind::OpenAiCompatible);
