//! The home page and the small formatting helpers templates share.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use echo_core::analysis::Interval;
use echo_core::service::{BrandTrend, DashboardService};
use echo_core::store::DashboardStats;

use super::alerts::{self, AlertRow};
use super::chart::{self, BarChart, LineChart};
use super::{Chrome, render};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::ApiQuery;
use crate::routes::dashboard::{self, DashboardQuery};
use crate::routes::experiments::{self, ExperimentSummary, ListQuery};
use crate::state::AppState;

/// Percent-encodes `s` for a query-string value.
pub fn url_encode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

/// A rate (0..1) as a percentage with one decimal, e.g. `42.5%`.
pub fn pct(rate: &f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A half-width as "±N points" (`0.05` → `±5 points`, `0.025` → `±2.5 points`).
pub fn points(half_width: &f64) -> String {
    let p = half_width * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("\u{b1}{p:.0} points")
    } else {
        format!("\u{b1}{p:.1} points")
    }
}

/// An identifier as words (`case_insensitive` → `case insensitive`).
pub fn label(s: &str) -> String {
    s.replace('_', " ")
}

/// An optional rate as a percentage, or an en dash.
pub fn pct_opt(rate: &Option<f64>) -> String {
    rate.as_ref().map_or_else(|| "–".to_owned(), pct)
}

/// A number with one decimal, or an en dash.
pub fn num_opt(v: &Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

/// A 95% interval as `30.1–54.8%`, or an en dash.
pub fn interval(ci: &Option<Interval>) -> String {
    ci.map_or_else(
        || "–".to_owned(),
        |ci| format!("{:.1}–{:.1}%", ci.lower * 100.0, ci.upper * 100.0),
    )
}

/// A count with thousands separators (`12,345`).
pub fn count(n: &u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A timestamp as `2026-12-07 19:42 UTC`.
pub fn when(t: &echo_core::model::Timestamp) -> String {
    let s = t.to_string();
    // RFC 3339: keep the date and the minutes; the seconds add noise to a table.
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => s,
    }
}

/// A tested change in words, as the compare and alerts pages say it: "up 12.0 points,
/// p = 0.030, likely a real change" (`p_name` names the p-value: "p", "adjusted p").
/// `difference` is the change of a rate (0..1); `None` when a side had no answers.
pub fn change_in_words(difference: Option<f64>, p: Option<f64>, p_name: &str) -> String {
    let Some(diff) = difference else {
        return "not comparable: a run has no successful answers".to_owned();
    };
    let points = diff * 100.0;
    let direction = if points.abs() < 0.05 {
        "unchanged".to_owned()
    } else if points > 0.0 {
        format!("up {points:.1} points")
    } else {
        format!("down {:.1} points", -points)
    };
    match p {
        Some(p) if p < 0.05 => format!("{direction}, {p_name} = {p:.3}, likely a real change"),
        Some(p) => format!("{direction}, {p_name} = {p:.3}, could be chance"),
        None => format!("{direction}, no test possible"),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    stats: DashboardStats,
    recent: Vec<ExperimentSummary>,
    trend: BrandTrend,
    lines: Option<LineChart>,
    shares: BarChart,
    alerts: Vec<AlertRow>,
}

impl HomePage {
    fn success_rate(&self) -> String {
        if self.stats.iterations_total == 0 {
            "–".to_owned()
        } else {
            pct(&(self.stats.iterations_succeeded as f64 / self.stats.iterations_total as f64))
        }
    }
}

/// `GET /`: totals, the latest alerts ([`alerts::latest`]), the followed brand's visibility
/// over time and share of voice ([`DashboardService::brand_trend`]), mean visibility per
/// provider and the recent experiments, from the same functions as `GET /api/v1/dashboard/stats` and
/// `GET /api/v1/experiments`.
pub async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "home").await?;
    let axum::Json(stats) = dashboard::stats(
        State(state.clone()),
        Extension(caller),
        ApiQuery(DashboardQuery { days: None }),
    )
    .await?;
    let trend = DashboardService::from_store(&state.store)
        .brand_trend(caller.user_id)
        .await
        .map_err(|e| ApiError::from_service(e, "dashboard"))?;
    let latest_alerts = alerts::latest(&state, caller.user_id).await?;
    let axum::Json(page) = experiments::list(
        State(state),
        Extension(caller),
        ApiQuery(ListQuery {
            status: None,
            cursor: None,
            limit: Some(5),
        }),
    )
    .await?;
    Ok(render(
        StatusCode::OK,
        &HomePage {
            chrome,
            stats,
            recent: page.items,
            lines: chart::visibility_lines(&trend.series),
            shares: chart::share_bars(&trend.share_of_voice),
            trend,
            alerts: latest_alerts,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(&0), "0");
        assert_eq!(count(&999), "999");
        assert_eq!(count(&1_000), "1,000");
        assert_eq!(count(&1_234_567), "1,234,567");
        assert_eq!(pct(&0.4251), "42.5%");
        assert_eq!(label("aliases_only"), "aliases only");
        assert_eq!(pct_opt(&None), "–");
        assert_eq!(points(&0.05), "±5 points");
        assert_eq!(points(&0.1), "±10 points");
        assert_eq!(points(&0.025), "±2.5 points");
        assert_eq!(num_opt(&Some(1.26)), "1.3");
        assert_eq!(
            url_encode("/experiments?a=1&b"),
            "%2Fexperiments%3Fa%3D1%26b"
        );
    }
}
