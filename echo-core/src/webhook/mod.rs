//! Webhooks: how Echo signs an alert it posts to a receiver and the receiver-side check
//! ([`verify`]) that the README's recipe describes; which addresses a webhook may reach
//! ([`WebhookUrlPolicy`]); and the delivery of stored webhooks through a
//! [`WebhookTransport`] ([`WebhookDeliverer`]).
//!
//! # The recipe
//! Each endpoint has a secret, `whsec_` followed by 64 hex digits, shown once when the endpoint
//! is created. A delivery is a `POST` of a JSON body with the header
//!
//! ```text
//! Echo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//! ```
//!
//! where the HMAC is keyed with the **whole secret text** (its UTF-8 bytes, prefix included) and
//! computed over `"{t}.{body}"`: the timestamp's decimal digits, a full stop, and the raw body
//! bytes exactly as received (before any JSON parsing). A receiver recomputes it, compares in
//! constant time with any `v1` of the header (several may be sent while a secret is rotated),
//! and refuses a `t` more than five minutes from its clock, which bounds replays.
//!
//! ```
//! use echo_core::webhook::{sign, verify, WebhookSecret, DEFAULT_TOLERANCE_SECS};
//! let secret = WebhookSecret::generate()?;
//! let body = br#"{"kind":"visibility"}"#;
//! let header = sign(&secret, 1_765_000_000, body);
//! assert!(header.starts_with("t=1765000000,v1="));
//! // The receiver, with the secret text it was shown:
//! verify(secret.expose().as_bytes(), &header, body, 1_765_000_030, DEFAULT_TOLERANCE_SECS)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod deliver;

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::auth::EntropyError;

pub use address::{WebhookUrlPolicy, is_public_ip};
pub use deliver::{
    AttemptOutcome, DELIVERY_HEADER, DynWebhookTransport, EVENT_HEADER, TransportError,
    WebhookDeliverer, WebhookRequest, WebhookResponse, WebhookTransport, request_headers,
};

type HmacSha256 = Hmac<Sha256>;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Echo-Signature";

/// How far a signature's timestamp may be from the receiver's clock, in seconds (five
/// minutes): older deliveries are refused as possible replays.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's signing secret. Redacted in `Debug`; shown to its owner once, at creation.
///
/// Echo must keep it to sign (a digest would not do), so a store keeps it as given; a
/// deployment that wants it encrypted at rest wraps the store column with its own key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A new secret: [`SECRET_PREFIX`] and 32 bytes from the OS's random source, in hex.
    pub fn generate() -> Result<Self, EntropyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(EntropyError)?;
        Ok(Self(format!("{SECRET_PREFIX}{}", hex::encode(bytes))))
    }

    /// A secret read back from storage. `None` unless it has the generated shape.
    pub fn from_stored(text: &str) -> Option<Self> {
        let digits = text.strip_prefix(SECRET_PREFIX)?;
        (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_owned()))
    }

    /// The secret's text: to show once, to store, and the receiver's HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this never falls back.
    let mut mac =
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
pub fn sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret.0.as_bytes(), timestamp, body)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Why [`verify`] refused a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header lacks `t=` or any `v1=`, or a value is not a number or hex.
    #[error("malformed signature header")]
    Malformed,
    /// `t` is further from the receiver's clock than the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Expired,
    /// No `v1` matches the body under this secret.
    #[error("signature does not match")]
    Mismatch,
}

/// The receiver's check of a delivery: `header` is the [`SIGNATURE_HEADER`] value, `body` the
/// raw bytes received, `secret` the endpoint secret's text as bytes, `now` the receiver's clock
/// in Unix seconds. Accepts when `|now − t| ≤ tolerance_secs` and some `v1` equals the
/// HMAC-SHA256 of `"{t}.{body}"`, compared in constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?);
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > tolerance_secs {
        return Err(SignatureError::Expired);
    }
    let expected = mac(secret, t, body);
    let matched = signatures.iter().fold(false, |any, s| {
        expected.clone().verify_slice(s).is_ok() | any
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::from_stored(&format!("{SECRET_PREFIX}{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn the_recipe_matches_an_independent_hmac() {
        // HMAC-SHA256(key = "whsec_abab…", "1765000000.{}") computed by hand with the same
        // primitives, so the documented recipe and `sign` cannot drift apart.
        let s = secret();
        let mut by_hand = HmacSha256::new_from_slice(s.expose().as_bytes()).unwrap();
        by_hand.update(b"1765000000.{}");
        let expected = hex::encode(by_hand.finalize().into_bytes());
        assert_eq!(
            sign(&s, 1_765_000_000, b"{}"),
            format!("t=1765000000,v1={expected}")
        );
        // The same vector from the README's Python receiver (hmac.new(secret.encode(),
        // b"1765000000.{}", hashlib.sha256).hexdigest()).
        assert_eq!(
            expected,
            "d84b90b68f4822bdaa5781eea5cd0a10aa2f400c9d9094789627acfa1cd998a0"
        );
    }

    #[test]
    fn verify_accepts_the_signature_and_refuses_tampering_replay_and_garbage() {
        let s = secret();
        let key = s.expose().as_bytes();
        let body = br#"{"alert":{"kind":"visibility","brand":"Acme"}}"#;
        let header = sign(&s, 1_000, body);
        assert_eq!(verify(key, &header, body, 1_000, 300), Ok(()));
        assert_eq!(verify(key, &header, body, 1_300, 300), Ok(()));
        assert_eq!(verify(key, &header, body, 700, 300), Ok(()));
        assert_eq!(
            verify(key, &header, body, 1_301, 300),
            Err(SignatureError::Expired)
        );
        let tampered = br#"{"alert":{"kind":"visibility","brand":"Acmf"}}"#;
        assert_eq!(
            verify(key, &header, tampered, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", &header, body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        // Moving the timestamp breaks the signature too.
        let moved = header.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(key, &moved, body, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        // A rotated secret: either signature may match.
        let other = WebhookSecret::generate().unwrap();
        let both = format!(
            "{},{}",
            sign(&other, 1_000, body),
            header.split(',').nth(1).unwrap()
        );
        assert_eq!(verify(key, &both, body, 1_000, 300), Ok(()));
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz"] {
            assert_eq!(
                verify(key, bad, body, 1_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_are_random_well_formed_and_redacted() {
        let (a, b) = (
            WebhookSecret::generate().unwrap(),
            WebhookSecret::generate().unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(WebhookSecret::from_stored(a.expose()), Some(a.clone()));
        assert_eq!(format!("{a:?}"), "WebhookSecret(<redacted>)");
        assert!(WebhookSecret::from_stored("whsec_short").is_none());
        assert!(WebhookSecret::from_stored(&"0".repeat(70)).is_none());
    }
}
