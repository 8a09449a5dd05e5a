//! The web dashboard: server-rendered pages on the same origin as `/api/v1`.
//!
//! Pages are thin callers of the same functions as the JSON routes (`crate::routes`): a page
//! parses a form, calls the shared function and renders the result or the errors next to their
//! fields. Templates (`templates/`) are compiled into the binary by askama and escape every
//! value; assets (`assets/`) are embedded and served under content-hashed names
//! ([`assets`]).
//!
//! Security: pages authenticate with the session cookie through the API's own
//! [`crate::auth::require_auth`]; a form's hidden `csrf_token` field is moved into the
//! `X-CSRF-Token` header before that check ([`form_csrf`]), so forms and `fetch` pass the very
//! same CSRF and `Sec-Fetch-Site` checks. Pages get their own CSP ([`PAGE_CSP`]) and are never
//! cached; problem+json errors from the shared functions become styled error pages
//! ([`page_envelope`]), and a missing session becomes a redirect to the log-in page.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod answers;
pub mod assets;
pub mod brand;
pub mod chart;
pub mod experiments;
pub mod settings;
pub mod view;
pub mod webhooks;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_http::compression::CompressionLayer;

use crate::auth::{CSRF_HEADER, Caller};
use crate::error::{ApiError, log_chain};
use crate::middleware::RequestId;
use crate::state::AppState;

/// The pages' Content-Security-Policy: own-origin scripts, styles and connections only; no
/// inline script or style and nothing `unsafe-*`, so injected markup can neither run nor
/// restyle the page.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// HTML depends on the session: never stored by a shared or the browser's cache.
pub const PAGE_CACHE: &str = "private, no-store";

/// Paths that belong to the HTTP API (its errors stay problem+json).
fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// Whether a response is an HTML page (the envelope leaves its error statuses alone).
pub fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// The pages and the assets, with the page middleware. Merged beside `/api/v1` by
/// [`crate::build_app`].
pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/", get(view::home))
        .route("/logout", post(account::logout))
        .route(
            "/account/verify-email/resend",
            post(account::resend_verification),
        )
        .route(
            "/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/experiments/new", get(experiments::new_form))
        .route("/alerts", get(alerts::list))
        .route("/experiments/{id}", get(experiments::detail))
        .route("/experiments/{id}/run", post(experiments::rerun))
        .route("/experiments/{id}/cancel", post(experiments::cancel))
        .route(
            "/experiments/{id}/delete",
            get(experiments::confirm_delete).post(experiments::delete),
        )
        .route("/experiments/{id}/compare", get(experiments::compare))
        .route(
            "/experiments/{id}/runs/{run_id}/answers",
            get(answers::list),
        )
        .route(
            "/settings/keys",
            get(settings::keys).post(settings::create_key),
        )
        .route("/admin/audit", get(admin::audit))
        .route(
            "/settings/brand",
            get(brand::profile).post(brand::save_profile),
        )
        .route(
            "/settings/prompt-sets",
            get(brand::list).post(brand::create),
        )
        .route(
            "/settings/prompt-sets/{id}",
            get(brand::show).post(brand::edit),
        )
        .route("/settings/prompt-sets/{id}/delete", post(brand::delete))
        .route(
            "/settings/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/settings/webhooks/{id}", get(webhooks::detail))
        .route("/settings/webhooks/{id}/ping", post(webhooks::ping))
        .route("/settings/webhooks/{id}/delete", post(webhooks::delete))
        .route("/settings/keys/{id}/rotate", post(settings::rotate_key))
        .route("/settings/keys/{id}/revoke", post(settings::revoke_key))
        .route(
            "/settings/privacy",
            get(settings::privacy_page).post(settings::update_consents),
        )
        .route(
            "/settings/delete-account",
            get(settings::confirm_delete_account).post(settings::delete_account),
        )
        .route_layer(from_fn_with_state(state.clone(), crate::auth::require_auth));
    Router::new()
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/verify-email",
            get(account::verify_email_form).post(account::verify_email),
        )
        .merge(protected)
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(form_csrf))
        .layer(from_fn_with_state(state, page_envelope))
        .layer(CompressionLayer::new())
}

/// The router's fallback: the API's problem+json 404 under the API's paths, the styled 404
/// page everywhere else.
pub async fn fallback(uri: Uri, request_id: Option<axum::Extension<RequestId>>) -> Response {
    if is_api_path(uri.path()) {
        return ApiError::not_found("route").into_response();
    }
    let mut response = error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address. It may have moved, or it belongs to another account.",
        request_id.map(|r| r.0.0),
    );
    page_headers(response.headers_mut());
    response
}

/// Sets the page CSP and no-store caching (assets set their own caching first).
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(PAGE_CACHE));
}

/// Page headers, and problem+json errors turned into pages: 401 redirects to the log-in page,
/// everything else becomes the styled error page with the problem's title and detail (a 500
/// names the request id so support can find the log line).
pub async fn page_envelope(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let wants_redirect_to = match req.method() {
        &Method::GET => req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| p.starts_with('/') && !p.starts_with("//")),
        _ => None,
    };
    let mut response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(crate::error::PROBLEM_JSON));
    let status = response.status();
    // Extractor rejections (a malformed form) arrive as plain text: a page too.
    let bare_error =
        (status.is_client_error() || status.is_server_error()) && !is_html(response.headers());
    if is_problem || bare_error {
        let keep: Vec<_> = [header::RETRY_AFTER, header::SET_COOKIE]
            .into_iter()
            .filter_map(|h| response.headers().get(&h).map(|v| (h, v.clone())))
            .collect();
        response = if status == StatusCode::UNAUTHORIZED {
            let target = match wants_redirect_to.as_deref() {
                Some(path) if path != "/" => {
                    format!("/login?next={}", view::url_encode(path))
                }
                _ => "/login".to_owned(),
            };
            Redirect::to(&target).into_response()
        } else {
            let bytes = axum::body::to_bytes(std::mem::take(response.body_mut()), 64 * 1024)
                .await
                .unwrap_or_default();
            let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            let (title, detail) = if status.is_server_error() {
                (
                    "Something went wrong".to_owned(),
                    "Echo could not finish this request. Nothing you sent is lost: go back and try again. If it keeps happening, quote the request id below.".to_owned(),
                )
            } else if problem.title.is_empty() {
                (
                    status.canonical_reason().unwrap_or("Error").to_owned(),
                    "Echo could not read this request.".to_owned(),
                )
            } else {
                (problem.title, problem.detail)
            };
            error_page(status, &title, &detail, request_id)
        };
        for (name, value) in keep {
            response.headers_mut().insert(name, value);
        }
    }
    page_headers(response.headers_mut());
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Problem {
    title: String,
    detail: String,
}

/// Moves a form's `csrf_token` field into the `X-CSRF-Token` header, so a cookie-authenticated
/// form post passes [`crate::auth::require_auth`]'s CSRF check exactly like `fetch` does.
/// Without the field the header stays absent and that check refuses the post.
pub async fn form_csrf(req: Request, next: Next) -> Response {
    let is_form = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form || req.headers().contains_key(&CSRF_HEADER) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // The outer body limit has already bounded the body; this bound only guards the copy.
    let bytes = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return crate::error::for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response(),
    };
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(k, _)| k == "csrf_token")
                .map(|(_, v)| v)
        });
    if let Some(v) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts.headers.insert(CSRF_HEADER.clone(), v);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The chrome every signed-in page shares: who is signed in, the CSRF token for its forms.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in user's email, when any.
    pub email: Option<String>,
    /// Whether they are an administrator.
    pub is_admin: bool,
    /// The session's CSRF token (empty for API-key callers, who have no forms).
    pub csrf: String,
    /// The navigation entry to mark as current.
    pub current: &'static str,
    /// Whether the account still has to verify its address (every page then offers to
    /// resend the mail).
    pub email_unverified: bool,
}

impl Chrome {
    /// The chrome of `caller`'s pages.
    pub async fn of(
        state: &AppState,
        caller: &Caller,
        current: &'static str,
    ) -> Result<Self, ApiError> {
        let user = state
            .store
            .get_user(caller.user_id)
            .await
            .map_err(|e| ApiError::from_store(e, "user"))?;
        Ok(Self {
            email: Some(user.email.as_str().to_owned()),
            is_admin: user.is_admin,
            email_unverified: user.email_verification_pending(),
            csrf: caller
                .credential
                .session()
                .map(|s| state.sessions.csrf_token(s))
                .unwrap_or_default(),
            current,
        })
    }

    /// The chrome of a page for someone not signed in.
    pub fn anonymous(current: &'static str) -> Self {
        Self {
            current,
            ..Self::default()
        }
    }

    /// The stylesheet's content-hashed URL.
    pub fn css(&self) -> &'static str {
        assets::url("app.css")
    }
}

/// Renders a template as an HTML response with `status`; a rendering failure (a bug) is
/// logged and answered with the 500 page.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => html_response(status, html),
        Err(e) => {
            log_chain("template rendering failed", Some(&e));
            ApiError::internal().into_response()
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

/// The styled error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    title: &'a str,
    detail: &'a str,
    request_id: Option<String>,
}

fn error_page(
    status: StatusCode,
    title: &str,
    detail: &str,
    request_id: Option<String>,
) -> Response {
    let page = ErrorPage {
        chrome: Chrome::anonymous(""),
        status: status.as_u16(),
        title,
        detail,
        request_id,
    };
    match page.render() {
        Ok(html) => html_response(status, html),
        // The error page itself failed: a plain-text answer still tells the user something.
        Err(_) => (status, "error").into_response(),
    }
}
