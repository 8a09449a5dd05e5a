//! # Echo providers
//!
//! Real LLM clients behind `echo-core`'s [`Provider`](echo_core::provider::Provider) trait:
//! OpenAI, Anthropic, Google Gemini, Perplexity and any OpenAI-compatible server (Ollama, vLLM,
//! LM Studio, Azure OpenAI, gateways).
//!
//! ## Overview
//! Each provider has a typed config (`OpenAiConfig::new(key)` and friends, with the real
//! endpoints and timeouts as defaults) and a client (`OpenAiProvider::new(config)`). [`build`]
//! makes any of them from flat [`ProviderSettings`] and wraps it in
//! [`Retrying`](echo_core::provider::Retrying), which is what a server wants. The library takes
//! its configuration as values and never reads the environment.
//!
//! ## Quick start
//! ```no_run
//! use echo_core::model::ProviderKind;
//! use echo_core::provider::{CompletionRequest, RetryPolicy, Secret};
//! use echo_providers::{ProviderSettings, build};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = build(
//!     ProviderKind::OpenAi,
//!     ProviderSettings {
//!         api_key: Some(Secret::new("sk-…")),
//!         retry: RetryPolicy::default(),
//!         ..ProviderSettings::default()
//!     },
//! )?;
//! let answer = provider
//!     .complete(&CompletionRequest {
//!         prompt: "What is the best CRM for a startup?".into(),
//!         model: "gpt-4o-mini".into(),
//!         temperature: 0.7,
//!         max_tokens: Some(800),
//!         system_prompt: None,
//!         sample_index: 0,
//!     })
//!     .await?;
//! println!("{} ({} output tokens, {:?})", answer.model, answer.output_tokens, answer.latency);
//! # Ok(())
//! # }
//! ```
//!
//! ## What every client guarantees
//! - One `reqwest` client per provider (connection pooling), a connect timeout and a timeout on
//!   the whole call, `User-Agent: echo/<version>`, no redirects followed.
//! - Every failure is a [`ProviderError`](echo_core::provider::ProviderError):
//!
//!   | response | error |
//!   | --- | --- |
//!   | 401, 403 | `Permanent(Authentication)` |
//!   | 400, 404, 422, other 4xx | `Permanent(BadRequest)` |
//!   | 402; OpenAI `insufficient_quota`; Anthropic billing errors | `Permanent(QuotaExhausted)` |
//!   | 429 | `RateLimited`, `retry_after` from `retry-after-ms`, `Retry-After` (seconds or HTTP-date) or Gemini's `RetryInfo` |
//!   | 408, 409, 5xx, 529 | `Transient` |
//!   | call exceeded its timeout | `Timeout` |
//!   | connection refused or reset | `Transient` without a status |
//!   | malformed JSON, missing fields | `Permanent(InvalidResponse)` |
//!   | empty answer | `Permanent(InvalidResponse)`, or `ContentRefused` when the provider says so |
//!
//!   An empty answer is an error and not a completion because it is a provider fault, not an
//!   answer that mentions no brand: counted as a "no mention" sample it would bias every
//!   mention rate down.
//! - Error messages carry the provider's own `error.message`, cut to 500 characters. The API
//!   key never appears in them, in `Debug` output or in log lines: keys are
//!   [`Secret`](echo_core::provider::Secret)s, header values are marked sensitive, and every
//!   message is scrubbed of the configured secrets (and of masked keys that providers echo)
//!   before it leaves the crate.
//! - [`Completion::model`](echo_core::provider::Completion::model) is the model the API
//!   reports; `latency` is measured from sending the request to the last byte of the response.
//! - Clients do not retry; wrap them in `Retrying` (as [`build`] does).
//!
//! ## Feature flags
//! One per provider, all on by default: `openai`, `anthropic`, `gemini`, `perplexity`,
//! `openai-compatible`. Each compiles in its config and client types and its arm of [`build`];
//! [`build`] answers [`BuildError::FeatureDisabled`] for a provider whose feature is off. With
//! every feature off the crate links no HTTP client (reqwest, serde and time come with the
//! first provider feature). TLS is rustls.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(any(
    feature = "openai",
    feature = "perplexity",
    feature = "openai-compatible"
))]
mod chat;
#[cfg(feature = "openai-compatible")]
mod compatible;
mod error;
mod factory;
#[cfg(feature = "gemini")]
mod gemini;
#[cfg(any(
    feature = "openai",
    feature = "anthropic",
    feature = "gemini",
    feature = "perplexity",
    feature = "openai-compatible"
))]
mod http;
#[cfg(feature = "openai")]
mod openai;
#[cfg(feature = "perplexity")]
mod perplexity;
#[cfg(feature = "openai")]
mod responses;

use std::time::Duration;

#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub use anthropic::{ANTHROPIC_VERSION, AnthropicConfig, AnthropicProvider};
#[cfg(feature = "openai-compatible")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai-compatible")))]
pub use compatible::{OpenAiCompatibleConfig, OpenAiCompatibleProvider};
pub use error::BuildError;
pub use factory::{AuthStyle, MaxTokensField, ProviderSettings, build};
#[cfg(feature = "gemini")]
#[cfg_attr(docsrs, doc(cfg(feature = "gemini")))]
pub use gemini::{GeminiConfig, GeminiProvider};
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub use openai::{OpenAiConfig, OpenAiProvider};
#[cfg(feature = "perplexity")]
#[cfg_attr(docsrs, doc(cfg(feature = "perplexity")))]
pub use perplexity::{PerplexityConfig, PerplexityProvider};

/// Default limit on a whole call: long enough for a search-backed or reasoning answer, short
/// enough that a hung connection does not hold a worker for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Default limit on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
