//! The one error type of the HTTP API: every error response is `application/problem+json`
//! (RFC 9457) with a stable `type`.
//!
//! `type` is `urn:echo:problem:<slug>`; clients switch on it, never on `title` or `detail`.
//! Internal failures are logged with their cause chain (the log line carries the request id)
//! and answered with a generic body: no internal detail reaches the client.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use echo_core::model::ValidationError;
use echo_core::store::StoreError;
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable problem types, by slug.
pub mod types {
    /// Malformed JSON or a body that is not JSON.
    pub const MALFORMED_BODY: &str = "malformed-body";
    /// Well-formed input that fails validation (unknown field, bad value).
    pub const INVALID_INPUT: &str = "invalid-input";
    /// The body needs `Content-Type: application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
    /// No credentials, or credentials that are not valid now.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// Wrong email or password.
    pub const INVALID_CREDENTIALS: &str = "invalid-credentials";
    /// A cookie-authenticated unsafe request without a valid CSRF token, or cross-site.
    pub const CSRF: &str = "csrf-check-failed";
    /// The resource does not exist or is not the caller's.
    pub const NOT_FOUND: &str = "not-found";
    /// The method is not allowed on this route.
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    /// The request conflicts with the resource's state.
    pub const CONFLICT: &str = "conflict";
    /// The monthly prompt quota would be exceeded; nothing was stored.
    pub const QUOTA_EXCEEDED: &str = "quota-exceeded";
    /// Too many requests; retry after `Retry-After`.
    pub const RATE_LIMITED: &str = "rate-limited";
    /// Too many failed logins; retry after `Retry-After`.
    pub const LOGIN_THROTTLED: &str = "login-throttled";
    /// The request body is larger than the server accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    /// The request took longer than the server's time limit.
    pub const TIMEOUT: &str = "request-timeout";
    /// A dependency (the database) is temporarily unavailable; retry.
    pub const UNAVAILABLE: &str = "service-unavailable";
    /// An unexpected server error.
    pub const INTERNAL: &str = "internal-error";
    /// The caller is authenticated but may not do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// Creating or running an experiment needs data-processing consent, which the caller has
    /// not given or has withdrawn (`POST /api/v1/user/consent` gives it).
    pub const CONSENT_REQUIRED: &str = "consent-required";
    /// The account has as many progress streams (`GET …/events`) open as it may: close one.
    pub const TOO_MANY_STREAMS: &str = "too-many-streams";
    /// Creating or running an experiment needs a verified email address: the account was
    /// registered while verification was required (`POST /api/v1/auth/verify-email`).
    pub const EMAIL_UNVERIFIED: &str = "email-unverified";
    /// The verification token is unknown, malformed or already used.
    pub const VERIFICATION_TOKEN_INVALID: &str = "verification-token-invalid";
    /// The verification token expired (`POST /api/v1/auth/verify-email/resend` sends another).
    pub const VERIFICATION_TOKEN_EXPIRED: &str = "verification-token-expired";
}

/// One field that failed validation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct InvalidParam {
    /// The field.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// An error answered as problem+json. Boxed: handlers return it in every `Result`, and the
/// happy path should not carry a large error's size.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
    invalid_params: Vec<InvalidParam>,
    extra: Option<serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(rename = "invalid-params", skip_serializing_if = "<[_]>::is_empty")]
    invalid_params: &'a [InvalidParam],
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with a status, a stable slug (see [`types`]), a title and a detail for people.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            status,
            slug,
            title,
            detail: detail.into(),
            retry_after: None,
            invalid_params: Vec::new(),
            extra: None,
            headers: Vec::new(),
        }))
    }

    /// 404: the same answer for "missing" and "someone else's".
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            types::NOT_FOUND,
            "Not found",
            format!("{what} not found"),
        )
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            types::UNAUTHENTICATED,
            "Authentication required",
            detail,
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"echo\""),
        )
    }

    /// 403 for a failed CSRF check.
    pub fn csrf(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            types::CSRF,
            "CSRF check failed",
            detail,
        )
    }

    /// 422 for input that fails validation.
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        let name = name.into();
        let reason = reason.into();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            types::INVALID_INPUT,
            "Invalid input",
            format!("{name} {reason}"),
        );
        e.0.invalid_params.push(InvalidParam { name, reason });
        e
    }

    /// 409 for well-formed input that conflicts with stored state, named as the field it came
    /// in (so a form can show it next to that field).
    pub fn conflict_on(name: impl Into<String>, reason: impl Into<String>) -> Self {
        let name = name.into();
        let reason = reason.into();
        let mut e = Self::conflict(format!("{name} {reason}"));
        e.0.invalid_params.push(InvalidParam { name, reason });
        e
    }

    /// 400 for a body that is not valid JSON.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            types::MALFORMED_BODY,
            "Malformed request body",
            detail,
        )
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, types::CONFLICT, "Conflict", detail)
    }

    /// 500: the detail is generic; log the cause before returning this.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            types::INTERNAL,
            "Internal server error",
            "an unexpected error occurred; the request id identifies it in the server's logs",
        )
    }

    /// 503, retryable.
    pub fn unavailable(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::UNAVAILABLE,
            "Service unavailable",
            "a dependency is temporarily unavailable; retry shortly",
        )
        .with_retry_after(retry_after_secs)
    }

    /// 429 from a rate limit, with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            types::RATE_LIMITED,
            "Too many requests",
            format!("rate limit exceeded; retry in {retry_after_secs} s"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// Adds `Retry-After` (header and body field).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        let secs = secs.max(1);
        self.0.retry_after = Some(secs);
        self.0
            .headers
            .push((header::RETRY_AFTER, HeaderValue::from(secs)));
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// Adds extension members to the body (an object's fields are merged in).
    pub fn with_extra(mut self, extra: serde_json::Value) -> Self {
        self.0.extra = Some(extra);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable slug.
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }

    /// The title, for people.
    pub fn title(&self) -> &'static str {
        self.0.title
    }

    /// The detail, for people.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The fields that failed validation (the body's `invalid-params`).
    pub fn invalid_params(&self) -> &[InvalidParam] {
        &self.0.invalid_params
    }

    /// The full `type` URI of a slug.
    pub fn type_uri(slug: &str) -> String {
        format!("urn:echo:problem:{slug}")
    }

    /// The problem for a service error about `what`: a refused state is a conflict, the rest
    /// as [`ApiError::from_store`].
    pub fn from_service(e: echo_core::service::ServiceError, what: &str) -> Self {
        use echo_core::service::ServiceError;
        match e {
            ServiceError::Invalid(v) => Self::from(v),
            state @ ServiceError::State { .. } => Self::conflict(state.to_string()),
            ServiceError::ConsentRequired => Self::new(
                StatusCode::FORBIDDEN,
                types::CONSENT_REQUIRED,
                "Consent required",
                "data-processing consent is required to create or run experiments; give it with POST /api/v1/user/consent",
            ),
            ServiceError::EmailUnverified => Self::new(
                StatusCode::FORBIDDEN,
                types::EMAIL_UNVERIFIED,
                "Email not verified",
                "verify your email address to create or run experiments: open the link mailed to you, or ask for a new one with POST /api/v1/auth/verify-email/resend",
            ),
            ServiceError::VerificationTokenInvalid => Self::new(
                StatusCode::BAD_REQUEST,
                types::VERIFICATION_TOKEN_INVALID,
                "Invalid verification token",
                "the token is unknown or has already been used; log in and ask for a new one with POST /api/v1/auth/verify-email/resend",
            ),
            ServiceError::VerificationTokenExpired => Self::new(
                StatusCode::BAD_REQUEST,
                types::VERIFICATION_TOKEN_EXPIRED,
                "Verification token expired",
                "the token has expired; log in and ask for a new one with POST /api/v1/auth/verify-email/resend",
            ),
            ServiceError::Mail(e) => {
                log_chain("mail delivery failed", Some(&e));
                Self::unavailable(60)
            }
            ServiceError::Store(e) => Self::from_store(e, what),
            other => {
                log_chain("service error", Some(&other));
                Self::internal()
            }
        }
    }

    /// Maps a store error, logging what the client must not see.
    pub fn from_store(e: StoreError, what: &str) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(what),
            StoreError::Conflict { message } => Self::conflict(message),
            StoreError::QuotaExceeded {
                used,
                requested,
                limit,
            } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                types::QUOTA_EXCEEDED,
                "Monthly quota exceeded",
                format!(
                    "this needs {requested} prompts but {} of your {limit} monthly prompts are left; nothing was stored",
                    limit.saturating_sub(used)
                ),
            )
            .with_extra(serde_json::json!({
                "quota": {"used": used, "requested": requested, "limit": limit}
            })),
            StoreError::Invalid(v) => Self::from(v),
            StoreError::Unavailable {
                retry_after,
                ref source,
            } => {
                log_chain("storage unavailable", Some(source.as_ref()));
                Self::unavailable(retry_after.map_or(1, |d| d.as_secs().max(1)))
            }
            other => {
                log_chain("storage error", Some(&other));
                Self::internal()
            }
        }
    }
}

/// Logs `error` with its whole cause chain at error level (inside the request's span, so the
/// line carries the request id).
pub fn log_chain(message: &str, error: Option<&(dyn std::error::Error + 'static)>) {
    let mut chain = String::new();
    let mut next = error;
    while let Some(e) = next {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&e.to_string());
        next = e.source();
    }
    tracing::error!(error = %chain, "{message}");
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> Self {
        Self::invalid(v.field, v.reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let body = ProblemBody {
            kind: Self::type_uri(this.slug),
            title: this.title,
            status: this.status.as_u16(),
            detail: &this.detail,
            invalid_params: &this.invalid_params,
            retry_after: this.retry_after,
            extra: this.extra.as_ref(),
        };
        let mut response = (this.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in this.headers {
            headers.append(name, value);
        }
        response
    }
}

/// The problem for a bare error status produced outside the handlers (the body limit,
/// the timeout, an unknown route or method), so every error is problem+json.
pub fn for_status(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found("route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            types::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "this route does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            types::PAYLOAD_TOO_LARGE,
            "Payload too large",
            "the request body is larger than this server accepts",
        ),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            types::TIMEOUT,
            "Request timeout",
            "the request took longer than this server allows",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            types::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "send the body as application/json",
        ),
        s if s.is_server_error() => ApiError::internal(),
        s => ApiError::new(
            s,
            types::MALFORMED_BODY,
            "Bad request",
            "the request is invalid",
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use echo_core::model::ExperimentStatus;
    use echo_core::service::ServiceError;

    use super::*;

    /// The response's status, headers and JSON body.
    async fn render(e: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    fn secret_source() -> BoxSource {
        Box::new(std::io::Error::other(
            "password=hunter2 at db.internal:5432",
        ))
    }

    type BoxSource = Box<dyn std::error::Error + Send + Sync + 'static>;

    #[tokio::test]
    async fn every_response_is_problem_json_with_its_type_and_status() {
        let (status, headers, body) = render(ApiError::conflict("already running")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["type"], "urn:echo:problem:conflict");
        assert_eq!(body["title"], "Conflict");
        assert_eq!(body["status"], 409);
        assert_eq!(body["detail"], "already running");
        assert!(body.get("invalid-params").is_none());
        assert!(body.get("retry_after").is_none());
    }

    #[tokio::test]
    async fn validation_errors_list_the_field() {
        let e = ApiError::from(ValidationError::new("email", "must contain @"));
        assert_eq!(e.slug(), types::INVALID_INPUT);
        let (status, _, body) = render(e).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["detail"], "email must contain @");
        assert_eq!(
            body["invalid-params"],
            serde_json::json!([{"name": "email", "reason": "must contain @"}])
        );
    }

    #[tokio::test]
    async fn unauthenticated_and_rate_limited_carry_their_headers() {
        let (status, headers, _) = render(ApiError::unauthenticated("no key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"echo\"");

        let (status, headers, body) = render(ApiError::rate_limited(7)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "7");
        assert_eq!(body["retry_after"], 7);
        assert_eq!(body["detail"], "rate limit exceeded; retry in 7 s");

        let (_, headers, body) = render(ApiError::unavailable(0)).await;
        assert_eq!(headers[header::RETRY_AFTER], "1", "never Retry-After: 0");
        assert_eq!(body["retry_after"], 1);

        let (status, _, body) = render(ApiError::csrf("missing token")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "urn:echo:problem:csrf-check-failed");

        let (status, _, body) = render(ApiError::malformed("expected value")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "urn:echo:problem:malformed-body");
    }

    #[tokio::test]
    async fn store_errors_map_to_their_problem_and_hide_internal_detail() {
        let e = ApiError::from_store(StoreError::not_found("experiment"), "experiment");
        assert_eq!(
            (e.status(), e.slug()),
            (StatusCode::NOT_FOUND, types::NOT_FOUND)
        );
        let (_, _, body) = render(e).await;
        assert_eq!(body["detail"], "experiment not found");

        let e = ApiError::from_store(StoreError::conflict("name taken"), "key");
        assert_eq!(e.status(), StatusCode::CONFLICT);

        let quota = StoreError::QuotaExceeded {
            used: 90,
            requested: 30,
            limit: 100,
        };
        let (status, _, body) = render(ApiError::from_store(quota, "experiment")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(body["type"], "urn:echo:problem:quota-exceeded");
        assert_eq!(
            body["quota"],
            serde_json::json!({"used": 90, "requested": 30, "limit": 100})
        );
        assert!(body["detail"].as_str().unwrap().contains("10 of your 100"));

        let invalid = StoreError::Invalid(ValidationError::new("name", "is too long"));
        assert_eq!(
            ApiError::from_store(invalid, "key").slug(),
            types::INVALID_INPUT
        );

        let unavailable = StoreError::Unavailable {
            retry_after: Some(Duration::from_secs(5)),
            source: secret_source(),
        };
        let (status, headers, body) = render(ApiError::from_store(unavailable, "x")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert!(!body.to_string().contains("hunter2"));

        for e in [
            StoreError::Backend {
                source: secret_source(),
            },
            StoreError::LeaseLost,
        ] {
            let (status, _, body) = render(ApiError::from_store(e, "x")).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body["type"], "urn:echo:problem:internal-error");
            assert!(!body.to_string().contains("hunter2"), "{body}");
            assert!(!body.to_string().contains("lease"), "{body}");
        }
    }

    #[tokio::test]
    async fn service_errors_map_state_to_conflict_and_consent_to_forbidden() {
        let state = ServiceError::State {
            status: ExperimentStatus::Running,
            action: "cannot be deleted",
        };
        let (status, _, body) = render(ApiError::from_service(state, "experiment")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body["detail"],
            "the experiment is running: cannot be deleted"
        );

        let (status, _, body) =
            render(ApiError::from_service(ServiceError::ConsentRequired, "x")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "urn:echo:problem:consent-required");

        let invalid = ServiceError::Invalid(ValidationError::new("prompt", "is empty"));
        assert_eq!(
            ApiError::from_service(invalid, "x").status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let missing = ServiceError::Store(StoreError::not_found("experiment"));
        assert_eq!(
            ApiError::from_service(missing, "experiment").status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn bare_statuses_become_problems() {
        for (status, slug) in [
            (StatusCode::NOT_FOUND, types::NOT_FOUND),
            (StatusCode::METHOD_NOT_ALLOWED, types::METHOD_NOT_ALLOWED),
            (StatusCode::PAYLOAD_TOO_LARGE, types::PAYLOAD_TOO_LARGE),
            (StatusCode::REQUEST_TIMEOUT, types::TIMEOUT),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                types::UNSUPPORTED_MEDIA_TYPE,
            ),
            (StatusCode::BAD_GATEWAY, types::INTERNAL),
            (StatusCode::BAD_REQUEST, types::MALFORMED_BODY),
        ] {
            let e = for_status(status);
            assert_eq!(e.slug(), slug, "{status}");
            let (rendered, headers, body) = render(e).await;
            assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(body["type"], ApiError::type_uri(slug));
            if slug == types::INTERNAL {
                assert_eq!(rendered, StatusCode::INTERNAL_SERVER_ERROR);
            } else {
                assert_eq!(rendered, status);
            }
        }
    }
}
