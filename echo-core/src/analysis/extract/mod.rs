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

mod collect;
mod extraction;
mod scan;

use std::sync::Arc;

use super::markdown::ListPositions;
use super::text::{self, is_unspaced_script, is_word_char};
use crate::model::{Brand, MatchMode};
use collect::{Candidate, Collector, Folded, fold_str};
pub use extraction::{BrandHit, Extraction, MatchSpan};
use scan::Index;

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

#[cfg(test)]
mod tests;
