//! CSV export of an experiment's per-run metrics and of its answers, streamed. The format, the
//! formula-injection guard and the paging live in [`echo_core::service::ExportService`].

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use echo_core::model::ExperimentId;
use echo_core::service::{CsvTable, ExportService};
use futures::StreamExt;

use super::{ApiPath, parse_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// One row per run × tracked brand: `run_id, created_at, completed_at, status, provider, model,
/// simulated, brand, is_target, n, failures, mentions, visibility, visibility_ci_low,
/// visibility_ci_high, answers_naming, mention_share_of_voice, answer_share_of_voice,
/// average_rank, first_place, first_place_ci_low, first_place_ci_high, average_list_position`.
/// RFC 4180 with a header row; a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
/// leading `'` so spreadsheets do not run it as a formula; undefined numbers are empty.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/export/runs.csv", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The CSV, streamed (an attachment)", body = String, content_type = "text/csv"),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn runs_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    csv(&state, &caller, &id, CsvTable::Runs).await
}

/// One row per stored answer, runs oldest first and each by index: `run_id, provider, model,
/// index, created_at, success, error, anonymized, text, brands, target_rank` (`brands` is
/// `Name:count` in rank order, separated by `; `; an anonymized answer has no text). Same
/// quoting and formula guard as the runs export; streamed from the store a page at a time.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/export/answers.csv", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The CSV, streamed (an attachment)", body = String, content_type = "text/csv"),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn answers_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    csv(&state, &caller, &id, CsvTable::Answers).await
}

async fn csv(
    state: &AppState,
    caller: &Caller,
    id: &str,
    table: CsvTable,
) -> Result<Response, ApiError> {
    let id: ExperimentId = parse_id(id, "experiment")?;
    let rows = ExportService::from_store(&state.store)
        .csv(caller.user_id, id, table)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?;
    // Once the status line is out, a failed page can only abort the body: the client sees a
    // truncated transfer rather than a file that looks complete.
    let body = Body::from_stream(rows.map(move |chunk| {
        chunk.map(Bytes::from).inspect_err(|error| {
            tracing::error!(%error, experiment_id = %id, "CSV export aborted mid-stream");
        })
    }));
    let name = match table {
        CsvTable::Runs => "runs",
        CsvTable::Answers => "answers",
    };
    let disposition = format!("attachment; filename=\"echo-{id}-{name}.csv\"");
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
