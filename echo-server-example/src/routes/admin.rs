//! Operator routes. A caller who is not an administrator gets 404, as for a route that does
//! not exist: the admin surface is not advertised to tenants.

use axum::Extension;
use axum::extract::State;
use echo_core::model::UserId;

use super::account::UserView;
use super::{ApiPath, parse_id};
use crate::audit::{AuditContext, audit};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// 404 unless the caller's account is an active administrator now (read from the store, so a
/// revoked admin flag takes effect on the next request).
pub async fn require_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let user = state
        .store
        .get_user(caller.user_id)
        .await
        .map_err(|e| ApiError::from_store(e, "route"))?;
    if user.is_admin && user.is_active {
        Ok(())
    } else {
        Err(ApiError::not_found("route"))
    }
}

/// Any user's account (administrators only; audited).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user, or the caller is not an administrator", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<UserView>, ApiError> {
    require_admin(&state, &caller).await?;
    let id: UserId = parse_id(&id, "user")?;
    let user = state
        .store
        .get_user(id)
        .await
        .map_err(|e| ApiError::from_store(e, "user"))?;
    audit(
        &state,
        &ctx,
        Some(caller.user_id),
        "admin_view_user",
        "user",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(axum::Json(UserView::of(&user)))
}
