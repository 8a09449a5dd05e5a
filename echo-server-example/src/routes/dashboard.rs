//! The caller's dashboard figures.

use axum::Extension;
use axum::extract::State;
use echo_core::model::Timestamp;
use echo_core::store::DashboardStats;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiQuery;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/v1/dashboard/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// Days of trend to return (1 to 365, default 30); others are refused with 422.
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u32>,
}

/// Experiments by status, iteration totals, mean visibility per provider and the daily trend.
#[utoipa::path(get, path = "/api/v1/dashboard/stats", tag = "dashboard",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(DashboardQuery),
    responses((status = 200, description = "The dashboard", body = Object),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> Result<axum::Json<DashboardStats>, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("days", "must be between 1 and 365"));
    }
    let since = (Timestamp::now() - time::Duration::days(i64::from(days))).start_of_day();
    let stats = state
        .store
        .dashboard(caller.user_id, since)
        .await
        .map_err(|e| ApiError::from_store(e, "dashboard"))?;
    Ok(axum::Json(stats))
}
