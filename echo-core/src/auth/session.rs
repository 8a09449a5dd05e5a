//! Server-side login sessions: the token format, issuing, verification, revocation, and CSRF
//! tokens bound to a session.
//!
//! # The token
//! ```text
//! echo1_sess_ 0190c7a2e4b07c3d9f1e2a3b4c5d6e7f 43 × base62 (secret)
//! └─ prefix ┘ └──── session id (32 hex) ────┘ └─── 256.03 bits ──┘
//! ```
//!
//! - **Prefix** `echo1_sess_`: `echo` names the issuer, `1` the format version, `sess` the kind.
//!   It differs from the API keys' `echo1_live_`/`echo1_test_`, so one `Authorization: Bearer`
//!   header can carry either and the server picks the verifier by prefix.
//! - **Session id**: the [`SessionId`] (a UUID) in lowercase hex, the store's lookup handle. It
//!   is not secret and may be logged.
//! - **Secret**: 43 base62 characters drawn by rejection sampling from the OS CSPRNG (256.03
//!   bits). The store keeps only [`KeyHasher::digest`] of it (HMAC-SHA-256 with the pepper), so
//!   a leaked database copy holds no usable session. Why a fast keyed hash rather than argon2 is
//!   explained in [`KeyHasher`]'s module docs: the same reasoning holds for 256-bit secrets.
//!
//! The whole token is [`SESSION_TOKEN_LEN`] (86) ASCII characters and matches
//!
//! ```text
//! \becho1_sess_[0-9a-f]{32}[0-9A-Za-z]{43}\b
//! ```
//!
//! Unlike API keys it carries no checksum: tokens travel in cookies and headers that software
//! sets, not in text people paste, and a mangled token fails verification like any wrong one.
//!
//! # Verification
//! [`SessionService::verify`] parses without I/O (a malformed token never reaches the store),
//! reads the session with its owner's flags in one store round trip
//! ([`SessionStore::find_session_for_auth`](crate::store::SessionStore::find_session_for_auth)),
//! compares the secret's digest in constant time (against a dummy digest when the id is
//! unknown), and checks revocation, expiry and the owner's `is_active`, combined into a single
//! branch: an unknown id, a wrong secret, and a revoked, expired or deactivated session cost the
//! same work and give the same [`SessionError::Invalid`]. There is no cache: every request
//! reads the row, so a logout or deletion on any replica ends the session everywhere at once.
//!
//! # CSRF
//! Cookie-carried sessions need a CSRF defence for unsafe methods. [`SessionService`] issues a
//! *signed double-submit* token bound to the session:
//! `hex(HMAC-SHA-256(csrf_secret, "echo.csrf.v1\0" ‖ session id bytes))`. The page sends it back
//! in a header; [`SessionService::verify_csrf`] recomputes it for the verified session and
//! compares in constant time. An attacker's page can make the browser send the cookie but
//! cannot read the token or compute it without the secret, and a token lifted from another
//! session does not match this one. The context string keeps these MACs apart from every other
//! use of the same key, though a distinct secret is still advised.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::digest::{HmacSha256, KeyHasher, Pepper, compute, keyed};
use super::key::{EntropyError, push_random_base62};
use crate::model::{PricingTier, SessionId, SessionRecord, Timestamp, User, UserId};
use crate::store::{SessionAuth, SessionStore, StoreError};

/// The prefix of every session token.
pub const SESSION_PREFIX: &str = "echo1_sess_";
/// Lowercase hex digits of the session id.
const ID_HEX_LEN: usize = uuid::fmt::Simple::LENGTH;
/// Base62 characters of the secret (256.03 bits).
const SECRET_LEN: usize = 43;
/// Length of a whole session token, in bytes (all ASCII).
pub const SESSION_TOKEN_LEN: usize = SESSION_PREFIX.len() + ID_HEX_LEN + SECRET_LEN;
/// Domain separation of CSRF MACs from any other MAC made with the same key.
const CSRF_CONTEXT: &[u8] = b"echo.csrf.v1\0";

/// Why a session operation failed.
///
/// Every refusal of a token, whatever its cause (malformed, unknown id, wrong secret, revoked,
/// expired, inactive owner), is the one variant [`SessionError::Invalid`] with one message, so
/// a caller cannot tell which check failed. No variant's message contains any part of a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The token is not a valid session now (answer 401), or a session was refused to an
    /// inactive user.
    #[error("invalid session")]
    Invalid,
    /// [`SessionService::revoke`]: the owner has no session with this id (another user's or an
    /// unknown one); [`SessionService::issue`]: the user does not exist. Answer 404.
    #[error("session not found")]
    NotFound,
    /// The store failed, so the answer could not be determined (the token may well be valid).
    /// Answer 503 when [`StoreError::is_retryable`], 500 otherwise.
    #[error("session storage is unavailable")]
    Unavailable {
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// No randomness for a new token.
    #[error(transparent)]
    Entropy(#[from] EntropyError),
    /// [`SessionConfig::ttl`] is too long: `now + ttl` is past the representable range.
    #[error("the session lifetime is too long")]
    TtlTooLong,
}

impl SessionError {
    /// Store errors of lifecycle calls: a missing row is [`SessionError::NotFound`], anything
    /// else [`SessionError::Unavailable`].
    fn from_store(source: StoreError) -> Self {
        match source {
            StoreError::NotFound { .. } => SessionError::NotFound,
            source => SessionError::Unavailable { source },
        }
    }
}

/// Settings of [`SessionService`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long a session lasts from issue (absolute, not sliding). Default 12 hours: a working
    /// day, after which the user logs in again.
    pub ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// A session token as handed to the client, once, at login.
///
/// Deliberately not `Clone`, and redacted in `Debug` (which shows only the session id): the only
/// way to read it is [`SessionToken::expose`], where the cookie or response body is written.
pub struct SessionToken {
    text: String,
    id: SessionId,
}

impl SessionToken {
    /// The token text. Call it only to hand the token to its owner.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The session id inside the token: safe to log.
    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// The secret part, to digest at issue.
    fn secret(&self) -> &str {
        self.text
            .get(SESSION_TOKEN_LEN - SECRET_LEN..)
            .unwrap_or_default()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}, <redacted>)", self.id)
    }
}

/// What [`SessionService::issue`] returns: the token for the client (once), the stored record,
/// and the session's CSRF token.
pub struct IssuedSession {
    /// The token: set it as an `HttpOnly; Secure; SameSite` cookie, or return it for bearer use.
    pub token: SessionToken,
    /// The record as stored (only the secret's digest).
    pub session: SessionRecord,
    /// The CSRF token of this session ([`SessionService::csrf_token`]), for the page to echo
    /// back on unsafe requests.
    pub csrf_token: String,
}

impl fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSession")
            .field("token", &self.token)
            .field("session", &self.session)
            .field("csrf_token", &"<redacted>")
            .finish()
    }
}

/// A session that passed every check: who is calling, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSession {
    /// The session (for logout, audit events and CSRF checks).
    pub session_id: SessionId,
    /// The owner: the tenant every store call is scoped to.
    pub user_id: UserId,
    /// The owner's `is_admin` flag, as read with the session.
    pub is_admin: bool,
    /// The owner's tier, as read with the session (for per-tier limits).
    pub tier: PricingTier,
    /// When the session ends (for the cookie's `Max-Age`).
    pub expires_at: Timestamp,
}

/// A token that passed the format check: the session id and the secret part, borrowed.
struct ParsedToken<'a> {
    id: SessionId,
    secret: &'a str,
}

/// Checks the format without any I/O: prefix, length, lowercase-hex id, base62 secret.
fn parse(text: &str) -> Option<ParsedToken<'_>> {
    if text.len() != SESSION_TOKEN_LEN {
        return None;
    }
    let rest = text.strip_prefix(SESSION_PREFIX)?;
    let id = decode_id(rest.get(..ID_HEX_LEN)?.as_bytes())?;
    let secret = rest.get(ID_HEX_LEN..)?;
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(ParsedToken { id, secret })
}

/// The id of 32 lowercase hex digits. Uppercase is refused so each session has exactly one
/// token text.
fn decode_id(hex: &[u8]) -> Option<SessionId> {
    fn nibble(d: u8) -> Option<u8> {
        match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != ID_HEX_LEN {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *out = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(SessionId::from_uuid(Uuid::from_bytes(bytes)))
}

/// A new token for `id`: the prefix, the id in lowercase hex, a fresh secret.
fn generate(id: SessionId) -> Result<SessionToken, EntropyError> {
    let mut text = String::with_capacity(SESSION_TOKEN_LEN);
    text.push_str(SESSION_PREFIX);
    let mut hex = [0u8; ID_HEX_LEN];
    text.push_str(id.as_uuid().simple().encode_lower(&mut hex));
    push_random_base62(&mut text, SECRET_LEN)?;
    Ok(SessionToken { text, id })
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Issues, verifies and revokes server-side sessions, and makes and checks their CSRF tokens.
/// See the module docs for the token format and the design.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::auth::*;
/// use echo_core::model::*;
/// use echo_core::store::{memory::MemoryStore, DynStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let now = Timestamp::now();
/// let user = User::new(
///     Email::parse("ada@example.com")?,
///     PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")?,
///     PricingTier::Pro,
///     now,
/// );
/// store.create_user(&user).await?;
///
/// let hasher = Arc::new(KeyHasher::new(Pepper::new(b"a pepper from configuration, 32+ bytes".to_vec())?));
/// let csrf_secret = Pepper::new(b"another secret from configuration, 32+ bytes".to_vec())?;
/// let sessions = SessionService::new(store, hasher, csrf_secret, SessionConfig::default());
///
/// // At login, after the password check:
/// let issued = sessions.issue(&user, now).await?;
/// assert!(issued.token.expose().starts_with("echo1_sess_"));
///
/// // On every request:
/// let verified = sessions.verify(issued.token.expose(), now).await?;
/// assert_eq!(verified.user_id, user.id);
/// assert!(sessions.verify_csrf(verified.session_id, &issued.csrf_token));
///
/// // At logout:
/// sessions.revoke(user.id, verified.session_id, now).await?;
/// assert!(matches!(
///     sessions.verify(issued.token.expose(), now).await,
///     Err(SessionError::Invalid)
/// ));
/// # Ok(())
/// # }
/// ```
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    hasher: Arc<KeyHasher>,
    // Keyed once: cloning the state skips the key-block compressions on every CSRF check.
    csrf: HmacSha256,
    config: SessionConfig,
}

impl fmt::Debug for SessionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("store", &self.store)
            .field("hasher", &self.hasher)
            .field("csrf_secret", &"<redacted>")
            .field("config", &self.config)
            .finish()
    }
}

impl SessionService {
    /// A service over `store`. `hasher` digests token secrets (it may be the API keys' hasher);
    /// `csrf_secret` keys the CSRF tokens and should be a secret of its own.
    pub fn new(
        store: Arc<dyn SessionStore>,
        hasher: Arc<KeyHasher>,
        csrf_secret: Pepper,
        config: SessionConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            csrf: keyed(&csrf_secret),
            config,
        }
    }

    /// How long a new session lasts.
    pub fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// Starts a session for `user` (who has just authenticated), valid until `now + ttl`.
    ///
    /// Errors: [`SessionError::Invalid`] when `user` is inactive; [`SessionError::NotFound`]
    /// when the user is not stored; [`SessionError::TtlTooLong`], [`SessionError::Entropy`],
    /// and [`SessionError::Unavailable`] when the store fails. Nothing is stored on error.
    pub async fn issue(&self, user: &User, now: Timestamp) -> Result<IssuedSession, SessionError> {
        if !user.is_active {
            return Err(SessionError::Invalid);
        }
        let expires_at = time::Duration::try_from(self.config.ttl)
            .ok()
            .and_then(|ttl| now.checked_add(ttl))
            .ok_or(SessionError::TtlTooLong)?;
        let id = SessionId::new();
        let token = generate(id)?;
        let session = SessionRecord {
            id,
            user_id: user.id,
            secret_hash: self.hasher.digest(token.secret()),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        self.store
            .create_session(&session)
            .await
            .map_err(SessionError::from_store)?;
        Ok(IssuedSession {
            token,
            csrf_token: self.csrf_token(id),
            session,
        })
    }

    /// Checks `token` at `now`: well formed, known, the right secret, not revoked, not expired
    /// (`now < expires_at`), and owned by an active user. Every refusal is
    /// [`SessionError::Invalid`]; [`SessionError::Unavailable`] only means the store failed.
    pub async fn verify(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<VerifiedSession, SessionError> {
        let Some(parsed) = parse(token) else {
            return Err(SessionError::Invalid);
        };
        let auth = self
            .store
            .find_session_for_auth(parsed.id)
            .await
            .map_err(|source| SessionError::Unavailable { source })?;

        // The same work whether the session exists or not: one HMAC, one constant-time
        // comparison (against a dummy digest when it does not), a few flag checks, then a
        // single branch on the combined result.
        let digest = self
            .hasher
            .verify(parsed.secret, auth.as_ref().map(|a| &a.session.secret_hash));
        let usable = auth.as_ref().is_some_and(|a| usable(a, now));
        match auth {
            Some(auth) if digest.matched() & usable => Ok(VerifiedSession {
                session_id: auth.session.id,
                user_id: auth.session.user_id,
                is_admin: auth.owner_is_admin,
                tier: auth.owner_tier,
                expires_at: auth.session.expires_at,
            }),
            _ => Err(SessionError::Invalid),
        }
    }

    /// Ends the owner's session `id` (logout); revoking twice keeps the first time.
    /// [`SessionError::NotFound`] for another user's or an unknown session.
    pub async fn revoke(
        &self,
        owner: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), SessionError> {
        self.store
            .revoke_session(owner, id, now)
            .await
            .map_err(SessionError::from_store)
    }

    /// Ends every session of `owner` (password change, "log out everywhere", deactivation);
    /// returns how many were still unrevoked.
    pub async fn revoke_all(&self, owner: UserId, now: Timestamp) -> Result<u64, SessionError> {
        self.store
            .revoke_user_sessions(owner, now)
            .await
            .map_err(SessionError::from_store)
    }

    /// The CSRF token of `session`: 64 lowercase hex digits of
    /// HMAC-SHA-256(csrf_secret, `"echo.csrf.v1\0"` ‖ the session id's 16 bytes). The same
    /// session always gets the same token, so it can be re-sent with any page.
    pub fn csrf_token(&self, session: SessionId) -> String {
        to_hex(&self.csrf_mac(session))
    }

    /// Whether `presented` is the CSRF token of `session`, compared in constant time.
    pub fn verify_csrf(&self, session: SessionId, presented: &str) -> bool {
        let expected = self.csrf_token(session);
        bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    fn csrf_mac(&self, session: SessionId) -> [u8; 32] {
        let mut input = [0u8; CSRF_CONTEXT.len() + 16];
        let (context, id) = input.split_at_mut(CSRF_CONTEXT.len());
        context.copy_from_slice(CSRF_CONTEXT);
        id.copy_from_slice(session.as_uuid().as_bytes());
        compute(&self.csrf, &input)
    }
}

/// State checks, combined without short-circuiting so every refusal costs the same.
fn usable(auth: &SessionAuth, now: Timestamp) -> bool {
    auth.session.revoked_at.is_none() & (now < auth.session.expires_at) & auth.owner_active
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::auth::test_store::TestStore;
    use crate::model::{Email, PasswordHash};
    use crate::store::DynStore;
    use crate::store::memory::MemoryStore;

    const PEPPER: &[u8] = b"session test pepper, 32 bytes or more";
    const CSRF_SECRET: &[u8] = b"session test CSRF secret, 32 bytes or more";
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + secs * 1_000_000).unwrap()
    }

    struct Fixture {
        test_store: Arc<TestStore>,
        store: Arc<DynStore>,
        service: SessionService,
        user: User,
    }

    impl Fixture {
        async fn new() -> Self {
            let test_store = Arc::new(TestStore::default());
            let store: Arc<DynStore> = test_store.clone();
            let service = new_service(store.clone(), CSRF_SECRET);
            let user = new_user(&store).await;
            Self {
                test_store,
                store,
                service,
                user,
            }
        }

        async fn issue(&self) -> IssuedSession {
            self.service.issue(&self.user, at(0)).await.unwrap()
        }

        fn finds(&self) -> usize {
            self.test_store.session_finds.load(Ordering::SeqCst)
        }
    }

    fn new_service(store: Arc<DynStore>, csrf_secret: &[u8]) -> SessionService {
        SessionService::new(
            store,
            Arc::new(KeyHasher::new(Pepper::new(PEPPER.to_vec()).unwrap())),
            Pepper::new(csrf_secret.to_vec()).unwrap(),
            SessionConfig::default(),
        )
    }

    async fn new_user(store: &Arc<DynStore>) -> User {
        let user = User::new(
            Email::parse(format!("{}@example.com", UserId::new())).unwrap(),
            PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
            PricingTier::Pro,
            at(0),
        );
        store.create_user(&user).await.unwrap();
        user
    }

    #[track_caller]
    fn assert_invalid(result: Result<VerifiedSession, SessionError>, what: &str) {
        match result {
            Err(e @ SessionError::Invalid) => {
                assert_eq!(e.to_string(), "invalid session", "{what}")
            }
            other => panic!("{what}: expected Invalid, got {other:?}"),
        }
    }

    /// `\becho1_sess_[0-9a-f]{32}[0-9A-Za-z]{43}\b`, spelled out (echo-core has no regex crate).
    fn matches_documented_regex(s: &str) -> bool {
        let Some(rest) = s.strip_prefix("echo1_sess_") else {
            return false;
        };
        rest.len() == 75
            && rest[..32]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && rest[32..].bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[tokio::test]
    async fn issue_and_verify_round_trip() {
        let f = Fixture::new().await;
        let issued = f.issue().await;
        let text = issued.token.expose();
        assert_eq!(text.len(), SESSION_TOKEN_LEN);
        assert!(matches_documented_regex(text), "{text}");
        assert_eq!(issued.token.session_id(), issued.session.id);
        assert!(text.contains(&issued.session.id.as_uuid().simple().to_string()));

        let stored = f
            .store
            .find_session_for_auth(issued.session.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.session, issued.session,
            "the record returned is the one stored"
        );
        assert_eq!(issued.session.user_id, f.user.id);
        assert_eq!(issued.session.created_at, at(0));
        assert_eq!(issued.session.expires_at, at(12 * 3600));
        assert_eq!(issued.session.revoked_at, None);
        assert_eq!(issued.csrf_token, f.service.csrf_token(issued.session.id));

        let verified = f.service.verify(text, at(1)).await.unwrap();
        assert_eq!(
            verified,
            VerifiedSession {
                session_id: issued.session.id,
                user_id: f.user.id,
                is_admin: false,
                tier: PricingTier::Pro,
                expires_at: at(12 * 3600),
            }
        );
        // Valid until the instant before `expires_at`.
        let last = issued.session.expires_at - time::Duration::microseconds(1);
        assert!(f.service.verify(text, last).await.is_ok());

        let other = f.issue().await;
        assert_ne!(other.token.expose(), text);
        assert_ne!(other.session.id, issued.session.id);
    }

    #[test]
    fn default_ttl_is_twelve_hours() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        assert_eq!(SessionConfig::default().ttl, Duration::from_secs(43_200));
        assert_eq!(
            new_service(store, CSRF_SECRET).ttl(),
            Duration::from_secs(43_200)
        );
    }

    #[tokio::test]
    async fn owner_flags_are_read_with_the_session() {
        let f = Fixture::new().await;
        let issued = f.issue().await;
        f.store.set_admin(f.user.id, true, at(0)).await.unwrap();
        f.store
            .set_tier(f.user.id, PricingTier::Enterprise, at(0))
            .await
            .unwrap();
        let verified = f
            .service
            .verify(issued.token.expose(), at(1))
            .await
            .unwrap();
        assert!(verified.is_admin);
        assert_eq!(verified.tier, PricingTier::Enterprise);
    }

    /// Revoked, expired, inactive-owner, deleted-owner, wrong-secret and unknown tokens all give
    /// the same error with the same message.
    #[tokio::test]
    async fn every_refusal_is_the_same_error() {
        let f = Fixture::new().await;

        let revoked = f.issue().await;
        f.service
            .revoke(f.user.id, revoked.session.id, at(1))
            .await
            .unwrap();
        assert_invalid(
            f.service.verify(revoked.token.expose(), at(2)).await,
            "revoked",
        );

        let expired = f.issue().await;
        assert_invalid(
            f.service
                .verify(expired.token.expose(), expired.session.expires_at)
                .await,
            "expired at expires_at",
        );
        assert_invalid(
            f.service
                .verify(expired.token.expose(), at(13 * 3600))
                .await,
            "expired later",
        );

        let wrong_secret = format!(
            "{}{}",
            &expired.token.expose()[..SESSION_TOKEN_LEN - SECRET_LEN],
            "A".repeat(SECRET_LEN)
        );
        assert_invalid(f.service.verify(&wrong_secret, at(1)).await, "wrong secret");

        let unknown = generate(SessionId::new()).unwrap();
        assert_invalid(
            f.service.verify(unknown.expose(), at(1)).await,
            "unknown id",
        );

        let inactive = new_user(&f.store).await;
        let theirs = f.service.issue(&inactive, at(0)).await.unwrap();
        f.store
            .request_deletion(inactive.id, at(0), at(1000))
            .await
            .unwrap();
        assert_invalid(
            f.service.verify(theirs.token.expose(), at(1)).await,
            "inactive owner",
        );

        let deleted = new_user(&f.store).await;
        let gone = f.service.issue(&deleted, at(0)).await.unwrap();
        f.store.delete_user(deleted.id).await.unwrap();
        assert_invalid(
            f.service.verify(gone.token.expose(), at(1)).await,
            "deleted owner",
        );

        // The untouched session still works: the refusals above were about their own tokens.
        assert!(
            f.service
                .verify(expired.token.expose(), at(1))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn malformed_tokens_never_reach_the_store() {
        let f = Fixture::new().await;
        let issued = f.issue().await;
        let text = issued.token.expose();
        let malformed = [
            String::new(),
            "echo1_sess_".to_owned(),
            text[..SESSION_TOKEN_LEN - 1].to_owned(),
            format!("{text}A"),
            text.replacen("echo1_sess_", "echo1_live_", 1),
            text.replacen("echo1_sess_", "echo2_sess_", 1),
            // Uppercase hex in the id: one session, one token text.
            format!(
                "echo1_sess_{}{}",
                text[11..43].to_ascii_uppercase(),
                &text[43..]
            ),
            format!("{}_{}", &text[..60], &text[61..]),
            format!("{}é{}", &text[..60], &text[62..]),
            format!("{}g{}", &text[..20], &text[21..]),
        ];
        for token in &malformed {
            if token != text {
                assert_invalid(f.service.verify(token, at(1)).await, token);
            }
        }
        assert_eq!(f.finds(), 0, "no lookup for a malformed token");
        f.service.verify(text, at(1)).await.unwrap();
        assert_eq!(f.finds(), 1, "one lookup for a well-formed token");
    }

    /// Every single-character substitution, at every position, with every base62 character and
    /// a few separators, is refused.
    #[tokio::test]
    async fn every_single_character_change_is_refused() {
        let f = Fixture::new().await;
        let issued = f.issue().await;
        let original = issued.token.expose().as_bytes().to_vec();
        let mut replacements = BASE62.to_vec();
        replacements.extend_from_slice(b"_-. ");
        let mut tried = 0;
        for pos in 0..original.len() {
            for &c in &replacements {
                if c == original[pos] {
                    continue;
                }
                let mut changed = original.clone();
                changed[pos] = c;
                let changed = String::from_utf8(changed).unwrap();
                assert_invalid(
                    f.service.verify(&changed, at(1)).await,
                    &format!("change at {pos}"),
                );
                tried += 1;
            }
        }
        assert!(tried > SESSION_TOKEN_LEN * 60);
        assert!(f.service.verify(issued.token.expose(), at(1)).await.is_ok());
    }

    #[tokio::test]
    async fn store_outage_is_unavailable_not_invalid() {
        let f = Fixture::new().await;
        let issued = f.issue().await;
        f.test_store.down.store(true, Ordering::SeqCst);
        match f.service.verify(issued.token.expose(), at(1)).await {
            Err(SessionError::Unavailable { source }) => assert!(source.is_retryable()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(matches!(
            f.service.issue(&f.user, at(1)).await,
            Err(SessionError::Unavailable { .. })
        ));
        assert!(matches!(
            f.service.revoke_all(f.user.id, at(1)).await,
            Err(SessionError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn issue_refuses_inactive_and_unknown_users() {
        let f = Fixture::new().await;
        let mut inactive = f.user.clone();
        inactive.is_active = false;
        assert!(matches!(
            f.service.issue(&inactive, at(0)).await,
            Err(SessionError::Invalid)
        ));
        let unknown = User {
            id: UserId::new(),
            ..f.user.clone()
        };
        assert!(matches!(
            f.service.issue(&unknown, at(0)).await,
            Err(SessionError::NotFound)
        ));
        let long = SessionService::new(
            f.store.clone(),
            Arc::new(KeyHasher::new(Pepper::new(PEPPER.to_vec()).unwrap())),
            Pepper::new(CSRF_SECRET.to_vec()).unwrap(),
            SessionConfig { ttl: Duration::MAX },
        );
        assert!(matches!(
            long.issue(&f.user, at(0)).await,
            Err(SessionError::TtlTooLong)
        ));
    }

    #[tokio::test]
    async fn revoke_is_scoped_and_revoke_all_counts() {
        let f = Fixture::new().await;
        let a = f.issue().await;
        let b = f.issue().await;
        let other = new_user(&f.store).await;
        let theirs = f.service.issue(&other, at(0)).await.unwrap();

        assert!(matches!(
            f.service.revoke(other.id, a.session.id, at(1)).await,
            Err(SessionError::NotFound)
        ));
        assert!(matches!(
            f.service.revoke(f.user.id, SessionId::new(), at(1)).await,
            Err(SessionError::NotFound)
        ));
        assert!(f.service.verify(a.token.expose(), at(2)).await.is_ok());

        f.service
            .revoke(f.user.id, a.session.id, at(2))
            .await
            .unwrap();
        f.service
            .revoke(f.user.id, a.session.id, at(3))
            .await
            .unwrap();
        assert_invalid(f.service.verify(a.token.expose(), at(4)).await, "revoked");
        assert!(f.service.verify(b.token.expose(), at(4)).await.is_ok());

        assert_eq!(f.service.revoke_all(f.user.id, at(5)).await.unwrap(), 1);
        assert_invalid(
            f.service.verify(b.token.expose(), at(6)).await,
            "revoked all",
        );
        assert_eq!(f.service.revoke_all(f.user.id, at(7)).await.unwrap(), 0);
        assert!(f.service.verify(theirs.token.expose(), at(8)).await.is_ok());
    }

    #[test]
    fn csrf_token_matches_known_vector() {
        // Python: hmac.new(b"0123456789abcdef0123456789abcdef",
        //                  b"echo.csrf.v1\x00" + bytes(range(16)), hashlib.sha256).hexdigest()
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let service = new_service(store, b"0123456789abcdef0123456789abcdef");
        let id = SessionId::from_uuid(Uuid::from_bytes(std::array::from_fn(|i| i as u8)));
        assert_eq!(
            service.csrf_token(id),
            "9112cd909a5283095e7568a1b1a896d69ad726253ef119866d935fc99364e6d7"
        );
    }

    #[test]
    fn csrf_token_verifies_only_for_its_own_session() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let service = new_service(store.clone(), CSRF_SECRET);
        let (a, b) = (SessionId::new(), SessionId::new());
        let token = service.csrf_token(a);
        assert_eq!(token.len(), 64);
        assert_eq!(token, service.csrf_token(a), "stable per session");
        assert!(service.verify_csrf(a, &token));
        assert!(!service.verify_csrf(b, &token), "another session's token");
        assert!(!service.verify_csrf(a, &service.csrf_token(b)));
        assert!(!service.verify_csrf(a, ""));
        assert!(!service.verify_csrf(a, &token[..63]));
        assert!(!service.verify_csrf(a, &format!("{token}0")));
        assert!(!service.verify_csrf(a, &token.to_ascii_uppercase()));
        let other_secret = new_service(store, b"a different CSRF secret, 32 bytes long");
        assert!(
            !other_secret.verify_csrf(a, &token),
            "another deployment's token"
        );
    }

    proptest! {
        #[test]
        fn csrf_refuses_any_single_change(pos in 0..64usize, c in any::<char>()) {
            let store: Arc<DynStore> = Arc::new(MemoryStore::new());
            let service = new_service(store, CSRF_SECRET);
            let id = SessionId::new();
            let token = service.csrf_token(id);
            let mut changed = token[..pos].to_owned();
            changed.push(c);
            changed.push_str(&token[pos + 1..]);
            prop_assume!(changed != token);
            prop_assert!(!service.verify_csrf(id, &changed));
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_tokens(
            s in "echo1_sess_[0-9a-fA-F_é]{30,34}[0-9A-Za-z_é ]{40,46}",
        ) {
            let _ = parse(&s);
        }
    }

    /// Runs `check` over `cases` inputs from `strategy` against one issued session. proptest's
    /// runner is synchronous, so `check` gets a blocking `verify` (at `at(1)`) and the valid
    /// token.
    fn verify_property<S: Strategy>(
        cases: u32,
        strategy: S,
        check: impl Fn(
            &dyn Fn(&str) -> Result<VerifiedSession, SessionError>,
            &str,
            S::Value,
        ) -> Result<(), TestCaseError>,
    ) {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let f = rt.block_on(Fixture::new());
        let issued = rt.block_on(f.issue());
        let verify = |token: &str| rt.block_on(f.service.verify(token, at(1)));
        runner
            .run(&strategy, |value| {
                check(&verify, issued.token.expose(), value)
            })
            .unwrap();
    }

    #[test]
    fn prop_any_single_change_to_a_valid_token_is_refused() {
        verify_property(
            512,
            (0..SESSION_TOKEN_LEN, any::<char>()),
            |verify, text, (pos, c)| {
                let mut changed = text[..pos].to_owned();
                changed.push(c);
                changed.push_str(&text[pos + 1..]);
                prop_assume!(changed != text);
                prop_assert!(matches!(verify(&changed), Err(SessionError::Invalid)));
                Ok(())
            },
        );
    }

    #[test]
    fn prop_arbitrary_strings_are_refused_without_panicking() {
        verify_property(
            512,
            prop_oneof![
                "\\PC*",
                "echo1_sess_[0-9a-f]{32}[0-9A-Za-z]{43}",
                "echo1_sess_[0-9a-fA-F]{30,34}[0-9A-Za-z_]{40,46}",
            ],
            |verify, _, s| {
                prop_assert!(matches!(verify(&s), Err(SessionError::Invalid)));
                Ok(())
            },
        );
    }
}
