//! The web sources a provider cites for an answer.

use serde::{Deserialize, Serialize};

/// One web source a provider cited for an answer, as far as its API described it.
///
/// Adapters keep what is valid and drop the rest: a source always has a URL, while its title and
/// the spans it supports are there only when the API returns them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CitedSource {
    /// The URL as the provider returned it, trimmed.
    pub url: String,
    /// The page title, where the API gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The parts of the answer this source supports, where the API gives them (OpenAI's
    /// `url_citation` annotations, Gemini's `groundingSupports`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SourceSpan>,
}

impl CitedSource {
    /// A source known only by its URL.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            title: None,
            spans: Vec::new(),
        }
    }
}

/// A byte range of [`Completion::text`](super::Completion::text) that a source supports:
/// `start < end <= text.len()`, both on character boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceSpan {
    /// First byte of the span.
    pub start: u32,
    /// One past the last byte of the span.
    pub end: u32,
}
