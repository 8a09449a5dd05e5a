//! Webhook endpoints: where a user's alerts are posted, signed (see [`echo_core::webhook`]),
//! with a delivery log. The rules (URL policy, cap, retries) live in
//! [`echo_core::service::WebhookService`] and [`echo_core::webhook`].

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use echo_core::model::{Timestamp, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookId};
use echo_core::service::{WebhookDraft, WebhookService};
use echo_core::store::{DeliveryQuery, PageSize};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, parse_id};
use crate::audit::{AuditContext, audit};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The service with this deployment's URL policy.
pub fn service(state: &AppState) -> WebhookService {
    WebhookService::from_store(
        &state.store,
        crate::webhook_transport::policy_for(state.config.env),
    )
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// The receiver's URL.
    #[schema(schema_with = crate::schemas::webhook_url)]
    pub url: String,
    /// A note for you ("Slack relay").
    #[serde(default)]
    #[schema(schema_with = crate::schemas::webhook_description)]
    pub description: Option<String>,
}

/// An endpoint as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub id: String,
    /// Where deliveries are posted.
    pub url: String,
    /// Your note; may be empty.
    pub description: String,
    /// Registration time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl WebhookView {
    /// The view of a stored endpoint.
    pub fn of(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.to_string(),
            description: e.description.clone(),
            created_at: e.created_at,
        }
    }
}

/// A new endpoint: `secret` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookView {
    /// The signing secret (`whsec_` and 64 hex digits): verify each delivery's
    /// `Echo-Signature` with it (the README's recipe). Store it now; it is never shown again.
    pub secret: String,
    /// The listing view.
    #[serde(flatten)]
    pub webhook: WebhookView,
}

/// The caller's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub items: Vec<WebhookView>,
}

fn delivery_status() -> utoipa::openapi::Object {
    crate::schemas::one_of(
        &["pending", "succeeded", "failed"],
        false,
        "Where it stands",
    )
}

fn delivery_event() -> utoipa::openapi::Object {
    crate::schemas::one_of(&["alerts.raised", "ping"], false, "What it tells")
}

/// One delivery of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Id; also the body's `id` and the `Echo-Delivery` header.
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// `alerts.raised` or `ping`.
    #[schema(schema_with = delivery_event)]
    pub event: String,
    /// `pending` (attempts follow), `succeeded` or `failed` (given up).
    #[schema(schema_with = delivery_status)]
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's HTTP status at the last attempt, when it answered.
    pub response_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The last attempt's time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attempt_at: Option<Timestamp>,
    /// When the next attempt is due, while pending.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// When the event was raised.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The JSON body posted, exactly as signed.
    pub body: String,
}

impl DeliveryView {
    /// The view of a stored delivery.
    pub fn of(d: &WebhookDelivery) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.endpoint_id.to_string(),
            event: d.event.to_string(),
            status: d.status.to_string(),
            attempts: d.attempts,
            response_status: d.response_status,
            last_error: d.last_error.clone(),
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            body: d.body.clone(),
        }
    }
}

/// `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryListQuery {
    /// From a previous page's `next_cursor` (a delivery id).
    #[param(format = Uuid)]
    pub cursor: Option<String>,
    /// Rows per page (1 to 100, default 20); others are refused with 422.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Registers an endpoint (the rules of `POST /api/v1/webhooks`, shared with the settings
/// page), with its audit event.
pub async fn create_webhook(
    state: &AppState,
    caller: &Caller,
    ctx: &AuditContext,
    body: CreateWebhookRequest,
) -> Result<CreatedWebhookView, ApiError> {
    let draft = WebhookDraft {
        url: body.url,
        description: body.description.unwrap_or_default(),
    };
    let endpoint = service(state)
        .create(caller.user_id, &draft, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    tracing::info!(event = "webhook_created", user_id = %caller.user_id, webhook_id = %endpoint.id, "webhook endpoint registered");
    audit(
        state,
        ctx,
        Some(caller.user_id),
        "create_webhook",
        "webhook",
        Some(endpoint.id.to_string()),
        serde_json::json!({"url": endpoint.url.as_str()}),
    )
    .await;
    Ok(CreatedWebhookView {
        secret: endpoint.secret.expose().to_owned(),
        webhook: WebhookView::of(&endpoint),
    })
}

/// Deletes an endpoint (shared with the settings page), with its audit event.
pub async fn delete_webhook(
    state: &AppState,
    caller: &Caller,
    ctx: &AuditContext,
    id: WebhookId,
) -> Result<(), ApiError> {
    service(state)
        .delete(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    audit(
        state,
        ctx,
        Some(caller.user_id),
        "delete_webhook",
        "webhook",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(())
}

/// Registers a webhook endpoint for your alerts.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = CreateWebhookRequest,
    responses((status = 201, description = "Registered; the secret is shown once", body = CreatedWebhookView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account holds the most endpoints allowed (10)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL or description", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let view = create_webhook(&state, &caller, &ctx, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Lists your webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The endpoints", body = WebhookList),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<WebhookList>, ApiError> {
    let items = service(&state)
        .list(caller.user_id)
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    Ok(axum::Json(WebhookList {
        items: items.iter().map(WebhookView::of).collect(),
    }))
}

/// One of your webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The endpoint", body = WebhookView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id: WebhookId = parse_id(&id, "webhook")?;
    let endpoint = service(&state)
        .get(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    Ok(axum::Json(WebhookView::of(&endpoint)))
}

/// Deletes one of your webhook endpoints and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: WebhookId = parse_id(&id, "webhook")?;
    delete_webhook(&state, &caller, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a signed `ping` delivery to one of your endpoints, to test your receiver.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, description = "Queued; follow it in the delivery log", body = DeliveryView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn ping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id: WebhookId = parse_id(&id, "webhook")?;
    let delivery = service(&state)
        .ping(caller.user_id, id, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(DeliveryView::of(&delivery)),
    )
        .into_response())
}

/// Reads the page of an endpoint's delivery log the query names (shared with the settings
/// page).
pub async fn delivery_page(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    q: &DeliveryListQuery,
) -> Result<DeliveryPage, ApiError> {
    let query = DeliveryQuery {
        after: q
            .cursor
            .as_deref()
            .map(str::parse::<WebhookDeliveryId>)
            .transpose()?,
        limit: q.limit.map(PageSize::new).transpose()?.unwrap_or_default(),
    };
    let page = service(state)
        .deliveries(caller.user_id, id, &query)
        .await
        .map_err(|e| ApiError::from_service(e, "webhook"))?;
    Ok(DeliveryPage {
        items: page.items.iter().map(DeliveryView::of).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    })
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Webhook id"), DeliveryListQuery),
    responses((status = 200, description = "A page", body = DeliveryPage),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad cursor or limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListQuery>,
) -> Result<axum::Json<DeliveryPage>, ApiError> {
    let id: WebhookId = parse_id(&id, "webhook")?;
    Ok(axum::Json(delivery_page(&state, &caller, id, &q).await?))
}
