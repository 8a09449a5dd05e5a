//! A run's answers with their matched spans, and an experiment's live progress (SSE): the two
//! routes the dashboard's answers and detail pages call.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use echo_core::model::{BatchRunId, BrandMention, ExperimentId, Timestamp};
use echo_core::service::{Answer, AnswerCursor, AnswerQuery, AnswerSpan};
use echo_core::store::PageSize;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiPath, ApiQuery, parse_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/v1/experiments/{id}/runs/{run_id}/answers`. An empty value
/// (`?cursor=&limit=`) means the parameter was not given.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnswersQuery {
    /// From a previous page's `next_cursor`; absent or empty: the first page.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(schema_with = crate::schemas::answer_cursor)]
    pub cursor: Option<String>,
    /// Answers per page, 1 to 100 (default 20). Values outside the range are refused with
    /// 422, not clamped.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

impl AnswersQuery {
    fn parse(self) -> Result<AnswerQuery, ApiError> {
        let limit = match self.limit {
            None => PageSize::default(),
            Some(text) => {
                let n = text.parse::<u32>().map_err(|_| {
                    ApiError::invalid(
                        "limit",
                        format!("must be an integer between 1 and {}", PageSize::MAX),
                    )
                })?;
                PageSize::new(n)?
            }
        };
        Ok(AnswerQuery {
            after: self
                .cursor
                .as_deref()
                .map(AnswerCursor::decode)
                .transpose()?,
            limit,
        })
    }
}

/// One matched span of an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpanView {
    /// First byte in the UTF-8 answer text (a char boundary).
    pub start: usize,
    /// One past the last byte (a char boundary).
    pub end: usize,
    /// The start counted in Unicode code points (`Array.from(text)` indexes; not UTF-16).
    pub char_start: usize,
    /// The end counted in Unicode code points.
    pub char_end: usize,
    /// The brand the span counted for (canonical name).
    pub brand: String,
    /// The configured alias that matched; absent when the brand's own name matched.
    pub alias: Option<String>,
    /// Whether the brand is the experiment's target; otherwise a competitor.
    pub is_target: bool,
}

impl From<AnswerSpan> for SpanView {
    fn from(s: AnswerSpan) -> Self {
        Self {
            start: s.start,
            end: s.end,
            char_start: s.char_start,
            char_end: s.char_end,
            brand: s.brand,
            alias: s.alias,
            is_target: s.is_target,
        }
    }
}

/// One answer of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerView {
    /// The iteration's id.
    pub id: String,
    /// 0-based index within the run.
    pub index: u32,
    /// With a prompt set: the 0-based index of the phrasing it answers.
    pub phrasing: Option<u32>,
    /// Provider.
    pub provider: String,
    /// Model requested.
    pub model: String,
    /// When it was stored.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Whether the provider answered.
    pub success: bool,
    /// Why the call failed.
    pub error: Option<String>,
    /// The answer text (model-written: never render it as HTML); absent for failed calls and
    /// anonymized answers.
    pub text: Option<String>,
    /// The retention policy erased the text: no text and no spans, the summary stays.
    pub anonymized: bool,
    /// The stored per-brand summary (brand, count, first_offset, rank, list_position): what
    /// the run's metrics count.
    #[schema(value_type = Vec<Object>)]
    pub mentions: Vec<BrandMention>,
    /// Every matched span of `text`, in text order. Found again by Echo's extraction with the
    /// experiment's brands (the stored summary keeps only first offsets).
    pub spans: Vec<SpanView>,
}

impl From<Answer> for AnswerView {
    fn from(a: Answer) -> Self {
        Self {
            id: a.id.to_string(),
            index: a.index,
            phrasing: a.phrasing,
            provider: a.provider.as_str().to_owned(),
            model: a.model,
            created_at: a.created_at,
            success: a.success,
            error: a.error,
            text: a.text,
            anonymized: a.anonymized,
            mentions: a.mentions,
            spans: a.spans.into_iter().map(SpanView::from).collect(),
        }
    }
}

/// A page of answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerPage {
    /// Ascending by index.
    pub items: Vec<AnswerView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Pages through one run's answers, each with every matched brand span.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/runs/{run_id}/answers", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id"),
        ("run_id" = String, Path, description = "Batch run id (one of the experiment's)"),
        AnswersQuery),
    responses((status = 200, description = "A page of answers", body = AnswerPage),
        (status = 401, description = "No valid credentials", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such experiment of yours, or the run is not one of its runs", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad cursor, a limit outside 1 to 100, or an unknown parameter", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Per-account request rate limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn answers(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((id, run_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<AnswersQuery>,
) -> Result<axum::Json<AnswerPage>, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    let run_id: BatchRunId = parse_id(&run_id, "batch run")?;
    let page = state
        .runs
        .answers(caller.user_id, id, run_id, q.parse()?)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment or batch run"))?;
    Ok(axum::Json(AnswerPage {
        items: page.items.into_iter().map(AnswerView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Live progress of an experiment as server-sent events (`text/event-stream`).
///
/// Events: `progress` (data: a `ProgressData`) for each run whose counters or status changed,
/// the current state of each run first; `done` (data: a `DoneData`) once the experiment is no
/// longer queued or running, after which the server closes the stream; `error` (data: an
/// `ErrorData`) when progress can no longer be read (the experiment was deleted), also
/// followed by the close. Comments (`:`) keep an idle connection open. Progress is read from
/// the store every half second, so it works whichever process runs the experiment. A browser's
/// `EventSource` reconnects when a stream closes: close it on `done`.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/events", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The event stream: `progress`, then `done` (or `error`), then the end", body = String, content_type = "text/event-stream"),
        (status = 401, description = "No valid credentials", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The account has as many progress streams open as it may (too-many-streams), or the request rate limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    crate::events::progress_stream(&state, caller.user_id, id).await
}
