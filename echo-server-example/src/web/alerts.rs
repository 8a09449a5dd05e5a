//! The alerts page: the signed-in user's alerts on significant change, newest first, a page
//! at a time. The alerts, their order and the cursor come from [`AlertService::list`] (the
//! same call as `GET /api/v1/alerts`); this module only puts them into words.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use echo_core::analysis::Proportion;
use echo_core::analysis::alerts::ALERT_FDR_Q;
use echo_core::model::{Alert, AlertId, AlertKind, ExperimentId, UserId};
use echo_core::service::AlertService;
use echo_core::store::{AlertQuery, PageSize, StoreError};
use serde::Deserialize;

use super::view::{change_in_words, url_encode, when};
use super::{Chrome, render};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Alerts per page.
const PAGE: u32 = 20;

/// Alerts on the home page.
pub const HOME_ALERTS: u32 = 3;

/// `?cursor=` of the alerts page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertParams {
    cursor: String,
}

/// One alert as the pages show it.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// When it was raised (`2026-12-07 19:42 UTC`).
    pub when: String,
    /// The experiment's id, for its detail page.
    pub experiment_id: String,
    /// The experiment's prompt, when it was looked up.
    pub prompt: Option<String>,
    /// The provider both runs asked.
    pub provider: String,
    /// What changed, as words ("visibility", "first place"…).
    pub kind: String,
    /// The brand whose rate changed (user text: escaped by the template).
    pub brand: String,
    /// The target brand, named when a competitor overtook it.
    pub overtook: Option<String>,
    /// `62% (62 of 100)`.
    pub before: String,
    /// `41% (41 of 100)`.
    pub after: String,
    /// `down 21.0 points, adjusted p = 0.003, likely a real change`.
    pub verdict: String,
    /// The previous run's answers page.
    pub before_answers: String,
    /// The newer run's answers page.
    pub after_answers: String,
}

impl AlertRow {
    fn of(a: &Alert, prompt: Option<String>) -> Self {
        let f = &a.finding;
        let experiment_id = a.experiment_id.to_string();
        let answers = |run: String| format!("/experiments/{experiment_id}/runs/{run}/answers");
        Self {
            when: when(&a.created_at),
            prompt,
            provider: f.provider.to_string(),
            kind: match f.kind {
                AlertKind::Visibility => "visibility".to_owned(),
                AlertKind::FirstPlace => "first-place rate".to_owned(),
                AlertKind::CompetitorOvertook => "competitor overtook".to_owned(),
            },
            brand: f.brand.clone(),
            overtook: (f.kind == AlertKind::CompetitorOvertook).then(|| f.target.clone()),
            before: rate_with_n(&f.change.before),
            after: rate_with_n(&f.change.after),
            verdict: change_in_words(f.change.difference, Some(f.adjusted_p), "adjusted p"),
            before_answers: answers(a.previous_run_id.to_string()),
            after_answers: answers(a.batch_run_id.to_string()),
            experiment_id,
        }
    }
}

/// A tested rate with its counts: `62% (62 of 100)`, or `no answers`.
pub fn rate_with_n(p: &Proportion) -> String {
    match p.rate {
        Some(r) => format!("{:.0}% ({} of {})", r * 100.0, p.successes, p.n),
        None => "no answers".to_owned(),
    }
}

/// The owner's alerts after `after`, at most `limit`, with the cursor of the next page.
async fn page(
    state: &AppState,
    owner: UserId,
    after: Option<AlertId>,
    limit: u32,
) -> Result<(Vec<Alert>, Option<AlertId>), ApiError> {
    let query = AlertQuery {
        after,
        limit: PageSize::new(limit)?,
    };
    let page = AlertService::from_store(&state.store)
        .list(owner, &query)
        .await
        .map_err(|e| ApiError::from_service(e, "alert"))?;
    Ok((page.items, page.next_cursor))
}

/// The home page's latest alerts: one bounded query, without the experiments' prompts.
pub async fn latest(state: &AppState, owner: UserId) -> Result<Vec<AlertRow>, ApiError> {
    let (alerts, _) = page(state, owner, None, HOME_ALERTS).await?;
    Ok(alerts.iter().map(|a| AlertRow::of(a, None)).collect())
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    alerts: Vec<AlertRow>,
    next: Option<String>,
    first_page: bool,
    q: f64,
}

/// `GET /alerts`: the caller's alerts, newest first, 20 a page, each with its experiment's
/// prompt (one lookup per distinct experiment on the page).
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AlertParams>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "alerts").await?;
    let after = (!q.cursor.is_empty())
        .then(|| q.cursor.parse::<AlertId>())
        .transpose()?;
    let (alerts, next) = page(&state, caller.user_id, after, PAGE).await?;
    let mut prompts: BTreeMap<ExperimentId, Option<String>> = BTreeMap::new();
    for a in &alerts {
        if prompts.contains_key(&a.experiment_id) {
            continue;
        }
        let prompt = match state
            .store
            .get_experiment(caller.user_id, a.experiment_id)
            .await
        {
            Ok(e) => Some(e.prompt.as_str().to_owned()),
            // Deleted since the page was read: its alerts go with it, so say nothing.
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(ApiError::from_store(e, "experiment")),
        };
        prompts.insert(a.experiment_id, prompt);
    }
    let rows = alerts
        .iter()
        .map(|a| AlertRow::of(a, prompts.get(&a.experiment_id).cloned().flatten()))
        .collect();
    Ok(render(
        StatusCode::OK,
        &AlertsPage {
            chrome,
            alerts: rows,
            next: next.map(|c| format!("/alerts?cursor={}", url_encode(&c.to_string()))),
            first_page: after.is_none(),
            q: ALERT_FDR_Q,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_their_counts() {
        assert_eq!(rate_with_n(&Proportion::new(62, 100)), "62% (62 of 100)");
        assert_eq!(rate_with_n(&Proportion::new(0, 0)), "no answers");
    }
}
