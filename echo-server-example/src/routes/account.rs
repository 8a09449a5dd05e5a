//! Registration, login, logout and the CSRF token.

use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use echo_core::auth::{PasswordCheck, PasswordError};
use echo_core::model::{Email, PricingTier, Timestamp, User};
use echo_core::service::{Registered, Resent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::audit::{AuditContext, audit, audit_action};
use crate::auth::{
    CSRF_COOKIE, Caller, DEV_CSRF_COOKIE, check_fetch_site, client_ip, session_cookie_name,
};
use crate::error::{ApiError, log_chain, types};
use crate::state::AppState;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (case-insensitive).
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(schema_with = crate::schemas::password)]
    pub password: String,
    /// The privacy-policy version accepted (`GET /api/v1/privacy-policy`); required, and must
    /// be the current one, unless the server is configured otherwise.
    pub privacy_policy_version: Option<String>,
    /// Consent to product and marketing email (default no).
    #[serde(default)]
    pub marketing_consent: bool,
}

/// A user as shown to themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Pricing tier.
    #[schema(value_type = String, example = "free")]
    pub tier: PricingTier,
    /// Prompts used this period.
    pub prompts_used: u32,
    /// Monthly prompt quota.
    pub monthly_quota: u32,
    /// When the quota resets (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub quota_resets_at: Timestamp,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Whether the account is an administrator.
    pub is_admin: bool,
    /// Accepted policy version, when any.
    pub privacy_policy_version: Option<String>,
    /// The account waits for its email to be verified before it creates or runs experiments.
    pub email_verification_pending: bool,
    /// When the email was verified (RFC 3339), if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub email_verified_at: Option<Timestamp>,
}

impl UserView {
    /// The view of `user`.
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            tier: user.tier,
            prompts_used: user.quota.prompts_used,
            monthly_quota: user.tier.default_monthly_quota(),
            quota_resets_at: user.quota.resets_at,
            created_at: user.created_at,
            is_admin: user.is_admin,
            privacy_policy_version: user.consents.privacy_policy_version.clone(),
            email_verification_pending: user.email_verification_pending(),
            email_verified_at: user.email_verified_at,
        }
    }
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    #[schema(max_length = 1024)]
    pub email: String,
    /// Password.
    #[schema(max_length = 1024)]
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session token: send as `Authorization: Bearer`; also set as an HttpOnly cookie.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the session expires.
    pub expires_in: u64,
    /// The CSRF token for cookie-authenticated unsafe requests (`X-CSRF-Token`).
    pub csrf_token: String,
    /// This login cancelled a pending account deletion.
    pub account_restored: bool,
    /// The accepted privacy policy is not the current one: ask the user to accept it
    /// (`POST /api/v1/user/consent`).
    pub consent_required: bool,
}

/// The session's CSRF token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsrfResponse {
    /// Send it as `X-CSRF-Token` on cookie-authenticated POST, PUT and DELETE requests.
    pub csrf_token: String,
}

/// The per-IP limit of register and login, checked before any argon2 work.
fn check_account_limit(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    let decision = state.account_limiter.check(
        &ip,
        &state.account_quota,
        echo_core::auth::LimitKind::General,
        Instant::now(),
    );
    if decision.allowed {
        return Ok(());
    }
    tracing::warn!(
        event = "rate_limited",
        policy = "accounts",
        "account route rate limited"
    );
    Err(ApiError::rate_limited(
        decision.retry_after_secs.unwrap_or(1),
    ))
}

fn hashing_failed(e: PasswordError) -> ApiError {
    log_chain("password hashing failed", Some(&e));
    ApiError::internal()
}

/// Runs argon2 off the async workers: it takes milliseconds of CPU by design.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        log_chain("blocking task failed", Some(&e));
        ApiError::internal()
    })
}

/// The answer to every accepted registration, whether the address was new or taken: the same
/// status and the same body, so that registering tells nobody which addresses have accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAccepted {
    /// Always `accepted`.
    pub status: &'static str,
    /// What to do next (the same text for every address).
    pub message: &'static str,
}

/// The neutral message, which depends only on the server's settings.
fn registration_message(verification_required: bool) -> &'static str {
    if verification_required {
        "If this address can be registered, its account now exists: follow the link mailed to it to verify the address, then log in with POST /api/v1/auth/login. If it already has an account, its owner has been told by mail."
    } else {
        "If this address can be registered, its account now exists: log in with POST /api/v1/auth/login. If it already has an account, its owner has been told by mail."
    }
}

/// Registers an account on the free tier. The answer is the same whether the address was new
/// or already registered (the owner of a taken address is told by mail), and so is the work
/// done (the password is hashed in both cases), so neither the status, the body nor the time
/// tells which addresses have accounts. With `ECHO_REQUIRE_EMAIL_VERIFICATION` on, the new
/// account must verify its address before it creates or runs experiments.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 202, description = "Registration accepted: the same answer for a new and a registered address", body = RegistrationAccepted),
        (status = 403, description = "Cross-site request refused", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, password or policy version", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many account requests from this address", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    register_user(&state, &headers, &ctx, body).await?;
    let body = RegistrationAccepted {
        status: "accepted",
        message: registration_message(state.registration.settings().required),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Creates an account (the rules of `POST /api/v1/auth/register`, shared with the sign-up
/// page): same-origin check, per-IP limit, the privacy-policy version, the password policy,
/// then the same outcome for a new and a registered address (the owner of a registered one is
/// mailed) and the audit event.
pub async fn register_user(
    state: &AppState,
    headers: &HeaderMap,
    ctx: &AuditContext,
    body: RegisterRequest,
) -> Result<(), ApiError> {
    check_fetch_site(headers)?;
    check_account_limit(state, client_ip(state, headers, ctx.peer))?;
    let email = Email::parse(&body.email)?;
    let current = &state.config.privacy.policy_version;
    match body.privacy_policy_version.as_deref() {
        Some(v) if v == current => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "privacy_policy_version",
                format!("must be the current version {current:?} (GET /api/v1/privacy-policy)"),
            ));
        }
        None if state.config.privacy.require_policy_on_register => {
            return Err(ApiError::invalid(
                "privacy_policy_version",
                format!(
                    "is required: accept the current version {current:?} (GET /api/v1/privacy-policy)"
                ),
            ));
        }
        None => {}
    }
    state
        .passwords
        .policy()
        .check(&body.password)
        .map_err(|e| ApiError::invalid("password", e.to_string()))?;
    // Hashed whether or not the address is taken: the time must not tell.
    let hasher = state.passwords.clone();
    let password = body.password;
    let hash = blocking(move || hasher.hash(&password))
        .await?
        .map_err(hashing_failed)?;
    let now = Timestamp::now();
    let mut user = User::new(email, hash, PricingTier::Free, now);
    if let Some(version) = &body.privacy_policy_version {
        user.consents.privacy_policy_version = Some(version.clone());
        user.consents.privacy_policy_accepted_at = Some(now);
        // Accepting the policy is accepting the processing it describes: an experiment's
        // prompts and answers are the service itself.
        user.consents.data_processing_consent_at = Some(now);
    }
    if body.marketing_consent {
        user.consents.marketing_consent_at = Some(now);
    }
    match state
        .registration
        .register(user)
        .await
        .map_err(|e| ApiError::from_service(e, "user"))?
    {
        Registered::Created(user) => {
            tracing::info!(event = "user_registered", user_id = %user.id, "user registered");
            audit_action(state, ctx, user.id, "register", "user", user.id).await;
        }
        Registered::AlreadyRegistered(owner) => {
            tracing::info!(event = "registration_of_registered_email", user_id = %owner, "registration attempted with a registered email");
            // A stranger may have sent it: anonymous actor, the account as the resource.
            audit(
                state,
                ctx,
                None,
                "register_existing_email",
                "user",
                Some(owner.to_string()),
                serde_json::json!({}),
            )
            .await;
        }
    }
    Ok(())
}

/// `POST /api/v1/auth/verify-email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the verification mail (64 hex characters).
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub token: String,
}

/// The outcome of a verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    /// Always `true`.
    pub email_verified: bool,
}

/// Verifies an email address with the token mailed at registration (or by a resend). A token
/// works once and expires 24 hours after it was sent. No login needed: the token is the proof.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = EmailVerified),
        (status = 400, description = "The token is invalid, already used (`verification-token-invalid`) or expired (`verification-token-expired`)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request refused", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many account requests from this address", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<axum::Json<EmailVerified>, ApiError> {
    check_fetch_site(&headers)?;
    // Per address, like register and login: guessing a 256-bit token is hopeless anyway, but
    // each try costs a store lookup.
    check_account_limit(&state, client_ip(&state, &headers, ctx.peer))?;
    let user = state
        .registration
        .verify(&body.token, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_service(e, "verification token"))?;
    tracing::info!(event = "email_verified", user_id = %user, "email verified");
    audit_action(&state, &ctx, user, "verify_email", "user", user).await;
    Ok(axum::Json(EmailVerified {
        email_verified: true,
    }))
}

/// The outcome of a resend.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationResent {
    /// `sent` (a new link was mailed; earlier ones stop working) or `already_verified`.
    #[schema(example = "sent")]
    pub status: &'static str,
}

/// Mails the caller a new verification link, replacing the previous one. Limited to 3 an hour
/// per account (one every 20 minutes once the burst is used).
#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", tag = "auth",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Sent, or nothing to do", body = VerificationResent),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF check failed", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many resends", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The mail could not be sent; try again later", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<axum::Json<VerificationResent>, ApiError> {
    let decision = state.resend_limiter.check(
        &caller.user_id,
        &state.resend_quota,
        echo_core::auth::LimitKind::General,
        Instant::now(),
    );
    if !decision.allowed {
        tracing::warn!(
            event = "rate_limited",
            policy = "verification_resend",
            "verification resend rate limited"
        );
        return Err(ApiError::rate_limited(
            decision.retry_after_secs.unwrap_or(1),
        ));
    }
    let outcome = state
        .registration
        .resend(caller.user_id, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_service(e, "user"))?;
    let status = match outcome {
        Resent::Sent => {
            audit_action(
                &state,
                &ctx,
                caller.user_id,
                "resend_email_verification",
                "user",
                caller.user_id,
            )
            .await;
            "sent"
        }
        Resent::AlreadyVerified => "already_verified",
    };
    Ok(axum::Json(VerificationResent { status }))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        types::INVALID_CREDENTIALS,
        "Invalid credentials",
        "the email or password is wrong",
    )
}

/// Logs in with email and password: a session token in the body and an HttpOnly cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: AuditContext,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let session = log_in(&state, &headers, &ctx, body).await?;
    let mut response = axum::Json(&session).into_response();
    set_session_cookies(&state, response.headers_mut(), Some(&session));
    Ok(response)
}

/// Checks email and password and opens a session (the rules of `POST /api/v1/auth/login`,
/// shared with the log-in page): same-origin check, per-IP limit, the failed-login throttle,
/// a login during the deletion grace period restoring the account, rehashing, and the audit
/// events. The caller sets the cookies ([`set_session_cookies`]).
pub async fn log_in(
    state: &AppState,
    headers: &HeaderMap,
    ctx: &AuditContext,
    body: LoginRequest,
) -> Result<LoginResponse, ApiError> {
    check_fetch_site(headers)?;
    let ip = client_ip(state, headers, ctx.peer);
    check_account_limit(state, ip)?;
    let account = body.email.trim().to_lowercase();
    if let Err(t) = state.throttle.check(&account, ip, Instant::now()) {
        tracing::warn!(event = "login_throttled", "login throttled");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            types::LOGIN_THROTTLED,
            "Too many failed logins",
            "too many failed logins; retry later",
        )
        .with_retry_after(t.retry_after.as_secs_f64().ceil() as u64));
    }
    let user = match Email::parse(&body.email) {
        Ok(email) => state
            .store
            .find_user_by_email(&email)
            .await
            .map_err(|e| ApiError::from_store(e, "user"))?,
        Err(_) => None,
    };
    let hasher = state.passwords.clone();
    let password = body.password;
    let (user, check) = match user {
        Some(user) => {
            let stored = user.password_hash.clone();
            let pw = password.clone();
            let check = blocking(move || hasher.verify(&pw, &stored)).await?;
            (Some(user), check)
        }
        None => {
            // The same argon2 work as a real check: no user enumeration by timing.
            let pw = password.clone();
            blocking(move || hasher.verify_dummy(&pw)).await?;
            (None, Ok(PasswordCheck::Invalid))
        }
    };
    let now = Timestamp::now();
    let (user, needs_rehash, restored) = match (user, check) {
        (Some(user), Ok(PasswordCheck::Valid { needs_rehash })) if user.is_active => {
            (user, needs_rehash, false)
        }
        // A login during the deletion grace period cancels the deletion.
        // The store re-checks that the deletion is still pending and not yet due, atomically.
        (Some(mut user), Ok(PasswordCheck::Valid { needs_rehash }))
            if user.scheduled_deletion_at.is_some_and(|at| at > now)
                && state
                    .store
                    .cancel_deletion(user.id, now)
                    .await
                    .map_err(|e| ApiError::from_store(e, "user"))? =>
        {
            user.is_active = true;
            user.scheduled_deletion_at = None;
            user.updated_at = now;
            tracing::info!(event = "account_deletion_cancelled", user_id = %user.id, "account restored");
            audit_action(
                state,
                ctx,
                user.id,
                "cancel_account_deletion",
                "user",
                user.id,
            )
            .await;
            (user, needs_rehash, true)
        }
        (user, check) => {
            if let Err(e) = &check {
                // An unreadable stored hash refuses the login like a wrong password would.
                log_chain("stored password hash unusable", Some(e));
            }
            state.throttle.record_failure(&account, ip, Instant::now());
            tracing::warn!(event = "login_failed", "login failed");
            // Whoever tried is unknown: the actor is anonymous (with the address in the
            // event) and the targeted account is the resource, so a stranger's attempts do not
            // read as the account holder's own actions in their trail and export.
            audit(
                state,
                ctx,
                None,
                "login_failure",
                "user",
                user.as_ref().map(|u| u.id.to_string()),
                serde_json::json!({}),
            )
            .await;
            return Err(invalid_credentials());
        }
    };
    state.throttle.record_success(&account, ip);
    if needs_rehash {
        let hasher = state.passwords.clone();
        let pw = password.clone();
        if let Ok(Ok(hash)) = blocking(move || hasher.hash(&pw)).await {
            // Only over the hash just verified: a password change in between wins.
            if let Err(e) = state
                .store
                .set_password_hash(user.id, &user.password_hash, &hash, Timestamp::now())
                .await
            {
                log_chain("password rehash not stored", Some(&e));
            }
        }
    }
    let issued = state
        .sessions
        .issue(&user, Timestamp::now())
        .await
        .map_err(|e| match e {
            echo_core::auth::SessionError::Unavailable { source } => {
                ApiError::from_store(source, "session")
            }
            _ => ApiError::internal(),
        })?;
    tracing::info!(event = "login_succeeded", user_id = %user.id, "login");
    audit_action(state, ctx, user.id, "login_success", "user", user.id).await;
    let ttl = state.sessions.ttl().as_secs();
    Ok(LoginResponse {
        access_token: issued.token.expose().to_owned(),
        token_type: "bearer",
        expires_in: ttl,
        csrf_token: issued.csrf_token.clone(),
        account_restored: restored,
        consent_required: user.consents.privacy_policy_version.as_deref()
            != Some(state.config.privacy.policy_version.as_str()),
    })
}

/// Sets the session and CSRF cookies of `session` (or, with `None`, clears them).
pub fn set_session_cookies(
    state: &AppState,
    headers: &mut HeaderMap,
    session: Option<&LoginResponse>,
) {
    let dev = state.config.security.dev_insecure_cookies;
    let secure = if dev { "" } else { "; Secure" };
    let (session, csrf, max_age) = match session {
        Some(s) => (s.access_token.as_str(), s.csrf_token.as_str(), s.expires_in),
        None => ("", "", 0),
    };
    let csrf_name = if dev { DEV_CSRF_COOKIE } else { CSRF_COOKIE };
    let cookies = [
        format!(
            "{}={session}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            session_cookie_name(state)
        ),
        format!("{csrf_name}={csrf}; Path=/; Max-Age={max_age}; SameSite=Lax{secure}"),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Ends the session (when the caller used one) and clears the cookies.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Logged out"),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    if let Some(session) = caller.credential.session() {
        state
            .sessions
            .revoke(caller.user_id, session, Timestamp::now())
            .await
            .map_err(|e| match e {
                echo_core::auth::SessionError::Unavailable { source } => {
                    ApiError::from_store(source, "session")
                }
                _ => ApiError::not_found("session"),
            })?;
    }
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "logout",
        "user",
        caller.user_id,
    )
    .await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_session_cookies(&state, response.headers_mut(), None);
    Ok(response)
}

/// The CSRF token bound to the caller's session.
#[utoipa::path(get, path = "/api/v1/csrf-token", tag = "auth",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, description = "The token", body = CsrfResponse),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API key has no session, so no CSRF token (forbidden); API-key requests need none", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn csrf_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<CsrfResponse>, ApiError> {
    // Forbidden rather than invalid input: the request is well formed, but this credential
    // cannot have what it asks for.
    let session = caller.credential.session().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            types::FORBIDDEN,
            "Forbidden",
            "an API key has no session and needs no CSRF token",
        )
    })?;
    Ok(axum::Json(CsrfResponse {
        csrf_token: state.sessions.csrf_token(session),
    }))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Not authenticated", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<UserView>, ApiError> {
    let user = state
        .store
        .get_user(caller.user_id)
        .await
        .map_err(|e| ApiError::from_store(e, "user"))?;
    Ok(axum::Json(UserView::of(&user)))
}
