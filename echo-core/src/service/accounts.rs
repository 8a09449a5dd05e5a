//! The account an embedded program or a command-line run works under.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::mail::{DynMailer, MailMessage};
use crate::model::{
    ConsentChange, Email, EmailVerificationRedemption, EmailVerificationToken, PasswordHash,
    PricingTier, SecretDigest, Timestamp, User, UserId, ValidationError,
};
use crate::store::{DynStore, StoreError, UserStore};

/// Account operations that embedders need without an HTTP layer.
#[derive(Debug, Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
}

impl Accounts {
    /// Accounts over a user store.
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Self { users }
    }

    /// Accounts over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone())
    }

    /// The local account with this email, created on first use: enterprise tier (the
    /// operator's own machine, not a customer), with a password that never verifies, so it
    /// cannot log in to a server sharing the database. Monthly quotas that are due are reset
    /// first, so a long-lived local account keeps running. Safe to call from several processes
    /// at once: the one that loses the race to create it reads the winner's.
    ///
    /// The local account consents to data processing: the operator runs their own
    /// experiments on their own machine. A local account made before consent was enforced is
    /// given it here; an account that can log in (a registered user who happens to share the
    /// email) keeps its own choice.
    pub async fn local_user(&self, email: &Email) -> Result<User, ServiceError> {
        let now = Timestamp::now();
        self.users.reset_due_quotas(now).await?;
        let user = match self.users.find_user_by_email(email).await? {
            Some(user) => user,
            None => {
                let mut user = User::new(
                    email.clone(),
                    PasswordHash::unusable(),
                    PricingTier::Enterprise,
                    now,
                );
                user.consents.data_processing_consent_at = Some(now);
                match self.users.create_user(&user).await {
                    Ok(()) => return Ok(user),
                    Err(StoreError::Conflict { .. }) => self
                        .users
                        .find_user_by_email(email)
                        .await?
                        .ok_or(ServiceError::Store(StoreError::not_found("user")))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.with_local_consent(user, now).await
    }

    /// Gives a local account that predates consent enforcement its data-processing consent.
    async fn with_local_consent(
        &self,
        mut user: User,
        now: Timestamp,
    ) -> Result<User, ServiceError> {
        if user.consents.allows_processing() || user.password_hash != PasswordHash::unusable() {
            return Ok(user);
        }
        let change = ConsentChange {
            data_processing: Some(true),
            ..ConsentChange::default()
        };
        user.consents = self.users.update_consents(user.id, &change, now).await?;
        Ok(user)
    }
}

/// How registration treats email addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationSettings {
    /// New accounts must verify their email before they create or run experiments.
    pub required: bool,
    /// The public base URL of the server (`https://echo.example.com`), from which the mailed
    /// verification link is built.
    pub public_base_url: String,
    /// How long a verification token works.
    pub token_ttl: time::Duration,
}

impl Default for VerificationSettings {
    /// Not required, links to `http://127.0.0.1:8080`, tokens valid for 24 hours.
    fn default() -> Self {
        Self {
            required: false,
            public_base_url: "http://127.0.0.1:8080".into(),
            token_ttl: time::Duration::hours(24),
        }
    }
}

/// What [`Registration::register`] did. Callers must answer both alike: telling them apart
/// would tell a stranger which addresses have accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new account was stored (and, when verification is required, a token mailed).
    Created(Box<User>),
    /// The address already has an account: nothing was stored, and its owner was told by mail
    /// that someone tried to register with it.
    AlreadyRegistered(UserId),
}

/// What [`Registration::resend`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    /// A new token was mailed; earlier ones no longer work.
    Sent,
    /// The address is verified already: nothing was sent.
    AlreadyVerified,
}

/// Registration that reveals nothing about which addresses have accounts, and email
/// verification with one-time, expiring tokens.
///
/// A token is 256 random bits, mailed as 64 hex characters inside a link and stored only as
/// its SHA-256 digest, by which it is looked up (so no secret is ever compared byte by byte).
/// It works once, until it expires; a resend replaces it.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::mail::{MailError, MailMessage, Mailer};
/// use echo_core::model::{Email, PasswordHash, PricingTier, Timestamp, User};
/// use echo_core::service::{Registered, Registration, VerificationSettings};
/// use echo_core::store::{DynStore, memory::MemoryStore};
///
/// #[derive(Debug, Default)]
/// struct Kept(std::sync::Mutex<Vec<MailMessage>>);
/// #[async_trait::async_trait]
/// impl Mailer for Kept {
///     async fn send(&self, m: &MailMessage) -> Result<(), MailError> {
///         self.0.lock().unwrap().push(m.clone());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let mail = Arc::new(Kept::default());
/// let settings = VerificationSettings { required: true, ..VerificationSettings::default() };
/// let registration = Registration::new(store.clone(), mail.clone(), settings);
/// let now = Timestamp::now();
/// let user = User::new(Email::parse("ada@example.com")?, PasswordHash::unusable(), PricingTier::Free, now);
/// let Registered::Created(user) = registration.register(user).await? else { unreachable!() };
/// assert!(user.email_verification_pending());
///
/// // The mail carries the token; redeeming it verifies the address, once.
/// let body = mail.0.lock().unwrap()[0].body.clone();
/// let token = body.split("token=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
/// assert_eq!(registration.verify(&token, now).await?, user.id);
/// assert!(registration.verify(&token, now).await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Registration {
    users: Arc<dyn UserStore>,
    mailer: Arc<DynMailer>,
    settings: VerificationSettings,
}

impl Registration {
    /// Registration over a user store and a mailer.
    pub fn new(
        users: Arc<dyn UserStore>,
        mailer: Arc<DynMailer>,
        settings: VerificationSettings,
    ) -> Self {
        Self {
            users,
            mailer,
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &VerificationSettings {
        &self.settings
    }

    /// Stores `user` (built by the caller with its password hash and consents) as a new
    /// account, requiring verification when the settings do; or, when the address is taken,
    /// mails its owner that someone tried to register with it. Both outcomes are `Ok`.
    ///
    /// The caller should do the same expensive work in both cases (hash the password before
    /// calling), so that the response time does not tell them apart either. A mail that
    /// cannot be sent is logged, not returned: the answer must not depend on it, and the owner
    /// of a new account can ask for another ([`Registration::resend`]).
    pub async fn register(&self, mut user: User) -> Result<Registered, ServiceError> {
        user.email_verification_required = self.settings.required;
        match self.users.create_user(&user).await {
            Ok(()) => {
                if self.settings.required
                    && let Err(e) = self.issue_and_mail(&user, user.created_at).await
                {
                    tracing::warn!(event = "verification_mail_failed", user_id = %user.id, error = %e, "the verification mail of a new account could not be sent");
                }
                Ok(Registered::Created(Box::new(user)))
            }
            Err(StoreError::Conflict { .. }) => {
                let Some(owner) = self.users.find_user_by_email(&user.email).await? else {
                    // The conflict was on the id, which is drawn at random: not a taken email.
                    return Err(StoreError::conflict("user id already exists").into());
                };
                if let Err(e) = self
                    .mailer
                    .send(&attempt_notice(&owner, user.created_at))
                    .await
                {
                    tracing::warn!(event = "registration_notice_failed", user_id = %owner.id, error = %e, "the notice of a registration attempt could not be sent");
                }
                Ok(Registered::AlreadyRegistered(owner.id))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Mails `owner` a new verification token, replacing the pending one, unless their address
    /// is verified already. [`StoreError::NotFound`] for an unknown user; a mail that cannot be
    /// sent is [`ServiceError::Mail`]. Callers rate-limit it: every call sends a message.
    pub async fn resend(&self, owner: UserId, now: Timestamp) -> Result<Resent, ServiceError> {
        let user = self.users.get_user(owner).await?;
        if user.email_verified_at.is_some() {
            return Ok(Resent::AlreadyVerified);
        }
        self.issue_and_mail(&user, now).await?;
        Ok(Resent::Sent)
    }

    /// Redeems a mailed token at `now`, marking its owner's email verified, and returns the
    /// owner. [`ServiceError::VerificationTokenInvalid`] for a token that is malformed, unknown
    /// or already used; [`ServiceError::VerificationTokenExpired`] past its expiry (nothing is
    /// written then).
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<UserId, ServiceError> {
        let digest = token_digest(token).ok_or(ServiceError::VerificationTokenInvalid)?;
        match self
            .users
            .redeem_email_verification_token(&digest, now)
            .await
        {
            Ok(EmailVerificationRedemption::Verified(user)) => Ok(user),
            Ok(EmailVerificationRedemption::Expired) => Err(ServiceError::VerificationTokenExpired),
            Err(StoreError::NotFound { .. }) => Err(ServiceError::VerificationTokenInvalid),
            Err(e) => Err(e.into()),
        }
    }

    async fn issue_and_mail(&self, user: &User, now: Timestamp) -> Result<(), ServiceError> {
        let mut secret = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut secret).map_err(crate::auth::EntropyError)?;
        let token = hex::encode(secret);
        let expires_at = now
            .checked_add(self.settings.token_ttl)
            .ok_or_else(|| ValidationError::new("verification token lifetime", "is too long"))?;
        self.users
            .put_email_verification_token(&EmailVerificationToken {
                user_id: user.id,
                token_hash: SecretDigest(Sha256::digest(token.as_bytes()).into()),
                created_at: now,
                expires_at,
            })
            .await?;
        let link = format!(
            "{}/verify-email?token={token}",
            self.settings.public_base_url.trim_end_matches('/')
        );
        let hours = self.settings.token_ttl.whole_hours();
        self.mailer
            .send(&MailMessage {
                to: user.email.clone(),
                subject: "Verify your email address for Echo".into(),
                body: format!(
                    "Welcome to Echo.\n\nTo confirm that this address is yours, open this link within {hours} hours:\n\n{link}\n\nor send the token to POST /api/v1/auth/verify-email as {{\"token\": \"{token}\"}}.\nThe link works once. If you did not create an account, ignore this message.\n"
                ),
            })
            .await?;
        tracing::info!(event = "verification_mail_sent", user_id = %user.id, "verification mail sent");
        Ok(())
    }
}

/// Random bytes in a verification token (256 bits).
const TOKEN_BYTES: usize = 32;

/// The digest a token is stored and looked up under; `None` when `token` is not the 64
/// lower-case hex characters a token is (so garbage never reaches the store).
fn token_digest(token: &str) -> Option<SecretDigest> {
    let token = token.trim();
    let well_formed = token.len() == 2 * TOKEN_BYTES
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| SecretDigest(Sha256::digest(token.as_bytes()).into()))
}

/// The message to an account's owner when someone registers with their address.
fn attempt_notice(owner: &User, at: Timestamp) -> MailMessage {
    MailMessage {
        to: owner.email.clone(),
        subject: "Someone tried to register with your email address".into(),
        body: format!(
            "Someone tried to create an Echo account with this address ({email}) at {at}.\n\nYou already have an account, so nothing was changed and no new account was made. If it was you, log in instead. If it was not, you need not do anything: your account is safe.\n",
            email = owner.email.as_str(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::mail::{MailError, Mailer};
    use crate::model::{Brand, BrandName, Prompt};
    use crate::service::{ExperimentDraft, ExperimentService};
    use crate::store::memory::MemoryStore;

    /// Keeps every message, so tests can read the token a user would receive.
    #[derive(Debug, Default)]
    struct Kept(Mutex<Vec<MailMessage>>);

    #[async_trait]
    impl Mailer for Kept {
        async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
            self.0.lock().unwrap().push(message.clone());
            Ok(())
        }
    }

    impl Kept {
        fn all(&self) -> Vec<MailMessage> {
            self.0.lock().unwrap().clone()
        }

        /// The token of the last message that carries one.
        fn last_token(&self) -> String {
            let all = self.all();
            let body = &all.last().unwrap().body;
            let token = body.split("token=").nth(1).unwrap();
            token.split_whitespace().next().unwrap().to_owned()
        }
    }

    fn setup(required: bool) -> (Arc<DynStore>, Arc<Kept>, Registration) {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let mail = Arc::new(Kept::default());
        let settings = VerificationSettings {
            required,
            public_base_url: "https://echo.example.com/".into(),
            ..VerificationSettings::default()
        };
        let registration = Registration::new(store.clone(), mail.clone(), settings);
        (store, mail, registration)
    }

    fn new_user(email: &str, now: Timestamp) -> User {
        let mut user = User::new(
            Email::parse(email).unwrap(),
            PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
            PricingTier::Free,
            now,
        );
        user.consents.data_processing_consent_at = Some(now);
        user
    }

    fn draft() -> ExperimentDraft {
        ExperimentDraft::new(
            Prompt::parse("Best CRM?").unwrap(),
            Brand::new(BrandName::parse("HubSpot").unwrap()),
        )
    }

    #[tokio::test]
    async fn a_new_account_gets_a_link_and_is_blocked_until_it_verifies() {
        let (store, mail, registration) = setup(true);
        let now = Timestamp::now();
        let Registered::Created(user) = registration
            .register(new_user("ada@example.com", now))
            .await
            .unwrap()
        else {
            panic!("a new address is created");
        };
        assert!(user.email_verification_pending());
        let sent = mail.all();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to.as_str(), "ada@example.com");
        assert!(
            sent[0]
                .body
                .contains("https://echo.example.com/verify-email?token="),
            "{}",
            sent[0].body
        );
        let token = mail.last_token();
        assert_eq!(token.len(), 64);

        let experiments = ExperimentService::from_store(&store);
        assert!(matches!(
            experiments.submit(user.id, draft()).await,
            Err(ServiceError::EmailUnverified)
        ));

        assert_eq!(registration.verify(&token, now).await.unwrap(), user.id);
        assert!(matches!(
            registration.verify(&token, now).await,
            Err(ServiceError::VerificationTokenInvalid)
        ));
        assert!(experiments.submit(user.id, draft()).await.is_ok());
        assert_eq!(
            registration.resend(user.id, now).await.unwrap(),
            Resent::AlreadyVerified
        );
    }

    #[tokio::test]
    async fn the_token_is_stored_only_as_its_digest() {
        let (store, mail, registration) = setup(true);
        let now = Timestamp::now();
        registration
            .register(new_user("bo@example.com", now))
            .await
            .unwrap();
        let token = mail.last_token();
        // The secret itself, taken as a digest, finds nothing: only SHA-256(token) is stored.
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&token, &mut raw).unwrap();
        assert!(matches!(
            store
                .redeem_email_verification_token(&SecretDigest(raw), now)
                .await,
            Err(StoreError::NotFound { .. })
        ));
        let digest = SecretDigest(Sha256::digest(token.as_bytes()).into());
        assert!(matches!(
            store.redeem_email_verification_token(&digest, now).await,
            Ok(EmailVerificationRedemption::Verified(_))
        ));
    }

    #[tokio::test]
    async fn an_expired_token_fails_and_a_resend_replaces_it() {
        let (store, mail, registration) = setup(true);
        let now = Timestamp::now();
        let Registered::Created(user) = registration
            .register(new_user("cy@example.com", now))
            .await
            .unwrap()
        else {
            panic!("created");
        };
        let first = mail.last_token();
        let later = now.checked_add(time::Duration::hours(25)).unwrap();
        assert!(matches!(
            registration.verify(&first, later).await,
            Err(ServiceError::VerificationTokenExpired)
        ));
        assert!(
            store
                .get_user(user.id)
                .await
                .unwrap()
                .email_verification_pending()
        );
        assert_eq!(
            registration.resend(user.id, later).await.unwrap(),
            Resent::Sent
        );
        let second = mail.last_token();
        assert_ne!(first, second);
        assert!(matches!(
            registration.verify(&first, later).await,
            Err(ServiceError::VerificationTokenInvalid)
        ));
        assert_eq!(registration.verify(&second, later).await.unwrap(), user.id);
    }

    #[tokio::test]
    async fn malformed_tokens_are_invalid_without_a_lookup() {
        let (_, _, registration) = setup(true);
        for token in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"a".repeat(65)] {
            assert!(matches!(
                registration.verify(token, Timestamp::now()).await,
                Err(ServiceError::VerificationTokenInvalid)
            ));
        }
    }

    #[tokio::test]
    async fn registering_a_taken_address_tells_its_owner_and_changes_nothing() {
        let (store, mail, registration) = setup(true);
        let now = Timestamp::now();
        let Registered::Created(first) = registration
            .register(new_user("dee@example.com", now))
            .await
            .unwrap()
        else {
            panic!("created");
        };
        let again = registration
            .register(new_user("DEE@example.com", now))
            .await
            .unwrap();
        assert_eq!(again, Registered::AlreadyRegistered(first.id));
        let sent = mail.all();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].to.as_str(), "dee@example.com");
        assert!(sent[1].subject.contains("tried to register"));
        assert!(!sent[1].body.contains("token="), "{}", sent[1].body);
        assert_eq!(store.get_user(first.id).await.unwrap(), *first);
    }

    #[tokio::test]
    async fn with_verification_off_accounts_work_at_once_and_get_no_mail() {
        let (store, mail, registration) = setup(false);
        let Registered::Created(user) = registration
            .register(new_user("eve@example.com", Timestamp::now()))
            .await
            .unwrap()
        else {
            panic!("created");
        };
        assert!(!user.email_verification_pending());
        assert!(mail.all().is_empty());
        assert!(
            ExperimentService::from_store(&store)
                .submit(user.id, draft())
                .await
                .is_ok()
        );
    }
}
