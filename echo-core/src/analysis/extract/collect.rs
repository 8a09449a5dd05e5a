//! From raw automaton hits to accepted matches: case folding and the map back to original
//! offsets, the word-boundary and URL rules, and leftmost-longest selection. Apart from the scan
//! so that the rules can be read (and tested against the brute-force oracle) without the
//! automaton's tuning in the way.

use std::cmp::Reverse;

use super::{Pattern, UrlMarker};
use crate::analysis::text::{self, TextSpan, is_unspaced_script, is_word_char};

/// Turns raw automaton hits into accepted candidates: maps offsets back to the original text,
/// applies the case, boundary and URL rules, and picks leftmost-longest.
///
/// Hits must arrive in order of start (any order among equal starts), as the scan produces
/// them: then a URL is always known before the text inside it, and selection needs no sort.
pub(super) struct Collector<'a> {
    patterns: &'a [Pattern],
    text: &'a str,
    folded: Option<&'a Folded>,
    accepted: Vec<Candidate>,
    /// The best candidate at the latest start, until a later start shows it is final.
    pending: Option<Candidate>,
    /// End of the last accepted candidate.
    last_end: usize,
    /// Furthest end of the URLs found so far (all of which start at or before `pending`).
    url_end: usize,
}

impl<'a> Collector<'a> {
    pub(super) fn new(patterns: &'a [Pattern], text: &'a str, folded: Option<&'a Folded>) -> Self {
        Self {
            patterns,
            text,
            folded,
            accepted: Vec::with_capacity(64),
            pending: None,
            last_end: 0,
            url_end: 0,
        }
    }

    pub(super) fn add(&mut self, pattern: usize, start: usize, end: usize) {
        let text = self.text;
        let Some(pattern) = self.patterns.get(pattern) else {
            return;
        };
        let (start, end) = match self.folded {
            Some(f) => f.original_range(text, start, end),
            None => (start, end),
        };
        match pattern {
            Pattern::Url(marker) => {
                if let Some(span) = url_span(text, start, end, *marker) {
                    if self.pending.is_some_and(|p| p.start < span.start) {
                        self.commit();
                    }
                    self.url_end = self.url_end.max(span.end);
                }
            }
            Pattern::Name {
                brand,
                alias,
                exact,
                bounded_start,
                bounded_end,
            } => {
                if let Some(exact) = exact
                    && text.get(start..end) != Some(&**exact)
                {
                    return;
                }
                if (*bounded_start && !boundary_before(text, start))
                    || (*bounded_end && !boundary_after(text, end))
                {
                    return;
                }
                let c = Candidate {
                    start,
                    end,
                    brand: *brand,
                    alias: *alias,
                };
                match self.pending {
                    // Same start: the longest wins, then the first brand, then its name.
                    Some(p) if p.start == start => {
                        if (Reverse(c.end), c.brand, c.alias) < (Reverse(p.end), p.brand, p.alias) {
                            self.pending = Some(c);
                        }
                    }
                    _ => {
                        self.commit();
                        self.pending = Some(c);
                    }
                }
            }
        }
    }

    fn commit(&mut self) {
        if let Some(p) = self.pending.take()
            && p.start >= self.url_end
            && p.start >= self.last_end
        {
            self.last_end = p.end;
            self.accepted.push(p);
        }
    }

    pub(super) fn finish(mut self) -> Vec<Candidate> {
        self.commit();
        self.accepted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) brand: u32,
    pub(super) alias: Option<u32>,
}

/// An answer lowercased character by character, with a map back to original offsets when
/// lowercasing changed some character's length ("İ" becomes three bytes, "ẞ" two).
pub(super) struct Folded {
    pub(super) text: String,
    /// For each folded byte, the original offset of the character it came from.
    origin: Option<Vec<usize>>,
}

fn push_folded(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
    } else {
        out.extend(c.to_lowercase());
    }
}

/// Character-wise lowercase, the same function for names and answers (`str::to_lowercase`'s
/// final-sigma rule would make the two disagree).
pub(super) fn fold_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_folded(&mut out, c);
    }
    out
}

impl Folded {
    pub(super) fn new(text: &str) -> Self {
        if text.is_ascii() {
            return Self {
                text: text.to_ascii_lowercase(),
                origin: None,
            };
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut same_lengths = true;
        let mut rest = text;
        while !rest.is_empty() {
            // ASCII runs in bulk: answers are mostly ASCII even when a name is not.
            let run = text::find_flagged(rest.as_bytes(), 0, |b| b >= 0x80).unwrap_or(rest.len());
            let (ascii, tail) = rest.split_at_checked(run).unwrap_or((rest, ""));
            let at = out.len();
            out.push_str(ascii);
            if let Some(pushed) = out.get_mut(at..) {
                pushed.make_ascii_lowercase();
            }
            let mut chars = tail.chars();
            if let Some(c) = chars.next() {
                let before = out.len();
                push_folded(&mut out, c);
                same_lengths &= out.len() - before == c.len_utf8();
            }
            rest = chars.as_str();
        }
        if same_lengths {
            return Self {
                text: out,
                origin: None,
            };
        }
        let mut origin = Vec::with_capacity(out.len());
        let mut buf = String::new();
        for (i, c) in text.char_indices() {
            buf.clear();
            push_folded(&mut buf, c);
            origin.extend(std::iter::repeat_n(i, buf.len()));
        }
        Self {
            text: out,
            origin: Some(origin),
        }
    }

    /// The original byte range covering folded `start..end`, widened to whole characters.
    pub(super) fn original_range(&self, text: &str, start: usize, end: usize) -> (usize, usize) {
        let Some(origin) = &self.origin else {
            return (start, end);
        };
        let s = origin.get(start).copied().unwrap_or(text.len());
        let e = end
            .checked_sub(1)
            .and_then(|last| origin.get(last))
            .map_or(s, |&o| {
                o + text
                    .get(o..)
                    .and_then(|r| r.chars().next())
                    .map_or(0, char::len_utf8)
            });
        (s, e.max(s))
    }
}

pub(super) fn boundary_before(text: &str, start: usize) -> bool {
    let mut before = text.get(..start).unwrap_or_default().chars().rev();
    match before.next() {
        None => true,
        Some('_') => before.find(|&c| c != '_').is_none_or(|c| !is_word_char(c)),
        Some(c) => !is_word_char(c) || is_unspaced_script(c),
    }
}

pub(super) fn boundary_after(text: &str, end: usize) -> bool {
    let mut after = text.get(end..).unwrap_or_default().chars();
    match after.next() {
        None => true,
        Some('_') => after.find(|&c| c != '_').is_none_or(|c| !is_word_char(c)),
        Some(c) => !is_word_char(c) || is_unspaced_script(c),
    }
}

pub(super) fn url_span(
    text: &str,
    start: usize,
    end: usize,
    marker: UrlMarker,
) -> Option<TextSpan> {
    let rest = text.get(end..)?;
    let stop =
        |c: char| c.is_whitespace() || matches!(c, ')' | ']' | '>' | '<' | '"' | '\'' | '`' | '|');
    let len = rest.find(stop).unwrap_or(rest.len());
    match marker {
        UrlMarker::Bare => {
            // "www." inside a word ("awww.") or with nothing after it is not a URL.
            if !boundary_before(text, start) || len == 0 {
                return None;
            }
            Some(TextSpan {
                start,
                end: end + len,
            })
        }
        UrlMarker::LinkDestination => Some(TextSpan {
            start: end,
            end: end + len,
        }),
    }
}
