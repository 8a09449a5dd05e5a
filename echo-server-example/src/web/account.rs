//! Sign-up, log-in and log-out pages: thin callers of the JSON routes' shared functions
//! ([`crate::routes::account::register_user`], [`crate::routes::account::log_in`]).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::account::{self as api, LoginRequest, RegisterRequest};
use crate::state::AppState;

/// Errors of a form, by field name; `_form` holds the ones that belong to no field.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    /// The error of `field`, when it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Whether there is any error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records `reason` for `field` (the first error of a field wins).
    pub fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| reason.into());
    }

    /// The errors of a refused call: each `invalid-params` entry next to its field (renamed
    /// by `rename` from the API's name to the form's), at the top of the form when the form
    /// has no such field (one of `fields`), so no error is ever lost.
    pub fn from_api(e: &ApiError, fields: &[&str], rename: impl Fn(&str) -> &str) -> Self {
        let mut errors = Self::default();
        for p in e.invalid_params() {
            let field = rename(&p.name);
            if fields.contains(&field) {
                errors.add(field, sentence(&p.reason));
            } else {
                errors.add("_form", sentence(&format!("{} {}", p.name, p.reason)));
            }
        }
        if errors.is_empty() {
            errors.add("_form", sentence(e.detail()));
        }
        errors
    }
}

/// A reason as a sentence: capitalised, with a full stop.
fn sentence(reason: &str) -> String {
    let mut chars = reason.trim().chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Whether a refusal is about the input (shown on the form) rather than the server (the
/// error page).
fn is_input_error(e: &ApiError) -> bool {
    e.status().is_client_error() && e.status() != StatusCode::FORBIDDEN
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    policy_version: String,
    policy_url: String,
    email: String,
    accept_policy: bool,
    marketing: bool,
    errors: FieldErrors,
}

/// The sign-up form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignupForm {
    email: String,
    password: String,
    accept_policy: Option<String>,
    marketing: Option<String>,
}

fn signup_page(state: &AppState, form: &SignupForm, errors: FieldErrors) -> SignupPage {
    SignupPage {
        chrome: Chrome::anonymous("signup"),
        policy_version: state.config.privacy.policy_version.clone(),
        policy_url: state
            .config
            .privacy
            .policy_url
            .clone()
            .unwrap_or_else(|| "/api/v1/privacy-policy".to_owned()),
        email: form.email.clone(),
        accept_policy: form.accept_policy.is_some(),
        marketing: form.marketing.is_some(),
        errors,
    }
}

/// `GET /signup`.
pub async fn signup_form(State(state): State<AppState>) -> Response {
    render(
        StatusCode::OK,
        &signup_page(&state, &SignupForm::default(), FieldErrors::default()),
    )
}

/// `POST /signup`: registers (the API's rules), logs in and goes to the dashboard; a refusal
/// shows the form again with the errors next to their fields and what was typed (except the
/// password).
pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    Form(form): Form<SignupForm>,
) -> Result<Response, ApiError> {
    let request = RegisterRequest {
        email: form.email.clone(),
        password: form.password.clone(),
        // Ticking the box accepts the version the form showed, which the shared rule checks
        // is still the current one.
        privacy_policy_version: form
            .accept_policy
            .as_ref()
            .map(|_| state.config.privacy.policy_version.clone()),
        marketing_consent: form.marketing.is_some(),
    };
    if let Err(e) = api::register_user(&state, &headers, &ctx, request).await {
        if !is_input_error(&e) {
            return Err(e);
        }
        let fields = ["email", "password", "accept_policy"];
        let mut errors = FieldErrors::from_api(&e, &fields, |name| match name {
            "privacy_policy_version" => "accept_policy",
            other => other,
        });
        if e.status() == StatusCode::CONFLICT {
            errors = FieldErrors::default();
            errors.add(
                "email",
                "An account with this email exists: log in instead.",
            );
        }
        return Ok(render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &signup_page(&state, &form, errors),
        ));
    }
    let session = api::log_in(
        &state,
        &headers,
        &ctx,
        LoginRequest {
            email: form.email,
            password: form.password,
        },
    )
    .await?;
    let mut response = Redirect::to("/").into_response();
    api::set_session_cookies(&state, response.headers_mut(), Some(&session));
    Ok(response)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    errors: FieldErrors,
}

/// The log-in form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    next: String,
}

/// Where to go after logging in: a local path only, so the parameter cannot send the user to
/// another site.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// `?next=` of the log-in page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    next: String,
}

/// `GET /login`.
pub async fn login_form(Query(q): Query<NextQuery>) -> Response {
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::anonymous("login"),
            email: String::new(),
            next: local_path(&q.next).to_owned(),
            errors: FieldErrors::default(),
        },
    )
}

/// `POST /login`: a session cookie and a redirect; wrong credentials show the form again.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let request = LoginRequest {
        email: form.email.clone(),
        password: form.password,
    };
    match api::log_in(&state, &headers, &ctx, request).await {
        Ok(session) => {
            let mut response = Redirect::to(local_path(&form.next)).into_response();
            api::set_session_cookies(&state, response.headers_mut(), Some(&session));
            Ok(response)
        }
        Err(e) if is_input_error(&e) => {
            let mut errors = FieldErrors::default();
            if e.status() == StatusCode::UNAUTHORIZED {
                errors.add("_form", "The email or password is wrong.");
            } else {
                errors = FieldErrors::from_api(&e, &["email"], |n| n);
            }
            // 200, not 401: the page itself is fine, and a 401 would be redirected to itself.
            Ok(render(
                StatusCode::OK,
                &LoginPage {
                    chrome: Chrome::anonymous("login"),
                    email: form.email,
                    next: local_path(&form.next).to_owned(),
                    errors,
                },
            ))
        }
        Err(e) => Err(e),
    }
}

/// `POST /logout`: the API's logout (session revoked, cookies cleared), then the log-in page.
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    let api_response = api::logout(State(state), Extension(caller), ctx).await?;
    let mut response = Redirect::to("/login").into_response();
    for cookie in api_response
        .headers()
        .get_all(axum::http::header::SET_COOKIE)
    {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(
            local_path("/experiments?status=failed"),
            "/experiments?status=failed"
        );
        assert_eq!(local_path("//evil.example"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil.example"), "/");
        assert_eq!(local_path(""), "/");
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(sentence("must contain @"), "Must contain @.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
