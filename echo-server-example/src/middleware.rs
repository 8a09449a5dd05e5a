//! Cross-cutting HTTP behaviour applied to every response: request ids, the request's log
//! span, metrics, security headers, and problem+json for errors produced outside handlers.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{PROBLEM_JSON, for_status};
use crate::state::AppState;

/// The request-id header, accepted from clients when well formed and always returned.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Names the deployment environment on every response, so a smoke test or an operator can
/// see which one answered.
pub static ECHO_ENVIRONMENT: HeaderName = HeaderName::from_static("echo-environment");

/// The request's id, in the request's extensions for handlers (stored on enqueued jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// An incoming id is kept when it is 1 to 64 characters of `[A-Za-z0-9._:-]`: enough for
/// UUIDs and tracing ids, and nothing that could forge a log line or a header.
pub fn accept_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&REQUEST_ID)?.to_str().ok()?;
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| v.to_owned())
}

/// Request id, span, metrics, error normalisation and security headers, for every request.
pub async fn envelope(
    State(state): State<AppState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = accept_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // A client chooses the method text: bounded to the standard set before it becomes a
    // metric label or a log field, so random methods cannot grow `/metrics` or the logs.
    let method = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %id, method, route = %route);
    let mut response = next.run(req).instrument(span.clone()).await;

    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && !is_problem(response.headers())
        && !crate::web::is_html(response.headers())
    {
        // Errors from layers (body limit, timeout) and the router (unknown method) arrive as
        // bare statuses; keep their headers (e.g. `Allow`) but answer problem+json.
        let headers = std::mem::take(response.headers_mut());
        response = for_status(status).into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(&route, method, status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_us = elapsed.as_micros() as u64,
            "request finished"
        );
    });
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
    security_headers(headers, &state);
    headers.insert(
        ECHO_ENVIRONMENT.clone(),
        HeaderValue::from_static(state.config.env.as_str()),
    );
    response
}

fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// The OWASP Secure Headers Project's recommendations for an API, on every response.
fn security_headers(headers: &mut HeaderMap, state: &AppState) {
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    // The API serves JSON only: nothing may load, frame or be framed. The web pages set
    // their own policy (and caching) first, which is kept.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'none'",
        ));
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    // The legacy XSS auditor is itself an attack surface: turn it off explicitly.
    set(headers, header::X_XSS_PROTECTION, "0");
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.remove(header::SERVER);
    let security = &state.config.security;
    if security.hsts
        && !security.dev_insecure_cookies
        && let Ok(v) = HeaderValue::from_str(&format!(
            "max-age={}; includeSubDomains",
            security.hsts_max_age_secs
        ))
    {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_well_formed() {
        let mut h = HeaderMap::new();
        assert_eq!(accept_request_id(&h), None);
        h.insert(&REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(accept_request_id(&h).as_deref(), Some("abc-123_x.y:z"));
        h.insert(&REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(accept_request_id(&h), None);
        let long = "a".repeat(65);
        h.insert(&REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_eq!(accept_request_id(&h), None);
        h.insert(&REQUEST_ID, HeaderValue::from_static(""));
        assert_eq!(accept_request_id(&h), None);
    }
}

/// The method as a bounded label: one of the nine standard methods, or `OTHER`.
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod method_tests {
    use axum::http::Method;

    use super::method_label;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for raw in ["FOO", "get", "X-RANDOM-1", "PROPFIND"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{raw}");
        }
    }
}
