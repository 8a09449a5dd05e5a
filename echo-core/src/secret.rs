//! [`Secret`]: the one wrapper for credentials and other secret strings, from a provider's API
//! key to the server's pepper and SMTP URL.
//!
//! Secrets end up in structs that are logged with `{:?}` and in errors that are displayed, so
//! both print `<redacted>`; reading the value takes a call to [`Secret::expose`] that is easy to
//! find in review. Equality runs in constant time for values of the same length, so comparing a
//! presented secret with a stored one does not reveal how many leading bytes matched.

use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// A secret string: redacted in `Debug` and `Display`, exposed only on purpose, compared in
/// constant time. Deserializes from a plain string.
///
/// ```
/// use echo_core::secret::Secret;
/// let key = Secret::new("sk-live-123");
/// assert_eq!(format!("{key:?} {key}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value: call only where it is used (an HTTP header, key material), never to
    /// log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_printed() {
        let s = Secret::new("sk-live-very-secret");
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        assert_eq!(s.expose(), "sk-live-very-secret");
    }

    #[test]
    fn equality_compares_the_values() {
        let s = Secret::new("abc");
        assert_eq!(s, Secret::new("abc"));
        assert_ne!(s, Secret::new("abd"));
        assert_ne!(s, Secret::new("abcd"));
        assert_ne!(s, Secret::new(""));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
    }
}
