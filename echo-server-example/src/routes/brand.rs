//! The caller's brand profile: their own brand, its domain and default competitors.

use axum::Extension;
use axum::extract::State;
use echo_core::model::{Brand, BrandName, BrandProfile, MatchMode, Timestamp};
use echo_core::service::{BrandProfileDraft, BrandService, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::audit::{AuditContext, audit_action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A brand: a name, or a name with aliases and a matching mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BrandInput {
    /// Just the name (case-insensitive matching, no aliases).
    Name(String),
    /// Name, aliases and matching mode.
    Full(BrandSpec),
}

// Written out because the derive cannot put the name's constraints on the bare-string form.
impl utoipa::PartialSchema for BrandInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(crate::schemas::brand_name())
            .item(utoipa::openapi::Ref::from_schema_name("BrandSpec"))
            .description(Some(
                "A brand: a name, or a name with aliases and a matching mode",
            ))
            .into()
    }
}

impl ToSchema for BrandInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            BrandSpec::name().into_owned(),
            <BrandSpec as utoipa::PartialSchema>::schema(),
        ));
        <BrandSpec as ToSchema>::schemas(schemas);
    }
}

/// A brand with aliases.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandSpec {
    /// Canonical name.
    #[schema(schema_with = crate::schemas::brand_name)]
    pub name: String,
    /// Other spellings that count as the brand (at most 50, with the experiment's
    /// `target_aliases`).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::aliases)]
    pub aliases: Vec<String>,
    /// `case_insensitive` (default), `case_sensitive` (brands named by ordinary words, like
    /// "Close"), or `aliases_only`.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::match_mode)]
    pub match_mode: Option<String>,
}

impl BrandInput {
    /// Validates into a [`Brand`]; `field` names it in errors.
    pub fn into_brand(self, extra_aliases: &[String], field: &str) -> Result<Brand, ApiError> {
        let spec = match self {
            BrandInput::Name(name) => BrandSpec {
                name,
                aliases: Vec::new(),
                match_mode: None,
            },
            BrandInput::Full(spec) => spec,
        };
        let named = |e: echo_core::model::ValidationError| ApiError::invalid(field, e.to_string());
        let mut brand = Brand::new(BrandName::parse(&spec.name).map_err(named)?);
        brand.aliases = spec
            .aliases
            .iter()
            .chain(extra_aliases)
            .map(BrandName::parse)
            .collect::<Result<_, _>>()
            .map_err(named)?;
        if let Some(mode) = spec.match_mode {
            brand.match_mode = mode.parse::<MatchMode>().map_err(named)?;
        }
        brand.validate().map_err(named)?;
        Ok(brand)
    }
}

/// The view of a brand.
pub fn brand_view(b: &Brand) -> BrandSpec {
    BrandSpec {
        name: b.name.as_str().to_owned(),
        aliases: b.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
        match_mode: Some(b.match_mode.as_str().to_owned()),
    }
}

/// `PUT /api/v1/brand/profile`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandProfileRequest {
    /// The caller's brand.
    pub brand: BrandInput,
    /// Its web domain, e.g. `hubspot.com`.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::domain)]
    pub domain: Option<String>,
    /// Competitors used when an experiment names none (at most 100).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub default_competitors: Vec<BrandInput>,
}

/// The brand profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandProfileView {
    /// The brand.
    pub brand: BrandSpec,
    /// Its domain.
    pub domain: Option<String>,
    /// Default competitors.
    pub default_competitors: Vec<BrandSpec>,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl BrandProfileView {
    /// The view of a stored profile.
    pub fn of(p: &BrandProfile) -> Self {
        Self {
            brand: brand_view(&p.brand),
            domain: p.domain.clone(),
            default_competitors: p.default_competitors.iter().map(brand_view).collect(),
            updated_at: p.updated_at,
        }
    }
}

/// The caller's brand profile.
#[utoipa::path(get, path = "/api/v1/brand/profile", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The profile", body = BrandProfileView),
        (status = 404, description = "No profile yet", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<BrandProfileView>, ApiError> {
    let p = BrandService::from_store(&state.store)
        .profile(caller.user_id)
        .await
        .map_err(|e| ApiError::from_service(e, "brand profile"))?;
    Ok(axum::Json(BrandProfileView::of(&p)))
}

/// Creates or replaces the caller's brand profile.
#[utoipa::path(put, path = "/api/v1/brand/profile", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = BrandProfileRequest,
    responses((status = 200, description = "Stored", body = BrandProfileView),
        (status = 409, description = "A default competitor is the profile's own brand (by name or alias)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn put_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<BrandProfileRequest>,
) -> Result<axum::Json<BrandProfileView>, ApiError> {
    let brand = body.brand.into_brand(&[], "brand")?;
    if body.default_competitors.len() > echo_core::model::Experiment::MAX_COMPETITORS {
        return Err(ApiError::invalid(
            "default_competitors",
            "has too many brands",
        ));
    }
    let default_competitors = body
        .default_competitors
        .into_iter()
        .map(|c| c.into_brand(&[], "default_competitors"))
        .collect::<Result<Vec<_>, _>>()?;
    let draft = BrandProfileDraft {
        brand,
        domain: body.domain,
        default_competitors,
    };
    let profile = BrandService::from_store(&state.store)
        .put_profile(caller.user_id, draft, Timestamp::now())
        .await
        .map_err(|e| match e {
            // Each competitor was validated above; what is left conflicts with the profile's
            // own brand, as on `POST /api/v1/brand/profile/competitors`.
            ServiceError::Invalid(v) if v.field == "default_competitors" => {
                ApiError::conflict_on(v.field, v.reason)
            }
            e => ApiError::from_service(e, "brand profile"),
        })?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "update_brand_profile",
        "brand_profile",
        caller.user_id,
    )
    .await;
    Ok(axum::Json(BrandProfileView::of(&profile)))
}
