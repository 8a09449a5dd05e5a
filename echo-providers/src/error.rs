//! Errors from building a provider client.

use echo_core::model::ProviderKind;

/// Why a provider client could not be built. No variant carries a secret: headers are named,
/// never shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The provider needs an API key and none was given.
    #[error("{provider}: an API key is required")]
    MissingApiKey {
        /// The provider being built.
        provider: ProviderKind,
    },
    /// The provider has no default endpoint (OpenAI-compatible) and none was given.
    #[error("{provider}: a base URL is required")]
    MissingBaseUrl {
        /// The provider being built.
        provider: ProviderKind,
    },
    /// The base URL does not parse, is not http(s), or carries credentials.
    #[error("{provider}: invalid base URL: {reason}")]
    InvalidBaseUrl {
        /// The provider being built.
        provider: ProviderKind,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name, or its value, cannot be sent over HTTP (the value is never shown).
    #[error("{provider}: header {name:?} has an invalid name or value")]
    InvalidHeader {
        /// The provider being built.
        provider: ProviderKind,
        /// The header's name.
        name: String,
    },
    /// A setting is out of range.
    #[error("{provider}: setting `{setting}` {reason}")]
    InvalidSetting {
        /// The provider being built.
        provider: ProviderKind,
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest could not build its client (for example, no TLS root certificates).
    #[cfg(any(
        feature = "openai",
        feature = "anthropic",
        feature = "gemini",
        feature = "perplexity",
        feature = "openai-compatible"
    ))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(
            feature = "openai",
            feature = "anthropic",
            feature = "gemini",
            feature = "perplexity",
            feature = "openai-compatible"
        )))
    )]
    #[error("{provider}: could not build the HTTP client")]
    Client {
        /// The provider being built.
        provider: ProviderKind,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// This crate does not build that provider.
    #[error("{provider} is not built by echo-providers: {reason}")]
    Unsupported {
        /// The provider asked for.
        provider: ProviderKind,
        /// Where to find it instead.
        reason: &'static str,
    },
    /// The provider's cargo feature is off.
    #[error(
        "{provider} support is not compiled in: enable the `{feature}` feature of echo-providers"
    )]
    FeatureDisabled {
        /// The provider asked for.
        provider: ProviderKind,
        /// The feature that would compile it in.
        feature: &'static str,
    },
}
