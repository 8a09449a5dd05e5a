//! The API-key format: generation, parsing and the checksum.
//!
//! ```text
//! echo1_live_ 0123456789abcdef 43 × base62 (secret) 6 × base62 (CRC32)
//! └─ prefix ┘ └─ key id (16) ┘ └──── 256.03 bits ┘ └── checksum ──┘
//! ```
//!
//! - **Prefix** `echo1_live_` or `echo1_test_`: `echo` names the issuer, `1` is the format
//!   version (a later format gets `echo2_` and both parse side by side), `live`/`test` separate
//!   production keys from sandbox keys. `_` is not a base62 character, so a double-click in a
//!   terminal or browser selects the whole key.
//! - **Key id**: 16 base62 characters (95.3 bits) from the OS CSPRNG. Together with the prefix
//!   it forms the *public id*, the lookup handle stored in
//!   [`ApiKeyRecord::public_id`](crate::model::ApiKeyRecord::public_id). Because the
//!   environment is part of the public id, editing `live` into `test` (and recomputing the
//!   checksum, which anyone can) finds no record.
//! - **Secret**: 43 base62 characters drawn by rejection sampling from OS CSPRNG bytes:
//!   43 × log2(62) = 256.03 bits. Only an HMAC of it is stored ([`super::KeyHasher`]).
//! - **Checksum**: CRC32 (IEEE) of everything before it, as 6 base62 digits, zero-padded (as
//!   GitHub's tokens do). It lets Echo, and secret scanners, reject mistyped or random strings
//!   without touching the store. It is not a MAC: it protects against typos, not forgery.
//!
//! The whole key is 76 ASCII characters. A secret scanner can match it with
//!
//! ```text
//! \becho1_(live|test)_[0-9A-Za-z]{65}\b
//! ```
//!
//! and then confirm a hit by recomputing the checksum ([`ApiKey::parse`]), which removes almost
//! every false positive (a random 65-character tail passes with probability 2⁻³²).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The base62 alphabet in ASCII order, so the regex class `[0-9A-Za-z]` matches it.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the `echo1_live_` / `echo1_test_` prefix.
pub const PREFIX_LEN: usize = 11;
/// Base62 characters in the key id.
pub const KEY_ID_LEN: usize = 16;
/// Base62 characters in the secret (256.03 bits).
pub const SECRET_LEN: usize = 43;
/// Base62 characters in the checksum (62⁶ > 2³², so any CRC32 fits).
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole key, in bytes (all ASCII).
pub const KEY_LEN: usize = PREFIX_LEN + KEY_ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Length of the public id (prefix and key id).
pub const PUBLIC_ID_LEN: usize = PREFIX_LEN + KEY_ID_LEN;
/// Length of the display "start" shown in listings: the prefix and 4 characters of the key id.
pub const DISPLAY_START_LEN: usize = PREFIX_LEN + 4;

/// Production or sandbox. Encoded in the key's prefix and so in its public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEnvironment {
    /// `echo1_live_…`: production keys.
    Live,
    /// `echo1_test_…`: sandbox keys, for integration tests and CI.
    Test,
}

impl KeyEnvironment {
    /// The key prefix, e.g. `echo1_live_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyEnvironment::Live => "echo1_live_",
            KeyEnvironment::Test => "echo1_test_",
        }
    }

    /// `"live"` or `"test"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyEnvironment::Live => "live",
            KeyEnvironment::Test => "test",
        }
    }

    /// The environment of a public id (or of any string starting with a key prefix).
    pub fn of_public_id(public_id: &str) -> Option<Self> {
        [KeyEnvironment::Live, KeyEnvironment::Test]
            .into_iter()
            .find(|env| public_id.starts_with(env.prefix()))
    }
}

impl fmt::Display for KeyEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a well-formed key. The messages never contain any part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// Not exactly [`KEY_LEN`] bytes.
    #[error("API key has the wrong length")]
    Length,
    /// Does not start with `echo1_live_` or `echo1_test_`.
    #[error("API key has an unknown prefix")]
    Prefix,
    /// A character outside `[0-9A-Za-z]` after the prefix.
    #[error("API key contains an invalid character")]
    Alphabet,
    /// The checksum does not match: a typo, a truncated paste or a made-up string.
    #[error("API key checksum does not match")]
    Checksum,
}

/// The operating system's random number generator failed; no key was made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct EntropyError(#[source] pub(crate) getrandom::Error);

/// A full key as handed to its owner, exactly once, at creation or rotation.
///
/// Deliberately not `Clone`, and redacted in `Debug` and `Display`: the only way to read it is
/// [`PresentedKey::expose`], at the one place that returns it to the user.
pub struct PresentedKey(String);

impl PresentedKey {
    /// The key text. Call it only to show the key to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key's public id (prefix and key id): safe to log and display.
    pub fn public_id(&self) -> &str {
        self.0.get(..PUBLIC_ID_LEN).unwrap_or_default()
    }

    /// The secret part, to digest at creation.
    pub(crate) fn secret(&self) -> &str {
        self.0
            .get(PUBLIC_ID_LEN..PUBLIC_ID_LEN + SECRET_LEN)
            .unwrap_or_default()
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}…<redacted>)", self.public_id())
    }
}

impl fmt::Display for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.public_id())
    }
}

/// A key that passed [`ApiKey::parse`]: prefix, alphabet and checksum are right. Borrows the
/// presented text, so parsing allocates nothing. The secret is redacted in `Debug`.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    text: &'a str,
    environment: KeyEnvironment,
}

impl<'a> ParsedKey<'a> {
    /// Live or test.
    pub fn environment(&self) -> KeyEnvironment {
        self.environment
    }

    /// The public id (prefix and key id), the store's lookup handle.
    pub fn public_id(&self) -> &'a str {
        self.text.get(..PUBLIC_ID_LEN).unwrap_or_default()
    }

    /// The 43-character secret part: hash it, never log it.
    pub fn secret(&self) -> &'a str {
        self.text
            .get(PUBLIC_ID_LEN..PUBLIC_ID_LEN + SECRET_LEN)
            .unwrap_or_default()
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("public_id", &self.public_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The format's operations: [`ApiKey::generate`] and [`ApiKey::parse`].
///
/// ```
/// use echo_core::auth::{ApiKey, KeyEnvironment};
///
/// let key = ApiKey::generate(KeyEnvironment::Live)?;
/// assert!(key.expose().starts_with("echo1_live_"));
/// assert_eq!(key.expose().len(), 76);
///
/// let parsed = ApiKey::parse(key.expose())?;
/// assert_eq!(parsed.public_id(), key.public_id());
/// assert_eq!(parsed.environment(), KeyEnvironment::Live);
///
/// // Debug output never shows the secret.
/// assert!(!format!("{key:?} {parsed:?}").contains(parsed.secret()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl ApiKey {
    /// A new key for `environment`: key id and secret from the OS CSPRNG, checksum appended.
    pub fn generate(environment: KeyEnvironment) -> Result<PresentedKey, EntropyError> {
        let mut text = String::with_capacity(KEY_LEN);
        text.push_str(environment.prefix());
        push_random_base62(&mut text, KEY_ID_LEN + SECRET_LEN)?;
        push_checksum(&mut text);
        Ok(PresentedKey(text))
    }

    /// Checks the format and checksum without any I/O. Every failure maps to one
    /// [`KeyFormatError`] whose message contains no part of `text`.
    pub fn parse(text: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
        let bytes = text.as_bytes();
        if bytes.len() != KEY_LEN {
            return Err(KeyFormatError::Length);
        }
        let environment = KeyEnvironment::of_public_id(text).ok_or(KeyFormatError::Prefix)?;
        let (body, checksum) = bytes.split_at(KEY_LEN - CHECKSUM_LEN);
        let tail = bytes.get(PREFIX_LEN..).unwrap_or_default();
        if !tail.iter().all(u8::is_ascii_alphanumeric) {
            return Err(KeyFormatError::Alphabet);
        }
        if decode_checksum(checksum) != Some(crc32fast::hash(body)) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(ParsedKey { text, environment })
    }

    /// The display "start" of a public id for listings (`echo1_live_AbCd`): enough to tell keys
    /// apart, and nothing secret.
    pub fn display_start(public_id: &str) -> &str {
        public_id.get(..DISPLAY_START_LEN).unwrap_or(public_id)
    }
}

/// Appends `n` uniform base62 characters. Rejection sampling keeps them uniform: a byte is
/// used only when below 248 (= 4 × 62), so `byte % 62` has no bias.
pub(super) fn push_random_base62(out: &mut String, n: usize) -> Result<(), EntropyError> {
    let mut buf = [0u8; 96];
    let mut pushed = 0;
    while pushed < n {
        getrandom::fill(&mut buf).map_err(EntropyError)?;
        for &b in buf.iter().filter(|&&b| b < 248) {
            if pushed == n {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
            pushed += 1;
        }
    }
    Ok(())
}

/// Appends the 6-digit base62 CRC32 of `out` (most significant digit first).
fn push_checksum(out: &mut String) {
    let mut value = crc32fast::hash(out.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.extend(digits.iter().map(|&d| char::from(d)));
}

/// The value of a base62 checksum, or `None` when it is not base62 or exceeds `u32`.
fn decode_checksum(digits: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for &d in digits {
        let digit = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            b'a'..=b'z' => d - b'a' + 36,
            _ => return None,
        };
        value = value * 62 + u64::from(digit);
    }
    u32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> PresentedKey {
        ApiKey::generate(KeyEnvironment::Live).unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let re = regex_lite_match;
        for env in [KeyEnvironment::Live, KeyEnvironment::Test] {
            let k = ApiKey::generate(env).unwrap();
            let text = k.expose();
            assert_eq!(text.len(), KEY_LEN);
            assert!(text.starts_with(env.prefix()));
            assert!(re(text), "{text} does not match the scanner regex");
            let parsed = ApiKey::parse(text).unwrap();
            assert_eq!(parsed.environment(), env);
            assert_eq!(parsed.public_id(), &text[..PUBLIC_ID_LEN]);
            assert_eq!(
                parsed.secret(),
                &text[PUBLIC_ID_LEN..PUBLIC_ID_LEN + SECRET_LEN]
            );
            assert_eq!(k.public_id(), parsed.public_id());
            assert_eq!(k.secret(), parsed.secret());
            assert_eq!(KeyEnvironment::of_public_id(parsed.public_id()), Some(env));
        }
    }

    /// `\becho1_(live|test)_[0-9A-Za-z]{65}\b`, spelled out (echo-core has no regex crate).
    fn regex_lite_match(s: &str) -> bool {
        (s.starts_with("echo1_live_") || s.starts_with("echo1_test_"))
            && s.len() == PREFIX_LEN + 65
            && s[PREFIX_LEN..].bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn keys_are_distinct() {
        let a = key();
        let b = key();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.public_id(), b.public_id());
    }

    #[test]
    fn checksum_round_trips_extremes() {
        for v in [0u32, 1, 61, 62, u32::MAX, 0xDEAD_BEEF] {
            let mut s = String::new();
            let mut value = v;
            let mut digits = [b'0'; CHECKSUM_LEN];
            for d in digits.iter_mut().rev() {
                *d = ALPHABET[(value % 62) as usize];
                value /= 62;
            }
            s.extend(digits.iter().map(|&d| char::from(d)));
            assert_eq!(decode_checksum(s.as_bytes()), Some(v));
        }
        // 62^6 - 1 is above u32::MAX: not a checksum.
        assert_eq!(decode_checksum(b"zzzzzz"), None);
        assert_eq!(decode_checksum(b"00000_"), None);
    }

    /// Every single-character substitution, at every position, with every base62 character
    /// and the separators, is rejected: CRC32 detects every burst error of up to 32 bits, so
    /// one changed byte in the checked part always changes the CRC; a changed checksum digit
    /// changes the decoded value; a changed prefix is unknown.
    #[test]
    fn every_single_character_change_is_rejected() {
        let k = key();
        let original = k.expose().as_bytes().to_vec();
        let mut replacements: Vec<u8> = ALPHABET.to_vec();
        replacements.extend_from_slice(b"_-. ");
        let mut tried = 0;
        for pos in 0..original.len() {
            for &c in &replacements {
                if c == original[pos] {
                    continue;
                }
                let mut changed = original.clone();
                changed[pos] = c;
                let text = String::from_utf8(changed).unwrap();
                assert!(ApiKey::parse(&text).is_err(), "accepted a change at {pos}");
                tried += 1;
            }
        }
        assert!(tried > 76 * 60);
    }

    #[test]
    fn specific_errors() {
        let k = key();
        let text = k.expose();
        assert_eq!(ApiKey::parse("").unwrap_err(), KeyFormatError::Length);
        assert_eq!(
            ApiKey::parse(&text[..KEY_LEN - 1]).unwrap_err(),
            KeyFormatError::Length
        );
        let other_prefix = format!("echo2_live_{}", &text[PREFIX_LEN..]);
        assert_eq!(
            ApiKey::parse(&other_prefix).unwrap_err(),
            KeyFormatError::Prefix
        );
        let bad_char = format!("{}!{}", &text[..20], &text[21..]);
        assert_eq!(
            ApiKey::parse(&bad_char).unwrap_err(),
            KeyFormatError::Alphabet
        );
        // A live key turned into a test key without fixing the checksum.
        let flipped = format!("echo1_test_{}", &text[PREFIX_LEN..]);
        assert_eq!(
            ApiKey::parse(&flipped).unwrap_err(),
            KeyFormatError::Checksum
        );
        // Multi-byte characters keep the byte length check honest.
        let unicode = format!("{}é{}", &text[..30], &text[32..]);
        assert!(ApiKey::parse(&unicode).is_err());
    }

    #[test]
    fn display_start_is_prefix_and_four_id_chars() {
        let k = key();
        let start = ApiKey::display_start(k.public_id());
        assert_eq!(start.len(), DISPLAY_START_LEN);
        assert!(k.expose().starts_with(start));
        assert_eq!(ApiKey::display_start("short"), "short");
    }

    #[test]
    fn redacted_everywhere() {
        let k = key();
        let parsed = ApiKey::parse(k.expose()).unwrap();
        let secret = parsed.secret().to_owned();
        let shown = format!("{k:?} {k} {parsed:?}");
        assert!(!shown.contains(&secret));
        assert!(!shown.contains(k.expose()));
        assert!(shown.contains(k.public_id()));
    }

    #[test]
    fn environment_names_and_formats() {
        assert_eq!(KeyEnvironment::Live.as_str(), "live");
        assert_eq!(KeyEnvironment::Test.as_str(), "test");
        assert_eq!(KeyEnvironment::Live.to_string(), "live");
        assert_eq!(KeyEnvironment::Test.to_string(), "test");
        assert_eq!(
            ApiKey::display_start("echo1_live_AbCdEfGhIjKlMnOp"),
            "echo1_live_AbCd"
        );
    }

    #[test]
    fn display_and_debug_show_the_public_id_only() {
        let k = key();
        let parsed = ApiKey::parse(k.expose()).unwrap();
        let id = k.public_id();
        assert_eq!(format!("{k}"), format!("{id}…"));
        assert_eq!(format!("{k:?}"), format!("PresentedKey({id}…<redacted>)"));
        assert_eq!(
            format!("{parsed:?}"),
            format!("ParsedKey {{ public_id: {id:?}, secret: \"<redacted>\" }}")
        );
    }

    /// Every base62 character is equally likely. 400,000 draws give each of the 62 characters
    /// 6,451.6 expected hits with a standard deviation of 79.7; the bound of ±480 (6σ) fails a
    /// correct generator with probability about 10⁻⁷, while accepting the byte 248 (a biased
    /// `b <= 248`) gives `0` 8,032 expected hits.
    #[test]
    fn random_characters_are_uniform() {
        const DRAWS: usize = 400_000;
        let mut text = String::with_capacity(DRAWS);
        push_random_base62(&mut text, DRAWS).unwrap();
        assert_eq!(text.len(), DRAWS);
        let mut counts = [0usize; 256];
        for b in text.bytes() {
            counts[usize::from(b)] += 1;
        }
        let expected = DRAWS / ALPHABET.len();
        for &c in ALPHABET {
            let n = counts[usize::from(c)];
            assert!(
                n.abs_diff(expected) <= 480,
                "{} drawn {n} times, expected {expected} ± 480",
                char::from(c)
            );
        }
    }

    fn tail_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), 59)
            .prop_map(|v| String::from_utf8(v).unwrap())
    }

    /// Builds a well-formed key from an arbitrary id+secret, so properties cover the whole
    /// key space rather than only what the CSPRNG happened to produce.
    fn build(env: KeyEnvironment, tail: &str) -> String {
        let mut s = format!("{}{}", env.prefix(), tail);
        push_checksum(&mut s);
        s
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            let _ = ApiKey::parse(&s);
        }

        #[test]
        fn arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..100)) {
            let s = String::from_utf8_lossy(&v);
            let _ = ApiKey::parse(&s);
        }

        #[test]
        fn random_76_char_strings_are_rejected(tail in "[0-9A-Za-z]{65}") {
            // A random tail passes only with probability 2^-32.
            let s = format!("echo1_live_{tail}");
            prop_assert!(ApiKey::parse(&s).is_err());
        }

        #[test]
        fn format_parse_round_trip(tail in tail_strategy(), live in any::<bool>()) {
            let env = if live { KeyEnvironment::Live } else { KeyEnvironment::Test };
            let s = build(env, &tail);
            let parsed = ApiKey::parse(&s).unwrap();
            prop_assert_eq!(parsed.environment(), env);
            prop_assert_eq!(format!("{}{}", parsed.public_id(), parsed.secret()), &s[..KEY_LEN - CHECKSUM_LEN]);
        }

        #[test]
        fn any_single_change_to_a_random_key_is_rejected(
            tail in tail_strategy(),
            pos in 0..KEY_LEN,
            c in proptest::sample::select(ALPHABET.to_vec()),
        ) {
            let s = build(KeyEnvironment::Live, &tail);
            let mut bytes = s.into_bytes();
            prop_assume!(bytes[pos] != c);
            bytes[pos] = c;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(ApiKey::parse(&changed).is_err());
        }
    }
}
