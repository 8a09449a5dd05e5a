//! Validated newtypes: a value of one of these types has passed its checks, so code that holds
//! one never re-validates and storage never receives bad input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Input that failed validation: which field and why, in words fit for an end user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ValidationError {
    /// The field or type that was rejected (e.g. `"email"`).
    pub field: &'static str,
    /// Why, phrased to follow the field name (e.g. `"must not be empty"`).
    pub reason: String,
}

impl ValidationError {
    /// A new error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Whether `c` is an invisible formatting character that names must not hold: the
/// bidirectional embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069) and marks
/// (U+200E, U+200F, U+061C), and the zero-width characters (U+200B–U+200D, U+2060, U+FEFF).
/// Unseen, they make two names that look alike compare different (a brand that is never
/// matched, a second account under a look-alike email) or reorder what a reader sees
/// ("Trojan Source", CVE-2021-42574).
///
/// The zero-width joiners also build emoji sequences and some scripts' ligatures; a name is an
/// identifier here, and refusing them is the price of names that are what they look like.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{061C}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// The one Unicode check of the names people read and compare (brand names with their
/// aliases and competitors, labels such as API-key names, emails): refuses
/// [invisible formatting characters](is_invisible_format), naming the field and the code
/// point, and returns the text in Unicode Normalization Form C, so that a name typed with a
/// combining accent and one typed precomposed are the same name.
///
/// Refused rather than stripped: a name that held one was either pasted from somewhere that
/// adds them, which the user can fix, or crafted, which they should not get away with.
pub fn normalize_name(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if let Some(c) = raw.chars().find(|&c| is_invisible_format(c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "must not contain invisible or text-direction characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(raw.nfc().collect())
}

/// Rejects control characters other than ordinary whitespace: they break logs, terminals and
/// CSV exports, and no legitimate prompt or brand needs them.
fn check_text(
    field: &'static str,
    s: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<(), ValidationError> {
    if s.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let count = s.chars().count();
    if count > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters (got {count})"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !s.chars().all(allowed) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal, $parse:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates (and normalises) `value`.
            pub fn parse(value: impl AsRef<str>) -> Result<Self, ValidationError> {
                let parse: fn(&str) -> Result<String, ValidationError> = $parse;
                parse(value.as_ref()).map(Self)
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// An email address, trimmed and lower-cased so that uniqueness is case-insensitive.
    ///
    /// The check is deliberately structural (one `@`, a non-empty local part, a dotted domain
    /// without spaces, at most 254 characters per RFC 5321): deliverability is proven by sending
    /// mail, not by a regex.
    ///
    /// ```
    /// use echo_core::model::Email;
    /// assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
    /// assert!(Email::parse("not-an-email").is_err());
    /// ```
    Email,
    "email",
    |raw| {
        let s = normalize_name("email", &raw.trim().to_lowercase())?;
        let bad = |reason: &str| Err(ValidationError::new("email", reason));
        if s.is_empty() {
            return bad("must not be empty");
        }
        if s.chars().count() > 254 {
            return bad("must be at most 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return bad("must contain '@'");
        };
        if local.is_empty() || local.chars().count() > 64 {
            return bad("must have a local part of 1 to 64 characters");
        }
        if domain.contains('@') {
            return bad("must contain exactly one '@'");
        }
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if !labels_ok {
            return bad("must have a domain like example.com");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\')) {
            return bad("must not contain spaces or special characters");
        }
        Ok(s)
    }
);

string_newtype!(
    /// A brand or alias name: 1 to 200 characters, trimmed, NFC-normalised, no control or
    /// [invisible formatting](is_invisible_format) characters.
    ///
    /// ```
    /// use echo_core::model::BrandName;
    /// assert_eq!(BrandName::parse("  Monday.com ").unwrap().as_str(), "Monday.com");
    /// assert!(BrandName::parse("   ").is_err());
    /// // A combining accent is composed; a right-to-left override is refused.
    /// assert_eq!(BrandName::parse("Nestle\u{301}").unwrap().as_str(), "Nestl\u{e9}");
    /// assert!(BrandName::parse("Acme\u{202E}moc").is_err());
    /// ```
    BrandName,
    "brand name",
    |raw| {
        let s = normalize_name("brand name", raw.trim())?;
        check_text("brand name", &s, BrandName::MAX_CHARS, false)?;
        Ok(s)
    }
);

impl BrandName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 200;
}

string_newtype!(
    /// The prompt sent to the providers: 1 to 10,000 characters; line breaks and tabs allowed,
    /// other control characters not. Kept exactly as given (not trimmed), since whitespace is
    /// part of what the model sees.
    ///
    /// ```
    /// use echo_core::model::Prompt;
    /// assert!(Prompt::parse("Best CRM for startups?").is_ok());
    /// assert!(Prompt::parse("").is_err());
    /// ```
    Prompt,
    "prompt",
    |raw| {
        check_text("prompt", raw, Prompt::MAX_CHARS, true)?;
        Ok(raw.to_owned())
    }
);

impl Prompt {
    /// Longest accepted prompt, in characters.
    pub const MAX_CHARS: usize = 10_000;
}

string_newtype!(
    /// A short human label (API-key name, model name, job kind): 1 to 100 characters, trimmed,
    /// NFC-normalised, no control or [invisible formatting](is_invisible_format) characters.
    Label,
    "label",
    |raw| {
        let s = normalize_name("label", raw.trim())?;
        check_text("label", &s, 100, false)?;
        Ok(s)
    }
);

/// How many times the prompt is sent to each provider in one run: 1 to [`Iterations::MAX`].
///
/// ```
/// use echo_core::model::Iterations;
/// assert_eq!(Iterations::new(50).unwrap().get(), 50);
/// assert!(Iterations::new(0).is_err());
/// assert!(Iterations::new(1_000_000).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Iterations(u32);

impl Iterations {
    /// Upper bound per provider per run; beyond it a run is a bulk job, not an experiment.
    pub const MAX: u32 = 10_000;

    /// The count used when none is given: 50, enough for a ±14-point interval at worst.
    pub const DEFAULT: Iterations = Iterations(50);

    /// Validates a count.
    pub fn new(n: u32) -> Result<Self, ValidationError> {
        if n == 0 {
            Err(ValidationError::new("iterations", "must be at least 1"))
        } else if n > Self::MAX {
            Err(ValidationError::new(
                "iterations",
                format!("must be at most {} (got {n})", Self::MAX),
            ))
        } else {
            Ok(Self(n))
        }
    }

    /// The count.
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Iterations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

/// Adaptive sampling's target for one experiment: stop a batch run once the Wilson 95%
/// interval of the target's visibility has a half-width of at most this (`0.05` is ±5
/// points), from [`Precision::MIN`] to [`Precision::MAX`].
///
/// Bounded below because a narrower target is met only near the iteration cap, so it would
/// spend like no target at all while promising otherwise; bounded above because ±50 points
/// says nothing about a rate.
///
/// ```
/// use echo_core::model::Precision;
/// assert_eq!(Precision::new(0.05).unwrap().get(), 0.05);
/// assert!(Precision::new(0.0).is_err());
/// assert!(Precision::new(0.6).is_err());
/// assert!(Precision::new(f64::NAN).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Precision(f64);

impl Precision {
    /// The narrowest half-width accepted: ±1 point.
    pub const MIN: f64 = 0.01;
    /// The widest half-width accepted: ±50 points.
    pub const MAX: f64 = 0.5;

    /// Validates a half-width; the error names the field `precision`.
    pub fn new(half_width: f64) -> Result<Self, ValidationError> {
        // Written so that NaN fails too.
        if (Self::MIN..=Self::MAX).contains(&half_width) {
            Ok(Self(half_width))
        } else {
            Err(ValidationError::new(
                "precision",
                format!(
                    "must be a half-width from {} to {} (e.g. 0.05 for \u{b1}5 points)",
                    Self::MIN,
                    Self::MAX
                ),
            ))
        }
    }

    /// The half-width, a fraction (not percentage points).
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Self::new(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_cases() {
        for ok in ["a@b.co", "First.Last+tag@sub.example.org", "ÿ@exämple.de"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.de", "a@.co", "a@b..co", "a@-b.co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(long).is_err());
    }

    #[test]
    fn prompt_limits() {
        assert!(Prompt::parse("x".repeat(Prompt::MAX_CHARS)).is_ok());
        assert!(Prompt::parse("x".repeat(Prompt::MAX_CHARS + 1)).is_err());
        assert!(Prompt::parse("line\nbreak\tok").is_ok());
        assert!(Prompt::parse("bell\u{7}").is_err());
        assert!(Prompt::parse(" \n ").is_err());
    }

    /// Security review #16 item 10: bidi overrides and zero-width characters passed as
    /// ordinary text, and canonically equal names in different forms counted as two.
    #[test]
    fn invisible_characters_are_refused_naming_the_field() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}',
            '\u{2060}', '\u{FEFF}',
        ] {
            let brand = BrandName::parse(format!("Hub{c}Spot")).unwrap_err();
            assert_eq!(brand.field, "brand name", "U+{:04X}", u32::from(c));
            assert!(
                brand.reason.contains(&format!("U+{:04X}", u32::from(c))),
                "{brand}"
            );
            assert_eq!(
                Label::parse(format!("ci{c}key")).unwrap_err().field,
                "label"
            );
            assert_eq!(
                Email::parse(format!("ada{c}@example.com"))
                    .unwrap_err()
                    .field,
                "email"
            );
        }
        // Serde goes through the same check.
        assert!(serde_json::from_str::<BrandName>("\"Acme\\u202e\"").is_err());
    }

    #[test]
    fn names_are_nfc_normalised() {
        let decomposed = BrandName::parse("Nestle\u{301}").unwrap();
        assert_eq!(decomposed, BrandName::parse("Nestl\u{e9}").unwrap());
        assert_eq!(decomposed.as_str().chars().count(), 6);
        assert_eq!(
            Label::parse("cafe\u{301} key").unwrap().as_str(),
            "caf\u{e9} key"
        );
        assert_eq!(
            Email::parse("Jose\u{301}@Example.com").unwrap(),
            Email::parse("jos\u{e9}@example.com").unwrap()
        );
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Iterations>("0").is_err());
        assert!(serde_json::from_str::<Precision>("0.005").is_err());
        assert!(serde_json::from_str::<Precision>("0.51").is_err());
        assert_eq!(
            serde_json::from_str::<Precision>("0.5").unwrap().get(),
            Precision::MAX
        );
        assert!(serde_json::from_str::<BrandName>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<Email>("\"A@B.CO\"")
                .unwrap()
                .as_str(),
            "a@b.co"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = Email::parse(&s);
            let _ = BrandName::parse(&s);
            let _ = Prompt::parse(&s);
            let _ = Label::parse(&s);
        }

        #[test]
        fn validated_names_hold_no_invisible_characters_and_are_nfc(
            parts in proptest::collection::vec(
                prop_oneof![
                    "\\PC{0,6}",
                    "[\u{202A}-\u{202E}\u{2066}-\u{2069}\u{200B}-\u{200F}\u{2060}\u{FEFF}\u{061C}]",
                    "[a-zA-Z\u{300}-\u{36F}\u{e0}-\u{ff}]{0,4}",
                ],
                0..6,
            )
        ) {
            use unicode_normalization::is_nfc;
            let s: String = parts.concat();
            let checks: [(&str, Option<String>); 3] = [
                ("brand", BrandName::parse(&s).ok().map(BrandName::into_inner)),
                ("label", Label::parse(&s).ok().map(Label::into_inner)),
                ("email", Email::parse(format!("{s}@example.com")).ok().map(Email::into_inner)),
            ];
            for (what, valid) in checks {
                if let Some(v) = valid {
                    prop_assert!(!v.chars().any(is_invisible_format), "{}: {:?}", what, v);
                    prop_assert!(is_nfc(&v), "{}: {:?} not NFC", what, v);
                }
            }
        }

        #[test]
        fn email_normalisation_is_idempotent(s in "[a-zA-Z0-9._+-]{1,20}@[a-zA-Z0-9-]{1,20}\\.[a-zA-Z]{2,6}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
        }
    }
}
