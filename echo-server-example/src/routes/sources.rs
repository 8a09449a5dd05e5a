//! The web sources an experiment's answers cite, per run and pooled. The metrics are
//! [`echo_core::service::SourceService`]'s; this module only shapes them.

use axum::Extension;
use axum::extract::State;
use echo_core::analysis::{DomainCitations, Proportion, SourceMetrics};
use echo_core::model::{BatchRunId, ExperimentId};
use echo_core::service::{ExperimentSources, RunSources, SourceService};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiPath, ApiQuery, parse_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/v1/experiments/{id}/sources`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SourcesQuery {
    /// Only this run of the experiment; absent: every run.
    pub run_id: Option<String>,
}

/// A rate with its sample size and Wilson 95% interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateView {
    /// Answers counted.
    pub successes: u32,
    /// Answers.
    pub n: u32,
    /// `successes / n`; null when `n = 0`.
    pub rate: Option<f64>,
    /// Wilson 95% interval, `[lower, upper]`; null when `n = 0`.
    pub ci95: Option<[f64; 2]>,
}

impl RateView {
    pub(crate) fn of(p: &Proportion) -> Self {
        Self {
            successes: p.successes,
            n: p.n,
            rate: p.rate,
            ci95: p.ci95.map(|ci| [ci.lower, ci.upper]),
        }
    }
}

/// One cited domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainCitationsView {
    /// Registrable domain (`bbc.co.uk`).
    pub domain: String,
    /// Answers citing it at least once ÷ answers.
    pub citation_rate: RateView,
    /// Times it was cited (an answer may cite it more than once).
    pub citations: u32,
    /// `citations ÷` all citations; null when nothing was cited.
    pub citation_share: Option<f64>,
    /// Mean GEO word-count impression (Eq. 2, normalised per answer) over the answers that
    /// cite anything; null when none does.
    pub word_impression: Option<f64>,
    /// Mean GEO position-adjusted word-count impression (Eq. 3), same denominator.
    pub position_adjusted_impression: Option<f64>,
    /// Whether it is the brand profile's domain.
    pub is_owned: bool,
}

impl DomainCitationsView {
    pub(crate) fn of(d: &DomainCitations) -> Self {
        Self {
            domain: d.domain.clone(),
            citation_rate: RateView::of(&d.citation_rate),
            citations: d.citations,
            citation_share: d.citation_share,
            word_impression: d.word_impression,
            position_adjusted_impression: d.position_adjusted_impression,
            is_owned: d.is_owned,
        }
    }
}

/// The cited-source metrics of a set of answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceMetricsView {
    /// Successful, not anonymized answers: the denominator of every rate.
    pub n: u32,
    /// Answers citing at least one source.
    pub answers_with_sources: u32,
    /// Sources cited in all.
    pub citations: u32,
    /// The brand profile's domain as a registrable domain; null without one.
    pub owned_domain: Option<String>,
    /// Answers citing the owned domain ÷ answers; null without an owned domain.
    pub owned_citation_rate: Option<RateView>,
    /// Every cited domain, most answers citing it first (then most citations, then by name).
    pub domains: Vec<DomainCitationsView>,
}

impl SourceMetricsView {
    pub(crate) fn of(m: &SourceMetrics) -> Self {
        Self {
            n: m.n,
            answers_with_sources: m.answers_with_sources,
            citations: m.citations,
            owned_domain: m.owned_domain.clone(),
            owned_citation_rate: m.owned_citation_rate.as_ref().map(RateView::of),
            domains: m.domains.iter().map(DomainCitationsView::of).collect(),
        }
    }
}

/// One run's sources.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSourcesView {
    /// The run.
    pub run_id: String,
    /// Its provider.
    pub provider: String,
    /// The model requested.
    pub model: String,
    /// Its metrics.
    pub metrics: SourceMetricsView,
}

impl RunSourcesView {
    fn of(r: &RunSources) -> Self {
        Self {
            run_id: r.run_id.to_string(),
            provider: r.provider.as_str().to_owned(),
            model: r.model.clone(),
            metrics: SourceMetricsView::of(&r.metrics),
        }
    }
}

/// `GET /api/v1/experiments/{id}/sources`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentSourcesView {
    /// The experiment.
    pub experiment_id: String,
    /// Per run, oldest first.
    pub runs: Vec<RunSourcesView>,
    /// All those runs' answers together.
    pub pooled: SourceMetricsView,
}

impl ExperimentSourcesView {
    pub(crate) fn of(s: &ExperimentSources) -> Self {
        Self {
            experiment_id: s.experiment_id.to_string(),
            runs: s.runs.iter().map(RunSourcesView::of).collect(),
            pooled: SourceMetricsView::of(&s.pooled),
        }
    }
}

/// The web sources the experiment's answers cite: per domain the citation rate (answers
/// citing it ÷ answers, with its Wilson interval), the citation share and the GEO impression
/// metrics, plus the brand profile's own domain's citation rate; per run and pooled.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/sources", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id"), SourcesQuery),
    responses((status = 200, description = "The source metrics", body = ExperimentSourcesView),
        (status = 404, description = "No such experiment of yours, or `run_id` is not one of its runs", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown parameter", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn sources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SourcesQuery>,
) -> Result<axum::Json<ExperimentSourcesView>, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    let run: Option<BatchRunId> = q
        .run_id
        .as_deref()
        .map(|r| parse_id(r, "batch run"))
        .transpose()?;
    let sources = SourceService::from_store(&state.store)
        .experiment_sources(caller.user_id, id, run)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment or batch run"))?;
    Ok(axum::Json(ExperimentSourcesView::of(&sources)))
}
