//! Authentication: API keys, login sessions, passwords, login throttling and per-account rate
//! limits.
//!
//! # API keys
//! - [`ApiKey`]: the versioned, checksummed, scanner-friendly key format
//!   (`echo1_live_…`, 76 characters, regex `\becho1_(live|test)_[0-9A-Za-z]{65}\b`).
//! - [`KeyHasher`]: the store keeps only the public id and HMAC-SHA-256(pepper, secret), never
//!   the key. Why not argon2, and how to rotate the pepper, is in its module docs.
//! - [`ApiKeyVerifier`] / [`StoreKeyVerifier`]: parse and checksum without I/O, one indexed
//!   lookup (the key with its owner's status, one round trip), constant-time comparison, state checks, coalesced `last_used_at` writes, and an
//!   optional [`VerifiedKeyCache`]. Every refusal is the same [`AuthError::InvalidKey`].
//! - [`ApiKeyService`]: create (the key is returned once), list, revoke, rotate with a grace
//!   period.
//!
//! # Sessions
//! [`SessionService`]: server-side login sessions for browsers and bearer clients, stored rows
//! verified like API keys (token `echo1_sess_…`, 86 characters, regex
//! `\becho1_sess_[0-9a-f]{32}[0-9A-Za-z]{43}\b`; parse without I/O, one indexed lookup with
//! the owner's flags, constant-time comparison of a digest, nothing secret stored), with
//! revocation of one or all of a user's sessions and signed double-submit CSRF tokens bound to
//! the session. Every refusal is the same [`SessionError::Invalid`].
//!
//! # Passwords and logins
//! [`PasswordHasher`] (argon2id, OWASP parameters, PHC strings, transparent rehash, a dummy
//! verification for unknown emails), [`PasswordPolicy`] (NIST-style: length only), and
//! [`LoginThrottle`] (exponential backoff per account and IP, per account, and per IP).
//!
//! # Rate limits
//! [`ApiRateLimiter`]: a keyed GCRA per account with per-tier quotas, a general and an
//! experiment-creation limit, and the values of the `Retry-After`, `RateLimit-Policy` and
//! `RateLimit` headers.
//!
//! # One process, many replicas
//! Sessions are read from the store on every request, so a logout, a "log out everywhere" or
//! an account deletion ends them on every replica at once. The API-key cache, the
//! `last_used_at` coalescer, the login throttle and the rate limiter live in one process. Revocations reach the local cache at once; other replicas need a signal
//! (PostgreSQL LISTEN/NOTIFY with the PostgreSQL store) and otherwise see them within the
//! cache TTL. Throttles and rate limits are per replica: divide limits by the replica count or
//! route sticky (see [`ApiRateLimiter`]).
//!
//! # Store changes this module would like
//! - **`ApiKeyStore::replace_api_key_digest(id, old, new)`** (compare-and-set) would let the
//!   verifier re-digest keys with the current pepper on use, finishing pepper rotations
//!   without forcing key rotations.

mod cache;
mod digest;
mod key;
mod key_service;
mod password;
mod rate_limit;
mod session;
mod throttle;
mod usage;
mod verify;
mod wiring;

#[cfg(test)]
pub(crate) mod test_store;
#[cfg(test)]
mod tests;

pub use cache::{CacheConfig, OwnerStatus, VerifiedKeyCache};
pub use digest::{DigestMatch, KeyHasher, MIN_PEPPER_LEN, Pepper, PepperError};
pub use key::{
    ApiKey, CHECKSUM_LEN, DISPLAY_START_LEN, EntropyError, KEY_ID_LEN, KEY_LEN, KeyEnvironment,
    KeyFormatError, PREFIX_LEN, PUBLIC_ID_LEN, ParsedKey, PresentedKey, SECRET_LEN,
};
pub use key_service::{
    ApiKeyService, ApiKeySummary, CreatedKey, KeyError, KeyServiceConfig, KeyStatus, Rotation,
};
pub use password::{
    PasswordCheck, PasswordError, PasswordHasher, PasswordParams, PasswordPolicy,
    PasswordPolicyError,
};
pub use rate_limit::{
    ApiRateLimiter, KeyedGcra, LimitKind, Quota, QuotaError, RateLimitConfig, RateLimitDecision,
    TierQuotas,
};
pub use session::{
    IssuedSession, SESSION_PREFIX, SESSION_TOKEN_LEN, SessionConfig, SessionError, SessionService,
    SessionToken, VerifiedSession,
};
pub use throttle::{BackoffPolicy, LoginThrottle, ThrottleConfig, Throttled, address_block};
pub use usage::LastUsedCoalescer;
pub use verify::{
    AcceptedEnvironments, ApiKeyVerifier, AuthError, DynApiKeyVerifier, StoreKeyVerifier,
    VerifiedKey, VerifierConfig,
};
pub use wiring::KeyAuth;
