//! Sign-up, log-in and log-out pages: thin callers of the JSON routes' shared functions
//! ([`crate::routes::account::register_user`], [`crate::routes::account::log_in`]).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::{CSRF_HEADER, Caller};
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

/// The pre-session CSRF cookie of the log-in and sign-up forms (there is no session yet to
/// bind a token to): a random value in a `__Host-`, HttpOnly, SameSite=Strict cookie, echoed
/// in the form's hidden field and compared in constant time (double submit). With the
/// `Sec-Fetch-Site` check it keeps other sites from logging a browser into their account.
const FORM_COOKIE: &str = "__Host-echo_form";
const DEV_FORM_COOKIE: &str = "echo_form";

fn form_cookie_name(state: &AppState) -> &'static str {
    if state.config.security.dev_insecure_cookies {
        DEV_FORM_COOKIE
    } else {
        FORM_COOKIE
    }
}

fn form_cookie<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    crate::auth::cookie(headers, form_cookie_name(state))
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The form token: the browser's cookie when it has a well-formed one, else a new one (and
/// the `Set-Cookie` that stores it).
fn form_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), ApiError> {
    if let Some(token) = form_cookie(state, headers) {
        return Ok((token.to_owned(), None));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        crate::error::log_chain("no randomness for a form token", Some(&e));
        ApiError::internal()
    })?;
    let token = hex::encode(bytes);
    let secure = if state.config.security.dev_insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    let cookie = HeaderValue::from_str(&format!(
        "{}={token}; Path=/; Max-Age=7200; HttpOnly; SameSite=Strict{secure}",
        form_cookie_name(state)
    ))
    .map_err(|_| ApiError::internal())?;
    Ok((token, Some(cookie)))
}

/// Refuses a log-in or sign-up post whose hidden token (moved into `X-CSRF-Token` by
/// [`super::form_csrf`]) is not the browser's form cookie.
fn check_form_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    use subtle::ConstantTimeEq;
    let presented = headers
        .get(&CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match form_cookie(state, headers) {
        Some(cookie) if bool::from(cookie.as_bytes().ct_eq(presented.as_bytes())) => Ok(()),
        _ => Err(ApiError::csrf(
            "this form has expired or was sent from another site: reload the page and try again",
        )),
    }
}

/// Renders `page` with the form cookie, when a new one was drawn.
fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    chrome: Chrome,
    token: String,
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

fn signup_page(
    state: &AppState,
    token: String,
    form: &SignupForm,
    errors: FieldErrors,
) -> SignupPage {
    SignupPage {
        chrome: Chrome::anonymous("signup"),
        token,
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
pub async fn signup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (token, cookie) = form_token(&state, &headers)?;
    let page = signup_page(
        &state,
        token,
        &SignupForm::default(),
        FieldErrors::default(),
    );
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
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
    check_form_token(&state, &headers)?;
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
        let errors = FieldErrors::from_api(&e, &fields, |name| match name {
            "privacy_policy_version" => "accept_policy",
            other => other,
        });
        let (token, cookie) = form_token(&state, &headers)?;
        return Ok(with_cookie(
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &signup_page(&state, token, &form, errors),
            ),
            cookie,
        ));
    }
    // The same next step for a new address and a registered one, as the API answers the same:
    // signing the new account straight in would tell a stranger which addresses were free.
    Ok(Redirect::to("/login?registered=1").into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    token: String,
    email: String,
    next: String,
    errors: FieldErrors,
    /// After sign-up: the neutral note that does not say whether the address was new.
    registered: bool,
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
    /// Set by the sign-up page's redirect.
    registered: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Result<Response, ApiError> {
    let (token, cookie) = form_token(&state, &headers)?;
    let page = LoginPage {
        chrome: Chrome::anonymous("login"),
        token,
        email: String::new(),
        next: local_path(&q.next).to_owned(),
        errors: FieldErrors::default(),
        registered: q.registered.is_some(),
    };
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
}

/// `POST /login`: a session cookie and a redirect; wrong credentials show the form again.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    check_form_token(&state, &headers)?;
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
            let (token, cookie) = form_token(&state, &headers)?;
            let page = LoginPage {
                chrome: Chrome::anonymous("login"),
                token,
                email: form.email,
                next: local_path(&form.next).to_owned(),
                errors,
                registered: false,
            };
            Ok(with_cookie(render(StatusCode::OK, &page), cookie))
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
    for cookie in api_response.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
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

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyEmailPage {
    chrome: Chrome,
    /// The form token (the form is posted before any session exists).
    token: String,
    /// The verification token from the mailed link.
    verification: String,
    outcome: VerifyOutcome,
}

impl VerifyEmailPage {
    fn verified(&self) -> bool {
        matches!(self.outcome, VerifyOutcome::Verified)
    }

    fn refusal(&self) -> Option<&'static str> {
        match self.outcome {
            VerifyOutcome::Refused { title, .. } => Some(title),
            _ => None,
        }
    }

    fn expired(&self) -> bool {
        matches!(self.outcome, VerifyOutcome::Refused { expired: true, .. })
    }
}

/// What the verification page shows.
enum VerifyOutcome {
    /// The form, not sent yet.
    Ask,
    /// The address is verified.
    Verified,
    /// The token was refused: the problem's title and whether it had expired.
    Refused { title: &'static str, expired: bool },
}

/// `?token=` of the verification link, and the form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VerifyEmailForm {
    token: String,
}

/// `GET /verify-email?token=`: the mailed link opens a form rather than verifying at once, so
/// a mail scanner that follows links does not use the token up.
pub async fn verify_email_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<VerifyEmailForm>,
) -> Result<Response, ApiError> {
    let (token, cookie) = form_token(&state, &headers)?;
    let page = VerifyEmailPage {
        chrome: Chrome::anonymous(""),
        token,
        verification: q.token,
        outcome: VerifyOutcome::Ask,
    };
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
}

/// `POST /verify-email`: the API's verification ([`api::verify_email`], with its rate limit
/// and audit entry); an invalid or expired token is a page that says how to get a new link.
pub async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    Form(form): Form<VerifyEmailForm>,
) -> Result<Response, ApiError> {
    check_form_token(&state, &headers)?;
    let result = api::verify_email(
        State(state.clone()),
        headers.clone(),
        ctx,
        crate::routes::ApiJson(api::VerifyEmailRequest {
            token: form.token.clone(),
        }),
    )
    .await;
    let (status, outcome) = match result {
        Ok(_) => (StatusCode::OK, VerifyOutcome::Verified),
        Err(e) if e.status() == StatusCode::BAD_REQUEST => (
            StatusCode::BAD_REQUEST,
            VerifyOutcome::Refused {
                title: e.title(),
                expired: e.slug() == crate::error::types::VERIFICATION_TOKEN_EXPIRED,
            },
        ),
        Err(e) => return Err(e),
    };
    let (token, cookie) = form_token(&state, &headers)?;
    let page = VerifyEmailPage {
        chrome: Chrome::anonymous(""),
        token,
        verification: form.token,
        outcome,
    };
    Ok(with_cookie(render(status, &page), cookie))
}

/// The notice after a resend.
#[derive(Template)]
#[template(path = "verification_resent.html")]
struct VerificationResentPage {
    chrome: Chrome,
    sent: bool,
}

/// `POST /account/verify-email/resend`: the API's resend (same rule, same rate limit: too many
/// resends is the styled 429 page), then a notice saying what happened.
pub async fn resend_verification(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    let axum::Json(outcome) =
        api::resend_verification(State(state.clone()), Extension(caller), ctx).await?;
    let chrome = Chrome::of(&state, &caller, "").await?;
    Ok(render(
        StatusCode::OK,
        &VerificationResentPage {
            chrome,
            sent: outcome.status == "sent",
        },
    ))
}
