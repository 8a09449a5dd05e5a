//! Brand extraction: which tracked brands an answer names, where, and how often.
//!
//! All names and aliases of all brands go into one Aho-Corasick automaton (a DFA, anchored),
//! built once per experiment by [`BrandMatcher::new`] and shared across answers and threads. One
//! pass over the answer runs it from every place a name can start (see `Index` for why not from
//! every byte) and reports every occurrence, overlapping ones included; each is then checked
//! against the rules below, and the survivors are chosen leftmost-longest so that a span of text
//! counts for one brand only. A brute-force search is the test oracle for the scan.
//!
//! # Matching rules
//! - **Case**: names and aliases match ignoring case ([`MatchMode::CaseInsensitive`], the
//!   default, and the aliases of [`MatchMode::AliasesOnly`]), or exactly
//!   ([`MatchMode::CaseSensitive`], for brands named by ordinary words such as "Close"). When
//!   every case-insensitive name is ASCII the automaton folds ASCII case itself and searches the
//!   answer in place; otherwise both names and answer are lowercased character by character and
//!   match offsets are mapped back to the original answer, whose lowercase may differ in length.
//! - **Word boundaries**: a name that starts (ends) with a letter or digit must not be preceded
//!   (followed) by one, in any script, so "Notion" is not found in "Notional" while "HubSpot's",
//!   "(HubSpot)" and "HubSpot-based" count. Underscores count as markdown emphasis (`__X__`) unless
//!   they join two words (`my_hubspot_key`). Next to Han, kana, Hangul, Thai and other scripts
//!   written without spaces no boundary is required ("我推荐HubSpot", "腾讯云" for "腾讯").
//! - **Markdown**: emphasis, headings, list markers and link brackets are punctuation, so
//!   `**X**`, `__X__`, `# X`, `1. X`, `- X` and the text of `[X](url)` all count.
//! - **URLs**: nothing inside a bare URL counts: from `http://`, `https://` or `www.` to the next
//!   whitespace or closing bracket or quote, and a markdown link's destination `](…)`. A bare
//!   domain without scheme or `www.` is text ("Monday.com" is a brand name).
//! - **Overlaps**: of overlapping valid candidates the leftmost wins, then the longest ("HubSpot
//!   CRM" over "HubSpot"), then the brand listed first (the target, then competitors in order).
//!   A name listed under two brands therefore counts for the first.

use std::cmp::Reverse;
use std::sync::Arc;

use aho_corasick::automaton::{Automaton as AcAutomaton, StateID};
use aho_corasick::{Anchored, MatchKind, StartKind};
use serde::{Deserialize, Serialize};

use super::markdown::ListPositions;
use super::text::{self, TextSpan, is_unspaced_script, is_word_char};
use crate::model::{Brand, BrandMention, MatchMode};

/// The brands an experiment tracks, by canonical name: the target first, then the competitors
/// in order, without duplicate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedBrands {
    names: Vec<String>,
}

impl TrackedBrands {
    /// The names of `target` and `competitors`; a repeated name is kept once, at its first place.
    pub fn new(target: &Brand, competitors: &[Brand]) -> Self {
        Self::from_names(
            target.name.as_str(),
            competitors.iter().map(|b| b.name.as_str()),
        )
    }

    /// The same from plain names (e.g. read back from storage).
    ///
    /// ```
    /// use echo_core::analysis::TrackedBrands;
    /// let brands = TrackedBrands::from_names("HubSpot", ["Salesforce", "HubSpot", "Pipedrive"]);
    /// assert_eq!(brands.target(), "HubSpot");
    /// assert_eq!(brands.competitors(), ["Salesforce", "Pipedrive"]);
    /// ```
    pub fn from_names<S: AsRef<str>>(
        target: &str,
        competitors: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut names = vec![target.to_owned()];
        for c in competitors {
            let c = c.as_ref();
            if !names.iter().any(|n| n == c) {
                names.push(c.to_owned());
            }
        }
        Self { names }
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// The competitors' names.
    pub fn competitors(&self) -> &[String] {
        self.names.get(1..).unwrap_or_default()
    }

    /// All names, target first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Position of `name` in [`names`](Self::names).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Why a matcher could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// The names exceed the automaton's limits (far beyond what brand validation allows).
    #[error("brand names are too many or too long to index")]
    TooLarge {
        /// The automaton builder's error.
        #[source]
        source: aho_corasick::BuildError,
    },
    /// The automaton does not support the anchored search the matcher relies on.
    #[error("the brand automaton does not support anchored search")]
    Unsupported {
        /// The automaton's error.
        #[source]
        source: aho_corasick::MatchError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlMarker {
    /// `http://`, `https://`, `www.`: the URL runs from the marker to whitespace.
    Bare,
    /// `](`: a markdown link destination, from after the marker to `)`.
    LinkDestination,
}

#[derive(Debug, Clone)]
enum Pattern {
    Name {
        brand: u32,
        alias: Option<u32>,
        /// The exact spelling, for case-sensitive names.
        exact: Option<Box<str>>,
        /// Whether a word boundary is required before (after) the match.
        bounded_start: bool,
        bounded_end: bool,
    },
    Url(UrlMarker),
}

/// Finds tracked brands in answers. Build it once per experiment; it is cheap to share
/// (`Send + Sync`, and `Clone` shares the automaton).
///
/// ```
/// use echo_core::analysis::BrandMatcher;
/// use echo_core::model::{Brand, BrandName};
///
/// let mut hubspot = Brand::new(BrandName::parse("HubSpot")?);
/// hubspot.aliases.push(BrandName::parse("HubSpot CRM")?);
/// let competitors = [Brand::new(BrandName::parse("Salesforce")?)];
/// let matcher = BrandMatcher::new(&hubspot, &competitors)?;
///
/// let answer = "1. **Salesforce**: enterprise.\n2. **HubSpot CRM**: free. See https://hubspot.com";
/// let found = matcher.extract(answer);
/// assert_eq!(found.brands.len(), 2);
/// let hs = found.brand("HubSpot").unwrap();
/// assert_eq!((hs.count, hs.rank, hs.list_position), (1, 2, Some(2)));
/// assert_eq!(&answer[hs.first_offset..hs.spans[0].end], "HubSpot CRM");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BrandMatcher {
    index: Arc<Index>,
    patterns: Arc<[Pattern]>,
    brands: TrackedBrands,
    /// Whether answers must be lowercased (some case-insensitive name is not ASCII).
    unicode_fold: bool,
    /// The automaton's patterns, for the brute-force oracle in tests.
    #[cfg(test)]
    needles: Vec<String>,
}

/// Above this many pattern bytes the dense DFA's memory stops paying for its speed.
const DFA_MAX_PATTERN_BYTES: usize = 16 * 1024;

#[derive(Debug)]
enum Automaton {
    Dfa(aho_corasick::dfa::DFA),
    Nfa(aho_corasick::nfa::contiguous::NFA),
}

/// Per-byte flags of [`Index::class`]: an ASCII letter or digit that some name needing a word
/// boundary begins with, to be tried where a word starts.
const AT_WORD_START: u8 = 1;
/// An ASCII letter or digit, which continues a word.
const ASCII_WORD: u8 = 2;
/// A byte some name begins with that is tried at every occurrence: the first byte of `](`, of a
/// name needing no boundary ("腾讯"), or of a multi-byte character.
const ANYWHERE: u8 = 4;

/// The automaton with the tables that decide where it is worth running.
///
/// Names mostly begin with a letter that must start a word, so instead of feeding every byte of
/// the answer through the automaton (a dependent table load per byte, about twice as slow), the
/// scan runs it anchored from the starts of words, and from every occurrence of the few other
/// bytes a name can begin with, once the first four bytes there pass a small table built
/// from the names (`prefixes`). On a typical answer that rejects nine in ten words
/// without touching the automaton. Word starts and the other bytes are found a block at a time
/// with vectorised byte compares (a per-byte table loop cost more than everything else in the
/// scan). The scan does not decode UTF-8: every non-ASCII byte counts as a word separator, which can
/// only add candidates, and the boundary rules are checked on each match afterwards.
#[derive(Debug)]
struct Index {
    automaton: Automaton,
    class: [u8; 256],
    /// The distinct ASCII bytes flagged [`ANYWHERE`], ascending; at least `]` (from `](`).
    anywhere_ascii: Vec<u8>,
    /// Whether some non-ASCII byte is flagged [`ANYWHERE`].
    anywhere_high: bool,
    /// The anchored automaton's state after each first byte.
    first_state: [StateID; 256],
    /// Bit [`prefix_key`] is set for the first four bytes of every name (for every byte after
    /// the end of a shorter one).
    prefixes: Box<[u64; PREFIX_WORDS]>,
}

const PREFIX_BITS: u32 = 15;
/// `u64` words of [`Index::prefixes`]: 4 KiB, one bit per key.
const PREFIX_WORDS: usize = (1 << PREFIX_BITS) / 64;

/// A hash of the low five bits of four bytes (little-endian in `word`): ASCII case folds away.
/// Other bytes, and other prefixes, share keys, which only lets more places through to the
/// automaton, never fewer.
fn prefix_key(word: u32) -> usize {
    ((word & 0x1F1F_1F1F).wrapping_mul(0x9E37_79B1) >> (32 - PREFIX_BITS)) as usize
}

impl Index {
    fn new(needles: &[String], ascii_case_insensitive: bool) -> Result<Self, MatcherError> {
        let total: usize = needles.iter().map(String::len).sum();
        let dfa = (total <= DFA_MAX_PATTERN_BYTES)
            .then(|| {
                aho_corasick::dfa::DFA::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .start_kind(StartKind::Anchored)
                    .prefilter(false)
                    .build(needles)
                    .ok()
            })
            .flatten();
        let automaton = match dfa {
            Some(dfa) => Automaton::Dfa(dfa),
            None => Automaton::Nfa(
                aho_corasick::nfa::contiguous::NFA::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .prefilter(false)
                    .build(needles)
                    .map_err(|source| MatcherError::TooLarge { source })?,
            ),
        };
        let start_state = match &automaton {
            Automaton::Dfa(a) => a.start_state(Anchored::Yes),
            Automaton::Nfa(a) => a.start_state(Anchored::Yes),
        }
        .map_err(|source| MatcherError::Unsupported { source })?;
        let mut first_state = [start_state; 256];
        let mut class = [0u8; 256];
        for b in 0..=255u8 {
            let (sid, dead) = match &automaton {
                Automaton::Dfa(a) => {
                    let sid = a.next_state(Anchored::Yes, start_state, b);
                    (sid, a.is_dead(sid))
                }
                Automaton::Nfa(a) => {
                    let sid = a.next_state(Anchored::Yes, start_state, b);
                    (sid, a.is_dead(sid))
                }
            };
            let i = usize::from(b);
            first_state[i] = sid;
            if b.is_ascii_alphanumeric() {
                class[i] |= ASCII_WORD;
            }
            if !dead {
                class[i] |= if b.is_ascii_alphanumeric() {
                    AT_WORD_START
                } else {
                    ANYWHERE
                };
            }
        }
        let mut prefixes = Box::new([0u64; PREFIX_WORDS]);
        for needle in needles {
            let bytes = needle.as_bytes();
            let Some(known) = bytes.get(..bytes.len().min(4)).filter(|k| !k.is_empty()) else {
                continue;
            };
            // Past a name's end any byte may follow (the end of the answer reads as zero): all
            // 32 values of its low five bits, for each missing byte.
            let head = known
                .iter()
                .enumerate()
                .fold(0u32, |w, (k, &b)| w | u32::from(b) << (8 * k));
            let missing = 4 - known.len();
            for rest in 0..1u32 << (5 * missing) {
                let word = (0..missing).fold(head, |w, m| {
                    w | ((rest >> (5 * m)) & 0x1F) << (8 * (known.len() + m))
                });
                let k = prefix_key(word);
                if let Some(w) = prefixes.get_mut(k >> 6) {
                    *w |= 1 << (k & 63);
                }
            }
        }
        let anywhere_ascii = (0..0x80u8)
            .filter(|&b| class[usize::from(b)] & ANYWHERE != 0)
            .collect();
        let anywhere_high = (0x80..=0xFFu8).any(|b| class[usize::from(b)] & ANYWHERE != 0);
        Ok(Self {
            automaton,
            class,
            anywhere_ascii,
            anywhere_high,
            first_state,
            prefixes,
        })
    }

    /// Calls `found(pattern, start, end)` for every occurrence of a name in `hay` that starts
    /// where `class` allows, in order of start; the caller checks the boundaries.
    fn scan(&self, hay: &str, found: &mut impl FnMut(usize, usize, usize)) {
        match &self.automaton {
            Automaton::Dfa(a) => self.scan_with(a, hay, found),
            Automaton::Nfa(a) => self.scan_with(a, hay, found),
        }
    }

    fn scan_with<A: AcAutomaton>(
        &self,
        a: &A,
        hay: &str,
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        // One comparison per distinct byte and block, monomorphised for the usual one (`]`);
        // names starting with many kinds of punctuation are classified byte by byte.
        let bytes = hay.as_bytes();
        match *self.anywhere_ascii.as_slice() {
            [x] => self.scan_words(a, bytes, [x], found),
            [x, y] => self.scan_words(a, bytes, [x, y], found),
            [x, y, z] => self.scan_words(a, bytes, [x, y, z], found),
            [x, y, z, w] => self.scan_words(a, bytes, [x, y, z, w], found),
            _ => self.scan_bytes(a, bytes, found),
        }
    }

    /// The scan a block at a time: bit `k` of a block's hits is set at an ASCII letter or digit
    /// after a byte that is not one, or at one of the `anywhere` bytes. The places that pass
    /// the prefix table are collected without a branch each (most fail, unpredictably), then
    /// walked.
    fn scan_words<A: AcAutomaton, const N: usize>(
        &self,
        a: &A,
        bytes: &[u8],
        anywhere: [u8; N],
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        let is_word = |b: u8| (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26);
        let is_anywhere = |b: u8| anywhere.iter().fold(false, |o, &x| o | (x == b));
        let mut after_word = 0u32;
        let mut base = 0;
        while let Some(words) = text::flags_at(bytes, base, is_word) {
            let mut hits = (words & !((words << 1) | after_word))
                | text::flags_at(bytes, base, is_anywhere).unwrap_or(0);
            after_word = words >> 31;
            if self.anywhere_high {
                let high = text::flags_at(bytes, base, |b| b >= 0x80).unwrap_or(0);
                hits |= self.high_anywhere(bytes, base, high);
            }
            let mut passed = [0u8; text::BLOCK];
            let mut n = 0;
            while hits != 0 {
                let k = hits.trailing_zeros();
                hits &= hits - 1;
                if let Some(slot) = passed.get_mut(n) {
                    *slot = k as u8;
                }
                n += usize::from(self.may_start(bytes, base + k as usize));
            }
            for &k in passed.get(..n).unwrap_or_default() {
                let i = base + usize::from(k);
                if let Some(&b) = bytes.get(i) {
                    walk(a, self.first_state[usize::from(b)], bytes, i, found);
                }
            }
            base += text::BLOCK;
        }
    }

    /// Which of the non-ASCII bytes flagged in `high` (bit `k` for byte `base + k`) some name
    /// begins with.
    fn high_anywhere(&self, bytes: &[u8], base: usize, mut high: u32) -> u32 {
        let mut hits = 0;
        while high != 0 {
            let k = high.trailing_zeros();
            high &= high - 1;
            if bytes
                .get(base + k as usize)
                .is_some_and(|&b| self.class[usize::from(b)] & ANYWHERE != 0)
            {
                hits |= 1 << k;
            }
        }
        hits
    }

    /// The scan byte by byte, for matchers with many kinds of leading punctuation.
    fn scan_bytes<A: AcAutomaton>(
        &self,
        a: &A,
        bytes: &[u8],
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        let class_of = &self.class;
        let mut prev_word = false;
        for (i, &b) in bytes.iter().enumerate() {
            let class = class_of[usize::from(b)];
            let word = class & ASCII_WORD != 0;
            // Bitwise `&`/`|`, not `&&`/`||`: about half the bytes are letters some name starts
            // with, and a branch on each would be mispredicted that often.
            let worth = ((class & AT_WORD_START != 0) & !prev_word) | (class & ANYWHERE != 0);
            prev_word = word;
            if worth {
                self.try_at(a, bytes, i, found);
            }
        }
    }

    /// Runs the automaton from `i` if the first four bytes there may begin a name.
    fn try_at<A: AcAutomaton>(
        &self,
        a: &A,
        bytes: &[u8],
        i: usize,
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        if self.may_start(bytes, i)
            && let Some(&b) = bytes.get(i)
        {
            walk(a, self.first_state[usize::from(b)], bytes, i, found);
        }
    }

    /// Whether the first four bytes from `i` pass [`Index::prefixes`].
    fn may_start(&self, bytes: &[u8], i: usize) -> bool {
        let word = match bytes.get(i..).and_then(<[u8]>::first_chunk::<4>) {
            Some(&four) => u32::from_le_bytes(four),
            None => (0..4).fold(0, |w, k| {
                w | u32::from(bytes.get(i + k).copied().unwrap_or(0)) << (8 * k)
            }),
        };
        let k = prefix_key(word);
        self.prefixes
            .get(k >> 6)
            .is_some_and(|w| w & (1 << (k & 63)) != 0)
    }
}

/// Runs the anchored automaton from `sid` (the state after the byte at `start`) and reports the
/// names that begin exactly at `start`. Kept out of line, like the reporting: the scan loop that
/// calls it and its own inner loop must keep their few variables in registers (with the
/// reporting inlined, the state went through the stack on every byte).
#[inline(never)]
fn walk<A: AcAutomaton>(
    a: &A,
    mut sid: StateID,
    bytes: &[u8],
    start: usize,
    found: &mut impl FnMut(usize, usize, usize),
) {
    let mut end = start + 1;
    loop {
        while !a.is_special(sid) {
            let Some(&b) = bytes.get(end) else {
                return;
            };
            sid = a.next_state(Anchored::Yes, sid, b);
            end += 1;
        }
        if a.is_dead(sid) {
            return;
        }
        if a.is_match(sid) {
            report(a, sid, start, end, found);
        }
        let Some(&b) = bytes.get(end) else {
            return;
        };
        sid = a.next_state(Anchored::Yes, sid, b);
        end += 1;
    }
}

/// Reports the names of match state `sid` that span `start..end`: match states also carry names
/// that are suffixes of the path walked.
#[inline(never)]
fn report<A: AcAutomaton>(
    a: &A,
    sid: StateID,
    start: usize,
    end: usize,
    found: &mut impl FnMut(usize, usize, usize),
) {
    for k in 0..a.match_len(sid) {
        let pid = a.match_pattern(sid, k);
        if end.checked_sub(a.pattern_len(pid)) == Some(start) {
            found(pid.as_usize(), start, end);
        }
    }
}

impl BrandMatcher {
    /// Indexes every name and alias of `target` and `competitors` (per their
    /// [`MatchMode`]s). A competitor with the target's name, or an earlier competitor's, adds its
    /// aliases to that brand.
    ///
    /// # Errors
    /// [`MatcherError::TooLarge`] if the automaton cannot be built, which validated experiments
    /// (at most 101 brands of at most 51 names of 200 characters) do not reach.
    pub fn new(target: &Brand, competitors: &[Brand]) -> Result<Self, MatcherError> {
        let brands = TrackedBrands::new(target, competitors);
        let mut raw: Vec<(String, Pattern)> = Vec::new();
        for brand in std::iter::once(target).chain(competitors) {
            let idx = brands.index_of(brand.name.as_str()).unwrap_or(0);
            let idx = u32::try_from(idx).unwrap_or(u32::MAX);
            let case_sensitive = brand.match_mode == MatchMode::CaseSensitive;
            let name = (brand.match_mode != MatchMode::AliasesOnly).then_some((&brand.name, None));
            let aliases = brand
                .aliases
                .iter()
                .enumerate()
                .map(|(i, a)| (a, Some(u32::try_from(i).unwrap_or(u32::MAX))));
            for (spelling, alias) in name.into_iter().chain(aliases) {
                let s = spelling.as_str();
                let (Some(first), Some(last)) = (s.chars().next(), s.chars().next_back()) else {
                    continue;
                };
                let bounded = |c: char| is_word_char(c) && !is_unspaced_script(c);
                raw.push((
                    s.to_owned(),
                    Pattern::Name {
                        brand: idx,
                        alias,
                        exact: case_sensitive.then(|| s.into()),
                        bounded_start: bounded(first),
                        bounded_end: bounded(last),
                    },
                ));
            }
        }
        let unicode_fold = raw
            .iter()
            .any(|(s, p)| matches!(p, Pattern::Name { exact: None, .. }) && !s.is_ascii());
        for marker in ["http://", "https://", "www."] {
            raw.push((marker.to_owned(), Pattern::Url(UrlMarker::Bare)));
        }
        raw.push(("](".to_owned(), Pattern::Url(UrlMarker::LinkDestination)));

        let (needles, patterns): (Vec<String>, Vec<Pattern>) = raw
            .into_iter()
            .map(|(s, p)| (if unicode_fold { fold_str(&s) } else { s }, p))
            .unzip();
        let index = Index::new(&needles, !unicode_fold)?;
        Ok(Self {
            index: Arc::new(index),
            patterns: patterns.into(),
            brands,
            unicode_fold,
            #[cfg(test)]
            needles,
        })
    }

    /// The tracked brands, target first: the brand order of metrics built from this matcher.
    pub fn brands(&self) -> &TrackedBrands {
        &self.brands
    }

    /// Every mention of every tracked brand in `text`, with counts, ranks, list positions and
    /// the matched spans with the sentence of each. Brands that are not mentioned are absent;
    /// [`Extraction::brands`] is in rank order.
    pub fn extract(&self, text: &str) -> Extraction {
        let matches = self.find(text);
        let (sentences, mut newlines) = text::sentences_and_newlines(text);
        let brands = self.brands.names.len();
        // Which hit each brand has, if any; on the stack for the usual number of brands.
        let mut slot_stack = [u32::MAX; 128];
        let mut slot_heap = Vec::new();
        let slot: &mut [u32] = match slot_stack.get_mut(..brands) {
            Some(s) => s,
            None => {
                slot_heap.resize(brands, u32::MAX);
                &mut slot_heap
            }
        };
        // Built at the first brand found: answers that name none need no list walks.
        let mut lists = None;
        // First pass: ranks and counts, so that each brand's spans are allocated once.
        let mut hits: Vec<BrandHit> = Vec::with_capacity(brands.min(16));
        for m in &matches {
            let Some(s) = slot.get_mut(m.brand as usize) else {
                continue;
            };
            if *s == u32::MAX {
                *s = u32::try_from(hits.len()).unwrap_or(u32::MAX);
                let brand = m.brand as usize;
                hits.push(BrandHit {
                    brand: self.brands.names.get(brand).cloned().unwrap_or_default(),
                    is_target: brand == 0,
                    count: 0,
                    first_offset: m.start,
                    rank: u32::try_from(hits.len() + 1).unwrap_or(u32::MAX),
                    list_position: lists
                        .get_or_insert_with(|| {
                            ListPositions::with_newlines(text, std::mem::take(&mut newlines))
                        })
                        .at(m.start),
                    spans: Vec::new(),
                });
            }
            if let Some(hit) = hits.get_mut(*s as usize) {
                hit.count = hit.count.saturating_add(1);
            }
        }
        for hit in &mut hits {
            hit.spans.reserve_exact(hit.count as usize);
        }
        let mut sentence = 0usize;
        for m in &matches {
            while sentences.get(sentence).is_some_and(|sp| sp.end <= m.start) {
                sentence += 1;
            }
            let in_sentence = sentences
                .get(sentence)
                .is_some_and(|sp| sp.start <= m.start)
                .then(|| u32::try_from(sentence).unwrap_or(u32::MAX));
            if let Some(hit) = slot
                .get(m.brand as usize)
                .and_then(|&s| hits.get_mut(s as usize))
            {
                hit.spans.push(MatchSpan {
                    start: m.start,
                    end: m.end,
                    alias: m.alias,
                    sentence: in_sentence,
                });
            }
        }
        Extraction {
            brands: hits,
            sentences,
        }
    }

    /// Whether `text` mentions the target, by the same rules as [`extract`](Self::extract). Use
    /// it on the prompt: a prompt that names the target ("Is HubSpot good?") is *branded* and
    /// inflates visibility, so reports show it apart.
    ///
    /// ```
    /// # use echo_core::analysis::BrandMatcher;
    /// # use echo_core::model::{Brand, BrandName};
    /// let m = BrandMatcher::new(&Brand::new(BrandName::parse("HubSpot")?), &[])?;
    /// assert!(m.is_branded("Is HubSpot's free CRM any good?"));
    /// assert!(!m.is_branded("Best CRM for startups? See www.hubspot.com"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_branded(&self, text: &str) -> bool {
        self.find(text).iter().any(|m| m.brand == 0)
    }

    /// Accepted, non-overlapping matches in text order.
    fn find(&self, text: &str) -> Vec<Candidate> {
        let folded = self.unicode_fold.then(|| Folded::new(text));
        let haystack = folded.as_ref().map_or(text, |f| f.text.as_str());
        let mut collector = Collector::new(&self.patterns, text, folded.as_ref());
        self.index
            .scan(haystack, &mut |p, start, end| collector.add(p, start, end));
        collector.finish()
    }
}

/// Turns raw automaton hits into accepted candidates: maps offsets back to the original text,
/// applies the case, boundary and URL rules, and picks leftmost-longest.
///
/// Hits must arrive in order of start (any order among equal starts), as the scan produces
/// them: then a URL is always known before the text inside it, and selection needs no sort.
struct Collector<'a> {
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
    fn new(patterns: &'a [Pattern], text: &'a str, folded: Option<&'a Folded>) -> Self {
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

    fn add(&mut self, pattern: usize, start: usize, end: usize) {
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

    fn finish(mut self) -> Vec<Candidate> {
        self.commit();
        self.accepted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    start: usize,
    end: usize,
    brand: u32,
    alias: Option<u32>,
}

/// An answer lowercased character by character, with a map back to original offsets when
/// lowercasing changed some character's length ("İ" becomes three bytes, "ẞ" two).
struct Folded {
    text: String,
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
fn fold_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_folded(&mut out, c);
    }
    out
}

impl Folded {
    fn new(text: &str) -> Self {
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
    fn original_range(&self, text: &str, start: usize, end: usize) -> (usize, usize) {
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

fn boundary_before(text: &str, start: usize) -> bool {
    let mut before = text.get(..start).unwrap_or_default().chars().rev();
    match before.next() {
        None => true,
        Some('_') => before.find(|&c| c != '_').is_none_or(|c| !is_word_char(c)),
        Some(c) => !is_word_char(c) || is_unspaced_script(c),
    }
}

fn boundary_after(text: &str, end: usize) -> bool {
    let mut after = text.get(end..).unwrap_or_default().chars();
    match after.next() {
        None => true,
        Some('_') => after.find(|&c| c != '_').is_none_or(|c| !is_word_char(c)),
        Some(c) => !is_word_char(c) || is_unspaced_script(c),
    }
}

fn url_span(text: &str, start: usize, end: usize, marker: UrlMarker) -> Option<TextSpan> {
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

/// One match: a byte range of the original answer and the spelling that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchSpan {
    /// First byte (a char boundary).
    pub start: usize,
    /// One past the last byte (a char boundary).
    pub end: usize,
    /// Which alias matched (index into the brand's aliases); `None` for the canonical name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<u32>,
    /// Index into [`Extraction::sentences`] of the sentence holding the match; `None` only
    /// when the match lies in a segment without letters or digits (a name made of symbols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence: Option<u32>,
}

/// Everything found about one brand in one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandHit {
    /// Canonical brand name.
    pub brand: String,
    /// Whether this is the experiment's target.
    pub is_target: bool,
    /// Matches (name and aliases), at least 1.
    pub count: u32,
    /// Byte offset of the first match in the original answer (a char boundary).
    pub first_offset: usize,
    /// 1-based rank among the brands of this answer by first appearance (1..=k, no gaps).
    pub rank: u32,
    /// When the first match lies in a markdown list item: the item's number as rendered (an
    /// ordered list's start number plus the items before it; the ordinal in a bulleted list).
    /// Nested lists count on their own.
    pub list_position: Option<u32>,
    /// Every match, in text order, so each number can be audited against the answer.
    pub spans: Vec<MatchSpan>,
}

impl BrandHit {
    /// The sentences that mention the brand: indices into [`Extraction::sentences`], ascending,
    /// each once.
    pub fn sentences(&self) -> impl Iterator<Item = u32> + '_ {
        let mut last = None;
        self.spans.iter().filter_map(move |s| {
            let i = s.sentence?;
            (last != Some(i)).then(|| {
                last = Some(i);
                i
            })
        })
    }
}

/// The brands one answer mentions, in rank order, and the answer's sentences.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Extraction {
    /// Mentioned brands, rank 1 first.
    pub brands: Vec<BrandHit>,
    /// Every sentence of the answer (see [`text::sentences`]), for the position-adjusted word
    /// count.
    pub sentences: Vec<TextSpan>,
}

impl Extraction {
    /// The hit for `brand`, if the answer mentions it.
    pub fn brand(&self, brand: &str) -> Option<&BrandHit> {
        self.brands.iter().find(|h| h.brand == brand)
    }

    /// Whether the answer mentions the target.
    pub fn mentions_target(&self) -> bool {
        self.brands.iter().any(|h| h.is_target)
    }

    /// The compact per-answer summary stored with each iteration, in rank order. Offsets beyond
    /// `u32::MAX` (answers over 4 GiB) saturate.
    ///
    /// ```
    /// # use echo_core::analysis::BrandMatcher;
    /// # use echo_core::model::{Brand, BrandName};
    /// let m = BrandMatcher::new(&Brand::new(BrandName::parse("Notion")?), &[])?;
    /// let stored = m.extract("- Notion, then notion again").to_mentions();
    /// assert_eq!((stored[0].count, stored[0].first_offset, stored[0].list_position), (2, 2, Some(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_mentions(&self) -> Vec<BrandMention> {
        self.brands
            .iter()
            .map(|h| BrandMention {
                brand: h.brand.clone(),
                count: h.count,
                first_offset: u32::try_from(h.first_offset).unwrap_or(u32::MAX),
                rank: h.rank,
                list_position: h.list_position,
            })
            .collect()
    }
}

impl From<&Extraction> for Vec<BrandMention> {
    fn from(e: &Extraction) -> Self {
        e.to_mentions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BrandName;

    fn brand(name: &str, aliases: &[&str], mode: MatchMode) -> Brand {
        Brand {
            name: BrandName::parse(name).unwrap(),
            aliases: aliases
                .iter()
                .map(|a| BrandName::parse(a).unwrap())
                .collect(),
            match_mode: mode,
        }
    }

    fn ci(name: &str) -> Brand {
        brand(name, &[], MatchMode::CaseInsensitive)
    }

    fn matcher(target: Brand, competitors: Vec<Brand>) -> BrandMatcher {
        BrandMatcher::new(&target, &competitors).unwrap()
    }

    /// (brand, count) in rank order.
    fn counts(e: &Extraction) -> Vec<(&str, u32)> {
        e.brands
            .iter()
            .map(|h| (h.brand.as_str(), h.count))
            .collect()
    }

    fn spans<'t>(text: &'t str, e: &Extraction, brand: &str) -> Vec<&'t str> {
        e.brand(brand)
            .map(|h| h.spans.iter().map(|s| &text[s.start..s.end]).collect())
            .unwrap_or_default()
    }

    #[test]
    fn matcher_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_traits::<BrandMatcher>();
    }

    #[test]
    fn word_boundaries() {
        let m = matcher(ci("Notion"), vec![ci("Asana")]);
        let e = m.extract("Notional value; Asanas; notion-like Notion, (Notion) NOTION.");
        assert_eq!(counts(&e), [("Notion", 4)]);
        assert!(m.extract("Notion2 and 2Notion").brands.is_empty());
    }

    #[test]
    fn possessive_case_and_aliases() {
        let hubspot = brand(
            "HubSpot",
            &["Hubspot Marketing Hub"],
            MatchMode::CaseInsensitive,
        );
        let m = matcher(hubspot, vec![]);
        let text = "HubSpot's CRM beats hubspot. The hubspot marketing hub and HubSpot’s API.";
        let e = m.extract(text);
        assert_eq!(counts(&e), [("HubSpot", 4)]);
        assert_eq!(
            spans(text, &e, "HubSpot"),
            ["HubSpot", "hubspot", "hubspot marketing hub", "HubSpot"]
        );
        assert_eq!(e.brands[0].spans[2].alias, Some(0));
        assert_eq!(e.brands[0].spans[0].alias, None);
    }

    #[test]
    fn names_with_punctuation_and_spaces() {
        let m = matcher(
            ci("Monday.com"),
            vec![
                ci("C3.ai"),
                ci("Procter & Gamble"),
                ci("AT&T"),
                ci("Yahoo!"),
            ],
        );
        let text =
            "Use Monday.com. C3.ai, procter & gamble and AT&T's; Yahoo! too; monday.comfort no.";
        let e = m.extract(text);
        assert_eq!(
            counts(&e),
            [
                ("Monday.com", 1),
                ("C3.ai", 1),
                ("Procter & Gamble", 1),
                ("AT&T", 1),
                ("Yahoo!", 1)
            ]
        );
        assert_eq!(
            e.brand("C3.ai").unwrap().first_offset,
            text.find("C3.ai").unwrap()
        );
    }

    #[test]
    fn markdown_emphasis_links_headings() {
        let m = matcher(
            ci("HubSpot"),
            vec![ci("Salesforce"), ci("Pipedrive"), ci("Zoho")],
        );
        let text = "## Salesforce\n**HubSpot** and __Pipedrive__ and [Zoho](https://zoho.com/crm) `HubSpot`";
        let e = m.extract(text);
        assert_eq!(
            counts(&e),
            [
                ("Salesforce", 1),
                ("HubSpot", 2),
                ("Pipedrive", 1),
                ("Zoho", 1)
            ]
        );
        assert_eq!(e.brand("Salesforce").unwrap().rank, 1);
        assert!(e.brand("Salesforce").unwrap().list_position.is_none());
        let snake = m.extract("set my_hubspot_key or hubspot_ and __hubspot__");
        assert_eq!(counts(&snake), [("HubSpot", 2)]);
    }

    #[test]
    fn list_positions() {
        let m = matcher(
            ci("HubSpot"),
            vec![ci("Salesforce"), ci("Pipedrive"), ci("Zoho")],
        );
        let text = "Here are options:\n\n1. **Salesforce** for enterprise\n2) nothing\n\n\
                    - Zoho\n- **HubSpot**: free\n\nPipedrive is also fine.";
        let e = m.extract(text);
        let lp = |b: &str| e.brand(b).unwrap().list_position;
        assert_eq!(lp("Salesforce"), Some(1));
        assert_eq!(lp("Zoho"), Some(1));
        assert_eq!(lp("HubSpot"), Some(2));
        assert_eq!(lp("Pipedrive"), None);
        let numbered = m.extract("1) Zoho\n2) Pipedrive\n3) HubSpot and Salesforce");
        let lp = |b: &str| numbered.brand(b).unwrap().list_position;
        assert_eq!(
            (lp("Zoho"), lp("Pipedrive"), lp("HubSpot"), lp("Salesforce")),
            (Some(1), Some(2), Some(3), Some(3))
        );
        let mentions = numbered.to_mentions();
        assert_eq!(mentions[3].brand, "Salesforce");
        assert_eq!(mentions[3].rank, 4);
        assert_eq!(mentions[3].list_position, Some(3));
    }

    #[test]
    fn urls_are_not_mentions_but_link_text_is() {
        let m = matcher(ci("HubSpot"), vec![ci("Monday.com")]);
        let e = m.extract(
            "See https://www.hubspot.com/pricing, www.monday.com and <http://hubspot.com>. \
             [docs](hubspot.com/docs) (https://x.io/hubspot)",
        );
        assert!(e.brands.is_empty(), "{:?}", counts(&e));
        let text = "[HubSpot](https://www.hubspot.com) vs monday.com: HubSpot.";
        let e = m.extract(text);
        assert_eq!(counts(&e), [("HubSpot", 2), ("Monday.com", 1)]);
        assert_eq!(e.brands[0].first_offset, 1);
        assert_eq!(counts(&m.extract("awww. HubSpot")), [("HubSpot", 1)]);
    }

    #[test]
    fn case_sensitive_mode() {
        let close = brand("Close", &[], MatchMode::CaseSensitive);
        let bear = brand("Bear", &["Bear Notes"], MatchMode::CaseSensitive);
        let m = matcher(close, vec![bear]);
        let text = "Stay close to the bear market. Close and Bear Notes work; CLOSE is shouting.";
        let e = m.extract(text);
        assert_eq!(counts(&e), [("Close", 1), ("Bear", 1)]);
        assert_eq!(spans(text, &e, "Bear"), ["Bear Notes"]);
    }

    #[test]
    fn aliases_only_mode() {
        let monday = brand(
            "Monday",
            &["monday.com", "Monday CRM"],
            MatchMode::AliasesOnly,
        );
        let m = matcher(monday, vec![]);
        let text = "See you Monday. Monday.com and MONDAY CRM.";
        let e = m.extract(text);
        assert_eq!(spans(text, &e, "Monday"), ["Monday.com", "MONDAY CRM"]);
    }

    #[test]
    fn overlapping_prefers_longest_and_first_brand() {
        let hubspot = brand("HubSpot", &["HubSpot CRM"], MatchMode::CaseInsensitive);
        let crm = ci("CRM");
        let m = matcher(
            hubspot,
            vec![crm, brand("Hub", &["HubSpot"], MatchMode::CaseInsensitive)],
        );
        let text = "HubSpot CRM, HubSpot CRMs, and a CRM.";
        let e = m.extract(text);
        assert_eq!(spans(text, &e, "HubSpot"), ["HubSpot CRM", "HubSpot"]);
        assert_eq!(spans(text, &e, "CRM"), ["CRM"]);
        assert!(
            e.brand("Hub").is_none(),
            "a shared alias counts for the first brand"
        );
    }

    #[test]
    fn unicode_names_and_text() {
        let m = matcher(
            ci("Ørsted"),
            vec![ci("Société Générale"), ci("HubSpot"), ci("腾讯")],
        );
        let text = "İİ ØRSTED и SOCIÉTÉ GÉNÉRALE 🚀HubSpot🚀 我推荐HubSpot。腾讯云很好";
        let e = m.extract(text);
        assert_eq!(
            counts(&e),
            [
                ("Ørsted", 1),
                ("Société Générale", 1),
                ("HubSpot", 2),
                ("腾讯", 1)
            ]
        );
        assert_eq!(spans(text, &e, "Ørsted"), ["ØRSTED"]);
        assert_eq!(spans(text, &e, "Société Générale"), ["SOCIÉTÉ GÉNÉRALE"]);
        assert_eq!(spans(text, &e, "腾讯"), ["腾讯"]);
        for h in &e.brands {
            for s in &h.spans {
                assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            }
        }
    }

    #[test]
    fn ascii_names_in_unicode_text() {
        let m = matcher(ci("HubSpot"), vec![ci("Notion")]);
        let text = "Ça dépend — “HubSpot” est très bien; Notion’s too. ÉNotion no.";
        let e = m.extract(text);
        assert_eq!(counts(&e), [("HubSpot", 1), ("Notion", 1)]);
        assert_eq!(e.brands[0].first_offset, text.find("HubSpot").unwrap());
    }

    #[test]
    fn offsets_ranks_and_sentences() {
        let m = matcher(ci("HubSpot"), vec![ci("Salesforce"), ci("Notion")]);
        let text =
            "Salesforce is big. HubSpot is free and HubSpot is nice. Salesforce too.\nNone here.";
        let e = m.extract(text);
        assert_eq!(e.sentences.len(), 4);
        let sf = e.brand("Salesforce").unwrap();
        let hs = e.brand("HubSpot").unwrap();
        assert_eq!((sf.rank, sf.first_offset, sf.count), (1, 0, 2));
        assert_eq!((hs.rank, hs.first_offset, hs.count), (2, 19, 2));
        assert_eq!(sf.sentences().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(hs.sentences().collect::<Vec<_>>(), [1]);
        assert_eq!(hs.spans[1].sentence, Some(1));
        assert!(!hs.is_target || e.mentions_target());
        let stored: Vec<BrandMention> = (&e).into();
        assert_eq!(stored[1].first_offset, 19);
        assert_eq!(stored[1].brand, "HubSpot");
    }

    #[test]
    fn large_brand_sets_use_the_compact_automaton() {
        let aliases: Vec<String> = (0..100)
            .map(|i| format!("Acme {i} {}", "x".repeat(190)))
            .collect();
        let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
        let acme = brand("Acme", &alias_refs, MatchMode::CaseInsensitive);
        let m = matcher(acme, vec![ci("Zoho")]);
        assert!(matches!(m.index.automaton, Automaton::Nfa(_)));
        let text = format!("Try ACME or {} and zoho.", aliases[7]);
        assert_eq!(m.find(&text), find_brute_force(&m, &text));
        assert_eq!(counts(&m.extract(&text)), [("Acme", 2), ("Zoho", 1)]);
    }

    #[test]
    fn branded_prompt() {
        let m = matcher(ci("HubSpot"), vec![ci("Salesforce")]);
        assert!(m.is_branded("HubSpot vs Salesforce?"));
        assert!(!m.is_branded("Is Salesforce good?"));
        assert!(!m.is_branded("Read https://blog.example/hubspot-review"));
    }

    #[test]
    fn empty_and_duplicate_brands() {
        let m = matcher(ci("HubSpot"), vec![ci("HubSpot"), ci("Zoho")]);
        assert_eq!(m.brands().names(), ["HubSpot", "Zoho"]);
        let e = m.extract("");
        assert_eq!(e, Extraction::default());
    }

    /// Every occurrence of every pattern at every character, compared byte by byte, then
    /// validated and selected by sorting: an independent oracle for the scan and the streaming
    /// [`Collector`].
    fn find_brute_force(m: &BrandMatcher, text: &str) -> Vec<Candidate> {
        let folded = m.unicode_fold.then(|| Folded::new(text));
        let hay = folded.as_ref().map_or(text, |f| f.text.as_str());
        let mut candidates = Vec::new();
        let mut urls = Vec::new();
        for (p, needle) in m.needles.iter().enumerate() {
            for (start, _) in hay.char_indices() {
                let end = start + needle.len();
                let Some(window) = hay.as_bytes().get(start..end) else {
                    continue;
                };
                let same = if m.unicode_fold {
                    window == needle.as_bytes()
                } else {
                    window.eq_ignore_ascii_case(needle.as_bytes())
                };
                if !same {
                    continue;
                }
                let (start, end) = match &folded {
                    Some(f) => f.original_range(text, start, end),
                    None => (start, end),
                };
                match &m.patterns[p] {
                    Pattern::Url(marker) => urls.extend(url_span(text, start, end, *marker)),
                    Pattern::Name {
                        brand,
                        alias,
                        exact,
                        bounded_start,
                        bounded_end,
                    } => {
                        let case_ok = exact.as_deref().is_none_or(|e| &text[start..end] == e);
                        let bounds_ok = (!bounded_start || boundary_before(text, start))
                            && (!bounded_end || boundary_after(text, end));
                        if case_ok && bounds_ok {
                            candidates.push(Candidate {
                                start,
                                end,
                                brand: *brand,
                                alias: *alias,
                            });
                        }
                    }
                }
            }
        }
        candidates.sort_by_key(|c| (c.start, Reverse(c.end), c.brand, c.alias));
        let mut last_end = 0;
        candidates.retain(|c| {
            let in_url = urls
                .iter()
                .any(|u: &TextSpan| u.start <= c.start && c.start < u.end);
            if in_url || c.start < last_end {
                return false;
            }
            last_end = c.end;
            true
        });
        candidates
    }

    /// The extraction rebuilt from the plain oracles: [`find_brute_force`]'s matches, the
    /// reference sentence splitter, a fresh list walk per brand and a linear search for each
    /// span's sentence. The differential tests below hold [`BrandMatcher::extract`] to it.
    fn extract_reference(m: &BrandMatcher, text: &str) -> Extraction {
        let sentences = crate::analysis::text::tests::reference_sentences(text);
        let mut brands: Vec<BrandHit> = Vec::new();
        for c in find_brute_force(m, text) {
            let name = &m.brands().names()[c.brand as usize];
            let span = MatchSpan {
                start: c.start,
                end: c.end,
                alias: c.alias,
                sentence: sentences
                    .iter()
                    .position(|s| s.start <= c.start && c.start < s.end)
                    .map(|i| u32::try_from(i).unwrap()),
            };
            match brands.iter_mut().find(|h| &h.brand == name) {
                Some(hit) => {
                    hit.count += 1;
                    hit.spans.push(span);
                }
                None => brands.push(BrandHit {
                    brand: name.clone(),
                    is_target: c.brand == 0,
                    count: 1,
                    first_offset: c.start,
                    rank: u32::try_from(brands.len() + 1).unwrap(),
                    list_position: super::super::markdown::list_position(text, c.start),
                    spans: vec![span],
                }),
            }
        }
        Extraction { brands, sentences }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn fixture() -> BrandMatcher {
            matcher(
                brand(
                    "HubSpot",
                    &["HubSpot CRM", "hub"],
                    MatchMode::CaseInsensitive,
                ),
                vec![
                    ci("Notion"),
                    ci("Ørsted"),
                    ci("C3.ai"),
                    brand("Close", &[], MatchMode::CaseSensitive),
                    brand("İstanbul Air", &["ß"], MatchMode::AliasesOnly),
                    ci("腾讯"),
                ],
            )
        }

        fn ascii_fixture() -> BrandMatcher {
            matcher(
                brand(
                    "HubSpot",
                    &["HubSpot CRM", "hub"],
                    MatchMode::CaseInsensitive,
                ),
                vec![
                    ci("Notion"),
                    ci("C3.ai"),
                    brand("Close", &["Close.com"], MatchMode::CaseSensitive),
                    brand("Monday", &["monday.com"], MatchMode::AliasesOnly),
                    ci("X"),
                    ci("AT&T"),
                ],
            )
        }

        /// Names starting with ASCII punctuation: tried at every occurrence of their first byte.
        fn punct_fixture() -> BrandMatcher {
            matcher(
                ci("HubSpot"),
                vec![
                    ci(".NET"),
                    brand("@acme", &["C#"], MatchMode::CaseInsensitive),
                ],
            )
        }

        fn check(m: &BrandMatcher, text: &str) {
            assert_eq!(
                m.find(text),
                find_brute_force(m, text),
                "scan misses or adds a match"
            );
            let e = m.extract(text);
            let ranks: Vec<u32> = e.brands.iter().map(|h| h.rank).collect();
            let expected: Vec<u32> = (1..=u32::try_from(e.brands.len()).unwrap()).collect();
            assert_eq!(ranks, expected);
            let mut last_end = 0;
            let mut all: Vec<MatchSpan> = e.brands.iter().flat_map(|h| h.spans.clone()).collect();
            all.sort_by_key(|s| s.start);
            for s in &all {
                assert!(s.start < s.end && s.end <= text.len());
                assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
                assert!(s.start >= last_end, "spans overlap");
                last_end = s.end;
            }
            for (i, h) in e.brands.iter().enumerate() {
                assert!(h.count >= 1);
                assert_eq!(h.count as usize, h.spans.len());
                assert_eq!(h.first_offset, h.spans[0].start);
                assert!(text.is_char_boundary(h.first_offset));
                if i > 0 {
                    assert!(e.brands[i - 1].first_offset < h.first_offset);
                }
                assert!(h.list_position.is_none_or(|p| p >= 1));
                for si in h.sentences() {
                    assert!((si as usize) < e.sentences.len());
                }
            }
            for s in &e.sentences {
                assert!(s.text(text).is_some());
            }
        }

        proptest! {
            #[test]
            fn never_panics_and_keeps_invariants(text in "\\PC*") {
                check(&fixture(), &text);
                check(&ascii_fixture(), &text);
                check(&punct_fixture(), &text);
            }

            #[test]
            fn brand_heavy_text(parts in proptest::collection::vec(prop_oneof![
                Just("HubSpot"), Just("hubspot crm"), Just("Notion"), Just("ØRSTED"), Just("C3.ai"),
                Just("Close"), Just("İ"), Just("ß"), Just("SS"), Just("腾讯"), Just(" "), Just("\n"),
                Just("1. "), Just("- "), Just("**"), Just("_"), Just("."), Just("https://"),
                Just("www."), Just("]("), Just(")"), Just("é"), Just("🚀"), Just("Σ"), Just("x"),
                Just("CLOSE"), Just("close.com"), Just("Monday.com"), Just("at&t"), Just("荐"),
                Just(".net"), Just("@ACME"), Just("c#"), Just("#"),
            ], 0..40)) {
                let text: String = parts.concat();
                check(&fixture(), &text);
                check(&ascii_fixture(), &text);
                check(&punct_fixture(), &text);
            }
        }

        /// More kinds of leading punctuation than the block scan compares: scanned byte by byte.
        fn many_punct_fixture() -> BrandMatcher {
            matcher(
                brand("HubSpot", &["hub"], MatchMode::CaseInsensitive),
                vec![
                    ci(".NET"),
                    ci("@acme"),
                    ci("#hash"),
                    ci("+plus"),
                    brand("(paren)", &["-dash"], MatchMode::CaseInsensitive),
                ],
            )
        }

        /// `extract` and `find` against the oracles, for every fixture.
        fn differential(text: &str) -> Result<(), TestCaseError> {
            let many = many_punct_fixture();
            prop_assert!(
                many.index.anywhere_ascii.len() > 4,
                "exercises the byte scan"
            );
            for m in [fixture(), ascii_fixture(), punct_fixture(), many] {
                prop_assert_eq!(m.find(text), find_brute_force(&m, text));
                prop_assert_eq!(m.extract(text), extract_reference(&m, text));
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn extract_matches_reference_on_any_text(text in "\\PC*") {
                differential(&text)?;
            }

            #[test]
            fn extract_matches_reference_on_long_text(
                chars in proptest::collection::vec(any::<char>(), 0..300)
            ) {
                differential(&chars.into_iter().collect::<String>())?;
            }

            #[test]
            fn extract_matches_reference_on_markdown(parts in proptest::collection::vec(prop_oneof![
                Just("HubSpot"), Just("hubspot crm"), Just("HUB"), Just("Notion"), Just("ØRSTED"),
                Just("C3.ai"), Just("Close"), Just("close.com"), Just("Monday.com"), Just("monday"),
                Just("AT&T"), Just("X"), Just("İstanbul Air"), Just("ß"), Just("腾讯"), Just(".NET"),
                Just("@acme"), Just("#hash"), Just("+plus"), Just("(paren)"), Just("-dash"),
                Just("c#"), Just("word"), Just("x"), Just("é"), Just("🚀"), Just("İ"), Just("Σ"),
                Just(" "), Just("  "), Just("    "), Just("\t"), Just("\n"), Just("\n\n"),
                Just("\r\n"), Just("1. "), Just("2) "), Just("10. "), Just("- "), Just("* "),
                Just("+ "), Just("# "), Just("## "), Just("```"), Just("~~~"), Just("---"),
                Just("***"), Just("> "), Just("| "), Just("**"), Just("__"), Just("_"), Just("`"),
                Just("["), Just("]("), Just(")"), Just("https://"), Just("www."),
                Just("http://x.io/"), Just(". "), Just("! "), Just("? "), Just("."), Just("e.g. "),
                Just("Inc. "), Just("No. 1"), Just("。"), Just("”"), Just("’s"),
            ], 0..80)) {
                differential(&parts.concat())?;
            }
        }
    }
}
