//! Key digests: what the store keeps instead of the key.
//!
//! # Why HMAC-SHA-256 and not argon2
//! An API key's secret is 256 bits from a CSPRNG. NIST SP 800-63B (§5.1.2.2, look-up secrets)
//! asks for a salted, costly KDF only for secrets under 112 bits of entropy; secrets of at
//! least 112 bits "SHALL be hashed with an approved one-way function". Nobody can brute-force
//! 2²⁵⁶ candidates, however fast the hash, so a slow hash would buy no security. It would cost
//! milliseconds and (argon2id at OWASP's parameters) 19 MiB on *every* request, and give an
//! attacker a denial-of-service amplifier: each garbage key would cost the server that much.
//!
//! # Why a pepper
//! The digest is HMAC-SHA-256 keyed with a server-side *pepper* kept in configuration, not in
//! the database. A leaked database copy (a backup, a replica, an SQL injection) then holds
//! nothing that can be checked offline, even for a weaker future key format.
//!
//! # Rotating the pepper
//! A digest cannot be recomputed without the key, and the key is only seen when presented, so
//! rotation is gradual:
//! 1. Generate a new pepper (at least 32 random bytes, e.g. `openssl rand -base64 48`).
//! 2. Deploy with the new pepper as current and the old one as previous
//!    ([`KeyHasher::with_previous`]). New keys are digested with the new pepper; verification
//!    computes both digests, always (so timing does not reveal which one matched), and accepts
//!    either. A key that matched the previous pepper is flagged in
//!    [`VerifiedKey::previous_pepper`](super::VerifiedKey::previous_pepper).
//! 3. Move the remaining keys over: rotate them ([`super::ApiKeyService::rotate`]) or let them
//!    expire. (Re-digesting on use needs a store method to overwrite a key's digest; see the
//!    module docs of [`super`].)
//! 4. Once no active key was digested with the old pepper, deploy without the previous pepper.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::model::SecretDigest;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// Minimum pepper length in bytes (256 bits if random).
pub const MIN_PEPPER_LEN: usize = 32;

/// A server-side HMAC key for API-key digests. Redacted in `Debug`; never logged.
#[derive(Clone)]
pub struct Pepper(Vec<u8>);

impl Pepper {
    /// Wraps a pepper of at least [`MIN_PEPPER_LEN`] bytes (e.g. the text of
    /// `openssl rand -base64 48` from configuration).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, PepperError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(PepperError::TooShort {
                min: MIN_PEPPER_LEN,
            });
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// A pepper was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PepperError {
    /// Shorter than [`MIN_PEPPER_LEN`].
    #[error("the API-key pepper must be at least {min} bytes")]
    TooShort {
        /// The minimum length in bytes.
        min: usize,
    },
}

/// Which pepper, if any, reproduced the stored digest. Holds [`Choice`]s so callers that must
/// stay branch-free (the timing test) can combine them; [`DigestMatch::matched`] turns the
/// result into a `bool` once the comparison is over.
#[derive(Debug, Clone, Copy)]
pub struct DigestMatch {
    current: Choice,
    previous: Choice,
}

impl DigestMatch {
    /// Whether any pepper matched.
    pub fn matched(&self) -> bool {
        bool::from(self.current | self.previous)
    }

    /// Whether only the previous pepper matched: the key predates a pepper rotation.
    pub fn by_previous_pepper(&self) -> bool {
        bool::from(!self.current & self.previous)
    }

    /// The combined result, still as a [`Choice`].
    pub fn as_choice(&self) -> Choice {
        self.current | self.previous
    }
}

/// Digests key secrets as HMAC-SHA-256(pepper, secret) and checks presented secrets against
/// stored digests in constant time. See the module docs for the design and pepper rotation.
///
/// ```
/// use echo_core::auth::{ApiKey, KeyEnvironment, KeyHasher, Pepper};
///
/// let hasher = KeyHasher::new(Pepper::new(vec![7u8; 32])?);
/// let key = ApiKey::generate(KeyEnvironment::Live)?;
/// let secret = ApiKey::parse(key.expose())?.secret();
/// let stored = hasher.digest(secret);
/// assert!(hasher.verify(secret, Some(&stored)).matched());
/// assert!(!hasher.verify(secret, None).matched());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyHasher {
    // HMAC states with the pepper already absorbed: cloning one skips the two key-block
    // compressions that keying costs on every call.
    current: HmacSha256,
    previous: Option<HmacSha256>,
    // Compared against when the key id is unknown, so that path does the same work.
    dummy: CacheLine,
}

/// A digest alone on its cache line, so reading it never costs a split load.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct CacheLine([u8; 32]);

impl KeyHasher {
    /// A hasher with one pepper.
    pub fn new(pepper: Pepper) -> Self {
        let current = keyed(&pepper);
        let dummy = CacheLine(compute(&current, b"echo1 dummy digest for unknown key ids"));
        Self {
            current,
            previous: None,
            dummy,
        }
    }

    /// Also accepts digests made with `previous` (during a pepper rotation).
    pub fn with_previous(mut self, previous: Pepper) -> Self {
        self.previous = Some(keyed(&previous));
        self
    }

    /// The digest to store for a new key (always with the current pepper).
    pub fn digest(&self, secret: &str) -> SecretDigest {
        SecretDigest(compute(&self.current, secret.as_bytes()))
    }

    /// Compares `secret` with `stored` in constant time. With `stored = None` (unknown key id)
    /// it runs the same hashing and a comparison against a dummy digest, and never matches, so
    /// an unknown id costs the same CPU time as a wrong secret. With a previous pepper both
    /// digests are always computed.
    pub fn verify(&self, secret: &str, stored: Option<&SecretDigest>) -> DigestMatch {
        let found = Choice::from(u8::from(stored.is_some()));
        // The same instructions and the same number of reads whether the id exists or not:
        // the dummy is always read, the candidate (the stored digest, or the dummy again) is
        // picked by a conditional move, and the two are merged by a constant-time select.
        let dummy: [u8; 32] = self.dummy.0;
        let mut target = dummy;
        let candidate: &[u8; 32] = stored.map_or(&dummy, |d| &d.0);
        for (t, c) in target.iter_mut().zip(candidate) {
            t.conditional_assign(c, found);
        }
        let target = &target;
        let current = compute(&self.current, secret.as_bytes());
        let current = found & current.ct_eq(target);
        let previous = match &self.previous {
            Some(mac) => found & compute(mac, secret.as_bytes()).ct_eq(target),
            None => Choice::from(0),
        };
        DigestMatch { current, previous }
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("current", &"<redacted>")
            .field("previous", &self.previous.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An HMAC-SHA-256 state keyed with `pepper`, to clone per message.
pub(super) fn keyed(pepper: &Pepper) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails; the fallback only satisfies the
    // type (an empty-key HMAC) and is unreachable.
    HmacSha256::new_from_slice(&pepper.0).unwrap_or_else(|_| HmacSha256::new(&Default::default()))
}

/// The MAC of `input` under the pre-keyed `mac`.
pub(super) fn compute(mac: &HmacSha256, input: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(input);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper(b: u8) -> Pepper {
        Pepper::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn short_pepper_is_refused() {
        assert_eq!(
            Pepper::new(vec![1u8; 31]).unwrap_err(),
            PepperError::TooShort { min: 32 }
        );
    }

    #[test]
    fn matches_known_hmac_vector() {
        // Expected value from Python's `hmac.new(key, b"abc", hashlib.sha256)`.
        let h = KeyHasher::new(Pepper::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap());
        let d = h.digest("abc");
        let hex: String = d.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "a60c859a6827c5ea576a48d8d368672fbfe4667c6a927428284a0cb3859cc1d6"
        );
    }

    #[test]
    fn verify_and_dummy() {
        let h = KeyHasher::new(pepper(1));
        let d = h.digest("secret");
        assert!(h.verify("secret", Some(&d)).matched());
        assert!(!h.verify("Secret", Some(&d)).matched());
        assert!(!h.verify("secret", None).matched());
        // Even a secret whose digest equals the dummy is refused when the id is unknown.
        assert!(
            !h.verify("echo1 dummy digest for unknown key ids", None)
                .matched()
        );
    }

    #[test]
    fn pepper_rotation_accepts_both() {
        let old = KeyHasher::new(pepper(1));
        let old_digest = old.digest("s");
        let new = KeyHasher::new(pepper(2)).with_previous(pepper(1));
        let m = new.verify("s", Some(&old_digest));
        assert!(m.matched());
        assert!(m.by_previous_pepper());
        let m = new.verify("s", Some(&new.digest("s")));
        assert!(m.matched());
        assert!(!m.by_previous_pepper());
        assert!(
            !KeyHasher::new(pepper(2))
                .verify("s", Some(&old_digest))
                .matched()
        );
    }

    /// With the same pepper as current and previous both digests match: the key is not flagged
    /// as predating the rotation, and the combined choice agrees with `matched`.
    #[test]
    fn match_flags_for_every_combination() {
        let same = KeyHasher::new(pepper(1)).with_previous(pepper(1));
        let rotated = KeyHasher::new(pepper(2)).with_previous(pepper(1));
        let old_digest = KeyHasher::new(pepper(1)).digest("s");
        let cases = [
            // (match, matched, by previous pepper)
            (same.verify("s", Some(&old_digest)), true, false),
            (rotated.verify("s", Some(&old_digest)), true, true),
            (rotated.verify("s", Some(&rotated.digest("s"))), true, false),
            (rotated.verify("t", Some(&old_digest)), false, false),
            (rotated.verify("s", None), false, false),
        ];
        for (i, (m, matched, previous)) in cases.into_iter().enumerate() {
            assert_eq!(m.matched(), matched, "case {i}");
            assert_eq!(m.by_previous_pepper(), previous, "case {i}");
            assert_eq!(bool::from(m.as_choice()), matched, "case {i}");
        }
        // The dummy digest is made with the current pepper; a previous pepper equal to it
        // must not turn an unknown id into a match either.
        let dummy_secret = "echo1 dummy digest for unknown key ids";
        assert!(!same.verify(dummy_secret, None).matched());
    }

    #[test]
    fn debug_is_redacted() {
        let h = KeyHasher::new(pepper(0x41)).with_previous(pepper(0x42));
        let s = format!("{h:?} {:?}", pepper(0x41));
        assert!(!s.contains("AAAA") && !s.contains("65, 65"));
        assert_eq!(
            s,
            "KeyHasher { current: \"<redacted>\", previous: Some(\"<redacted>\") } \
             Pepper(<redacted>)"
        );
    }
}
