//! Alerts on significant change between runs of a recurring experiment. The rules (which
//! changes are tested, the Benjamini–Hochberg correction) live in
//! [`echo_core::analysis::alerts`] and [`echo_core::service::AlertService`].

use axum::Extension;
use axum::extract::State;
use echo_core::analysis::Proportion;
use echo_core::model::{Alert, AlertId, Timestamp};
use echo_core::service::AlertService;
use echo_core::store::{AlertQuery, PageSize};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiQuery;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A rate as tested: `successes` of `n` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateView {
    /// Answers with the property (naming the brand, or naming it first).
    pub successes: u32,
    /// Answers analysed.
    pub n: u32,
    /// `successes / n`; null when `n = 0`.
    pub rate: Option<f64>,
}

impl RateView {
    fn of(p: &Proportion) -> Self {
        Self {
            successes: p.successes,
            n: p.n,
            rate: p.rate,
        }
    }
}

fn alert_kind() -> utoipa::openapi::Object {
    crate::schemas::one_of(
        &["visibility", "first_place", "competitor_overtook"],
        false,
        "What changed",
    )
}

/// One alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Id.
    pub id: String,
    /// The recurring experiment.
    pub experiment_id: String,
    /// The newer run, whose completion raised the alert.
    pub batch_run_id: String,
    /// The previous completed run it was compared with.
    pub previous_run_id: String,
    /// The provider of both runs.
    pub provider: String,
    /// What changed: the target's visibility, its first-place rate, or a competitor's
    /// visibility rising above the target's.
    #[schema(schema_with = alert_kind)]
    pub kind: String,
    /// The brand whose rate changed (the target, or the competitor that overtook it).
    pub brand: String,
    /// The target brand.
    pub target: String,
    /// The tested rate in the previous run.
    pub before: RateView,
    /// The tested rate in the newer run.
    pub after: RateView,
    /// `after.rate − before.rate`.
    pub difference: Option<f64>,
    /// Newcombe 95% interval of the difference, `[lower, upper]`.
    pub difference_ci95: Option<[f64; 2]>,
    /// Two-proportion z statistic.
    pub z: Option<f64>,
    /// Two-sided p-value of `z`, before correction.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value over the brands × providers compared (≤ 0.05).
    pub adjusted_p: f64,
    /// The target's visibility in the previous and the newer run.
    pub target_visibility: [Option<f64>; 2],
    /// When it was raised.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl AlertView {
    /// The view of a stored alert.
    pub fn of(a: &Alert) -> Self {
        let f = &a.finding;
        Self {
            id: a.id.to_string(),
            experiment_id: a.experiment_id.to_string(),
            batch_run_id: a.batch_run_id.to_string(),
            previous_run_id: a.previous_run_id.to_string(),
            provider: f.provider.to_string(),
            kind: f.kind.to_string(),
            brand: f.brand.clone(),
            target: f.target.clone(),
            before: RateView::of(&f.change.before),
            after: RateView::of(&f.change.after),
            difference: f.change.difference,
            difference_ci95: f.change.difference_ci95.map(|ci| [ci.lower, ci.upper]),
            z: f.change.z,
            p_value: f.change.p_value,
            adjusted_p: f.adjusted_p,
            target_visibility: [f.target_visibility.0, f.target_visibility.1],
            created_at: a.created_at,
        }
    }
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// Newest first.
    pub items: Vec<AlertView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertListQuery {
    /// From a previous page's `next_cursor` (an alert id).
    #[param(format = Uuid)]
    pub cursor: Option<String>,
    /// Rows per page (1 to 100, default 20); others are refused with 422.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Lists the caller's alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(AlertListQuery),
    responses((status = 200, description = "A page", body = AlertPage),
        (status = 422, description = "Bad cursor or limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AlertListQuery>,
) -> Result<axum::Json<AlertPage>, ApiError> {
    let query = AlertQuery {
        after: q.cursor.as_deref().map(str::parse::<AlertId>).transpose()?,
        limit: q.limit.map(PageSize::new).transpose()?.unwrap_or_default(),
    };
    let page = AlertService::from_store(&state.store)
        .list(caller.user_id, &query)
        .await
        .map_err(|e| ApiError::from_service(e, "alert"))?;
    Ok(axum::Json(AlertPage {
        items: page.items.iter().map(AlertView::of).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
