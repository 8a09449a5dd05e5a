//! Accounts and their brand profiles.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Brand, Email, PricingTier, Timestamp, UserId, ValidationError};

/// A password hash in PHC string format (`$argon2id$v=19$...`).
///
/// Its `Debug` output is redacted: a hash is an offline-crackable secret and must never reach a
/// log line.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string; only checks that it looks like one (`$alg$...`).
    pub fn new(phc: impl Into<String>) -> Result<Self, ValidationError> {
        let phc = phc.into();
        if !phc.starts_with('$') || phc.len() > 512 || phc.chars().any(char::is_whitespace) {
            return Err(ValidationError::new("password hash", "is not a PHC string"));
        }
        Ok(Self(phc))
    }

    /// A hash no password verifies against, for accounts that never log in with one (the
    /// local account of an embedded program or of the CLI). `$!` names no PHC algorithm.
    pub fn unusable() -> Self {
        Self("$!no-password-login".to_owned())
    }

    /// The PHC string.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Consent records, each with the time it was given (GDPR Art. 7: consent must be provable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consents {
    /// Version of the privacy policy the user accepted.
    pub privacy_policy_version: Option<String>,
    /// When it was accepted.
    pub privacy_policy_accepted_at: Option<Timestamp>,
    /// When data-processing consent was given; `None` = not given (or withdrawn).
    pub data_processing_consent_at: Option<Timestamp>,
    /// When marketing consent was given; `None` = not given (or withdrawn).
    pub marketing_consent_at: Option<Timestamp>,
}

impl Consents {
    /// Whether the user consents to the processing of their experiments' prompts and answers
    /// (GDPR Art. 6(1)(a)): without it nothing of theirs is sent to a provider.
    pub fn allows_processing(&self) -> bool {
        self.data_processing_consent_at.is_some()
    }

    /// Applies `change` made at `at`: accepting a policy version records it with `at`; giving
    /// a consent again keeps its first time (the proof of when it was given); withdrawing
    /// clears it; an absent field leaves its consent as it is. Every store applies a change
    /// through this, inside its own atomic update of the consent fields.
    pub fn apply(&mut self, change: &ConsentChange, at: Timestamp) {
        if let Some(version) = &change.privacy_policy_version {
            self.privacy_policy_version = Some(version.clone());
            self.privacy_policy_accepted_at = Some(at);
        }
        let set = |slot: &mut Option<Timestamp>, given: Option<bool>| match given {
            Some(true) => *slot = slot.or(Some(at)),
            Some(false) => *slot = None,
            None => {}
        };
        set(&mut self.data_processing_consent_at, change.data_processing);
        set(&mut self.marketing_consent_at, change.marketing);
    }
}

/// A change to a user's [`Consents`], applied atomically by
/// [`UserStore::update_consents`](crate::store::UserStore::update_consents). `None` fields are
/// left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentChange {
    /// Accept this privacy policy version (the caller checks it is the current one).
    pub privacy_policy_version: Option<String>,
    /// Give (`true`) or withdraw (`false`) data-processing consent.
    pub data_processing: Option<bool>,
    /// Give (`true`) or withdraw (`false`) marketing consent.
    pub marketing: Option<bool>,
}

/// Monthly prompt accounting. Changed only through the store's atomic debit, refund and reset
/// operations, never by a read-modify-write of the whole user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Prompts (iterations × providers) used since the last reset.
    pub prompts_used: u32,
    /// When the counter next resets to zero.
    pub resets_at: Timestamp,
}

impl QuotaUsage {
    /// The reset instant that follows `now`: `resets_at` moved forward by whole months until it
    /// is after `now`, so a reset that was missed for months lands on the same day of the month.
    pub fn next_reset_after(&self, now: Timestamp) -> Timestamp {
        let mut next = self.resets_at;
        let mut months = 0u32;
        // Bounded so a corrupt far-past date cannot loop for long; 12,000 months = 1,000 years.
        while next <= now && months < 12_000 {
            months += 1;
            next = self.resets_at.add_months(months);
        }
        next
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identity.
    pub id: UserId,
    /// Unique, case-insensitive (stored lower-cased).
    pub email: Email,
    /// Argon2id PHC string.
    pub password_hash: PasswordHash,
    /// Pricing tier.
    pub tier: PricingTier,
    /// Quota counter (see [`QuotaUsage`]).
    pub quota: QuotaUsage,
    /// Inactive users cannot log in and their API keys stop working.
    pub is_active: bool,
    /// May use the admin routes.
    pub is_admin: bool,
    /// Privacy consents.
    pub consents: Consents,
    /// When set, the account is purged after this instant unless the deletion is cancelled.
    pub scheduled_deletion_at: Option<Timestamp>,
    /// The account was registered while email verification was required: it creates and runs
    /// nothing until `email_verified_at` is set. Accounts registered without the requirement
    /// (and those made before it existed) keep `false`.
    pub email_verification_required: bool,
    /// When the owner proved they receive mail at `email` (a verification token redeemed, or an
    /// operator created the account).
    pub email_verified_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update of profile fields.
    pub updated_at: Timestamp,
}

impl User {
    /// A new active, non-admin user on `tier`, whose quota resets one month after `now`.
    pub fn new(
        email: Email,
        password_hash: PasswordHash,
        tier: PricingTier,
        now: Timestamp,
    ) -> Self {
        Self {
            id: UserId::new(),
            email,
            password_hash,
            tier,
            quota: QuotaUsage {
                prompts_used: 0,
                resets_at: now.add_months(1),
            },
            is_active: true,
            is_admin: false,
            consents: Consents::default(),
            scheduled_deletion_at: None,
            email_verification_required: false,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl User {
    /// Whether the account still waits for its email to be verified before it may create or
    /// run experiments.
    pub fn email_verification_pending(&self) -> bool {
        self.email_verification_required && self.email_verified_at.is_none()
    }
}

/// A pending email-verification token as stored: only the SHA-256 digest of the secret the
/// mail carried, so a copy of the database cannot verify anyone. A user has at most one; a new
/// one replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailVerificationToken {
    /// Whose address it verifies.
    pub user_id: UserId,
    /// SHA-256 of the token's secret.
    pub token_hash: super::SecretDigest,
    /// When it was issued.
    pub created_at: Timestamp,
    /// It verifies nothing from this instant on.
    pub expires_at: Timestamp,
}

/// What redeeming a verification token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerificationRedemption {
    /// The token was valid: it is gone, and the user's `email_verified_at` is set (its first
    /// value kept).
    Verified(UserId),
    /// The token exists but expired; nothing was written.
    Expired,
}

/// A request to take `amount` prompts from a user's monthly quota, refused when
/// `prompts_used + amount` would exceed `limit`. The caller supplies the limit (from the tier
/// and its configuration) so stores stay free of pricing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDebit {
    /// Whose quota.
    pub user_id: UserId,
    /// Prompts to take (iterations × providers).
    pub amount: u32,
    /// The user's monthly limit.
    pub limit: u32,
}

impl QuotaDebit {
    /// The debit of one run of `experiment` for its owner: [`Experiment::prompts_per_run`]
    /// prompts against the owner's tier's monthly quota. An inactive owner's limit is zero, so
    /// the debit is refused and nothing runs on an account being deleted.
    ///
    /// [`Experiment::prompts_per_run`]: super::Experiment::prompts_per_run
    pub fn for_run(owner: &User, experiment: &super::Experiment) -> Self {
        Self {
            user_id: owner.id,
            amount: experiment.prompts_per_run(),
            limit: if owner.is_active {
                owner.tier.default_monthly_quota()
            } else {
                0
            },
        }
    }

    /// Whether the debit fits a quota of which `used` is taken: `used + amount <= limit`.
    pub fn fits(&self, used: u32) -> bool {
        u64::from(used) + u64::from(self.amount) <= u64::from(self.limit)
    }

    /// Refuses a debit that is not for `owner`, the owner of what it pays for.
    pub fn check_owner(&self, owner: UserId) -> Result<(), ValidationError> {
        if self.user_id == owner {
            Ok(())
        } else {
            Err(ValidationError::new(
                "quota debit",
                "must be for the experiment's owner",
            ))
        }
    }
}

/// A user's own brand and the competitors they usually track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandProfile {
    /// Owner.
    pub user_id: UserId,
    /// The user's brand, with aliases.
    pub brand: Brand,
    /// The brand's web domain, if any (e.g. `hubspot.com`).
    pub domain: Option<String>,
    /// Competitors to pre-fill new experiments with.
    pub default_competitors: Vec<Brand>,
    /// Last change.
    pub updated_at: Timestamp,
}

impl BrandProfile {
    /// Adds `competitor` to the default competitors ("add as competitor" from discovery).
    /// Returns `false`, changing nothing, when a default competitor already has that name or
    /// alias (compared case-insensitively, as matching is by default).
    ///
    /// Errors: the profile's own brand (by name or alias) cannot be its competitor, an invalid
    /// brand is refused, and the list holds at most
    /// [`Experiment::MAX_COMPETITORS`](super::Experiment::MAX_COMPETITORS).
    pub fn add_competitor(&mut self, competitor: Brand) -> Result<bool, ValidationError> {
        competitor.validate()?;
        let spellings = |b: &Brand| -> Vec<String> {
            std::iter::once(&b.name)
                .chain(&b.aliases)
                .map(|n| n.as_str().to_lowercase())
                .collect()
        };
        let new = spellings(&competitor);
        let overlaps = |b: &Brand| spellings(b).iter().any(|s| new.contains(s));
        if overlaps(&self.brand) {
            return Err(ValidationError::new(
                "competitor",
                "is the profile's own brand",
            ));
        }
        if self.default_competitors.iter().any(overlaps) {
            return Ok(false);
        }
        if self.default_competitors.len() >= super::Experiment::MAX_COMPETITORS {
            return Err(ValidationError::new(
                "default_competitors",
                format!("must be at most {}", super::Experiment::MAX_COMPETITORS),
            ));
        }
        self.default_competitors.push(competitor);
        Ok(true)
    }
}
