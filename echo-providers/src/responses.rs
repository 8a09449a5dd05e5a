//! OpenAI's Responses API (`POST {base}/v1/responses`) with the hosted `web_search` tool:
//! the way to get OpenAI answers that search the web and say which pages support which
//! sentence.
//!
//! The answer is the `output_text` parts of the `message` output items, joined. Each part's
//! `url_citation` annotations (`url`, `title`, `start_index`, `end_index`) become sources with
//! spans. The indices count characters (Unicode scalar values) of their part, as OpenAI's
//! Python SDK slices strings; they are converted to byte offsets of the joined answer with
//! [`SourceSpan::from_chars`], and an index that does not fit its part drops the span, not
//! the source.

use std::fmt;

use echo_core::model::ProviderKind;
use echo_core::provider::{
    CitedSource, Completion, CompletionRequest, FinishReason, ProviderError, SourceSpan,
    normalize_sources,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{
    Transport, display_url, invalid, json_index, json_items, json_str, non_empty_answer, raw_source,
};

/// One Responses endpoint.
pub(crate) struct ResponsesEndpoint {
    pub(crate) transport: Transport,
    pub(crate) url: Url,
}

impl fmt::Debug for ResponsesEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponsesEndpoint")
            .field("url", &display_url(&self.url))
            .field("transport", &self.transport)
            .finish()
    }
}

impl ResponsesEndpoint {
    pub(crate) async fn complete(
        &self,
        request: &CompletionRequest,
    ) -> Result<Completion, ProviderError> {
        self.call(request)
            .await
            .map_err(|e| self.transport.sanitize(e))
    }

    async fn call(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let body = ResponsesRequest {
            model: &request.model,
            instructions: request.system_prompt.as_deref(),
            input: &request.prompt,
            temperature: request.temperature,
            max_output_tokens: request.max_tokens,
            tools: [Tool { kind: "web_search" }],
        };
        let (response, latency) = self
            .transport
            .post_json::<_, ResponsesResponse>(&self.url, &body)
            .await?;
        response.into_completion(self.transport.provider(), latency)
    }
}

#[derive(Debug, Serialize)]
struct ResponsesRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    input: &'a str,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    tools: [Tool; 1],
}

#[derive(Debug, Serialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Deserialize)]
struct ResponsesResponse {
    model: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    output: Vec<OutputItem>,
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

/// One output item: `message` items carry the answer; `web_search_call`, `reasoning` and
/// others are skipped.
#[derive(Debug, Deserialize)]
struct OutputItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<ContentPart>,
}

/// `output_text` (with `annotations`) or `refusal`.
#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    annotations: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
}

impl ResponsesResponse {
    fn into_completion(
        self,
        provider: ProviderKind,
        latency: std::time::Duration,
    ) -> Result<Completion, ProviderError> {
        if self.model.is_empty() {
            return Err(invalid(format!("{provider} response has no `model`")));
        }
        let finish_reason = match (self.status.as_deref(), self.incomplete_details) {
            (Some("completed"), _) => FinishReason::Stop,
            (_, Some(IncompleteDetails { reason: Some(r) })) => match r.as_str() {
                "max_output_tokens" => FinishReason::Length,
                "content_filter" => FinishReason::ContentFilter,
                other => FinishReason::Other(other.to_owned()),
            },
            (Some(other), _) => FinishReason::Other(other.to_owned()),
            (None, _) => FinishReason::Other("unspecified".to_owned()),
        };
        let mut text = String::new();
        let mut refusal: Option<String> = None;
        let mut raw: Vec<CitedSource> = Vec::new();
        let parts = self
            .output
            .into_iter()
            .filter(|item| item.kind == "message")
            .flat_map(|item| item.content);
        for part in parts {
            match part.kind.as_deref() {
                Some("output_text") => {
                    let part_text = part.text.unwrap_or_default();
                    let offset = text.len();
                    raw.extend(
                        json_items(part.annotations.as_ref())
                            .filter(|a| json_str(a, "type") == Some("url_citation"))
                            .filter_map(|a| annotation_source(&part_text, offset, a)),
                    );
                    text.push_str(&part_text);
                }
                Some("refusal") => refusal = refusal.or(part.refusal),
                _ => {}
            }
        }
        let text = non_empty_answer(provider, text, &finish_reason, refusal.as_deref())?;
        let citations = normalize_sources(&text, raw);
        Ok(Completion {
            text,
            model: self.model,
            input_tokens: self.usage.input_tokens,
            output_tokens: self.usage.output_tokens,
            latency,
            finish_reason,
            citations,
        })
    }
}

/// A `url_citation` annotation of `part` (which starts at byte `offset` of the answer).
fn annotation_source(part: &str, offset: usize, annotation: &Value) -> Option<CitedSource> {
    let mut source = raw_source(json_str(annotation, "url")?, json_str(annotation, "title"));
    let start = json_index(annotation, "start_index");
    let end = json_index(annotation, "end_index");
    if let (Some(start), Some(end)) = (start, end)
        && let Some(span) = SourceSpan::from_chars(part, start, end)
        && let Some(span) =
            SourceSpan::from_bytes(offset + span.start as usize, offset + span.end as usize)
    {
        source.spans.push(span);
    }
    Some(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_indices_of_later_parts_are_shifted_to_answer_bytes() {
        let response: ResponsesResponse = serde_json::from_value(serde_json::json!({
            "model": "gpt-4.1", "status": "completed",
            "usage": {"input_tokens": 1, "output_tokens": 2},
            "output": [{"type": "message", "content": [
                {"type": "output_text", "text": "Café first. ", "annotations": []},
                {"type": "output_text", "text": "Zoë's pick.", "annotations": [
                    {"type": "url_citation", "url": "https://z.example/", "title": "Z",
                     "start_index": 0, "end_index": 11}]}
            ]}]
        }))
        .unwrap();
        let c = response
            .into_completion(ProviderKind::OpenAi, std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(c.text, "Café first. Zoë's pick.");
        let span = c.citations[0].spans[0];
        assert_eq!(span.slice(&c.text), Some("Zoë's pick."));
    }
}
