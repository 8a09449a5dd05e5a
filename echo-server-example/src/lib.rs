//! Echo's reference server and the `echoai` command line.
//!
//! `main.rs` only parses the command line; everything else is here so tests drive the same code.
//! - [`build_app`] and [`run`]: the HTTP API (axum) over an [`AppState`]; [`server`] wires the
//!   API, the worker pool and the scheduler into `echoai serve` / `echoai worker`.
//! - [`web`]: the dashboard's pages and assets, on the same origin as the API.
//! - [`routes`]: the handlers; [`events`]: the live progress streams (SSE); [`auth`]: credentials,
//!   CSRF and rate limits; [`middleware`]:
//!   request ids, logs, metrics and security headers; [`error`]: problem+json.
//! - [`config`]: typed configuration from defaults, a TOML file and the environment.
//! - [`commands`]: `echoai run` (the main job), `analyze`, `migrate`, `serve`, `worker`, `user`.
//! - [`report`]: the per-provider report, as a table or JSON.
//! - [`providers`]: building provider clients from the command line and the environment.
//! - [`database`]: the store a database URL names (the one place that maps URLs to backends).
//!
//! Cargo features (all but `smtp` on by default): `sqlite` (the embedded store), `postgres`
//! (the PostgreSQL store), `providers` (real provider clients; without it only the simulated
//! provider runs) and `smtp` (mail by SMTP). A binary asked for something it was built without
//! says which feature to rebuild with ([`commands::CliError::NotBuilt`]).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connections;
pub mod database;
pub mod error;
pub mod events;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod progress;
pub mod providers;
pub mod report;
pub mod routes;
pub mod schemas;
pub mod server;
#[cfg(feature = "smtp")]
pub mod smtp;
pub mod state;
pub mod web;
pub mod webhook_transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use echo_core::store::DynStore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use state::{AppState, StateOptions, StoreExtras};

use crate::routes::{
    account, admin, alerts, brand, dashboard, discover, experiments, export, keys, privacy,
    prompt_sets, runs, sources, system, webhooks,
};

/// The router: `/api/v1` (authenticated except registration and login), the health, metrics
/// and OpenAPI routes, and the middleware every response goes through.
pub fn build_app(state: AppState) -> Router {
    let protected = Router::new()
        .route("/auth/logout", post(account::logout))
        .route("/auth/me", get(account::me))
        .route("/auth/api-keys", post(keys::create).get(keys::list))
        .route("/auth/api-keys/{id}", axum::routing::delete(keys::revoke))
        .route("/auth/api-keys/{id}/rotate", post(keys::rotate))
        .route(
            "/brand/profile",
            get(brand::get_profile).put(brand::put_profile),
        )
        .route(
            "/experiments",
            post(experiments::create).get(experiments::list),
        )
        .route(
            "/experiments/{id}",
            get(experiments::get).delete(experiments::delete),
        )
        .route("/experiments/{id}/run", post(experiments::run))
        .route("/experiments/{id}/cancel", post(experiments::cancel))
        .route("/experiments/{id}/compare", get(experiments::compare))
        .route("/experiments/{id}/events", get(runs::events))
        .route(
            "/experiments/{id}/runs/{run_id}/answers",
            get(runs::answers),
        )
        .route("/experiments/{id}/sources", get(sources::sources))
        .route(
            "/experiments/{id}/discovered-brands",
            get(discover::discovered_brands),
        )
        .route("/experiments/{id}/export/runs.csv", get(export::runs_csv))
        .route(
            "/experiments/{id}/export/answers.csv",
            get(export::answers_csv),
        )
        .route("/brand/profile/competitors", post(discover::add_competitor))
        .route(
            "/brand/prompt-sets",
            post(prompt_sets::create).get(prompt_sets::list),
        )
        .route(
            "/brand/prompt-sets/{id}",
            get(prompt_sets::get).delete(prompt_sets::delete),
        )
        .route(
            "/brand/prompt-sets/{id}/versions",
            post(prompt_sets::new_version),
        )
        .route("/dashboard/stats", get(dashboard::stats))
        .route("/dashboard/trend", get(dashboard::trend))
        .route("/alerts", get(alerts::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/webhooks/{id}/ping", post(webhooks::ping))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/csrf-token", get(account::csrf_token))
        .route("/admin/users/{id}", get(admin::get_user))
        .route("/admin/audit-logs", get(admin::audit_logs))
        .route("/user/consent", post(privacy::consent))
        .route(
            "/auth/verify-email/resend",
            post(account::resend_verification),
        )
        .route("/user/data-export", get(privacy::export))
        .route(
            "/user/account",
            axum::routing::delete(privacy::delete_account),
        )
        // `route_layer`: unknown routes answer 404, not 401.
        .route_layer(from_fn_with_state(state.clone(), auth::require_auth));
    let api = Router::new()
        .route("/auth/register", post(account::register))
        .route("/auth/login", post(account::login))
        .route("/auth/verify-email", post(account::verify_email))
        .route("/privacy-policy", get(privacy::policy))
        .merge(protected);
    let limit = state.config.http.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    let cors = cors_layer(&state.config.security.cors_origins);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .merge(web::router(state.clone()))
        .fallback(web::fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower::util::option_layer(cors))
        .layer(from_fn_with_state(state.clone(), middleware::envelope))
        .with_state(state)
}

/// CORS for the configured origins only; `None` (no CORS headers at all) when none are.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
                header::RETRY_AFTER,
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

/// Serves `app` on `listener` with the default [`connections::ConnectionLimits`] until
/// `shutdown` resolves, then lets in-flight requests finish (see [`connections::serve`] for
/// other limits).
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(
        listener,
        app,
        shutdown,
        connections::ConnectionLimits::default(),
    )
    .await
}

/// Opens the store a `--database` value names, with a pool sized for a command (see
/// [`database::open`]). Returns the store and, for PostgreSQL, how many migrations this call
/// applied.
pub async fn open_store(
    database: &str,
) -> Result<(Arc<DynStore>, Option<usize>), commands::CliError> {
    let opened = database::open(database, database::PoolSizing::COMMAND).await?;
    Ok((opened.store, opened.applied_migrations))
}

/// Logs go to standard error (standard output carries the report), filtered by `filter`:
/// JSON lines when `json` (what log pipelines want), human-readable otherwise.
pub fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
}
