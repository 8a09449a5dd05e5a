//! Who is calling: API keys (`X-API-Key` or `Authorization: Bearer echo1_…`), session tokens
//! (`Authorization: Bearer echo1_sess_…`) and the session cookie; CSRF for cookie-authenticated
//! unsafe requests; the general per-account rate limit.
//!
//! Only the cookie is an ambient credential (the browser attaches it to cross-site requests),
//! so only cookie-authenticated unsafe requests need the CSRF checks: a `Sec-Fetch-Site` of
//! `same-origin` or `none` when the browser sends one, and an `X-CSRF-Token` header equal to
//! the signed token bound to the session (`GET /api/v1/csrf-token`, also returned at login).
//!
//! Failed authentications (a bad key, an invalid session) count against a per-address limit
//! (`rate_limits.auth_failures`); past it the address gets 429 before any store lookup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use axum::middleware::Next;
use axum::response::Response;
use echo_core::auth::{ApiKeyVerifier, AuthError, LimitKind, RateLimitDecision, SessionError};
use echo_core::model::{ApiKeyId, PricingTier, SessionId, Timestamp, UserId};

use crate::error::ApiError;
use crate::state::AppState;

/// Session cookie name when served over HTTPS: `__Host-` pins it to this host, path `/`, and
/// `Secure`.
pub const SESSION_COOKIE: &str = "__Host-echo_session";
/// Session cookie name in the plain-HTTP development mode.
pub const DEV_SESSION_COOKIE: &str = "echo_session";
/// CSRF cookie (readable by scripts, so a page can copy it into the header).
pub const CSRF_COOKIE: &str = "__Host-echo_csrf";
/// CSRF cookie name in the plain-HTTP development mode.
pub const DEV_CSRF_COOKIE: &str = "echo_csrf";
/// The CSRF header.
pub static CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The API-key header.
pub static API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey(ApiKeyId),
    /// A session token sent as `Authorization: Bearer`.
    Bearer(SessionId),
    /// The session cookie.
    Cookie(SessionId),
}

impl Credential {
    /// The session, for session credentials.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Credential::ApiKey(_) => None,
            Credential::Bearer(s) | Credential::Cookie(s) => Some(*s),
        }
    }
}

/// An authenticated caller: every store call of the request is scoped to `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub user_id: UserId,
    /// The owner's tier (rate limits).
    pub tier: PricingTier,
    /// How they authenticated.
    pub credential: Credential,
}

enum Presented<'a> {
    ApiKey(&'a str),
    Session(&'a str, bool),
}

/// The value of the cookie `name`, when the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The session cookie's name for this configuration.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.security.dev_insecure_cookies {
        DEV_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

fn presented<'a>(headers: &'a HeaderMap, state: &AppState) -> Option<Presented<'a>> {
    if let Some(key) = headers.get(&API_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(Presented::ApiKey(key.trim()));
    }
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = auth.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        return Some(
            if token.starts_with("echo1_live_") || token.starts_with("echo1_test_") {
                Presented::ApiKey(token)
            } else {
                Presented::Session(token, false)
            },
        );
    }
    cookie(headers, session_cookie_name(state)).map(|t| Presented::Session(t, true))
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses requests a browser marked as cross-site (`Sec-Fetch-Site: cross-site` or
/// `same-site`); requests without the header (non-browsers, old browsers) pass this check.
pub fn check_fetch_site(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(ApiError::csrf("cross-site requests are not allowed")),
    }
}

/// The client's IP: the socket peer, or, when configured to trust one proxy in front, the
/// last `X-Forwarded-For` entry (the address that proxy saw; earlier entries are whatever the
/// client chose to send).
pub fn client_ip(state: &AppState, req_headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    if state.config.security.trust_forwarded_for
        && let Some(ip) = req_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.map(|p| p.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Authenticates, checks CSRF and the general rate limit, then runs the handler with the
/// [`Caller`] in the request's extensions and adds the `RateLimit` headers to its response.
pub async fn require_auth(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let address =
        echo_core::auth::address_block(client_ip(&state, req.headers(), peer(req.extensions())));
    // An address that failed too often is refused before any lookup, a good key included:
    // telling good from bad would take the lookup this limit exists to spare.
    let failures = state.auth_failure_limiter.peek(
        &address,
        &state.auth_failure_quota,
        LimitKind::General,
        Instant::now(),
    );
    if !failures.allowed {
        tracing::warn!(
            event = "rate_limited",
            policy = "auth-failures",
            "too many failed authentications"
        );
        return Err(ApiError::rate_limited(
            failures.retry_after_secs.unwrap_or(1),
        ));
    }
    let failed = |detail: &'static str| {
        state.auth_failure_limiter.check(
            &address,
            &state.auth_failure_quota,
            LimitKind::General,
            Instant::now(),
        );
        ApiError::unauthenticated(detail)
    };
    let caller = {
        let headers = req.headers();
        match presented(headers, &state) {
            None => {
                return Err(ApiError::unauthenticated(
                    "send an API key (X-API-Key or Authorization: Bearer) or log in",
                ));
            }
            Some(Presented::ApiKey(key)) => match state.verifier.verify(key, now).await {
                Ok(v) => Caller {
                    user_id: v.user_id,
                    tier: v.tier,
                    credential: Credential::ApiKey(v.key_id),
                },
                Err(AuthError::InvalidKey) => return Err(failed("invalid API key")),
                Err(AuthError::Unavailable { source }) => {
                    return Err(ApiError::from_store(source, "API key"));
                }
                Err(_) => return Err(ApiError::internal()),
            },
            Some(Presented::Session(token, from_cookie)) => {
                let session = match state.sessions.verify(token, now).await {
                    Ok(s) => s,
                    Err(SessionError::Invalid) => {
                        return Err(failed("invalid or expired session"));
                    }
                    Err(SessionError::Unavailable { source }) => {
                        return Err(ApiError::from_store(source, "session"));
                    }
                    Err(_) => return Err(ApiError::internal()),
                };
                if from_cookie && is_unsafe(req.method()) {
                    check_fetch_site(headers)?;
                    let token = headers
                        .get(&CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !state.sessions.verify_csrf(session.session_id, token) {
                        return Err(ApiError::csrf(
                            "send the session's CSRF token (GET /api/v1/csrf-token) in X-CSRF-Token",
                        ));
                    }
                }
                Caller {
                    user_id: session.user_id,
                    tier: session.tier,
                    credential: if from_cookie {
                        Credential::Cookie(session.session_id)
                    } else {
                        Credential::Bearer(session.session_id)
                    },
                }
            }
        }
    };
    // One budget per account: every key and session of the user draws on it.
    let decision = state.limiter.check(
        caller.user_id,
        caller.tier,
        LimitKind::General,
        Instant::now(),
    );
    if !decision.allowed {
        tracing::warn!(event = "rate_limited", user_id = %caller.user_id, policy = decision.policy, "rate limited");
        return Err(rate_limited(&[decision]));
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    add_rate_limit_headers(response.headers_mut(), &[decision]);
    Ok(response)
}

/// Adds `decisions` to the `RateLimit-Policy` and `RateLimit` (IETF draft) headers, after
/// any items already there (a handler's own limit, e.g. experiment creation).
pub fn add_rate_limit_headers(headers: &mut HeaderMap, decisions: &[RateLimitDecision]) {
    let (policy, limit) = RateLimitDecision::header_values(decisions);
    for (name, items) in [("ratelimit-policy", policy), ("ratelimit", limit)] {
        let name = HeaderName::from_static(name);
        let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{items}, {existing}"),
            None => items,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// The 429 for refused decisions, with `Retry-After` and the `RateLimit` headers.
pub fn rate_limited(decisions: &[RateLimitDecision]) -> ApiError {
    let retry = decisions
        .iter()
        .filter_map(|d| d.retry_after_secs)
        .max()
        .unwrap_or(1);
    let (policy, limit) = RateLimitDecision::header_values(decisions);
    let mut e = ApiError::rate_limited(retry);
    if let (Ok(p), Ok(l)) = (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&limit),
    ) {
        e = e
            .with_header(HeaderName::from_static("ratelimit-policy"), p)
            .with_header(HeaderName::from_static("ratelimit"), l);
    }
    e
}

/// The peer address, when the server was started with connect info (tests driving the router
/// directly have none).
pub fn peer(req_extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    req_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-echo_session=tok; echo_session=dev"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, DEV_SESSION_COOKIE), Some("dev"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn fetch_metadata() {
        let mut h = HeaderMap::new();
        assert!(check_fetch_site(&h).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_fetch_site(&h).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_fetch_site(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(check_fetch_site(&h).is_err());
    }
}
