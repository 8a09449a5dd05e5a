//! Settings pages for webhook endpoints: register one (its secret shown once), list them, read
//! an endpoint's delivery log, send a test ping, delete. Each calls the JSON route's own
//! function, so the rules live once.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use echo_core::model::{Timestamp, WebhookId};
use serde::Deserialize;

use super::account::FieldErrors;
use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::webhooks::{
    self as api, CreateWebhookRequest, CreatedWebhookView, DeliveryListQuery, DeliveryView,
    WebhookView,
};
use crate::routes::{ApiPath, ApiQuery, parse_id};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    chrome: Chrome,
    webhooks: Vec<WebhookView>,
    created: Option<CreatedWebhookView>,
    url: String,
    description: String,
    errors: FieldErrors,
    development: bool,
}

async fn webhooks_page(
    state: &AppState,
    caller: Caller,
    created: Option<CreatedWebhookView>,
    form: NewWebhookForm,
    errors: FieldErrors,
) -> Result<WebhooksPage, ApiError> {
    let chrome = Chrome::of(state, &caller, "settings").await?;
    let axum::Json(list) = api::list(State(state.clone()), Extension(caller)).await?;
    Ok(WebhooksPage {
        chrome,
        webhooks: list.items,
        created,
        url: form.url,
        description: form.description,
        errors,
        development: state.config.env == crate::config::Environment::Development,
    })
}

/// `GET /settings/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let page = webhooks_page(
        &state,
        caller,
        None,
        NewWebhookForm::default(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(StatusCode::OK, &page))
}

/// The new-endpoint form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewWebhookForm {
    url: String,
    description: String,
}

/// `POST /settings/webhooks`: registers an endpoint and shows its secret this once.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Form(form): Form<NewWebhookForm>,
) -> Result<Response, ApiError> {
    let request = CreateWebhookRequest {
        url: form.url.clone(),
        description: Some(form.description.clone()),
    };
    match api::create_webhook(&state, &caller, &ctx, request).await {
        Ok(created) => {
            let page = webhooks_page(
                &state,
                caller,
                Some(created),
                NewWebhookForm::default(),
                FieldErrors::default(),
            )
            .await?;
            Ok(render(StatusCode::CREATED, &page))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::FORBIDDEN => {
            let errors = FieldErrors::from_api(&e, &["url", "description"], |n| n);
            let page = webhooks_page(&state, caller, None, form, errors).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    chrome: Chrome,
    webhook: WebhookView,
    deliveries: Vec<DeliveryView>,
    next_cursor: Option<String>,
    first_page: bool,
    now: Timestamp,
}

impl WebhookPage {
    /// Whether a next attempt is still ahead (else it is due, waiting for a worker).
    fn later(&self, at: &Timestamp) -> bool {
        *at > self.now
    }
}

/// `GET /settings/webhooks/{id}`: the endpoint and its delivery log, newest first.
pub async fn detail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListQuery>,
) -> Result<Response, ApiError> {
    let id: WebhookId = parse_id(&id, "webhook")?;
    let chrome = Chrome::of(&state, &caller, "settings").await?;
    let endpoint = api::service(&state)
        .get(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    let first_page = q.cursor.is_none();
    let page = api::delivery_page(&state, &caller, id, &q).await?;
    Ok(render(
        StatusCode::OK,
        &WebhookPage {
            chrome,
            webhook: WebhookView::of(&endpoint),
            deliveries: page.items,
            next_cursor: page.next_cursor,
            first_page,
            now: Timestamp::now(),
        },
    ))
}

/// `POST /settings/webhooks/{id}/ping`: queues a test delivery, then shows the log.
pub async fn ping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let webhook: WebhookId = parse_id(&id, "webhook")?;
    api::service(&state)
        .ping(caller.user_id, webhook, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    Ok(Redirect::to(&format!("/settings/webhooks/{webhook}")).into_response())
}

/// `POST /settings/webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let webhook: WebhookId = parse_id(&id, "webhook")?;
    api::delete_webhook(&state, &caller, &ctx, webhook).await?;
    Ok(Redirect::to("/settings/webhooks").into_response())
}
