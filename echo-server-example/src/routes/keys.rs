//! API keys: create (shown once), list, revoke, rotate.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use echo_core::auth::{ApiKeySummary, KeyEnvironment, KeyError};
use echo_core::model::{ApiKeyId, Label, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, parse_id};
use crate::audit::{AuditContext, audit, audit_action};
use crate::auth::Caller;
use crate::error::{ApiError, log_chain};
use crate::state::AppState;

/// `POST /api/v1/auth/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for the key (1 to 100 characters).
    #[schema(schema_with = crate::schemas::label)]
    pub name: String,
    /// When the key stops working (RFC 3339); never when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// `live` or `test`; default: `test` on a staging server, `live` elsewhere.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::key_environment)]
    pub environment: Option<String>,
}

/// A key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Record id (for revoke and rotate).
    pub id: String,
    /// Label.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub start: String,
    /// `live` or `test`.
    pub environment: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last use (coalesced, up to a minute stale).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// Expiry.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Revocation time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

impl From<ApiKeySummary> for KeyView {
    fn from(s: ApiKeySummary) -> Self {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            id: s.id.to_string(),
            name: s.name.as_str().to_owned(),
            start: s.start,
            environment: s.environment.map(|e| e.to_string()),
            status,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
        }
    }
}

/// A new key: `key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyView {
    /// The full key. Store it now: Echo keeps only a digest.
    pub key: String,
    /// The listing view.
    #[serde(flatten)]
    pub summary: KeyView,
}

/// The caller's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Newest first, revoked ones included.
    pub items: Vec<KeyView>,
}

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Store(s) => ApiError::from_store(s, "API key"),
        KeyError::Inactive => ApiError::conflict("the API key is revoked or expired"),
        KeyError::TooManyKeys { max } => ApiError::conflict(format!(
            "at most {max} active API keys per account (security.max_api_keys); revoke one first"
        )),
        other => {
            log_chain("API-key operation failed", Some(&other));
            ApiError::internal()
        }
    }
}

/// Creates a key.
#[utoipa::path(post, path = "/api/v1/auth/api-keys", tag = "api-keys",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = CreateKeyRequest,
    responses((status = 201, description = "Created; the key is shown once", body = CreatedKeyView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account holds the most active keys allowed", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let view = create_key(&state, &caller, &ctx, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Creates a key (the rules of `POST /api/v1/auth/api-keys`, shared with the settings page):
/// the label, the environment, a future expiry, the per-account cap, and the audit event.
pub async fn create_key(
    state: &AppState,
    caller: &Caller,
    ctx: &AuditContext,
    body: CreateKeyRequest,
) -> Result<CreatedKeyView, ApiError> {
    let name = Label::parse(&body.name)?;
    let environment = match body.environment.as_deref() {
        None => state.config.env.default_key_environment(),
        Some("live") => KeyEnvironment::Live,
        Some("test") => KeyEnvironment::Test,
        Some(_) => return Err(ApiError::invalid("environment", "must be live or test")),
    };
    let now = Timestamp::now();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let created = state
        .keys
        .create(caller.user_id, name, environment, body.expires_at, now)
        .await
        .map_err(key_error)?;
    tracing::info!(event = "api_key_created", user_id = %caller.user_id, key_id = %created.summary.id, "API key created");
    audit(
        state,
        ctx,
        Some(caller.user_id),
        "create_api_key",
        "api_key",
        Some(created.summary.id.to_string()),
        serde_json::json!({"name": created.summary.name.as_str()}),
    )
    .await;
    Ok(CreatedKeyView {
        key: created.key.expose().to_owned(),
        summary: created.summary.into(),
    })
}

/// Lists the caller's keys.
#[utoipa::path(get, path = "/api/v1/auth/api-keys", tag = "api-keys",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The keys", body = KeyList),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<KeyList>, ApiError> {
    let keys = state
        .keys
        .list(caller.user_id, Timestamp::now())
        .await
        .map_err(key_error)?;
    Ok(axum::Json(KeyList {
        items: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revokes one of the caller's keys (idempotent).
#[utoipa::path(delete, path = "/api/v1/auth/api-keys/{id}", tag = "api-keys",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Key record id")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such key of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: ApiKeyId = parse_id(&id, "API key")?;
    state
        .keys
        .revoke(caller.user_id, id, Timestamp::now())
        .await
        .map_err(key_error)?;
    tracing::info!(event = "api_key_revoked", user_id = %caller.user_id, key_id = %id, "API key revoked");
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "revoke_api_key",
        "api_key",
        id,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The result of a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeyView {
    /// The replacement (its key shown once).
    pub new_key: CreatedKeyView,
    /// When the old key stops working.
    #[schema(value_type = String, format = DateTime)]
    pub old_key_expires_at: Timestamp,
}

/// Rotates a key: a replacement now, the old one ends after the grace period (24 h).
#[utoipa::path(post, path = "/api/v1/auth/api-keys/{id}/rotate", tag = "api-keys",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Key record id")),
    responses((status = 201, description = "Rotated", body = RotatedKeyView),
        (status = 404, description = "No such key of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked or expired", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let view = rotate_key(&state, &caller, &ctx, &id).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Rotates the caller's key `id` (the rules of `POST /api/v1/auth/api-keys/{id}/rotate`,
/// shared with the settings page).
pub async fn rotate_key(
    state: &AppState,
    caller: &Caller,
    ctx: &AuditContext,
    id: &str,
) -> Result<RotatedKeyView, ApiError> {
    let id: ApiKeyId = parse_id(id, "API key")?;
    let rotation = state
        .keys
        .rotate(caller.user_id, id, None, Timestamp::now())
        .await
        .map_err(key_error)?;
    tracing::info!(event = "api_key_created", user_id = %caller.user_id, key_id = %rotation.new_key.summary.id, rotated_from = %id, "API key rotated");
    audit(
        state,
        ctx,
        Some(caller.user_id),
        "rotate_api_key",
        "api_key",
        Some(id.to_string()),
        serde_json::json!({"new_key_id": rotation.new_key.summary.id.to_string()}),
    )
    .await;
    Ok(RotatedKeyView {
        new_key: CreatedKeyView {
            key: rotation.new_key.key.expose().to_owned(),
            summary: rotation.new_key.summary.into(),
        },
        old_key_expires_at: rotation.old_key_expires_at,
    })
}
