//! The caller's dashboard figures.

use axum::Extension;
use axum::extract::State;
use echo_core::model::Timestamp;
use echo_core::service::{
    BrandTrend, DashboardService, ProviderSeries, VisibilityPoint, VoiceShare,
};
use echo_core::store::DashboardStats;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// One completed run as a point of the visibility chart.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendPointView {
    /// When the run completed (the point's x).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The run.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Successful answers naming the brand.
    pub successes: u32,
    /// Successful answers.
    pub n: u32,
    /// `successes / n`; absent when `n` is 0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub rate: Option<f64>,
    /// Lower bound of the Wilson 95% interval (the band); absent when `n` is 0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub low: Option<f64>,
    /// Upper bound of the Wilson 95% interval; absent when `n` is 0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub high: Option<f64>,
}

impl From<VisibilityPoint> for TrendPointView {
    fn from(p: VisibilityPoint) -> Self {
        let v = p.visibility;
        Self {
            at: p.at,
            run_id: p.run_id.to_string(),
            experiment_id: p.experiment_id.to_string(),
            successes: v.successes,
            n: v.n,
            rate: v.rate,
            low: v.ci95.map(|ci| ci.lower),
            high: v.ci95.map(|ci| ci.upper),
        }
    }
}

/// One provider's line.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendSeriesView {
    /// The provider (`openai`, `anthropic`, …).
    pub provider: String,
    /// Its runs, oldest first.
    pub points: Vec<TrendPointView>,
}

impl From<ProviderSeries> for TrendSeriesView {
    fn from(s: ProviderSeries) -> Self {
        Self {
            provider: s.provider.as_str().to_owned(),
            points: s.points.into_iter().map(Into::into).collect(),
        }
    }
}

/// One brand's bar of the share-of-voice chart.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceShareView {
    /// The brand, as its latest run names it.
    pub brand: String,
    /// Whether it is the followed brand; otherwise a competitor.
    pub is_target: bool,
    /// Its mentions, summed over the runs drawn.
    pub mentions: u64,
    /// `mentions` ÷ the mentions of every tracked brand in those runs; absent when no tracked
    /// brand was named.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub share: Option<f64>,
}

impl From<VoiceShare> for VoiceShareView {
    fn from(v: VoiceShare) -> Self {
        Self {
            brand: v.brand,
            is_target: v.is_target,
            mentions: v.mentions,
            share: v.share,
        }
    }
}

/// The home dashboard's charts as data: what `GET /` draws.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendView {
    /// The followed brand: the target of the most recently completed run with metrics; absent
    /// before any (then every list is empty). Runs of experiments with another target are left
    /// out (matched by name, ignoring case).
    pub brand: Option<String>,
    /// Visibility over time, one line per provider, ordered by provider name.
    pub series: Vec<TrendSeriesView>,
    /// Share of voice over the same runs, the most mentioned first (ties by name).
    pub share_of_voice: Vec<VoiceShareView>,
    /// Runs drawn.
    pub runs: u32,
    /// Whether older runs exist beyond the latest ones read (the charts are bounded).
    pub truncated: bool,
}

impl From<BrandTrend> for TrendView {
    fn from(t: BrandTrend) -> Self {
        Self {
            brand: t.brand,
            series: t.series.into_iter().map(Into::into).collect(),
            share_of_voice: t.share_of_voice.into_iter().map(Into::into).collect(),
            runs: t.runs,
            truncated: t.truncated,
        }
    }
}

/// The followed brand's visibility over time per provider (one point per completed run, with
/// its Wilson 95% interval) and its share of voice: the data of the home dashboard's charts,
/// from the same service the page draws.
#[utoipa::path(get, path = "/api/v1/dashboard/trend", tag = "dashboard",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The charts' data", body = TrendView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn trend(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<TrendView>, ApiError> {
    let trend = DashboardService::from_store(&state.store)
        .brand_trend(caller.user_id)
        .await
        .map_err(|e| ApiError::from_service(e, "dashboard"))?;
    Ok(axum::Json(trend.into()))
}
