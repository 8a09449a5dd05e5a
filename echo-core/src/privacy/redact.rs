//! Detection and replacement of personal data in answer text.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::net::Ipv6Addr;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Whether answers are redacted before they are stored.
///
/// Serialized as `"off"` or `"redact"`; the default is [`RedactionMode::Off`], so stored answers
/// stay byte-identical to what the provider returned unless an operator opts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    /// Store answers as received.
    #[default]
    Off,
    /// Replace detected personal data with placeholders before storing.
    Redact,
}

/// How many items of each kind one call replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RedactionReport {
    /// Email addresses, replaced by `[EMAIL]`.
    pub emails: usize,
    /// Phone numbers, replaced by `[PHONE]`.
    pub phones: usize,
    /// IBANs, replaced by `[IBAN]`.
    pub ibans: usize,
    /// Payment-card numbers, replaced by `[CARD]`.
    pub cards: usize,
    /// IPv4 and IPv6 addresses, replaced by `[IP]`.
    pub ips: usize,
}

impl RedactionReport {
    /// Items replaced, all kinds together.
    pub fn total(&self) -> usize {
        self.emails + self.phones + self.ibans + self.cards + self.ips
    }

    fn count(&mut self, kind: Kind) {
        let n = match kind {
            Kind::Email => &mut self.emails,
            Kind::Iban => &mut self.ibans,
            Kind::Card => &mut self.cards,
            Kind::Ip => &mut self.ips,
            Kind::Phone => &mut self.phones,
        };
        *n += 1;
    }
}

/// Building a [`Redactor`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedactorError {
    /// One of the built-in patterns did not compile (a bug in Echo, not in the input).
    #[error("redaction pattern `{name}` does not compile")]
    Pattern {
        /// Which pattern.
        name: &'static str,
        /// The regex engine's error.
        #[source]
        source: regex::Error,
    },
}

/// Replaces personal data in free text with typed placeholders.
///
/// Build one at start-up and share it: construction compiles the patterns, redaction only runs
/// them. Brand extraction must run on the **original** answer; redaction belongs at the storage
/// boundary, where it is switched on by [`RedactionMode::Redact`].
///
/// # What is caught
/// - `[EMAIL]`: `local@domain.tld` with Unicode letters, plus tags and subdomains, any case.
/// - `[PHONE]`: international numbers (`+44 20 7946 0958`, `+1 (415) 555-2671`,
///   `+4915112345678`; 8–15 digits, exactly 11 after `+1`); North American `415-555-2671`,
///   `(415) 555-2671`, `415.555.2671`, `1-800-555-0199` (area code and exchange start 2–9);
///   national numbers with a trunk `0` (`020 7946 0958`, `01 42 68 53 00`, `030 901820`;
///   9–11 digits, one kind of separator throughout; or 10–11 digits written together).
/// - `[IBAN]`: uppercase, optionally in groups of four, for a country of the ISO 13616 registry,
///   of that country's length, with a valid mod-97 check.
/// - `[CARD]`: 13–19 digits with a payment network's prefix (2221–2720, 30, 34–39, 4, 5, 6),
///   written together, in groups of four (last group 1–4)
///   or as Amex/Diners `4-6-5`/`4-6-4`, one kind of separator (space or `-`), Luhn-valid.
/// - `[IP]`: dotted-quad IPv4 without leading zeros; IPv6 in any form the standard library
///   parses (`2001:db8::1`, `::ffff:10.0.0.1`), containing at least one decimal digit.
///
/// An item must stand apart: a letter, digit or `_` directly before or after it, or a `.`, `-`,
/// `:`, `/` or `,` joining it to another digit, keeps it (so `v1.2.3.4`, `12-415-555-2671` and
/// the middle of a longer number are left alone).
///
/// # What is not caught (honest limits)
/// - Names, postal addresses, dates of birth, national ids, passwords and API keys.
/// - Emails without a dot in the domain (`root@localhost`) or obfuscated (`ada at example.com`).
/// - Phone numbers without separators unless international or trunk-prefixed (`4155552671`),
///   seven-digit local numbers (`555-2671`), vanity numbers (`1-800-FLOWERS`), `00` instead of `+`.
/// - IBANs in lowercase or split other than by single spaces; card numbers split other than by
///   single spaces or dashes, or glued to other digits.
/// - IPv6 addresses written without any decimal digit (`fe80::abcd`), with a zone (`%eth0`), or
///   glued to a word.
///
/// Look-alikes can still be replaced: a four-part version `1.2.3.4` reads as an IPv4 address,
/// three space-separated numbers shaped `300 400 5000` as a phone number, a C++ path like
/// `A::B1` as an IPv6 address. International numbers may take a following number with them
/// (`+44 20 7946 0958 24` loses the `24`).
///
/// ```
/// use echo_core::privacy::Redactor;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redactor = Redactor::new()?;
/// let (text, report) = redactor.redact_with_report("Mail ada@example.com or call +44 20 7946 0958.");
/// assert_eq!(text, "Mail [EMAIL] or call [PHONE].");
/// assert_eq!((report.emails, report.phones), (1, 1));
///
/// // Text without personal data is returned as is, without a copy.
/// let text = redactor.redact("HubSpot (hubspot.com) from $20/month, 2024, v3.1.4");
/// assert!(matches!(text, std::borrow::Cow::Borrowed(_)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Redactor {
    email: Regex,
    iban: Regex,
    card: Regex,
    ipv4: Regex,
    ipv6: Regex,
    phone_intl: Regex,
    phone_nanp: Regex,
    phone_trunk: Regex,
}

/// Kinds of item, in the order that breaks ties between overlapping candidates of equal extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Email,
    Iban,
    Card,
    Ip,
    Phone,
}

impl Kind {
    fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Iban => "[IBAN]",
            Kind::Card => "[CARD]",
            Kind::Ip => "[IP]",
            Kind::Phone => "[PHONE]",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

/// Where the search resumes after a rejected candidate.
#[derive(Clone, Copy)]
enum Resume {
    /// One character after its start: a valid item may overlap a rejected longer candidate.
    NextChar,
    /// After its end: the check already tried every item the candidate could contain.
    End,
}

const EMAIL: &str =
    r"[\p{L}\p{N}._%+\-]+@(?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?\.)+\p{L}{2,63}";
const IBAN: &str = r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}";
// Runs of digit groups; the check picks the groups that form a card number.
const CARD: &str = r"[0-9]{1,19}(?:[ \-][0-9]{1,19}){0,7}";
const IPV4: &str = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}";
// Anything hex-and-colon shaped; the standard library's parser decides.
const IPV6: &str = r"[0-9A-Fa-f.]{0,40}:[0-9A-Fa-f:.]{1,45}";
const PHONE_INTL: &str = r"\+[1-9](?:[0-9]|[ .\-]?\([0-9]{1,4}\)|[ .\-][0-9]){6,18}";
const PHONE_NANP: &str =
    r"(?:1[ .\-])?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}";
const PHONE_TRUNK: &str =
    r"(?:\(0[1-9][0-9]{0,3}\)|0[1-9][0-9]{0,3})(?:[ .\-][0-9]{2,8}){1,4}|0[1-9][0-9]{8,9}";

fn compile(name: &'static str, pattern: &str) -> Result<Regex, RedactorError> {
    Regex::new(pattern).map_err(|source| RedactorError::Pattern { name, source })
}

impl Redactor {
    /// Compiles the patterns.
    ///
    /// # Errors
    /// [`RedactorError::Pattern`] if a built-in pattern does not compile, which the tests rule out.
    pub fn new() -> Result<Self, RedactorError> {
        Ok(Self {
            email: compile("email", EMAIL)?,
            iban: compile("iban", IBAN)?,
            card: compile("card", CARD)?,
            ipv4: compile("ipv4", IPV4)?,
            ipv6: compile("ipv6", IPV6)?,
            phone_intl: compile("phone_intl", PHONE_INTL)?,
            phone_nanp: compile("phone_nanp", PHONE_NANP)?,
            phone_trunk: compile("phone_trunk", PHONE_TRUNK)?,
        })
    }

    /// `text` with personal data replaced; borrowed unchanged when there is none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with_report(text).0
    }

    /// [`Redactor::redact`] when `mode` is [`RedactionMode::Redact`], `text` unchanged otherwise.
    pub fn apply<'a>(&self, mode: RedactionMode, text: &'a str) -> Cow<'a, str> {
        match mode {
            RedactionMode::Off => Cow::Borrowed(text),
            RedactionMode::Redact => self.redact(text),
        }
    }

    /// [`Redactor::redact`], also counting what was replaced.
    ///
    /// The result is a fixed point: redacting it again changes nothing.
    pub fn redact_with_report<'a>(&self, text: &'a str) -> (Cow<'a, str>, RedactionReport) {
        let mut report = RedactionReport::default();
        let Some(mut current) = self.pass(text, &mut report) else {
            return (Cow::Borrowed(text), report);
        };
        // A replacement can free a neighbour that a boundary rule held back (a phone number glued
        // to an email address), so repeat until nothing changes. This ends: every replacement
        // removes at least one digit, `@` or `:`, and placeholders contain none.
        while let Some(next) = self.pass(&current, &mut report) {
            current = next;
        }
        (Cow::Owned(current), report)
    }

    /// One left-to-right replacement of every detected item; `None` when there is none.
    fn pass(&self, text: &str, report: &mut RedactionReport) -> Option<String> {
        let mut spans = Vec::new();
        scan(
            &self.email,
            text,
            Kind::Email,
            Resume::End,
            &mut spans,
            |s, e| Some((s, e)),
        );
        scan(
            &self.iban,
            text,
            Kind::Iban,
            Resume::NextChar,
            &mut spans,
            |s, e| iban_span(text, s, e),
        );
        scan(
            &self.card,
            text,
            Kind::Card,
            Resume::End,
            &mut spans,
            |s, e| card_span(text, s, e),
        );
        scan(
            &self.ipv4,
            text,
            Kind::Ip,
            Resume::NextChar,
            &mut spans,
            |s, e| ipv4_span(text, s, e),
        );
        scan(
            &self.ipv6,
            text,
            Kind::Ip,
            Resume::NextChar,
            &mut spans,
            |s, e| ipv6_span(text, s, e),
        );
        scan(
            &self.phone_intl,
            text,
            Kind::Phone,
            Resume::NextChar,
            &mut spans,
            |s, e| intl_phone_span(text, s, e),
        );
        scan(
            &self.phone_nanp,
            text,
            Kind::Phone,
            Resume::NextChar,
            &mut spans,
            |s, e| (left_ok(text, s) && right_ok(text, e)).then_some((s, e)),
        );
        scan(
            &self.phone_trunk,
            text,
            Kind::Phone,
            Resume::NextChar,
            &mut spans,
            |s, e| trunk_phone_span(text, s, e),
        );
        if spans.is_empty() {
            return None;
        }
        // Leftmost first, then longest: an international number beats the national number inside
        // it, an email beats the digits in its local part.
        spans.sort_by_key(|s| (s.start, Reverse(s.end), s.kind));
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for span in spans {
            if span.start < last {
                continue;
            }
            out.push_str(&text[last..span.start]);
            out.push_str(span.kind.placeholder());
            report.count(span.kind);
            last = span.end;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// Runs `re` over `text`; `check` turns a candidate `(start, end)` into the span to replace.
fn scan(
    re: &Regex,
    text: &str,
    kind: Kind,
    resume: Resume,
    spans: &mut Vec<Span>,
    check: impl Fn(usize, usize) -> Option<(usize, usize)>,
) {
    let mut pos = 0;
    while pos <= text.len() {
        let Some(m) = re.find_at(text, pos) else {
            break;
        };
        match check(m.start(), m.end()) {
            Some((start, end)) if end > start => {
                spans.push(Span { start, end, kind });
                pos = end;
            }
            _ => {
                pos = match resume {
                    Resume::End if m.end() > m.start() => m.end(),
                    _ => m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8),
                };
            }
        }
    }
}

/// Characters that join two numbers into one token (`1.2`, `1-2`, `1:2`, `1/2`, `1,2`).
const JOINERS: [char; 5] = ['.', '-', ':', '/', ','];

/// No word or number continues to the left of `start`.
fn left_ok(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        None => true,
        Some(c) if c.is_alphanumeric() || c == '_' || c == '+' => false,
        Some(c) if JOINERS.contains(&c) => !before.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => true,
    }
}

/// No word or number continues to the right of `end`.
fn right_ok(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    match after.next() {
        None => true,
        Some(c) if c.is_alphanumeric() || c == '_' || c == '@' => false,
        Some(c) if JOINERS.contains(&c) => !after.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => true,
    }
}

fn iban_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if !left_ok(text, start) {
        return None;
    }
    let candidate = &text[start..end];
    let len = iban_length(candidate.get(..2)?)?;
    // The pattern may run on into a following word; the country fixes where the IBAN ends.
    let mut compact = String::with_capacity(len);
    let mut iban_end = None;
    for (i, c) in candidate.char_indices() {
        if c == ' ' {
            continue;
        }
        compact.push(c);
        if compact.len() == len {
            iban_end = Some(start + i + c.len_utf8());
            break;
        }
    }
    let iban_end = iban_end?;
    (right_ok(text, iban_end) && iban_checksum_ok(&compact)).then_some((start, iban_end))
}

/// ISO 7064 mod 97-10 over the IBAN with its first four characters moved to the end.
fn iban_checksum_ok(compact: &str) -> bool {
    let Some((head, tail)) = compact.split_at_checked(4) else {
        return false;
    };
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        rem = match c {
            '0'..='9' => (rem * 10 + (c as u32 - '0' as u32)) % 97,
            'A'..='Z' => (rem * 100 + (c as u32 - 'A' as u32 + 10)) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// IBAN length by country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    let len = match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" | "SD" | "FK" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" | "MN" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" | "SO" | "OM" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" | "LY" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" | "HN" | "NI" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" | "YE" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    };
    Some(len)
}

fn card_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    // Digit groups inside the run and the separator after each (the pattern allows one).
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = start;
    while i < end {
        let g = i;
        while i < end && bytes[i].is_ascii_digit() {
            i += 1;
        }
        groups.push((g, i));
        i += 1;
    }
    for first in 0..groups.len() {
        let (g_start, _) = groups[first];
        if !issuer_prefix_ok(&bytes[g_start..]) || !left_ok(text, g_start) {
            continue;
        }
        for last in (first..groups.len()).rev() {
            let chosen = &groups[first..=last];
            let g_end = chosen[chosen.len() - 1].1;
            let mut separators = chosen[..chosen.len() - 1].iter().map(|g| bytes[g.1]);
            let first_separator = separators.next();
            let same_separator = separators.all(|b| Some(b) == first_separator);
            if same_separator
                && card_shape(chosen)
                && right_ok(text, g_end)
                && luhn_ok(&bytes[g_start..g_end])
            {
                return Some((g_start, g_end));
            }
        }
    }
    None
}

/// The number starts like a card of a payment network: Mastercard's 2221–2720, Amex, Diners
/// and JCB's 30 and 34–39, and every 4, 5 and 6. This keeps `2023 2024 2025 2026` (years) and
/// account or tracking numbers starting 0, 1, 7, 8 or 9.
fn issuer_prefix_ok(digits: &[u8]) -> bool {
    match digits {
        [b'2', ..] => digits
            .get(..4)
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| (2221..=2720).contains(&p)),
        [b'3', second, ..] => matches!(second, b'0' | b'4'..=b'9'),
        [b'4' | b'5' | b'6', ..] => true,
        _ => false,
    }
}

/// Groups as cards are printed: one run, fours with a shorter last group, or Amex/Diners 4-6-x.
fn card_shape(groups: &[(usize, usize)]) -> bool {
    let lens: Vec<usize> = groups.iter().map(|(s, e)| e - s).collect();
    let total: usize = lens.iter().sum();
    if !(13..=19).contains(&total) {
        return false;
    }
    match lens.as_slice() {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// Luhn check over the digits in `s` (separators are skipped).
fn luhn_ok(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let digits = s.iter().rev().filter(|b| b.is_ascii_digit());
    for (i, b) in digits.enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

fn ipv4_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let valid = text[start..end]
        .split('.')
        .all(|o| (o.len() == 1 || !o.starts_with('0')) && o.parse::<u8>().is_ok());
    (valid && left_ok(text, start) && (right_ok(text, end) || port_follows(text, end)))
        .then_some((start, end))
}

/// `:8080` after an address: a port, not a further number glued to it.
fn port_follows(text: &str, end: usize) -> bool {
    let Some(rest) = text[end..].strip_prefix(':') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (1..=5).contains(&digits) && right_ok(text, end + 1 + digits)
}

fn ipv6_span(text: &str, mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    // `ip:2001:db8::1`: the candidate starts at the key's colon.
    if text[start..end].starts_with(':') && !text[start..end].starts_with("::") {
        start += 1;
    }
    // A sentence's full stop or a label's colon may follow the address.
    while Ipv6Addr::from_str(&text[start..end]).is_err() {
        if end > start && matches!(text.as_bytes()[end - 1], b'.' | b':') {
            end -= 1;
        } else {
            return None;
        }
    }
    let candidate = &text[start..end];
    let ok = candidate.bytes().filter(|&b| b == b':').count() >= 2
        && candidate.bytes().any(|b| b.is_ascii_digit())
        && left_ok(text, start)
        && right_ok(text, end);
    ok.then_some((start, end))
}

/// Where a phone-number candidate may end: before each separator that follows a digit or `)`,
/// and at its end; never inside a run of digits. Longest first.
fn phone_cuts(text: &str, start: usize, end: usize) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    let inner = (start + 1..end)
        .filter(move |&i| {
            matches!(bytes[i], b' ' | b'.' | b'-' | b'(')
                && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b')')
        })
        .collect::<Vec<_>>();
    std::iter::once(end).chain(inner.into_iter().rev())
}

fn digit_count(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

fn intl_phone_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if !left_ok(text, start) {
        return None;
    }
    // Every country code starting with 1 is the North American plan's: 1 + ten digits.
    let nanp = text[start..].starts_with("+1");
    phone_cuts(text, start, end)
        .find(|&cut| {
            let number = &text[start..cut];
            let digits = digit_count(number);
            let len_ok = if nanp {
                digits == 11
            } else {
                (8..=15).contains(&digits)
            };
            len_ok
                && number.matches('(').count() == number.matches(')').count()
                && right_ok(text, cut)
        })
        .map(|cut| (start, cut))
}

fn trunk_phone_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if !left_ok(text, start) {
        return None;
    }
    phone_cuts(text, start, end)
        .find(|&cut| {
            let number = &text[start..cut];
            let mut separators = number.bytes().filter(|b| matches!(b, b' ' | b'.' | b'-'));
            let first = separators.next();
            let consistent = separators.all(|b| Some(b) == first);
            let digits = digit_count(number);
            let len_ok = if first.is_none() {
                (10..=11).contains(&digits)
            } else {
                (9..=11).contains(&digits)
            };
            consistent && len_ok && right_ok(text, cut)
        })
        .map(|cut| (start, cut))
}

#[cfg(test)]
mod tests;
