//! Operator routes. A caller who is not an administrator gets 404, as for a route that does
//! not exist: the admin surface is not advertised to tenants.

use axum::Extension;
use axum::extract::State;
use echo_core::model::{AuditEvent, Timestamp, UserId};
use echo_core::store::{AuditQuery, PageSize};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::account::UserView;
use super::{ApiPath, ApiQuery, parse_id};
use crate::audit::{AuditContext, audit, audit_action};
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
    audit_action(&state, &ctx, caller.user_id, "admin_view_user", "user", id).await;
    Ok(axum::Json(UserView::of(&user)))
}

/// Query of `GET /api/v1/admin/audit-logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditLogQuery {
    /// Events by this actor (user id).
    #[param(format = Uuid)]
    pub user: Option<String>,
    /// This action (`login_failure`, `create_experiment`, …).
    pub action: Option<String>,
    /// This resource type (`experiment`, `user`, `api_key`, …).
    pub resource_type: Option<String>,
    /// This resource id.
    pub resource_id: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// From a previous page's `next_cursor` (an audit sequence number, at most 2^63 − 1).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub cursor: Option<u64>,
    /// Rows per page (1 to 100, default 20); others are refused with 422.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Events (each with `seq`, `prev_hash` and `hash` of the chain).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<u64>,
}

fn parse_time(field: &'static str, v: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|s| {
        serde_json::from_value::<Timestamp>(serde_json::Value::String(s))
            .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time"))
    })
    .transpose()
}

/// The audit log, filtered (administrators only; viewing it is itself audited).
#[utoipa::path(get, path = "/api/v1/admin/audit-logs", tag = "admin",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(AuditLogQuery),
    responses((status = 200, description = "A page of events", body = AuditPage),
        (status = 404, description = "The caller is not an administrator", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn audit_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiQuery(q): ApiQuery<AuditLogQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    require_admin(&state, &caller).await?;
    let query = AuditQuery {
        actor_user_id: q
            .user
            .as_deref()
            .map(|u| {
                u.parse::<UserId>()
                    .map_err(|_| ApiError::invalid("user", "must be a user id"))
            })
            .transpose()?,
        action: q.action.clone(),
        resource_type: q.resource_type.clone(),
        resource_id: q.resource_id.clone(),
        from: parse_time("from", q.from.clone())?,
        to: parse_time("to", q.to.clone())?,
        // Sequence numbers are stored as signed 64-bit integers, so no cursor goes beyond.
        before_seq: match q.cursor {
            Some(c) if i64::try_from(c).is_err() => {
                return Err(ApiError::invalid(
                    "cursor",
                    format!("must be at most {}", i64::MAX),
                ));
            }
            c => c,
        },
        limit: q.limit.map(PageSize::new).transpose()?.unwrap_or_default(),
    };
    let page = state
        .store
        .list_audit(&query)
        .await
        .map_err(|e| ApiError::from_store(e, "audit log"))?;
    audit(
        &state,
        &ctx,
        Some(caller.user_id),
        "view_audit_logs",
        "audit_log",
        None,
        serde_json::json!({
            "user": q.user, "action": q.action, "resource_type": q.resource_type,
            "resource_id": q.resource_id, "from": q.from, "to": q.to, "cursor": q.cursor,
        }),
    )
    .await;
    Ok(axum::Json(AuditPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
