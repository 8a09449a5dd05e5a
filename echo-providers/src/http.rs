//! The HTTP layer every provider shares: one `reqwest::Client` per provider, status
//! classification, `Retry-After` parsing, error-message extraction and secret scrubbing.

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, Instant};

use echo_core::model::ProviderKind;
use echo_core::provider::{CitedSource, FinishReason, PermanentKind, ProviderError, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::BuildError;

/// Sent on every request, so provider-side logs can tell Echo's traffic apart.
pub(crate) const USER_AGENT: &str = concat!("echo/", env!("CARGO_PKG_VERSION"));

/// Longest provider message kept in an error. Error bodies can be whole HTML pages from a
/// proxy; the first few hundred characters say what went wrong.
pub(crate) const MAX_MESSAGE_CHARS: usize = 500;

/// A misbehaving gateway must not make a worker buffer an unbounded body; real answers are a
/// few kilobytes.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not scrubbed from messages: replacing every "1" or "on" would
/// destroy the message while protecting nothing worth protecting.
const MIN_SCRUB_LEN: usize = 4;

/// What a [`Transport`] needs from a provider's configuration.
pub(crate) struct TransportConfig {
    pub(crate) provider: ProviderKind,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// Headers that carry a secret (authentication, gateway tokens).
    pub(crate) credentials: Vec<Credential>,
    /// Headers with nothing secret in them (API version, organisation).
    pub(crate) public_headers: Vec<(String, String)>,
}

/// A header that carries a secret: sent as `prefix + secret`, marked sensitive so that reqwest
/// and hyper print it as `Sensitive`, and the secret scrubbed from every error message.
pub(crate) struct Credential {
    pub(crate) header: String,
    pub(crate) prefix: &'static str,
    pub(crate) secret: Secret,
}

impl Credential {
    /// `Authorization: Bearer <key>`.
    #[cfg(any(
        feature = "openai",
        feature = "perplexity",
        feature = "openai-compatible"
    ))]
    pub(crate) fn bearer(key: &Secret) -> Self {
        Self {
            header: "authorization".into(),
            prefix: "Bearer ",
            secret: key.clone(),
        }
    }

    /// `<header>: <key>`.
    pub(crate) fn header(header: &str, key: &Secret) -> Self {
        Self {
            header: header.into(),
            prefix: "",
            secret: key.clone(),
        }
    }

    /// A configuration's extra headers. Their values are treated as secrets because gateways
    /// put their own tokens there.
    pub(crate) fn extra(headers: &[(String, Secret)]) -> impl Iterator<Item = Self> + '_ {
        headers
            .iter()
            .map(|(name, value)| Self::header(name, value))
    }
}

/// One provider's HTTP client.
pub(crate) struct Transport {
    client: reqwest::Client,
    provider: ProviderKind,
    timeout: Duration,
    connect_timeout: Duration,
    scrubber: Scrubber,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client and the headers are left out on purpose: they hold the credentials.
        f.debug_struct("Transport")
            .field("provider", &self.provider)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Builds the client. Fails on a zero timeout or a header that HTTP cannot carry.
    pub(crate) fn new(config: TransportConfig) -> Result<Self, BuildError> {
        let provider = config.provider;
        for (setting, value) in [
            ("timeout", config.timeout),
            ("connect_timeout", config.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(BuildError::InvalidSetting {
                    provider,
                    setting,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        let invalid_header = |name: &str| BuildError::InvalidHeader {
            provider,
            name: name.to_owned(),
        };
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        for credential in config.credentials {
            let name = HeaderName::from_bytes(credential.header.as_bytes())
                .map_err(|_| invalid_header(&credential.header))?;
            let value = format!("{}{}", credential.prefix, credential.secret.expose());
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| invalid_header(&credential.header))?;
            value.set_sensitive(true);
            headers.insert(name, value);
            secrets.push(credential.secret);
        }
        for (name, value) in &config.public_headers {
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid_header(name))?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid_header(name))?;
            headers.insert(header, value);
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect would turn the POST into a GET or drop the auth header on another
            // host; a misconfigured base URL should fail loudly instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| BuildError::Client { provider, source })?;
        Ok(Self {
            client,
            provider,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            scrubber: Scrubber { secrets },
        })
    }

    /// The provider this transport talks to.
    pub(crate) fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// POSTs `body` as JSON and decodes a successful response as `R`. Returns the decoded body
    /// and the wall-clock time from sending to the last byte of the response.
    pub(crate) async fn post_json<B, R>(
        &self,
        url: &Url,
        body: &B,
    ) -> Result<(R, Duration), ProviderError>
    where
        B: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let started = Instant::now();
        let mut response = self
            .client
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let bytes = match read_limited(&mut response).await {
            Ok(bytes) => bytes,
            // The status already says what went wrong; a broken error body should not hide it.
            Err(_) if !status.is_success() => Vec::new(),
            Err(ReadError::Http(e)) => return Err(self.request_error(e)),
            Err(ReadError::TooLarge) => {
                return Err(invalid(format!(
                    "response body exceeds {MAX_BODY_BYTES} bytes"
                )));
            }
        };
        let latency = started.elapsed();
        tracing::debug!(
            provider = %self.provider,
            status = status.as_u16(),
            latency_ms = latency.as_millis() as u64,
            "provider responded"
        );
        if !status.is_success() {
            let now = time::OffsetDateTime::now_utc();
            return Err(classify(self.provider, status, &headers, &bytes, now));
        }
        let decoded = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "{} returned a malformed response body: {e}",
                self.provider
            ))
        })?;
        Ok((decoded, latency))
    }

    /// Scrubs every secret this transport knows from the error's message and caps its length.
    /// Each provider's `complete` passes every error through here, whatever produced it, so
    /// no code path can forget to.
    pub(crate) fn sanitize(&self, error: ProviderError) -> ProviderError {
        let clean = |m: String| truncate(&self.scrubber.scrub(&m), MAX_MESSAGE_CHARS);
        match error {
            ProviderError::RateLimited {
                retry_after,
                message,
            } => ProviderError::RateLimited {
                retry_after,
                message: clean(message),
            },
            ProviderError::Transient { status, message } => ProviderError::Transient {
                status,
                message: clean(message),
            },
            ProviderError::Permanent {
                kind,
                status,
                message,
            } => ProviderError::Permanent {
                kind,
                status,
                message: clean(message),
            },
            // Timeout carries no text; a future variant is passed on untouched.
            other => other,
        }
    }

    fn request_error(&self, error: reqwest::Error) -> ProviderError {
        // The URL is dropped from the message: a compatible endpoint's URL may carry a token
        // in its query string.
        let error = error.without_url();
        if error.is_timeout() {
            let limit = if error.is_connect() {
                self.connect_timeout
            } else {
                self.timeout
            };
            return ProviderError::Timeout(limit);
        }
        let what = if error.is_connect() {
            "could not connect to"
        } else {
            "request failed for"
        };
        let message = format!("{what} {}: {}", self.provider, error_chain(&error));
        if error.is_builder() {
            return permanent(PermanentKind::BadRequest, None, message);
        }
        ProviderError::Transient {
            status: None,
            message,
        }
    }
}

enum ReadError {
    Http(reqwest::Error),
    TooLarge,
}

async fn read_limited(response: &mut reqwest::Response) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's own message is only the outermost layer ("error sending request"); the cause
/// ("connection refused") is in the source chain.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A permanent failure.
pub(crate) fn permanent(
    kind: PermanentKind,
    status: Option<u16>,
    message: String,
) -> ProviderError {
    ProviderError::Permanent {
        kind,
        status,
        message,
    }
}

/// A response that could not be understood.
pub(crate) fn invalid(message: String) -> ProviderError {
    permanent(PermanentKind::InvalidResponse, None, message)
}

/// The text of a [`Completion`](echo_core::provider::Completion), or the error an answer
/// without text is.
///
/// An empty answer is a provider fault, not an answer that mentions no brand: counting it as a
/// "no mention" sample would pull every brand's mention rate down whenever a provider
/// misbehaves. It is therefore an error, never a completion. It is
/// [`PermanentKind::ContentRefused`] when the provider says it refused, and
/// [`PermanentKind::InvalidResponse`] otherwise (for example a reasoning model that spent its
/// whole token budget before answering).
pub(crate) fn non_empty_answer(
    provider: ProviderKind,
    text: String,
    finish: &FinishReason,
    refusal: Option<&str>,
) -> Result<String, ProviderError> {
    if !text.trim().is_empty() {
        return Ok(text);
    }
    if let Some(refusal) = refusal.filter(|r| !r.trim().is_empty()) {
        return Err(permanent(
            PermanentKind::ContentRefused,
            None,
            format!("{provider} refused to answer: {refusal}"),
        ));
    }
    let message = match finish {
        FinishReason::ContentFilter => {
            return Err(permanent(
                PermanentKind::ContentRefused,
                None,
                format!("{provider} withheld the answer (content filter)"),
            ));
        }
        FinishReason::Length => format!(
            "{provider} returned an empty answer: the token limit was reached before any text \
             (raise max_tokens)"
        ),
        other => format!("{provider} returned an empty answer (finish reason {other:?})"),
    };
    Err(invalid(message))
}

/// Citation data is read leniently: a provider that sends a number where a URL belongs, or an
/// object where a list belongs, loses that entry, not the answer. These helpers read such
/// fields from raw JSON; what they return is checked by
/// [`normalize_sources`](echo_core::provider::normalize_sources).
///
/// The elements of `value` when it is an array; nothing otherwise.
pub(crate) fn json_items(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

/// `value[key]` when it is a string.
pub(crate) fn json_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// `value[key]` when it is a non-negative integer that fits a `usize`. (Anthropic's citations
/// carry no indices, so an Anthropic-only build has no use for it.)
#[cfg(any(
    feature = "openai",
    feature = "gemini",
    feature = "perplexity",
    feature = "openai-compatible"
))]
pub(crate) fn json_index(value: &Value, key: &str) -> Option<usize> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// A source from a URL and an optional title, as the provider spelled them.
pub(crate) fn raw_source(url: &str, title: Option<&str>) -> CitedSource {
    CitedSource {
        url: url.to_owned(),
        title: title.map(str::to_owned),
        spans: Vec::new(),
    }
}

/// Parses and checks a base URL: http(s) only, and no credentials in it, since URLs end up in
/// logs and error messages.
pub(crate) fn parse_base_url(provider: ProviderKind, base: &str) -> Result<Url, BuildError> {
    let reject = |reason: &str| BuildError::InvalidBaseUrl {
        provider,
        reason: reason.to_owned(),
    };
    let url = Url::parse(base.trim()).map_err(|e| reject(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(reject("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(reject(
            "credentials in the URL are not supported (they would be logged); use the API key \
             or extra headers",
        ));
    }
    if url.cannot_be_a_base() {
        return Err(reject("not a base URL"));
    }
    Ok(url)
}

/// `base_url` checked by [`parse_base_url`], with `segments` appended to its path.
#[cfg(any(
    feature = "openai",
    feature = "anthropic",
    feature = "perplexity",
    feature = "openai-compatible"
))]
pub(crate) fn endpoint(
    provider: ProviderKind,
    base_url: &str,
    segments: &[&str],
) -> Result<Url, BuildError> {
    let base = parse_base_url(provider, base_url)?;
    join(&base, segments).ok_or_else(|| BuildError::InvalidBaseUrl {
        provider,
        reason: "not a base URL".into(),
    })
}

/// `base` with `segments` appended to its path; the query string is kept, so an Azure-style
/// `?api-version=…` survives.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Option<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

/// A URL for `Debug` output: no query string, which may carry a credential.
pub(crate) fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Classifies a non-success response.
///
/// | status | class |
/// | --- | --- |
/// | 402, or a quota-exhausted body on any 4xx | `Permanent(QuotaExhausted)` |
/// | 429 | `RateLimited`, with `retry_after` from the headers or the body |
/// | 401, 403, or Google's `API_KEY_INVALID` | `Permanent(Authentication)` |
/// | 4xx with a content-policy code | `Permanent(ContentRefused)` |
/// | 408, 409, 425, 5xx (529 included) | `Transient` |
/// | other 4xx (400, 404, 413, 422…) | `Permanent(BadRequest)` |
/// | 3xx (redirects are not followed) | `Permanent(BadRequest)` |
pub(crate) fn classify(
    provider: ProviderKind,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: time::OffsetDateTime,
) -> ProviderError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let details = ErrorDetails::from_body(json.as_ref(), body);
    let code = status.as_u16();
    let message = match &details.message {
        Some(m) => format!("{provider} returned HTTP {code}: {m}"),
        None => format!(
            "{provider} returned HTTP {code} {}",
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_owned(),
    };
    if code == 402 || (status.is_client_error() && details.quota_exhausted()) {
        return permanent(PermanentKind::QuotaExhausted, Some(code), message);
    }
    if code == 429 {
        let retry_after = retry_after_from_headers(headers, now)
            .or_else(|| json.as_ref().and_then(google_retry_delay));
        return ProviderError::RateLimited {
            retry_after,
            message,
        };
    }
    if matches!(code, 401 | 403) || details.has_code("API_KEY_INVALID") {
        return permanent(PermanentKind::Authentication, Some(code), message);
    }
    if status.is_client_error() && details.content_refused() {
        return permanent(PermanentKind::ContentRefused, Some(code), message);
    }
    if matches!(code, 408 | 409 | 425) || status.is_server_error() {
        return ProviderError::Transient {
            status: Some(code),
            message,
        };
    }
    if status.is_redirection() {
        let message = format!("{message} (redirects are not followed: check the base URL)");
        return permanent(PermanentKind::BadRequest, Some(code), message);
    }
    if status.is_client_error() {
        return permanent(PermanentKind::BadRequest, Some(code), message);
    }
    ProviderError::Transient {
        status: Some(code),
        message,
    }
}

/// What an error body says, in any of the shapes providers use: `{"error": {"message",
/// "type", "code", "status", "details"}}` (OpenAI, Anthropic, Gemini, Perplexity),
/// `{"error": "text"}` (Ollama), `{"detail": …}` (vLLM and other FastAPI servers),
/// `{"message": "text"}`, or plain text.
#[derive(Debug, Default)]
struct ErrorDetails {
    message: Option<String>,
    codes: Vec<String>,
}

impl ErrorDetails {
    fn from_body(json: Option<&Value>, raw: &[u8]) -> Self {
        let Some(json) = json else {
            let text = String::from_utf8_lossy(raw);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            return Self {
                message: (!text.is_empty()).then_some(text),
                codes: Vec::new(),
            };
        };
        let error = json.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .or(error.filter(|e| e.is_string()))
            .or_else(|| json.get("message"))
            .or_else(|| json.get("detail"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .filter(|m| !m.trim().is_empty());
        let mut codes = Vec::new();
        if let Some(error) = error {
            for key in ["type", "code", "status"] {
                if let Some(Value::String(s)) = error.get(key) {
                    codes.push(s.clone());
                }
            }
            if let Some(Value::Array(details)) = error.get("details") {
                codes.extend(
                    details
                        .iter()
                        .filter_map(|d| d.get("reason").and_then(Value::as_str))
                        .map(str::to_owned),
                );
            }
        }
        Self { message, codes }
    }

    fn has_code(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c.eq_ignore_ascii_case(code))
    }

    /// Out of credit, as opposed to sending too fast: OpenAI's `insufficient_quota` (sent with
    /// a 429 that must not be retried), Anthropic's `billing_error` and its 400 "credit
    /// balance is too low".
    fn quota_exhausted(&self) -> bool {
        [
            "insufficient_quota",
            "billing_error",
            "billing_hard_limit_reached",
        ]
        .iter()
        .any(|c| self.has_code(c))
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("credit balance is too low"))
    }

    /// OpenAI's `content_policy_violation`, Azure's `content_filter`.
    fn content_refused(&self) -> bool {
        self.has_code("content_policy_violation") || self.has_code("content_filter")
    }
}

/// The wait a 429 asks for, from (in order) OpenAI's `retry-after-ms`, then the standard
/// `Retry-After` as delta-seconds or an HTTP-date. A date in the past means "now".
pub(crate) fn retry_after_from_headers(
    headers: &HeaderMap,
    now: time::OffsetDateTime,
) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(parse_seconds) {
        return Some(ms / 1000);
    }
    let value = header("retry-after")?.trim();
    parse_seconds(value).or_else(|| parse_http_date(value, now))
}

/// Non-negative decimal seconds; fractions are accepted because some servers send them.
fn parse_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), which is RFC 2822 date syntax. The
/// obsolete RFC 850 and asctime forms are not accepted; no provider sends them.
fn parse_http_date(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Gemini says how long to wait in the body: a `google.rpc.RetryInfo` detail with
/// `"retryDelay": "37s"`.
fn google_retry_delay(json: &Value) -> Option<Duration> {
    json.get("error")?
        .get("details")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("retryDelay")?.as_str())
        .find_map(|d| parse_seconds(d.trim().strip_suffix('s')?))
}

/// Removes known secrets from text bound for an error or a log line.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    secrets: Vec<Secret>,
}

impl Scrubber {
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let value = secret.expose();
            if value.len() >= MIN_SCRUB_LEN && out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        redact_masked_tokens(&out)
    }
}

/// Providers echo a masked key in authentication errors (OpenAI: `sk-proj-****…abcd`); even a
/// key's fragments have no place in our logs, so a word containing a run of asterisks goes.
fn redact_masked_tokens(text: &str) -> String {
    if !text.contains("****") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        out.push_str(if word.contains("****") {
            REDACTED
        } else {
            word
        });
        out.push_str(&piece[word.len()..]);
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: time::OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn classify_json(status: u16, hdrs: &[(&'static str, &str)], body: Value) -> ProviderError {
        classify(
            ProviderKind::OpenAi,
            StatusCode::from_u16(status).unwrap(),
            &headers(hdrs),
            body.to_string().as_bytes(),
            NOW,
        )
    }

    fn kind(e: &ProviderError) -> Option<PermanentKind> {
        match e {
            ProviderError::Permanent { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[test]
    fn retry_after_forms() {
        let at = |h: &[(&'static str, &str)]| retry_after_from_headers(&headers(h), NOW);
        assert_eq!(at(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            at(&[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            at(&[("retry-after", "Wed, 25 Nov 2026 12:00:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at(&[("retry-after", "Wed, 25 Nov 2026 11:00:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            at(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(at(&[("retry-after", "-3")]), None);
        assert_eq!(at(&[("retry-after", "soon")]), None);
        assert_eq!(at(&[]), None);
    }

    #[test]
    fn status_classes() {
        let e = classify_json(
            401,
            &[],
            serde_json::json!({"error": {"message": "bad key"}}),
        );
        assert_eq!(kind(&e), Some(PermanentKind::Authentication));
        assert!(e.to_string().contains("bad key"));
        for s in [400, 404, 422, 413] {
            assert_eq!(
                kind(&classify_json(s, &[], Value::Null)),
                Some(PermanentKind::BadRequest)
            );
        }
        assert_eq!(
            kind(&classify_json(402, &[], Value::Null)),
            Some(PermanentKind::QuotaExhausted)
        );
        for s in [408, 409, 500, 502, 503, 529] {
            assert!(matches!(
                classify_json(s, &[], Value::Null),
                ProviderError::Transient { status: Some(x), .. } if x == s
            ));
        }
        assert!(matches!(
            classify_json(429, &[("retry-after", "3")], Value::Null),
            ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert_eq!(
            kind(&classify_json(302, &[], Value::Null)),
            Some(PermanentKind::BadRequest)
        );
    }

    #[test]
    fn quota_refusal_and_google_bodies() {
        let openai_quota = serde_json::json!({"error": {
            "message": "You exceeded your current quota.", "type": "insufficient_quota",
            "code": "insufficient_quota"}});
        assert_eq!(
            kind(&classify_json(429, &[], openai_quota)),
            Some(PermanentKind::QuotaExhausted)
        );
        let anthropic_credit = serde_json::json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API."}});
        assert_eq!(
            kind(&classify_json(400, &[], anthropic_credit)),
            Some(PermanentKind::QuotaExhausted)
        );
        let azure_filter = serde_json::json!({"error": {"code": "content_filter",
            "message": "The response was filtered"}});
        assert_eq!(
            kind(&classify_json(400, &[], azure_filter)),
            Some(PermanentKind::ContentRefused)
        );
        let google_key = serde_json::json!({"error": {"code": 400,
            "message": "API key not valid.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "API_KEY_INVALID"}]}});
        assert_eq!(
            kind(&classify_json(400, &[], google_key)),
            Some(PermanentKind::Authentication)
        );
        let google_429 = serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded", "details": [
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}});
        assert!(matches!(
            classify_json(429, &[], google_429),
            ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(37)
        ));
    }

    #[test]
    fn message_shapes() {
        let msg = |body: &[u8]| {
            ErrorDetails::from_body(serde_json::from_slice(body).ok().as_ref(), body).message
        };
        assert_eq!(
            msg(br#"{"error":"model not found"}"#).as_deref(),
            Some("model not found")
        );
        assert_eq!(msg(br#"{"detail":"bad"}"#).as_deref(), Some("bad"));
        assert_eq!(
            msg(b"<html>\n  Bad   gateway </html>").as_deref(),
            Some("<html> Bad gateway </html>")
        );
        assert_eq!(msg(b""), None);
    }

    #[test]
    fn scrubs_keys_and_masked_keys() {
        let s = Scrubber {
            secrets: vec![Secret::new("sk-live-abcdef123456"), Secret::new("1")],
        };
        let out = s.scrub(
            "key sk-live-abcdef123456 rejected; Incorrect API key provided: sk-li****3456. 1 try",
        );
        assert!(!out.contains("abcdef123456"));
        assert!(!out.contains("3456"));
        assert!(out.contains("1 try"));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }

    #[test]
    fn empty_answers_are_errors() {
        let p = ProviderKind::OpenAi;
        assert!(non_empty_answer(p, "hi".into(), &FinishReason::Stop, None).is_ok());
        let e = non_empty_answer(p, "  \n".into(), &FinishReason::Stop, None).unwrap_err();
        assert_eq!(kind(&e), Some(PermanentKind::InvalidResponse));
        let e = non_empty_answer(p, String::new(), &FinishReason::ContentFilter, None).unwrap_err();
        assert_eq!(kind(&e), Some(PermanentKind::ContentRefused));
        let e =
            non_empty_answer(p, String::new(), &FinishReason::Stop, Some("I can't")).unwrap_err();
        assert_eq!(kind(&e), Some(PermanentKind::ContentRefused));
    }

    #[test]
    fn base_urls() {
        let p = ProviderKind::OpenAiCompatible;
        assert!(parse_base_url(p, "ftp://x").is_err());
        assert!(parse_base_url(p, "https://user:pw@x.example").is_err());
        let base = parse_base_url(p, "http://localhost:11434/v1/").unwrap();
        assert_eq!(
            join(&base, &["chat", "completions"]).unwrap().as_str(),
            "http://localhost:11434/v1/chat/completions"
        );
        let azure =
            parse_base_url(p, "https://r.example/openai/deployments/d?api-version=1").unwrap();
        let url = join(&azure, &["chat", "completions"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://r.example/openai/deployments/d/chat/completions?api-version=1"
        );
        assert_eq!(
            display_url(&url),
            "https://r.example/openai/deployments/d/chat/completions"
        );
    }

    proptest! {
        #[test]
        fn scrubbed_text_never_holds_the_key(
            prefix in "\\PC{0,40}", suffix in "\\PC{0,40}", key in "[A-Za-z0-9_-]{8,40}",
        ) {
            let s = Scrubber { secrets: vec![Secret::new(key.clone())] };
            let out = truncate(&s.scrub(&format!("{prefix}{key}{suffix}{key}")), MAX_MESSAGE_CHARS);
            prop_assert!(!out.contains(&key));
        }

        #[test]
        fn retry_after_never_panics(value in "\\PC{0,40}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert("retry-after", v.clone());
                h.insert("retry-after-ms", v);
            }
            let _ = retry_after_from_headers(&h, NOW);
        }
    }
}
