//! A run's answers page: each answer's text with its matched brand spans marked. The page
//! calls the JSON route's own function, so it shows exactly the spans the API returns.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Chrome, render};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::runs::{self as api, AnswerView, AnswersQuery, SpanView};
use crate::routes::{ApiPath, ApiQuery};
use crate::state::AppState;

/// A piece of an answer's text: plain, or one matched span.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// The text (escaped by the template like any value).
    pub text: String,
    /// The mark of a matched span; `None` for the text between spans.
    pub mark: Option<Mark>,
}

/// What a marked span counted for.
#[derive(Debug, PartialEq, Eq)]
pub struct Mark {
    /// The brand's canonical name, and the alias that matched when it was not the name.
    pub label: String,
    /// Whether the brand is the experiment's target (marked differently from competitors).
    pub is_target: bool,
}

/// Splits `text` at the spans' byte offsets. The spans come sorted and on char boundaries
/// from the service; a span that overlaps the previous one or falls outside the text (which
/// the service never sends) is skipped rather than trusted, so the text is never cut wrong.
pub fn segments(text: &str, spans: &[SpanView]) -> Vec<Segment> {
    let mut out = Vec::with_capacity(spans.len() * 2 + 1);
    let mut at = 0;
    for s in spans {
        let (Some(before), Some(inner)) = (text.get(at..s.start), text.get(s.start..s.end)) else {
            continue;
        };
        if !before.is_empty() {
            out.push(Segment {
                text: before.to_owned(),
                mark: None,
            });
        }
        let label = match &s.alias {
            Some(alias) => format!("{} (as \u{201c}{alias}\u{201d})", s.brand),
            None => s.brand.clone(),
        };
        out.push(Segment {
            text: inner.to_owned(),
            mark: Some(Mark {
                label,
                is_target: s.is_target,
            }),
        });
        at = s.end;
    }
    if let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
        out.push(Segment {
            text: rest.to_owned(),
            mark: None,
        });
    }
    out
}

/// One answer as the page shows it.
struct AnswerRow {
    answer: AnswerView,
    segments: Vec<Segment>,
}

#[derive(Template)]
#[template(path = "answers.html")]
struct AnswersPage {
    chrome: Chrome,
    experiment_id: String,
    run_id: String,
    answers: Vec<AnswerRow>,
    next: Option<String>,
}

/// `GET /experiments/{id}/runs/{run_id}/answers?cursor=`: one page of a run's answers with
/// their marked spans, from `GET /api/v1/experiments/{id}/runs/{run_id}/answers`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((id, run_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<AnswersQuery>,
) -> Result<Response, ApiError> {
    let axum::Json(page) = api::answers(
        State(state.clone()),
        Extension(caller),
        ApiPath((id.clone(), run_id.clone())),
        ApiQuery(q),
    )
    .await?;
    let chrome = Chrome::of(&state, &caller, "experiments").await?;
    let answers = page
        .items
        .into_iter()
        .map(|answer| AnswerRow {
            segments: answer
                .text
                .as_deref()
                .map(|t| segments(t, &answer.spans))
                .unwrap_or_default(),
            answer,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AnswersPage {
            chrome,
            next: page.next_cursor.map(|c| {
                format!(
                    "/experiments/{id}/runs/{run_id}/answers?cursor={}",
                    super::view::url_encode(&c)
                )
            }),
            experiment_id: id,
            run_id,
            answers,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize, brand: &str, alias: Option<&str>, t: bool) -> SpanView {
        SpanView {
            start,
            end,
            char_start: start,
            char_end: end,
            brand: brand.into(),
            alias: alias.map(Into::into),
            is_target: t,
        }
    }

    #[test]
    fn spans_split_the_text() {
        let text = "Try HubSpot or SF today";
        let s = segments(
            text,
            &[
                span(4, 11, "HubSpot", None, true),
                span(15, 17, "Salesforce", Some("SF"), false),
            ],
        );
        let texts: Vec<_> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["Try ", "HubSpot", " or ", "SF", " today"]);
        assert_eq!(s[1].mark.as_ref().map(|m| m.is_target), Some(true));
        assert_eq!(
            s[3].mark.as_ref().map(|m| m.label.as_str()),
            Some("Salesforce (as \u{201c}SF\u{201d})")
        );
        assert!(s[0].mark.is_none() && s[4].mark.is_none());
    }

    #[test]
    fn bad_spans_never_cut_the_text() {
        // 2..3 falls inside "é" (bytes 1..3); 1..30 is past the end; 0..1 overlaps nothing.
        let text = "héllo";
        let s = segments(
            text,
            &[
                span(0, 1, "H", None, true),
                span(2, 3, "x", None, false),
                span(1, 30, "y", None, false),
            ],
        );
        let joined: String = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, text);
        assert_eq!(s.iter().filter(|s| s.mark.is_some()).count(), 1);
    }
}
