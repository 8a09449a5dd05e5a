//! Password hashing (argon2id) and the password policy.
//!
//! Hashing is CPU- and memory-bound (about 19 MiB and tens of milliseconds at the default
//! parameters) and synchronous: async callers run it with `tokio::task::spawn_blocking` and
//! should bound how many run at once.

use std::fmt;

use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use crate::model::PasswordHash;

/// argon2id cost parameters.
///
/// The default is OWASP's recommended minimum for argon2id (Password Storage Cheat Sheet):
/// m = 19,456 KiB (19 MiB), t = 2 iterations, p = 1 lane. Raise them when hardware allows;
/// hashes made with other parameters keep verifying and are flagged for rehash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes (parallelism).
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// NIST SP 800-63B-style rules: a length range and nothing else (no composition rules, which
/// push users to predictable patterns). Lengths count Unicode scalar values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest accepted password. Default 8 (NIST's minimum for user-chosen passwords).
    pub min_chars: usize,
    /// Longest accepted password. Default 128 (NIST asks to allow at least 64); the bound
    /// also caps the work an attacker can make the hash do.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 128,
        }
    }
}

/// A password the policy refuses. Messages say why, never what the password was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordPolicyError {
    /// Fewer than `min` characters.
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than `max` characters.
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Only whitespace.
    #[error("password must not be only whitespace")]
    OnlyWhitespace,
}

impl PasswordPolicy {
    /// Checks a new password (at sign-up or change; not at login, so a policy change never
    /// locks anyone out).
    pub fn check(&self, password: &str) -> Result<(), PasswordPolicyError> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(PasswordPolicyError::TooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(PasswordPolicyError::TooLong {
                max: self.max_chars,
            });
        }
        if password.chars().all(char::is_whitespace) {
            return Err(PasswordPolicyError::OnlyWhitespace);
        }
        Ok(())
    }
}

/// Hashing or verification failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The new password breaks the policy.
    #[error(transparent)]
    Policy(#[from] PasswordPolicyError),
    /// The configured parameters are out of argon2's range.
    #[error("invalid argon2 parameters")]
    Params(#[source] argon2::Error),
    /// The stored hash is not an argon2 PHC string this build can verify (corrupt or from
    /// another algorithm).
    #[error("stored password hash is not a supported argon2 PHC string")]
    UnsupportedHash(#[source] argon2::password_hash::Error),
    /// The hash computation failed (e.g. no randomness for a salt).
    #[error("password hashing failed")]
    Hashing(#[source] argon2::password_hash::Error),
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Wrong password.
    Invalid,
    /// Right password. With `needs_rehash`, the stored hash used other parameters (or
    /// algorithm or version) than the configured ones: hash the password again with
    /// [`PasswordHasher::hash`] and store it (transparent upgrade at login).
    Valid {
        /// The stored hash is outdated.
        needs_rehash: bool,
    },
}

/// Longest password `verify` will hash, in bytes: four bytes per character of the default
/// maximum, doubled, so any password a past policy accepted still verifies while a megabyte of
/// garbage is refused before it costs anything.
const MAX_VERIFY_BYTES: usize = 1024;

/// argon2id password hashing with PHC strings.
///
/// ```
/// use echo_core::auth::{PasswordCheck, PasswordHasher, PasswordParams, PasswordPolicy};
///
/// // Small parameters keep the example fast; use the defaults in production.
/// let params = PasswordParams { memory_kib: 64, iterations: 1, parallelism: 1 };
/// let hasher = PasswordHasher::new(params, PasswordPolicy::default())?;
/// let hash = hasher.hash("correct horse battery staple")?;
/// assert_eq!(
///     hasher.verify("correct horse battery staple", &hash)?,
///     PasswordCheck::Valid { needs_rehash: false }
/// );
/// assert_eq!(hasher.verify("wrong", &hash)?, PasswordCheck::Invalid);
/// // Unknown email: spend the same time, learn nothing.
/// hasher.verify_dummy("whatever was typed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: PasswordParams,
    policy: PasswordPolicy,
    dummy: PasswordHash,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `params` and `policy`. Computes one hash up front (the dummy for unknown
    /// accounts), so construction takes as long as one login.
    pub fn new(params: PasswordParams, policy: PasswordPolicy) -> Result<Self, PasswordError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(PasswordError::Params)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let dummy = hash_with(&argon2, b"echo dummy password for unknown accounts")?;
        Ok(Self {
            argon2,
            params,
            policy,
            dummy,
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// The policy new passwords must meet.
    pub fn policy(&self) -> PasswordPolicy {
        self.policy
    }

    /// Checks `password` against the policy and hashes it with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        self.policy.check(password)?;
        hash_with(&self.argon2, password.as_bytes())
    }

    /// Verifies `password` against a stored PHC string, with the parameters recorded in it.
    /// The comparison is constant time (argon2's `Output` equality).
    pub fn verify(
        &self,
        password: &str,
        stored: &PasswordHash,
    ) -> Result<PasswordCheck, PasswordError> {
        let phc =
            Phc::new(stored.expose()).map_err(|e| PasswordError::UnsupportedHash(e.into()))?;
        if password.len() > MAX_VERIFY_BYTES {
            return Ok(PasswordCheck::Invalid);
        }
        match self.argon2.verify_password(password.as_bytes(), &phc) {
            Ok(()) => Ok(PasswordCheck::Valid {
                needs_rehash: self.needs_rehash(&phc),
            }),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(PasswordCheck::Invalid),
            Err(e) => Err(PasswordError::UnsupportedHash(e)),
        }
    }

    /// Runs a verification that cannot succeed, taking as long as a real one at the current
    /// parameters: call it when the email is unknown, so response time does not reveal
    /// which accounts exist.
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy);
    }

    fn needs_rehash(&self, phc: &Phc) -> bool {
        let same_algorithm = phc.algorithm.as_str() == Algorithm::Argon2id.as_str();
        let same_version = phc.version == Some(Version::V0x13.into());
        let same_params = Params::try_from(phc).is_ok_and(|p| {
            p.m_cost() == self.params.memory_kib
                && p.t_cost() == self.params.iterations
                && p.p_cost() == self.params.parallelism
                && p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                    == Params::DEFAULT_OUTPUT_LEN
        });
        !(same_algorithm && same_version && same_params)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<PasswordHash, PasswordError> {
    let phc = argon2
        .hash_password(password)
        .map_err(PasswordError::Hashing)?;
    // The PHC serialisation of argon2's own output always has the `$alg$` shape PasswordHash
    // checks; a refusal would be an argon2 bug, reported as a hashing failure.
    PasswordHash::new(phc.to_string())
        .map_err(|_| PasswordError::Hashing(argon2::password_hash::Error::EncodingInvalid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: PasswordParams = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn hasher(params: PasswordParams) -> PasswordHasher {
        PasswordHasher::new(params, PasswordPolicy::default()).unwrap()
    }

    #[test]
    fn hash_and_verify() {
        let h = hasher(FAST);
        let hash = h.hash("correct horse").unwrap();
        assert!(hash.expose().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.verify("correct horse", &hash).unwrap(),
            PasswordCheck::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify("correct hors", &hash).unwrap(),
            PasswordCheck::Invalid
        );
        assert_eq!(
            h.verify(&"x".repeat(5000), &hash).unwrap(),
            PasswordCheck::Invalid
        );
        // Salts differ.
        assert_ne!(h.hash("correct horse").unwrap(), hash);
    }

    #[test]
    fn default_params_are_owasp() {
        let p = PasswordParams::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19_456, 2, 1));
        let h = hasher(p);
        let hash = h.hash("a long enough password").unwrap();
        assert!(hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn changed_params_ask_for_rehash() {
        let old = hasher(FAST);
        let hash = old.hash("correct horse").unwrap();
        let new = hasher(PasswordParams {
            memory_kib: 128,
            ..FAST
        });
        assert_eq!(
            new.verify("correct horse", &hash).unwrap(),
            PasswordCheck::Valid { needs_rehash: true }
        );
        let rehashed = new.hash("correct horse").unwrap();
        assert_eq!(
            new.verify("correct horse", &rehashed).unwrap(),
            PasswordCheck::Valid {
                needs_rehash: false
            }
        );
        // argon2i hashes verify but are upgraded to argon2id.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let legacy = hash_with(&argon2i, b"correct horse").unwrap();
        assert_eq!(
            new.verify("correct horse", &legacy).unwrap(),
            PasswordCheck::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn dummy_and_unsupported() {
        let h = hasher(FAST);
        h.verify_dummy("anything");
        let bcrypt = PasswordHash::new("$2b$12$abcdefghijklmnopqrstuv").unwrap();
        assert!(matches!(
            h.verify("x", &bcrypt),
            Err(PasswordError::UnsupportedHash(_))
        ));
        assert!(matches!(
            PasswordHasher::new(
                PasswordParams {
                    memory_kib: 1,
                    ..FAST
                },
                PasswordPolicy::default()
            ),
            Err(PasswordError::Params(_))
        ));
    }

    #[test]
    fn policy() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("1234567"),
            Err(PasswordPolicyError::TooShort { min: 8 })
        );
        assert!(p.check("12345678").is_ok());
        assert!(p.check("correct horse battery staple").is_ok());
        assert!(p.check("pässwörd").is_ok(), "8 characters, 10 bytes");
        assert!(p.check(&"a".repeat(128)).is_ok());
        assert_eq!(
            p.check(&"a".repeat(129)),
            Err(PasswordPolicyError::TooLong { max: 128 })
        );
        assert_eq!(
            p.check("        \t "),
            Err(PasswordPolicyError::OnlyWhitespace)
        );
        // No composition rules: all lowercase letters is fine.
        assert!(p.check("abcdefghij").is_ok());
        let h = hasher(FAST);
        assert!(matches!(h.hash("short"), Err(PasswordError::Policy(_))));
    }
}
