//! The HTTP routes. Handlers parse, authenticate (through [`crate::auth::require_auth`]) and
//! call `echo-core`; every store call is scoped to the caller.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod brand;
pub mod dashboard;
pub mod discover;
pub mod experiments;
pub mod export;
pub mod keys;
pub mod privacy;
pub mod prompt_sets;
pub mod runs;
pub mod sources;
pub mod system;
pub mod webhooks;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, for_status};

/// `Json` whose rejections are problem+json: syntax errors 400, unknown fields and bad values
/// 422 (naming the field), a missing JSON content type 415, an oversized body 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(
                "body",
                // serde's message names the field and what was expected; it holds no secrets
                // beyond what the client sent.
                e.body_text()
                    .trim_start_matches(
                        "Failed to deserialize the JSON body into the target type: ",
                    )
                    .to_owned(),
            )),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::malformed("the request body is not valid JSON"))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
            }
            Err(other) => Err(for_status(other.status())),
        }
    }
}

/// `Path` whose rejection is a 404: an id that does not parse names nothing.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::not_found("resource"))
            }
            Err(other) => Err(for_status(other.status())),
        }
    }
}

/// `Query` whose rejection is a 422 naming the problem. A parameter with an empty value
/// (`?status=` or a bare `?status`, as an HTML form sends an untouched field) means "not
/// given", like leaving it out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let given = without_empty_values(parts.uri.query().unwrap_or(""));
        let uri: axum::http::Uri = format!("/?{given}")
            .parse()
            .map_err(|_| ApiError::invalid("query", "is not a valid query string"))?;
        match axum::extract::Query::<T>::try_from_uri(&uri) {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::invalid("query", e.body_text()))
            }
            Err(other) => Err(for_status(other.status())),
        }
    }
}

/// The query string without its empty-valued pairs (`a=&b` keeps neither).
fn without_empty_values(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect::<Vec<_>>()
        .join("&")
}

/// Deserializes an optional whole number that JSON may spell `20` or `20.0`: JSON Schema's
/// `integer` admits both, and the document promises nothing stricter.
pub fn whole_number<'de, D>(deserializer: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u32),
        Float(f64),
    }
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Whole(n)) => Ok(Some(n)),
        Some(Number::Float(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // Checked above: whole and within u32's range, so the cast is exact.
            Ok(Some(f as u32))
        }
        Some(Number::Float(f)) => Err(D::Error::custom(format!(
            "invalid value: {f}, expected a whole number from 0 to {}",
            u32::MAX
        ))),
    }
}

/// Parses a typed id from a path segment, answering 404 for garbage.
pub fn parse_id<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::without_empty_values;

    #[test]
    fn empty_query_values_are_dropped() {
        assert_eq!(without_empty_values(""), "");
        assert_eq!(without_empty_values("status="), "");
        assert_eq!(without_empty_values("status=&limit=5"), "limit=5");
        assert_eq!(without_empty_values("status&limit=5&cursor="), "limit=5");
        assert_eq!(without_empty_values("a=1&b=%20"), "a=1&b=%20");
    }
}
