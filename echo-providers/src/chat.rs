//! The OpenAI Chat Completions wire format, shared by the OpenAI, Perplexity and
//! OpenAI-compatible clients: they differ only in URL, headers, the name of the token-limit
//! field and how strictly the response is checked.

use std::fmt;

use echo_core::model::ProviderKind;
use echo_core::provider::{
    CitedSource, Completion, CompletionRequest, FinishReason, ProviderError, SourceSpan,
    normalize_sources,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MaxTokensField;
use crate::http::{
    Transport, display_url, invalid, json_index, json_items, json_str, non_empty_answer, raw_source,
};

/// One chat-completions endpoint.
pub(crate) struct ChatEndpoint {
    pub(crate) transport: Transport,
    pub(crate) url: Url,
    pub(crate) max_tokens_field: MaxTokensField,
    /// Compatible servers may omit `model` or `usage`; the hosted APIs always send them, so
    /// for those a missing field means the response is not what we think it is.
    pub(crate) lenient: bool,
}

impl fmt::Debug for ChatEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatEndpoint")
            .field("url", &display_url(&self.url))
            .field("max_tokens_field", &self.max_tokens_field)
            .field("transport", &self.transport)
            .finish()
    }
}

impl ChatEndpoint {
    pub(crate) async fn complete(
        &self,
        request: &CompletionRequest,
    ) -> Result<Completion, ProviderError> {
        self.call(request)
            .await
            .map_err(|e| self.transport.sanitize(e))
    }

    async fn call(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let body = ChatRequest::new(request, self.max_tokens_field);
        let (response, latency) = self
            .transport
            .post_json::<_, ChatResponse>(&self.url, &body)
            .await?;
        response.into_completion(self.transport.provider(), request, self.lenient, latency)
    }
}

/// Implements [`Provider`](echo_core::provider::Provider) for a client that is a
/// `ChatEndpoint` in a field named `chat`. (OpenAI's client has a Responses API mode too, so it
/// implements `Provider` itself.)
#[cfg(any(feature = "perplexity", feature = "openai-compatible"))]
macro_rules! chat_provider {
    ($client:ty, $kind:expr) => {
        #[async_trait::async_trait]
        impl echo_core::provider::Provider for $client {
            fn kind(&self) -> echo_core::model::ProviderKind {
                $kind
            }

            async fn complete(
                &self,
                request: &echo_core::provider::CompletionRequest,
            ) -> Result<echo_core::provider::Completion, echo_core::provider::ProviderError> {
                self.chat.complete(request).await
            }
        }
    };
}
#[cfg(any(feature = "perplexity", feature = "openai-compatible"))]
pub(crate) use chat_provider;

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

impl<'a> ChatRequest<'a> {
    fn new(request: &'a CompletionRequest, field: MaxTokensField) -> Self {
        let system = request.system_prompt.as_deref().map(|content| Message {
            role: "system",
            content,
        });
        let user = Message {
            role: "user",
            content: &request.prompt,
        };
        let (max_completion_tokens, max_tokens) = match field {
            MaxTokensField::MaxCompletionTokens => (request.max_tokens, None),
            MaxTokensField::MaxTokens => (None, request.max_tokens),
        };
        Self {
            model: &request.model,
            messages: system.into_iter().chain([user]).collect(),
            temperature: request.temperature,
            max_completion_tokens,
            max_tokens,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Perplexity: the URLs the answer cites, in citation-number order (read leniently, as
    /// all citation data is: see `json_items`).
    #[serde(default)]
    citations: Option<Value>,
    /// Perplexity: the search results behind the answer, `{title, url, date}`.
    #[serde(default)]
    search_results: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<Content>,
    /// OpenAI's refusal text, set instead of `content` when the model declines.
    #[serde(default)]
    refusal: Option<String>,
    /// OpenAI search models: `{"type": "url_citation", "url_citation": {url, title,
    /// start_index, end_index}}` annotations.
    #[serde(default)]
    annotations: Option<Value>,
}

/// Content is a string in the OpenAI API; some compatible servers send a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl ChatResponse {
    fn into_completion(
        self,
        provider: ProviderKind,
        request: &CompletionRequest,
        lenient: bool,
        latency: std::time::Duration,
    ) -> Result<Completion, ProviderError> {
        let model = match (self.model, lenient) {
            (Some(m), _) if !m.is_empty() => m,
            (_, true) => request.model.clone(),
            (_, false) => return Err(invalid(format!("{provider} response has no `model`"))),
        };
        let (input_tokens, output_tokens) = match (self.usage, lenient) {
            (Some(u), _) => (u.prompt_tokens, u.completion_tokens),
            (None, true) => (0, 0),
            (None, false) => return Err(invalid(format!("{provider} response has no `usage`"))),
        };
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(invalid(format!("{provider} returned no choices")));
        };
        let finish_reason = finish_reason(choice.finish_reason.as_deref());
        let raw_text = match choice.message.content {
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => parts.into_iter().filter_map(|p| p.text).collect(),
            None => String::new(),
        };
        let raw_len = raw_text.len();
        let text = non_empty_answer(
            provider,
            strip_reasoning(raw_text),
            &finish_reason,
            choice.message.refusal.as_deref(),
        )?;
        // Annotation indices count characters of the content as sent; once a reasoning block
        // is cut off they no longer point into the answer, so only the URLs are kept then.
        let spans_apply = text.len() == raw_len;
        let cited = json_items(self.citations.as_ref())
            .filter_map(Value::as_str)
            .map(|url| raw_source(url, None));
        let searched = json_items(self.search_results.as_ref())
            .filter_map(|r| Some(raw_source(json_str(r, "url")?, json_str(r, "title"))));
        let annotated = json_items(choice.message.annotations.as_ref())
            .filter_map(|a| a.get("url_citation"))
            .filter_map(|c| annotation_source(&text, c, spans_apply));
        let citations = normalize_sources(&text, cited.chain(searched).chain(annotated));
        Ok(Completion {
            text,
            model,
            input_tokens,
            output_tokens,
            latency,
            finish_reason,
            citations,
        })
    }
}

/// A chat-completions `url_citation`, whose `start_index`/`end_index` count characters of
/// the answer, as the Responses API's do.
fn annotation_source(text: &str, citation: &Value, spans_apply: bool) -> Option<CitedSource> {
    let mut source = raw_source(json_str(citation, "url")?, json_str(citation, "title"));
    let start = json_index(citation, "start_index");
    let end = json_index(citation, "end_index");
    if let (true, Some(start), Some(end)) = (spans_apply, start, end)
        && let Some(span) = SourceSpan::from_chars(text, start, end)
    {
        source.spans.push(span);
    }
    Some(source)
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Other("unspecified".to_owned()),
    }
}

/// Reasoning models served through chat completions (Perplexity's `sonar-reasoning`,
/// DeepSeek-R1 on Ollama or vLLM) prefix the answer with a `<think>…</think>` block. The
/// reasoning is not shown to users, so brands named only there were not mentioned to anyone.
fn strip_reasoning(text: String) -> String {
    let trimmed = text.trim_start();
    if !trimmed.starts_with("<think>") {
        return text;
    }
    match trimmed.find("</think>") {
        Some(end) => trimmed[end + "</think>".len()..].trim_start().to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_block_is_removed() {
        assert_eq!(
            strip_reasoning("<think>HubSpot?</think>\n\nUse Pipedrive.".into()),
            "Use Pipedrive."
        );
        assert_eq!(strip_reasoning("Plain <think>".into()), "Plain <think>");
        assert_eq!(strip_reasoning("<think>unclosed".into()), "<think>unclosed");
    }

    #[test]
    fn token_field_follows_the_setting() {
        let req = CompletionRequest {
            prompt: "p".into(),
            model: "m".into(),
            temperature: 0.5,
            max_tokens: Some(9),
            system_prompt: None,
            sample_index: 0,
        };
        let new = serde_json::to_value(ChatRequest::new(&req, MaxTokensField::MaxCompletionTokens))
            .unwrap();
        assert_eq!(new["max_completion_tokens"], 9);
        assert!(new.get("max_tokens").is_none());
        let old = serde_json::to_value(ChatRequest::new(&req, MaxTokensField::MaxTokens)).unwrap();
        assert_eq!(old["max_tokens"], 9);
        assert_eq!(old["messages"].as_array().unwrap().len(), 1);
    }
}
