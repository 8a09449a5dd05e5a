//! Competitor discovery: the brands an experiment's answers name but it does not track, and
//! "add as competitor" into the brand profile. The rules live in
//! [`echo_core::service::DiscoveryService`].

use axum::Extension;
use axum::extract::State;
use echo_core::analysis::Discovery;
use echo_core::model::ExperimentId;
use echo_core::service::{DiscoveryService, ServiceError};
use serde::Serialize;
use utoipa::ToSchema;

use super::brand::{BrandInput, BrandProfileView};
use super::{ApiJson, ApiPath, parse_id};
use crate::audit::{AuditContext, audit_action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// One discovered brand.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredBrandView {
    /// The name as answers spell it most often.
    pub name: String,
    /// Answers naming it.
    pub answers_naming: u32,
    /// Answers analysed.
    pub n: u32,
    /// `answers_naming / n`; null when no answer was analysed.
    pub share: Option<f64>,
    /// Wilson 95% interval of the share, `[lower, upper]`; null when `n = 0`.
    pub ci95: Option<[f64; 2]>,
    /// Answers that list it (list item, heading, bold line or table's first column) rather
    /// than only mention it in prose.
    pub listed: u32,
}

/// `GET /api/v1/experiments/{id}/discovered-brands`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredBrands {
    /// The experiment.
    pub experiment_id: String,
    /// Successful answers analysed, over all its runs.
    pub answers: u32,
    /// Untracked brands, most named first.
    pub brands: Vec<DiscoveredBrandView>,
}

impl DiscoveredBrands {
    fn of(id: ExperimentId, d: Discovery) -> Self {
        Self {
            experiment_id: id.to_string(),
            answers: d.answers,
            brands: d
                .brands
                .into_iter()
                .map(|b| DiscoveredBrandView {
                    name: b.name,
                    answers_naming: b.answers.successes,
                    n: b.answers.n,
                    share: b.answers.rate,
                    ci95: b.answers.ci95.map(|ci| [ci.lower, ci.upper]),
                    listed: b.listed,
                })
                .collect(),
        }
    }
}

/// The brands the experiment's stored answers name but it does not track (its target,
/// competitors and their aliases, common words and the prompt's words are excluded), ranked by
/// the share of answers naming them.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/discovered-brands", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The candidates", body = DiscoveredBrands),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn discovered_brands(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<DiscoveredBrands>, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    let discovery = DiscoveryService::from_store(&state.store)
        .discovered_brands(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?;
    Ok(axum::Json(DiscoveredBrands::of(id, discovery)))
}

/// The brand profile after "add as competitor".
#[derive(Debug, Serialize, ToSchema)]
pub struct CompetitorAdded {
    /// False when a default competitor already had the name or an alias of it.
    pub added: bool,
    /// The profile.
    pub profile: BrandProfileView,
}

/// Adds a brand (typically a discovered one) to the brand profile's default competitors.
#[utoipa::path(post, path = "/api/v1/brand/profile/competitors", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = BrandInput,
    responses((status = 200, description = "The profile; `added` says whether it changed", body = CompetitorAdded),
        (status = 404, description = "No brand profile yet", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The brand is the profile's own, or the profile already has the most competitors it may", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid brand", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn add_competitor(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<BrandInput>,
) -> Result<axum::Json<CompetitorAdded>, ApiError> {
    let competitor = body.into_brand(&[], "competitor")?;
    let (profile, added) = DiscoveryService::from_store(&state.store)
        .add_competitor(caller.user_id, competitor)
        .await
        .map_err(|e| match e {
            // The brand itself was validated above; what is left conflicts with the profile's
            // current state (its own brand, a full list), which no request schema can know.
            ServiceError::Invalid(v) => ApiError::conflict(format!("{} {}", v.field, v.reason)),
            e => ApiError::from_service(e, "brand profile"),
        })?;
    if added {
        audit_action(
            &state,
            &ctx,
            caller.user_id,
            "add_competitor",
            "brand_profile",
            caller.user_id,
        )
        .await;
    }
    Ok(axum::Json(CompetitorAdded {
        added,
        profile: BrandProfileView::of(&profile),
    }))
}
