//! The properties every parser of outside input must keep, written once and run two ways: by
//! the libFuzzer targets in `fuzz_targets/` and by the property tests in `tests/props.rs`.
//!
//! Each `check_*` takes raw bytes, decodes them the way the real caller receives them (text is
//! decoded lossily, since every caller gets a `&str`), calls the parser and asserts its
//! contract. A failed assertion or a panic inside the parser is a bug.

use std::sync::OnceLock;

use echo_core::analysis::BrandMatcher;
use echo_core::auth::{ApiKey, KeyEnvironment, KeyFormatError, PresentedKey};
use echo_core::model::{Brand, BrandName, Email, Label, MatchMode, Prompt, Timestamp};
use echo_core::privacy::{RedactionMode, Redactor};
use echo_core::runner::CronSchedule;
use echo_server_example::commands::parse_brand;
use echo_server_example::config::ServerConfig;

mod provider;

pub use provider::check_provider_response;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn valid_key() -> &'static PresentedKey {
    static KEY: OnceLock<PresentedKey> = OnceLock::new();
    KEY.get_or_init(|| match ApiKey::generate(KeyEnvironment::Test) {
        Ok(key) => key,
        Err(e) => panic!("no OS randomness for the fixture key: {e}"),
    })
}

/// `ApiKey::parse`: an accepted key is 76 ASCII characters whose public id and secret are
/// slices of it; an error never echoes the input; changing any one character of a valid key
/// is always caught (CRC-32 detects every burst of up to 32 bits).
pub fn check_api_key(data: &[u8]) {
    let input = text(data);
    match ApiKey::parse(&input) {
        Ok(parsed) => {
            assert_eq!(input.len(), 76);
            assert!(input.is_ascii());
            assert!(input.starts_with(parsed.public_id()));
            assert_eq!(parsed.secret().len(), 43);
            assert!(input[parsed.public_id().len()..].starts_with(parsed.secret()));
            assert_eq!(
                KeyEnvironment::of_public_id(&input),
                Some(parsed.environment())
            );
            assert!(!format!("{parsed:?}").contains(parsed.secret()));
            assert!(ApiKey::display_start(parsed.public_id()).len() <= parsed.public_id().len());
        }
        Err(e) => {
            // The message is one of the fixed texts, so it cannot carry any of the input.
            let fixed = [
                KeyFormatError::Length,
                KeyFormatError::Prefix,
                KeyFormatError::Alphabet,
                KeyFormatError::Checksum,
            ]
            .map(|k| k.to_string());
            assert!(fixed.contains(&e.to_string()), "{e} is not a fixed message");
        }
    }
    // One substitution in a valid key.
    if let [pos, byte, ..] = data {
        let key = valid_key().expose();
        let pos = usize::from(*pos) % key.len();
        let mut bytes = key.as_bytes().to_vec();
        if bytes[pos] != *byte {
            bytes[pos] = *byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            let result = ApiKey::parse(&changed);
            assert!(result.is_err(), "a changed key was accepted");
            if pos >= 11 && !byte.is_ascii_alphanumeric() && changed.len() == key.len() {
                assert!(matches!(result, Err(KeyFormatError::Alphabet)));
            }
        }
    }
}

/// The CLI's brand spec and the validated strings: accepted values are normalised (parsing the
/// result again gives the same value), and a brand written back as a spec parses to itself.
pub fn check_brand_spec(data: &[u8]) {
    let input = text(data);
    if let Ok(brand) = parse_brand(&input) {
        assert!(brand.validate().is_ok());
        for name in std::iter::once(&brand.name).chain(&brand.aliases) {
            assert!(!name.as_str().is_empty());
            assert_eq!(name.as_str(), name.as_str().trim());
            assert_eq!(BrandName::parse(name.as_str()).as_ref(), Ok(name));
        }
        let plain = |n: &BrandName| !n.as_str().contains(['=', ',', ';']);
        if plain(&brand.name) && brand.aliases.iter().all(plain) {
            let aliases: Vec<&str> = brand.aliases.iter().map(BrandName::as_str).collect();
            let spec = format!(
                "{}={};match={}",
                brand.name.as_str(),
                aliases.join(","),
                brand.match_mode
            );
            assert_eq!(parse_brand(&spec).as_ref(), Ok(&brand), "spec {spec:?}");
        }
    }
    macro_rules! normalised {
        ($($ty:ty),+) => {$(
            if let Ok(v) = <$ty>::parse(&input) {
                assert_eq!(<$ty>::parse(v.as_str()).as_ref(), Ok(&v));
            }
        )+};
    }
    normalised!(BrandName, Email, Label, Prompt);
    if let Ok(email) = Email::parse(&input) {
        assert_eq!(email.as_str(), email.as_str().to_lowercase());
        assert_eq!(email.as_str().matches('@').count(), 1);
    }
    if let Ok(mode) = input.parse::<MatchMode>() {
        assert_eq!(mode.as_str(), input);
    }
}

/// `CronSchedule::parse`: an accepted expression is kept trimmed, parses again, and its next
/// occurrence after any instant (taken from the input) is strictly later, whole minutes.
pub fn check_cron(data: &[u8]) {
    let (instant, expr) = data.split_at(data.len().min(8));
    let input = text(expr);
    let Ok(schedule) = CronSchedule::parse(&input) else {
        return;
    };
    assert_eq!(schedule.as_str(), input.trim());
    assert!(CronSchedule::parse(schedule.as_str()).is_ok());
    let mut raw = [0u8; 8];
    raw[..instant.len()].copy_from_slice(instant);
    // Within ±2^52 µs (about ±140 years) of 1970, where schedules are evaluated.
    let micros = i64::from_le_bytes(raw) >> 11;
    let Some(t) = Timestamp::from_unix_micros(micros) else {
        return;
    };
    if let Some(next) = schedule.next_after(t) {
        assert!(next > t);
        assert_eq!(next.unix_micros() % 60_000_000, 0, "not a whole minute");
        if let Some(after) = schedule.next_after(next) {
            assert!(after > next);
        }
    }
}

/// `BrandMatcher::extract`: never panics; every span is on char boundaries inside the text,
/// in order, and agrees with the counts; ranks are 1..=k in order; list positions are ≥ 1;
/// sentence indices point into the sentences.
///
/// Input: brand specs, one per line, up to a line `---`; the answer text after it.
pub fn check_extract(data: &[u8]) {
    let input = text(data);
    let (specs, answer) = input.split_once("\n---\n").unwrap_or(("Acme", &input));
    let mut brands: Vec<Brand> = specs.lines().filter_map(|s| parse_brand(s).ok()).collect();
    if brands.is_empty() {
        return;
    }
    let target = brands.remove(0);
    let Ok(matcher) = BrandMatcher::new(&target, &brands) else {
        return;
    };
    let found = matcher.extract(answer);
    for s in &found.sentences {
        assert!(s.start <= s.end && s.end <= answer.len());
        assert!(answer.is_char_boundary(s.start) && answer.is_char_boundary(s.end));
    }
    let mut last_first = 0;
    for (i, hit) in found.brands.iter().enumerate() {
        assert_eq!(hit.rank as usize, i + 1, "ranks are 1..=k without gaps");
        assert!(hit.count >= 1);
        assert_eq!(hit.count as usize, hit.spans.len());
        assert_eq!(Some(hit.first_offset), hit.spans.first().map(|s| s.start));
        assert!(
            hit.first_offset >= last_first,
            "rank follows first appearance"
        );
        last_first = hit.first_offset;
        if let Some(p) = hit.list_position {
            assert!(p >= 1);
        }
        assert_eq!(hit.is_target, hit.brand == target.name.as_str());
        let brand = std::iter::once(&target)
            .chain(&brands)
            .find(|b| b.name.as_str() == hit.brand);
        assert!(brand.is_some(), "{} is not a tracked brand", hit.brand);
        let mut prev_end = 0;
        for span in &hit.spans {
            assert!(span.start < span.end && span.end <= answer.len());
            assert!(answer.is_char_boundary(span.start) && answer.is_char_boundary(span.end));
            assert!(
                span.start >= prev_end,
                "spans of one brand overlap or are out of order"
            );
            prev_end = span.end;
            if let Some(i) = span.sentence {
                assert!((i as usize) < found.sentences.len());
            }
        }
    }
    assert_eq!(found.to_mentions().len(), found.brands.len());
}

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| match Redactor::new() {
        Ok(r) => r,
        Err(e) => panic!("built-in patterns must compile: {e}"),
    })
}

/// The redactor: never panics, leaves text without findings untouched, reports what it
/// replaced, and is idempotent (its tests state this contract).
pub fn check_redact(data: &[u8]) {
    let input = text(data);
    let redactor = redactor();
    let (out, report) = redactor.redact_with_report(&input);
    if report.total() == 0 {
        assert_eq!(out, input);
    } else {
        assert_ne!(out, input);
    }
    let placeholders = ["[EMAIL]", "[PHONE]", "[IBAN]", "[CARD]", "[IP]"]
        .iter()
        .map(|p| out.matches(p).count() - input.matches(p).count().min(out.matches(p).count()))
        .sum::<usize>();
    assert!(placeholders <= report.total());
    assert_eq!(redactor.redact(&out), out, "not idempotent");
    assert_eq!(redactor.apply(RedactionMode::Off, &input), input);
    assert_eq!(redactor.apply(RedactionMode::Redact, &input), out);
}

/// The TOML configuration: any file either parses or is an error, and every check on a parsed
/// configuration returns rather than panics.
pub fn check_config_toml(data: &[u8]) {
    let input = text(data);
    let Ok(config) = ServerConfig::from_toml(&input) else {
        return;
    };
    let valid = config.validate();
    let _ = config.listen_addr();
    let seed = config.privacy.signing_seed();
    for tier in echo_core::model::PricingTier::ALL {
        let _ = config.privacy.retention_days(*tier);
    }
    let _ = config.rate_limits.to_config();
    if valid.is_ok() {
        assert!(config.listen_addr().is_ok());
        assert!(seed.is_ok());
    }
}
