//! The audit-log viewer: administrators only (everyone else gets the 404 page, as from the
//! API), through the API's own `audit_logs`.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use echo_core::model::AuditEvent;
use serde::Deserialize;

use super::account::FieldErrors;
use super::view::url_encode;
use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::ApiQuery;
use crate::routes::admin::{self, AuditLogQuery};
use crate::state::AppState;

/// The filter form (empty fields filter nothing).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    user: String,
    action: String,
    resource_type: String,
    from: String,
    to: String,
    cursor: String,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl AuditFilter {
    /// The query string of these filters (for the next-page link).
    fn query(&self) -> String {
        [
            ("user", &self.user),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPageView {
    chrome: Chrome,
    filter: AuditFilter,
    items: Vec<AuditEvent>,
    next: Option<String>,
    errors: FieldErrors,
}

/// `GET /admin/audit`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, ApiError> {
    // Non-administrators learn nothing, not even that the page exists.
    admin::require_admin(&state, &caller).await?;
    let chrome = Chrome::of(&state, &caller, "admin").await?;
    let cursor = match some(&filter.cursor).map(|c| c.parse::<u64>()) {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return Err(ApiError::invalid("cursor", "must be a number")),
        None => None,
    };
    let query = AuditLogQuery {
        user: some(&filter.user),
        action: some(&filter.action),
        resource_type: some(&filter.resource_type),
        resource_id: None,
        from: some(&filter.from),
        to: some(&filter.to),
        cursor,
        limit: Some(50),
    };
    let fields = ["user", "action", "resource_type", "from", "to"];
    let (items, next, errors, status) =
        match admin::audit_logs(State(state), Extension(caller), ctx, ApiQuery(query)).await {
            Ok(axum::Json(page)) => {
                let next = page.next_cursor.map(|c| {
                    let q = filter.query();
                    if q.is_empty() {
                        format!("/admin/audit?cursor={c}")
                    } else {
                        format!("/admin/audit?{q}&cursor={c}")
                    }
                });
                (page.items, next, FieldErrors::default(), StatusCode::OK)
            }
            Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => (
                Vec::new(),
                None,
                FieldErrors::from_api(&e, &fields, |n| n),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Err(e) => return Err(e),
        };
    Ok(render(
        status,
        &AuditPageView {
            chrome,
            filter,
            items,
            next,
            errors,
        },
    ))
}
