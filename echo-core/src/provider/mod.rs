//! LLM providers: the [`Provider`] trait, its request/response types and error classes, a retry
//! wrapper, and the seeded [`simulated`] provider.
//!
//! Real providers (OpenAI, Anthropic, Gemini, Perplexity, OpenAI-compatible endpoints) live in
//! the `echo-providers` crate; `echo-core` has no HTTP client.

mod pricing;
mod retry;
pub mod simulated;
mod source;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::ProviderKind;

/// Re-exported where providers have always found it.
pub use crate::secret::Secret;
pub use pricing::{ModelPrice, PriceTable};
pub use retry::{RetryPolicy, Retrying};
pub use source::{
    CitedSource, MAX_SOURCES_PER_ANSWER, MAX_SPANS_PER_SOURCE, MAX_TITLE_CHARS, MAX_URL_BYTES,
    SourceSpan, normalize_sources, source_url,
};

/// One completion request: the prompt and the sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The user message.
    pub prompt: String,
    /// Model name as the provider spells it.
    pub model: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// Cap on output tokens; `None` uses the provider's default.
    pub max_tokens: Option<u32>,
    /// Optional system prompt.
    pub system_prompt: Option<String>,
    /// 0-based index of this sample within its batch run. Real providers ignore it (sending a
    /// seed would make samples correlated); the simulated provider derives its randomness from
    /// it, so a run is reproducible whatever order its iterations execute in.
    pub sample_index: u32,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of the answer.
    Stop,
    /// Hit the token limit: the answer is truncated.
    Length,
    /// The provider's safety filter cut or refused it.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The answer text.
    pub text: String,
    /// The model as reported by the API (may differ from the one requested, e.g. a dated
    /// snapshot): recorded for reproducibility.
    pub model: String,
    /// Input tokens billed.
    pub input_tokens: u32,
    /// Output tokens billed.
    pub output_tokens: u32,
    /// Wall-clock time of the call.
    pub latency: Duration,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The web sources the provider cited, in the order it numbered them, each URL once (empty
    /// when the API returns none).
    pub citations: Vec<CitedSource>,
}

/// Why a permanent failure is permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermanentKind {
    /// Missing, invalid or unauthorised API key (401/403).
    Authentication,
    /// The request was malformed or named an unknown model (400/404/422).
    BadRequest,
    /// The provider refused the content.
    ContentRefused,
    /// The account is out of credit or over a hard quota.
    QuotaExhausted,
    /// The response could not be understood (malformed JSON, missing fields).
    InvalidResponse,
}

/// A classified provider failure. Messages carry the provider's words but never the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// 429: slow down; retry after the server's `Retry-After` when given.
    #[error("rate limited by the provider: {message}")]
    RateLimited {
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// A failure that may pass: 5xx, overload, connection reset. Retry with backoff.
    #[error("transient provider failure: {message}")]
    Transient {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The provider's message.
        message: String,
    },
    /// No complete answer within the time limit.
    #[error("provider call timed out after {0:?}")]
    Timeout(Duration),
    /// Retrying the same request cannot succeed.
    #[error("permanent provider failure ({kind:?}): {message}")]
    Permanent {
        /// The class of failure.
        kind: PermanentKind,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// The provider's message.
        message: String,
    },
}

impl ProviderError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Permanent { .. })
    }
}

/// An LLM service that answers prompts.
///
/// Implementations must be cheap to share (`Arc<DynProvider>`) and safe to call concurrently;
/// the runner applies concurrency and rate limits around them. `complete` must not retry on its
/// own unless documented (wrap it in [`Retrying`] for that), must classify every failure into a
/// [`ProviderError`], and must never put a secret in an error or a log line. Dropping the
/// returned future cancels the call.
#[async_trait]
pub trait Provider: Send + Sync + Debug + 'static {
    /// Which service this is; [`ProviderKind::Simulated`] answers are labelled as such in all
    /// output.
    fn kind(&self) -> ProviderKind;

    /// Sends one request.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError>;
}

/// The trait object the runner holds: `Arc<DynProvider>`.
pub type DynProvider = dyn Provider;
