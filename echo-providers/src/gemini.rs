//! Google Gemini `generateContent` (`POST {base}/v1beta/models/{model}:generateContent`).
//!
//! The key travels in the `x-goog-api-key` header, never in the URL, so it cannot reach a log
//! line that records URLs.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use echo_core::model::ProviderKind;
use echo_core::provider::{
    CitedSource, Completion, CompletionRequest, FinishReason, PermanentKind, Provider,
    ProviderError, Secret, SourceSpan, normalize_sources,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{
    Credential, Transport, TransportConfig, display_url, invalid, join, json_index, json_items,
    json_str, non_empty_answer, parse_base_url, permanent, raw_source,
};
use crate::{BuildError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};

/// Settings for [`GeminiProvider`]. Start from [`GeminiConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// The API key, sent as `x-goog-api-key`.
    pub api_key: Secret,
    /// Scheme and host, optionally with a path prefix; `/v1beta/models/…` is appended.
    pub base_url: String,
    /// Ground answers with Google Search (the `google_search` tool), as the Gemini app does.
    /// Off by default because grounded calls are billed separately.
    pub google_search: bool,
    /// Limit on a whole call.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Additional headers; values are treated as secrets.
    pub extra_headers: Vec<(String, Secret)>,
}

impl GeminiConfig {
    /// The public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://generativelanguage.googleapis.com";

    /// Defaults for everything but the key.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            google_search: false,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
        }
    }

    /// This configuration with [`google_search`](Self::google_search) set to `on`.
    #[must_use]
    pub fn with_google_search(mut self, on: bool) -> Self {
        self.google_search = on;
        self
    }
}

/// A Gemini client.
///
/// The answer is the text of the first candidate's parts (thought summaries excluded).
/// `Completion.model` is the response's `modelVersion`, or the requested model when the API
/// omits it. A prompt blocked by `promptFeedback.blockReason` is
/// [`PermanentKind::ContentRefused`].
///
/// With [`GeminiConfig::google_search`], grounding sources become
/// [`Completion::citations`]: each `groundingMetadata.groundingChunks[].web` gives a URL
/// (`uri`, a Google redirect URL that leads to the page) and a title (`title`, which Google
/// sets to the page's domain), and each `groundingSupports[]` entry adds its segment as a span
/// to the chunks it lists in `groundingChunkIndices`. Segment indices are byte offsets into
/// the part named by `partIndex`; they are shifted to the joined answer, and a segment that
/// does not fit its part is dropped.
pub struct GeminiProvider {
    transport: Transport,
    base: Url,
    google_search: bool,
}

impl fmt::Debug for GeminiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiProvider")
            .field("base_url", &display_url(&self.base))
            .field("google_search", &self.google_search)
            .field("transport", &self.transport)
            .finish()
    }
}

impl GeminiProvider {
    /// Builds the client; no request is sent.
    pub fn new(config: GeminiConfig) -> Result<Self, BuildError> {
        let provider = ProviderKind::Gemini;
        let base = parse_base_url(provider, &config.base_url)?;
        let transport = Transport::new(TransportConfig {
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            credentials: std::iter::once(Credential::header("x-goog-api-key", &config.api_key))
                .chain(Credential::extra(&config.extra_headers))
                .collect(),
            public_headers: Vec::new(),
        })?;
        Ok(Self {
            transport,
            base,
            google_search: config.google_search,
        })
    }

    /// The model goes into the URL path, so it is checked rather than trusted: a `/` or `?`
    /// in it would address another endpoint.
    fn url(&self, model: &str) -> Result<Url, ProviderError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let valid = !model.is_empty()
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(permanent(
                PermanentKind::BadRequest,
                None,
                format!("invalid Gemini model name {model:?}"),
            ));
        }
        let action = format!("{model}:generateContent");
        join(&self.base, &["v1beta", "models", &action])
            .ok_or_else(|| permanent(PermanentKind::BadRequest, None, "invalid base URL".into()))
    }

    async fn call(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let url = self.url(&request.model)?;
        let body = GenerateRequest {
            contents: [UserContent {
                role: "user",
                parts: [TextPart {
                    text: &request.prompt,
                }],
            }],
            system_instruction: request
                .system_prompt
                .as_deref()
                .map(|text| SystemInstruction {
                    parts: [TextPart { text }],
                }),
            generation_config: GenerationConfig {
                temperature: request.temperature,
                max_output_tokens: request.max_tokens,
            },
            tools: if self.google_search {
                vec![Tool {
                    google_search: Empty {},
                }]
            } else {
                Vec::new()
            },
        };
        let (response, latency) = self
            .transport
            .post_json::<_, GenerateResponse>(&url, &body)
            .await?;
        let provider = self.transport.provider();
        let Some(usage) = response.usage_metadata else {
            return Err(invalid(format!(
                "{provider} response has no `usageMetadata`"
            )));
        };
        let Some(candidate) = response.candidates.into_iter().next() else {
            return Err(
                match response.prompt_feedback.and_then(|f| f.block_reason) {
                    Some(reason) => permanent(
                        PermanentKind::ContentRefused,
                        None,
                        format!("{provider} blocked the prompt ({reason})"),
                    ),
                    None => invalid(format!("{provider} returned no candidates")),
                },
            );
        };
        let finish_reason = match candidate.finish_reason.as_deref() {
            Some("STOP") => FinishReason::Stop,
            Some("MAX_TOKENS") => FinishReason::Length,
            Some(
                "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
                | "IMAGE_SAFETY",
            ) => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
            None => FinishReason::Other("unspecified".to_owned()),
        };
        let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
        // Where each part starts in the answer, and its length; thought parts are not in it.
        let mut text = String::new();
        let mut part_ranges = Vec::with_capacity(parts.len());
        for part in parts {
            match part.text.filter(|_| !part.thought) {
                Some(t) => {
                    part_ranges.push(Some((text.len(), t.len())));
                    text.push_str(&t);
                }
                None => part_ranges.push(None),
            }
        }
        let text = non_empty_answer(provider, text, &finish_reason, None)?;
        let raw = grounding_sources(candidate.grounding_metadata.as_ref(), &part_ranges);
        let citations = normalize_sources(&text, raw);
        Ok(Completion {
            text,
            model: response
                .model_version
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| request.model.clone()),
            input_tokens: usage.prompt_token_count,
            // Thinking models bill their thoughts as output tokens.
            output_tokens: usage
                .candidates_token_count
                .saturating_add(usage.thoughts_token_count),
            latency,
            finish_reason,
            citations,
        })
    }
}

/// The grounding chunks as sources (unchecked), with the spans their supports give.
/// `part_ranges[i]` is where part `i` lies in the answer, `None` for a part not in it.
fn grounding_sources(
    metadata: Option<&Value>,
    part_ranges: &[Option<(usize, usize)>],
) -> Vec<CitedSource> {
    let Some(metadata) = metadata else {
        return Vec::new();
    };
    let mut sources: Vec<Option<CitedSource>> = json_items(metadata.get("groundingChunks"))
        .map(|chunk| {
            let web = chunk.get("web")?;
            Some(raw_source(json_str(web, "uri")?, json_str(web, "title")))
        })
        .collect();
    for support in json_items(metadata.get("groundingSupports")) {
        let Some(segment) = support.get("segment") else {
            continue;
        };
        // proto3 JSON omits zero values: a missing part or start index is 0.
        let part = json_index(segment, "partIndex").unwrap_or(0);
        let start = json_index(segment, "startIndex").unwrap_or(0);
        let Some(end) = json_index(segment, "endIndex") else {
            continue;
        };
        let Some(Some((offset, len))) = part_ranges.get(part).copied() else {
            continue;
        };
        if start >= end || end > len {
            continue;
        }
        let Some(span) = SourceSpan::from_bytes(offset + start, offset + end) else {
            continue;
        };
        for index in json_items(support.get("groundingChunkIndices")).filter_map(Value::as_u64) {
            let source = usize::try_from(index)
                .ok()
                .and_then(|i| sources.get_mut(i))
                .and_then(Option::as_mut);
            if let Some(source) = source
                && source.spans.len() < echo_core::provider::MAX_SPANS_PER_SOURCE
            {
                source.spans.push(span);
            }
        }
    }
    sources.into_iter().flatten().collect()
}

#[async_trait]
impl Provider for GeminiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        self.call(request)
            .await
            .map_err(|e| self.transport.sanitize(e))
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    contents: [UserContent<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    generation_config: GenerationConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool>,
}

#[derive(Debug, Serialize)]
struct UserContent<'a> {
    role: &'static str,
    parts: [TextPart<'a>; 1],
}

#[derive(Debug, Serialize)]
struct SystemInstruction<'a> {
    parts: [TextPart<'a>; 1],
}

#[derive(Debug, Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Tool {
    google_search: Empty,
}

#[derive(Debug, Serialize)]
struct Empty {}

// The API writes proto3 JSON, which omits fields at their default value (a zero count, an
// empty list), so nearly everything here defaults.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    /// Read leniently (see `json_items`): `groundingChunks` and `groundingSupports`.
    #[serde(default)]
    grounding_metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    thoughts_token_count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_cannot_escape_the_path() {
        let p = GeminiProvider::new(GeminiConfig::new(Secret::new("k"))).unwrap();
        assert!(
            p.url("models/gemini-2.5-flash")
                .unwrap()
                .as_str()
                .ends_with("/v1beta/models/gemini-2.5-flash:generateContent")
        );
        for bad in ["", "../files", "a/b", "m?key=x", "m#x"] {
            assert!(p.url(bad).is_err(), "{bad}");
        }
    }
}
