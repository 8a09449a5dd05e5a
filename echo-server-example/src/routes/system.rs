//! Outside `/api/v1`: liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use echo_core::model::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the store answers and its schema is this build's.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "Store unreachable or not migrated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    if let Err(e) = state.store.queue_stats(Timestamp::now()).await {
        crate::error::log_chain("readiness: store unreachable", Some(&e));
        return Err(ApiError::unavailable(1));
    }
    if let Some(check) = &state.schema_check
        && let Err(reason) = check().await
    {
        tracing::warn!(%reason, "readiness: schema not current");
        return Err(ApiError::unavailable(5));
    }
    Ok(axum::Json(Health { status: "ok" }))
}

/// Whether `headers` carry `Authorization: Bearer <expected>`. Both sides are hashed first, so
/// the constant-time comparison does not reveal the token's length either.
fn bearer_matches(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or("");
    Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into()
}

/// Prometheus metrics (text exposition format 0.0.4). With `security.metrics_token` set, the
/// scraper must send it as `Authorization: Bearer`.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"),
        (status = 401, description = "A metrics token is configured and was not sent", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.security.metrics_token
        && !bearer_matches(&headers, token.expose())
    {
        return Err(ApiError::unauthenticated(
            "send the metrics token (ECHO_METRICS_TOKEN) as Authorization: Bearer",
        ));
    }
    // Pool first: the queue query below takes a connection, which would count as in use.
    #[cfg(feature = "postgres")]
    let pool = state.pool_stats.as_ref().map(|f| f());
    let queue = state.store.queue_stats(Timestamp::now()).await.ok();
    let workers = state
        .worker_stats
        .read()
        .ok()
        .and_then(|slot| slot.as_ref().map(|f| f()));
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut body = state.metrics.render(queue, workers);
    #[cfg(feature = "postgres")]
    if let Some(pool) = pool {
        crate::metrics::render_pool(&mut body, &pool);
    }
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// The OpenAPI 3.1 document of this API, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    axum::Json(crate::openapi::document(&state)).into_response()
}
