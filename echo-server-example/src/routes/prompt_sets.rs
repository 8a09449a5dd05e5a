//! The brand profile's prompt sets: one topic in 5 to 50 phrasings, versioned.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use echo_core::model::{PromptSet, PromptSetId, PromptSetVersion, Timestamp};
use echo_core::service::{BrandService, PromptSetDraft, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, parse_id};
use crate::audit::{AuditContext, audit_action};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/brand/prompt-sets`: a new set, as its version 1.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSetRequest {
    /// The topic, e.g. "CRM for startups".
    #[schema(schema_with = crate::schemas::label)]
    pub name: String,
    /// The phrasings, in order; an answer records the index of the one it answered.
    #[schema(schema_with = crate::schemas::phrasings)]
    pub prompts: Vec<String>,
}

/// `POST /api/v1/brand/prompt-sets/{id}/versions`: an edit, stored as the next version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSetVersionRequest {
    /// The topic, e.g. "CRM for startups".
    #[schema(schema_with = crate::schemas::label)]
    pub name: String,
    /// The phrasings, in order; an answer records the index of the one it answered.
    #[schema(schema_with = crate::schemas::phrasings)]
    pub prompts: Vec<String>,
    /// The version the edit started from. When another edit has landed since, the request is
    /// refused with 409 instead of replacing it unseen.
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub based_on_version: Option<u32>,
}

/// A prompt set in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptSetSummary {
    /// Id.
    pub id: String,
    /// The newest version's name.
    pub name: String,
    /// The newest version's number.
    pub latest_version: u32,
    /// When version 1 was stored.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the newest version was stored.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl PromptSetSummary {
    /// The view of a set.
    pub fn of(s: &PromptSet) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.as_str().to_owned(),
            latest_version: s.latest_version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A prompt set with one of its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptSetView {
    /// Id.
    pub id: String,
    /// The newest version's number; `version` may be older.
    pub latest_version: u32,
    /// The version shown.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// Its phrasings, in order.
    pub prompts: Vec<String>,
    /// When this version was stored.
    #[schema(value_type = String, format = DateTime)]
    pub version_created_at: Timestamp,
}

impl PromptSetView {
    /// The view of `v`, a version of `set`.
    pub fn of(set: &PromptSet, v: &PromptSetVersion) -> Self {
        Self {
            id: set.id.to_string(),
            latest_version: set.latest_version,
            version: v.version,
            name: v.name.as_str().to_owned(),
            prompts: v.prompts.iter().map(|p| p.as_str().to_owned()).collect(),
            version_created_at: v.created_at,
        }
    }
}

/// The caller's prompt sets.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptSetList {
    /// Newest first.
    pub prompt_sets: Vec<PromptSetSummary>,
}

/// Query of `get`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// The version to show; the newest when absent.
    #[param(minimum = 1, maximum = 4294967295_u64)]
    pub version: Option<u32>,
}

fn draft(name: String, prompts: Vec<String>) -> PromptSetDraft {
    PromptSetDraft { name, prompts }
}

fn service(state: &AppState) -> BrandService {
    BrandService::from_store(&state.store)
}

/// Creates a prompt set, as its version 1. The caller needs a brand profile first.
#[utoipa::path(post, path = "/api/v1/brand/prompt-sets", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = PromptSetRequest,
    responses((status = 201, description = "Created", body = PromptSetView),
        (status = 409, description = "No brand profile yet (`PUT /api/v1/brand/profile` first)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or phrasings", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<PromptSetRequest>,
) -> Result<(StatusCode, axum::Json<PromptSetView>), ApiError> {
    let (set, v) = service(&state)
        .create_set(
            caller.user_id,
            draft(body.name, body.prompts),
            Timestamp::now(),
        )
        .await
        .map_err(|e| match e {
            // Well-formed, but the account has no brand profile to own the set yet: a conflict
            // with its state, not invalid input.
            ServiceError::Invalid(v) if v.field == "brand profile" => {
                ApiError::conflict_on(v.field, v.reason)
            }
            e => ApiError::from_service(e, "prompt set"),
        })?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "create_prompt_set",
        "prompt_set",
        set.id,
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(PromptSetView::of(&set, &v))))
}

/// Lists the caller's prompt sets.
#[utoipa::path(get, path = "/api/v1/brand/prompt-sets", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The sets, newest first", body = PromptSetList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<PromptSetList>, ApiError> {
    let sets = service(&state)
        .sets(caller.user_id)
        .await
        .map_err(|e| ApiError::from_service(e, "prompt set"))?;
    Ok(axum::Json(PromptSetList {
        prompt_sets: sets.iter().map(PromptSetSummary::of).collect(),
    }))
}

/// One prompt set, at its newest version or the one asked for. Old versions stay readable.
#[utoipa::path(get, path = "/api/v1/brand/prompt-sets/{id}", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Prompt set id"), VersionQuery),
    responses((status = 200, description = "The set", body = PromptSetView),
        (status = 404, description = "No such set (or version) of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<VersionQuery>,
) -> Result<axum::Json<PromptSetView>, ApiError> {
    let id: PromptSetId = parse_id(&id, "prompt set")?;
    let (set, v) = service(&state)
        .set(caller.user_id, id, query.version)
        .await
        .map_err(|e| ApiError::from_service(e, "prompt set"))?;
    Ok(axum::Json(PromptSetView::of(&set, &v)))
}

/// Stores an edit as the set's next version; earlier versions are kept unchanged.
#[utoipa::path(post, path = "/api/v1/brand/prompt-sets/{id}/versions", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Prompt set id")),
    request_body = PromptSetVersionRequest,
    responses((status = 201, description = "The new version", body = PromptSetView),
        (status = 404, description = "No such set of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another edit landed since `based_on_version` (or at the same moment)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or phrasings", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn new_version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PromptSetVersionRequest>,
) -> Result<(StatusCode, axum::Json<PromptSetView>), ApiError> {
    let id: PromptSetId = parse_id(&id, "prompt set")?;
    let based_on = body.based_on_version;
    let (set, v) = service(&state)
        .new_version(
            caller.user_id,
            id,
            based_on,
            draft(body.name, body.prompts),
            Timestamp::now(),
        )
        .await
        .map_err(|e| ApiError::from_service(e, "prompt set"))?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "edit_prompt_set",
        "prompt_set",
        id,
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(PromptSetView::of(&set, &v))))
}

/// Deletes a prompt set with all its versions.
#[utoipa::path(delete, path = "/api/v1/brand/prompt-sets/{id}", tag = "brand",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Prompt set id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such set of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: PromptSetId = parse_id(&id, "prompt set")?;
    service(&state)
        .delete_set(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "prompt set"))?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "delete_prompt_set",
        "prompt_set",
        id,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
