//! Competitor discovery: the brands that answers name but an experiment does not track.
//!
//! Candidates come from where answers put names: the head of each list item (its bold part, or
//! the words before the first dash, colon or parenthesis), the first column of a table, headings
//! and bold lines; and from capitalised names in prose that recur in two or more answers.
//! Tracked names and their aliases (through the experiment's [`BrandMatcher`]), a committed
//! stop list of common words and the prompt's own words are excluded; case and possessive
//! variants ("HubSpot's", "Hubspot") merge into one candidate. Each candidate is then counted in
//! every answer that names it with a capital letter, and ranked by that share of answers, with
//! its Wilson interval ([`Proportion`]).
//!
//! ```
//! use echo_core::analysis::{BrandMatcher, Discoverer};
//! use echo_core::model::{Brand, BrandName};
//!
//! let matcher = BrandMatcher::new(&Brand::new(BrandName::parse("HubSpot")?), &[])?;
//! let answers = [
//!     "1. **HubSpot** – free CRM\n2. **Pipedrive** – pipelines\n3. **Zoho CRM**: cheap",
//!     "| CRM | Price |\n|---|---|\n| Pipedrive | $14 |\n| HubSpot | Free |",
//!     "Pipedrive's pipeline view is great; some teams prefer Zoho CRM.",
//! ];
//! let found = Discoverer::new()
//!     .tracking(matcher)
//!     .prompt("Best CRM for a startup?")
//!     .discover(answers);
//! let names: Vec<&str> = found.brands.iter().map(|b| b.name.as_str()).collect();
//! assert_eq!(names, ["Pipedrive", "Zoho CRM"]);
//! assert_eq!((found.brands[0].answers.successes, found.brands[0].answers.n), (3, 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use super::markdown::item_leads;
use super::{BrandMatcher, Proportion};

#[cfg(test)]
mod tests;

/// The committed stop list (`stopwords.txt`), lowercase.
static STOP_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("stopwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Longer runs of capitalised words are titles or sentences, not names.
const MAX_WORDS: usize = 4;
/// Prose-only names need this many answers: one capitalised phrase is too often just emphasis.
const MIN_PROSE_ANSWERS: usize = 2;

/// A brand that answers name and the experiment does not track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredBrand {
    /// The name as answers spell it most often.
    pub name: String,
    /// Answers naming it, out of all answers analysed: the share with its Wilson 95% interval.
    pub answers: Proportion,
    /// Of those, the answers that list it: as a list item's or heading's lead, a bold line or a
    /// table's first column. A name only ever seen in prose is a weaker candidate.
    pub listed: u32,
}

/// The result of a discovery over a set of answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Discovery {
    /// Answers analysed (the denominator of every share).
    pub answers: u32,
    /// Candidates, most named first (then most listed, then by name).
    pub brands: Vec<DiscoveredBrand>,
}

/// Finds untracked brands in answers; configure what to exclude, then call
/// [`Discoverer::discover`]. Pure: no I/O, and the same answers give the same result.
#[derive(Debug, Clone, Default)]
pub struct Discoverer {
    tracked: Option<BrandMatcher>,
    prompt_words: HashSet<String>,
}

impl Discoverer {
    /// A discoverer that excludes nothing but common words.
    pub fn new() -> Self {
        Self::default()
    }

    /// Excludes the matcher's brands: a candidate in which it finds a tracked name or alias
    /// ("HubSpot CRM" when HubSpot is tracked) is not reported.
    pub fn tracking(mut self, matcher: BrandMatcher) -> Self {
        self.tracked = Some(matcher);
        self
    }

    /// Excludes candidates made only of the prompt's words ("CRM" when asked for the best CRM).
    pub fn prompt(mut self, prompt: &str) -> Self {
        self.prompt_words = prompt
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        self
    }

    /// The untracked brands in `answers`, ranked by the share of answers naming them.
    pub fn discover<'a>(&self, answers: impl IntoIterator<Item = &'a str>) -> Discovery {
        let answers: Vec<&str> = answers.into_iter().collect();
        let mut seen: HashMap<String, Seen<'a>> = HashMap::new();
        let mut lowercase_words: HashSet<String> = HashSet::new();
        for (i, answer) in answers.iter().enumerate() {
            for name in listed_names(answer) {
                seen.entry(key(name)).or_default().add(name, i, true);
            }
            for name in prose_names(answer, &mut lowercase_words) {
                seen.entry(key(name)).or_default().add(name, i, false);
            }
        }
        let candidates: Vec<(String, Seen<'a>)> = seen
            .into_iter()
            .filter(|(k, s)| self.is_candidate(k, s, &lowercase_words))
            .collect();
        let named = named_in(&answers, &candidates);
        let n = u32::try_from(answers.len()).unwrap_or(u32::MAX);
        let mut brands: Vec<DiscoveredBrand> = candidates
            .iter()
            .zip(named)
            .map(|((_, s), mut answers_naming)| {
                answers_naming.extend(s.listed.iter().chain(&s.prose));
                DiscoveredBrand {
                    name: s.display().to_owned(),
                    answers: Proportion::new(count(answers_naming.len()), n),
                    listed: count(s.listed.len()),
                }
            })
            .collect();
        brands.sort_by(|a, b| {
            b.answers
                .successes
                .cmp(&a.answers.successes)
                .then(b.listed.cmp(&a.listed))
                .then_with(|| a.name.cmp(&b.name))
        });
        Discovery { answers: n, brands }
    }

    fn is_candidate(&self, key: &str, seen: &Seen<'_>, lowercase_words: &HashSet<String>) -> bool {
        if seen.listed.is_empty() {
            // A single capitalised word that answers also write in lowercase is a common word
            // opening a sentence ("Consider", "Notably"), not a name.
            let ordinary = !key.contains(' ') && lowercase_words.contains(key);
            if seen.prose.len() < MIN_PROSE_ANSWERS || ordinary {
                return false;
            }
        }
        if key.split(' ').all(|w| self.prompt_words.contains(w)) {
            return false;
        }
        let tracked = self.tracked.as_ref().is_some_and(|m| {
            seen.forms
                .iter()
                .any(|(form, _)| !m.extract(form).brands.is_empty())
        });
        !tracked
    }
}

/// Where one candidate was seen: its spellings with their counts (in first-seen order), and
/// the answers that list it or name it in prose.
#[derive(Debug, Default)]
struct Seen<'a> {
    forms: Vec<(&'a str, u32)>,
    listed: HashSet<usize>,
    prose: HashSet<usize>,
}

impl<'a> Seen<'a> {
    fn add(&mut self, form: &'a str, answer: usize, listed: bool) {
        match self.forms.iter_mut().find(|(f, _)| *f == form) {
            Some((_, n)) => *n += 1,
            None => self.forms.push((form, 1)),
        }
        if listed {
            self.listed.insert(answer);
        } else {
            self.prose.insert(answer);
        }
    }

    /// The most frequent spelling; the first seen among equals.
    fn display(&self) -> &'a str {
        let mut best: Option<(&'a str, u32)> = None;
        for &(form, n) in &self.forms {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((form, n));
            }
        }
        best.map_or("", |(form, _)| form)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The merge key: lowercase, without a possessive ending.
fn key(name: &str) -> String {
    strip_possessive(name).to_lowercase()
}

fn strip_possessive(name: &str) -> &str {
    ["'s", "’s", "'", "’"]
        .iter()
        .find_map(|p| name.strip_suffix(p))
        .unwrap_or(name)
}

/// For each candidate, the answers that name it with a capital letter (or as spelled, for
/// lowercase brands like "monday.com") as a whole word. One automaton for all spellings.
fn named_in(answers: &[&str], candidates: &[(String, Seen<'_>)]) -> Vec<HashSet<usize>> {
    let mut named = vec![HashSet::new(); candidates.len()];
    let mut patterns: Vec<&str> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (c, (_, seen)) in candidates.iter().enumerate() {
        for &(form, _) in &seen.forms {
            patterns.push(form);
            owner.push(c);
        }
    }
    let Ok(automaton) = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
    else {
        // Only beyond the automaton's size limits; the listed and prose sightings still count.
        return named;
    };
    for (i, answer) in answers.iter().enumerate() {
        for m in automaton.find_iter(answer) {
            let Some(&c) = owner.get(m.pattern().as_usize()) else {
                continue;
            };
            let lowercase_brand = patterns
                .get(m.pattern().as_usize())
                .and_then(|p| p.chars().next())
                .is_some_and(char::is_lowercase);
            if is_whole_word(answer, m.start(), m.end())
                && (lowercase_brand || !starts_lowercase(answer, m.start()))
                && let Some(set) = named.get_mut(c)
            {
                set.insert(i);
            }
        }
    }
    named
}

fn starts_lowercase(text: &str, at: usize) -> bool {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .is_some_and(char::is_lowercase)
}

/// No letter or digit touches the match; a dot or hyphen after it may not start another word
/// ("Kit" is not in "Kit-based" nor "Kit.com").
fn is_whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|s| s.chars().next_back());
    if before.is_some_and(char::is_alphanumeric) {
        return false;
    }
    let mut after = text.get(end..).map(str::chars).into_iter().flatten();
    match after.next() {
        Some(c) if c.is_alphanumeric() => false,
        Some('.' | '-') => !after.next().is_some_and(char::is_alphanumeric),
        _ => true,
    }
}

/// Names at the head of list items, headings, bold lines and table rows (not header rows).
fn listed_names(answer: &str) -> impl Iterator<Item = &str> {
    let items = item_leads(answer);
    let lines: Vec<&str> = answer.lines().map(str::trim).collect();
    let mut heads: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix('#') {
            heads.push(rest.trim_start_matches('#'));
        } else if line.starts_with("**") || line.starts_with("__") {
            heads.push(line);
        } else if let Some(row) = line.strip_prefix('|') {
            let header = lines.get(i + 1).is_some_and(|next| is_table_rule(next));
            if !header && !is_table_rule(line) {
                heads.push(row.split('|').next().unwrap_or_default());
            }
        }
    }
    items.chain(heads).filter_map(lead_name)
}

fn is_table_rule(line: &str) -> bool {
    line.contains('-')
        && line
            .chars()
            .all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
}

/// The name at the head of a list item, heading, bold line or table cell, if it looks like one.
fn lead_name(lead: &str) -> Option<&str> {
    let lead = strip_number(lead.trim());
    let lead = lead.trim_start_matches(['*', '_', '[', '`']);
    let lead = strip_number(lead);
    let end = [
        "**", "__", "](", "`", ": ", " - ", " – ", " — ", " (", ", ", "; ", " |", " / ",
    ]
    .iter()
    .filter_map(|sep| lead.find(sep))
    .min()
    .unwrap_or(lead.len());
    let head = lead
        .get(..end)?
        .trim_end_matches([':', '.', ',', ';', '!', '?', ' ']);
    let name = leading_name_words(head)?;
    let first = name.split(' ').next().unwrap_or_default();
    if STOP_WORDS.contains(first.to_lowercase().as_str()) {
        return None;
    }
    Some(strip_possessive(name))
}

/// "1. ", "2) " and the like at the start of a heading or bold line.
fn strip_number(s: &str) -> &str {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return s;
    }
    match s.get(digits..) {
        Some(rest) if rest.starts_with(". ") || rest.starts_with(") ") => {
            rest.get(2..).unwrap_or(rest).trim_start()
        }
        _ => s,
    }
}

/// The leading words of `head` that can belong to a name: the first must look like a name
/// ([`is_name_word`], or a lowercase domain like "monday.com"), the rest name words or numbers
/// ("Dynamics 365"). None when there are none or too many.
fn leading_name_words(head: &str) -> Option<&str> {
    let mut end = 0;
    let mut words = 0;
    for (i, word) in word_spans(head) {
        let fits = if words == 0 {
            is_name_word(word) || is_domain(word)
        } else {
            is_name_word(word) || word.bytes().all(|b| b.is_ascii_digit())
        };
        if !fits {
            break;
        }
        words += 1;
        end = i + word.len();
    }
    if words == 0 || words > MAX_WORDS {
        return None;
    }
    head.get(..end)
}

/// Words separated by single spaces, with their offsets; stops at any other whitespace.
fn word_spans(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    s.split(' ').map_while(move |w| {
        let at = offset;
        offset += w.len() + 1;
        (!w.is_empty() && !w.contains(char::is_whitespace)).then_some((at, w))
    })
}

/// Capitalised ("Asana"), internally capitalised ("iCloud", "macOS") or a digit-led name
/// ("1Password"); it must hold a letter.
fn is_name_word(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let has_letter = word.chars().any(char::is_alphabetic);
    has_letter
        && (first.is_uppercase()
            || (first.is_ascii_digit() && word.chars().any(char::is_alphabetic))
            || (first.is_lowercase() && chars.any(char::is_uppercase)))
}

/// "monday.com", "fly.io": lowercase names that are domains.
fn is_domain(word: &str) -> bool {
    word.split_once('.').is_some_and(|(name, tld)| {
        !name.is_empty()
            && tld.len() >= 2
            && word
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && tld.chars().all(char::is_alphabetic)
    })
}

/// Runs of capitalised words in prose, without leading stop words. Words written in lowercase
/// are collected into `lowercase_words` (to tell common words from names later).
fn prose_names<'a>(answer: &'a str, lowercase_words: &mut HashSet<String>) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut run = Run::default();
    let mut offset = 0;
    for raw in answer.split_inclusive(char::is_whitespace) {
        let at = offset;
        offset += raw.len();
        let token = raw.trim_end_matches(char::is_whitespace);
        let single_space = raw.len() == token.len() + 1 && raw.ends_with(' ');
        let core_start = token.len() - token.trim_start_matches(is_edge_punct).len();
        let word = strip_possessive(token.trim_matches(is_edge_punct));
        if core_start > 0 {
            run.flush(answer, &mut names);
        }
        if word.chars().next().is_some_and(char::is_lowercase) && !is_name_word(word) {
            lowercase_words.insert(word.to_lowercase());
        }
        let start = at + core_start;
        if is_name_word(word) || (run.words > 0 && word.bytes().all(|b| b.is_ascii_digit())) {
            let stop = STOP_WORDS.contains(word.to_lowercase().as_str());
            run.push(start, start + word.len(), stop);
        } else {
            run.flush(answer, &mut names);
        }
        if word.len() < token.len() - core_start || !single_space {
            run.flush(answer, &mut names);
        }
    }
    run.flush(answer, &mut names);
    names
}

/// A run of capitalised words being read: where its name starts (after any leading stop
/// words) and ends, and how many words it has in all, leading stop words included, so that a
/// title like "See Our Big Annual Review Of Tools" is not cut down to a name-sized tail.
#[derive(Debug, Default)]
struct Run {
    name_start: Option<usize>,
    end: usize,
    words: usize,
    name_words: usize,
}

impl Run {
    fn push(&mut self, start: usize, end: usize, stop: bool) {
        self.words += 1;
        if self.name_start.is_none() && !stop {
            self.name_start = Some(start);
        }
        if self.name_start.is_some() {
            self.name_words += 1;
            self.end = end;
        }
    }

    fn flush<'a>(&mut self, answer: &'a str, names: &mut Vec<&'a str>) {
        let run = std::mem::take(self);
        if let Some(start) = run.name_start
            && run.name_words <= MAX_WORDS
            && run.words <= MAX_WORDS + 2
            && let Some(name) = answer.get(start..run.end)
        {
            names.push(name);
        }
    }
}

fn is_edge_punct(c: char) -> bool {
    !c.is_alphanumeric()
}
