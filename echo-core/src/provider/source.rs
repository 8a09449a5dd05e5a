//! The web sources a provider cites for an answer, and the one place where what a provider
//! returned about them is checked ([`normalize_sources`]).
//!
//! Citation data comes from a third party and is treated as hostile: URLs that are not
//! absolute `http(s)`, spans outside the answer or inside a UTF-8 character, blank titles and
//! duplicates are dropped one by one, never failing the completion that carries them, and
//! an answer keeps at most [`MAX_SOURCES_PER_ANSWER`] sources so that a response with ten
//! thousand entries cannot bloat storage.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Most sources kept per answer; later distinct URLs are dropped. Real answers cite 3 to 20
/// (Perplexity about 5 to 10, Gemini and OpenAI search about 10, Anthropic at most a few per
/// search); 50 leaves room for a long research answer while bounding what one hostile
/// response can make Echo store (50 URLs of at most 2 KiB plus titles: under 120 KiB).
pub const MAX_SOURCES_PER_ANSWER: usize = 50;

/// Longest URL kept, in bytes. Browsers and CDNs reject much beyond 2 KiB; anything longer is
/// a tracking blob, not a source.
pub const MAX_URL_BYTES: usize = 2048;

/// Longest title kept, in characters; longer titles are cut.
pub const MAX_TITLE_CHARS: usize = 300;

/// Most spans kept per source; a source supporting more sentences than this is already
/// recorded as supporting most of the answer.
pub const MAX_SPANS_PER_SOURCE: usize = 100;

/// One web source a provider cited for an answer, as far as its API described it.
///
/// Adapters keep what is valid and drop the rest: a source always has a URL, while its title and
/// the spans it supports are there only when the API returns them. Values built by hand are
/// not checked; [`normalize_sources`] is what makes them trustworthy, and every adapter and the
/// simulated provider pass their sources through it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CitedSource {
    /// The URL: absolute `http` or `https`, as the `url` crate serialises it (scheme and host
    /// lower-cased, `/` for an empty path), so that one page is one URL.
    pub url: String,
    /// The page title, where the API gives one: control characters removed, whitespace runs
    /// collapsed, at most [`MAX_TITLE_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The parts of the answer this source supports, where the API gives them (OpenAI's
    /// `url_citation` annotations, Gemini's `groundingSupports`, Anthropic's cited text
    /// blocks); sorted, distinct, empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SourceSpan>,
}

impl CitedSource {
    /// A source known only by its URL.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            title: None,
            spans: Vec::new(),
        }
    }

    /// This source with `title` (unchecked until normalised).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// This source with `span` added (unchecked until normalised).
    #[must_use]
    pub fn with_span(mut self, span: SourceSpan) -> Self {
        self.spans.push(span);
        self
    }
}

/// A byte range of [`Completion::text`](super::Completion::text) that a source supports:
/// `start < end <= text.len()`, both on character boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceSpan {
    /// First byte of the span.
    pub start: u32,
    /// One past the last byte of the span.
    pub end: u32,
}

impl SourceSpan {
    /// The span `start..end` in bytes, when both fit in a `u32` (answers are far shorter).
    /// Whether it fits a given text is checked by [`SourceSpan::is_valid_in`].
    pub fn from_bytes(start: usize, end: usize) -> Option<Self> {
        Some(Self {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// The byte span of the characters `start..end` of `text` (Unicode scalar values, as
    /// Python's `str` counts them), or `None` when either index is past the end of the text or
    /// the range is empty or reversed.
    ///
    /// ```
    /// use echo_core::provider::SourceSpan;
    /// // "é" is two bytes: characters 1..3 of "héllo" are bytes 1..4.
    /// assert_eq!(SourceSpan::from_chars("héllo", 1, 3), SourceSpan::from_bytes(1, 4));
    /// assert_eq!(SourceSpan::from_chars("héllo", 3, 9), None);
    /// ```
    pub fn from_chars(text: &str, start: usize, end: usize) -> Option<Self> {
        if start >= end {
            return None;
        }
        let byte_of = |index: usize| {
            text.char_indices()
                .map(|(at, _)| at)
                .chain(std::iter::once(text.len()))
                .nth(index)
        };
        let first = byte_of(start)?;
        // Counting on from `first` keeps the conversion one pass over the text.
        let last = text[first..]
            .char_indices()
            .map(|(at, _)| first + at)
            .chain(std::iter::once(text.len()))
            .nth(end - start)?;
        Self::from_bytes(first, last)
    }

    /// Whether this is a non-empty range of `text` that starts and ends on character
    /// boundaries.
    pub fn is_valid_in(&self, text: &str) -> bool {
        let (start, end) = (self.start as usize, self.end as usize);
        start < end
            && end <= text.len()
            && text.is_char_boundary(start)
            && text.is_char_boundary(end)
    }

    /// The text this span covers, when it is valid in `text`.
    pub fn slice<'a>(&self, text: &'a str) -> Option<&'a str> {
        self.is_valid_in(text)
            .then(|| text.get(self.start as usize..self.end as usize))
            .flatten()
    }
}

/// The canonical form of `raw` when it is an absolute `http(s)` URL worth keeping: at most
/// [`MAX_URL_BYTES`], no whitespace or control characters inside, a host, and no credentials
/// (a URL with a password in it must not be stored or shown). `None` otherwise: relative
/// URLs, `javascript:`, `data:`, `mailto:` and plain text are not sources.
pub fn source_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty()
        || raw.len() > MAX_URL_BYTES
        || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    let web = matches!(url.scheme(), "http" | "https");
    let host = url.host_str().is_some_and(|h| !h.is_empty());
    let credentials = !url.username().is_empty() || url.password().is_some();
    (web && host && !credentials && url.as_str().len() <= MAX_URL_BYTES).then(|| url.into())
}

/// A title fit to store and show: control characters removed, whitespace collapsed, cut to
/// [`MAX_TITLE_CHARS`]; `None` when nothing is left.
fn clean_title(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let cut: String = cleaned.chars().take(MAX_TITLE_CHARS).collect();
    let cut = cut.trim_end().to_owned();
    (!cut.is_empty()).then_some(cut)
}

/// Checks the sources a provider returned for the answer `text`, keeping what is valid.
///
/// In order of first appearance, each distinct URL (by [`source_url`]'s canonical form) is
/// kept once, up to [`MAX_SOURCES_PER_ANSWER`]. Later entries for a kept URL add their
/// spans and, when it had none, their title. Spans that are empty, reversed, past the end of
/// `text` or not on character boundaries are dropped, as are entries whose URL is not an
/// absolute `http(s)` URL. Never fails: the answer stands whatever its citations look like.
///
/// ```
/// use echo_core::provider::{CitedSource, SourceSpan, normalize_sources};
/// let text = "HubSpot is free to start.";
/// let raw = vec![
///     CitedSource::from_url("javascript:alert(1)"),
///     CitedSource::from_url(" https://WWW.HubSpot.com ").with_span(SourceSpan { start: 0, end: 25 }),
///     CitedSource::from_url("https://www.hubspot.com/").with_title("HubSpot"),
///     CitedSource::from_url("/relative").with_title("Relative"),
///     CitedSource::from_url("https://g2.com/crm").with_span(SourceSpan { start: 20, end: 99 }),
/// ];
/// let kept = normalize_sources(text, raw);
/// assert_eq!(kept.len(), 2);
/// assert_eq!(kept[0].url, "https://www.hubspot.com/");
/// assert_eq!(kept[0].title.as_deref(), Some("HubSpot"));
/// assert_eq!(kept[0].spans, [SourceSpan { start: 0, end: 25 }]);
/// assert!(kept[1].spans.is_empty()); // the span ran past the answer
/// ```
pub fn normalize_sources(
    text: &str,
    raw: impl IntoIterator<Item = CitedSource>,
) -> Vec<CitedSource> {
    let mut kept: Vec<CitedSource> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut dropped = 0usize;
    for source in raw {
        let Some(url) = source_url(&source.url) else {
            dropped += 1;
            continue;
        };
        let at = match index.get(&url) {
            Some(&at) => at,
            None if kept.len() < MAX_SOURCES_PER_ANSWER => {
                index.insert(url.clone(), kept.len());
                kept.push(CitedSource::from_url(url));
                kept.len() - 1
            }
            None => {
                dropped += 1;
                continue;
            }
        };
        let Some(entry) = kept.get_mut(at) else {
            continue;
        };
        if entry.title.is_none() {
            entry.title = source.title.as_deref().and_then(clean_title);
        }
        for span in source.spans {
            if entry.spans.len() >= MAX_SPANS_PER_SOURCE {
                break;
            }
            if span.is_valid_in(text) && !entry.spans.contains(&span) {
                entry.spans.push(span);
            }
        }
    }
    for entry in &mut kept {
        entry.spans.sort_unstable();
    }
    if dropped > 0 {
        tracing::debug!(
            kept = kept.len(),
            dropped,
            "dropped citation entries that were invalid or over the cap"
        );
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span(start: u32, end: u32) -> SourceSpan {
        SourceSpan { start, end }
    }

    #[test]
    fn only_absolute_web_urls_are_sources() {
        for bad in [
            "",
            "   ",
            "not a url",
            "/relative/path",
            "//example.com/x",
            "www.example.com",
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<b>x</b>",
            "mailto:a@example.com",
            "ftp://example.com/file",
            "file:///etc/passwd",
            "http://",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            "https://example.com/\u{0}x",
        ] {
            assert_eq!(source_url(bad), None, "{bad:?}");
        }
        assert_eq!(
            source_url(" HTTPS://Example.COM ").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            source_url("http://example.com/a?b=c#d").as_deref(),
            Some("http://example.com/a?b=c#d")
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(source_url(&long), None);
    }

    #[test]
    fn spans_must_lie_on_character_boundaries_inside_the_text() {
        let text = "héllo wörld";
        assert!(span(0, 1).is_valid_in(text));
        assert!(span(0, text.len() as u32).is_valid_in(text));
        assert!(!span(0, 2).is_valid_in(text), "inside é");
        assert!(!span(3, 3).is_valid_in(text), "empty");
        assert!(!span(5, 3).is_valid_in(text), "reversed");
        assert!(
            !span(0, text.len() as u32 + 1).is_valid_in(text),
            "past the end"
        );
        assert_eq!(span(7, 13).slice(text), Some("wörld"));
    }

    #[test]
    fn character_indices_become_byte_offsets() {
        let text = "Ünïcödé café";
        let s = SourceSpan::from_chars(text, 8, 12).unwrap();
        assert_eq!(s.slice(text), Some("café"));
        assert_eq!(
            SourceSpan::from_chars(text, 0, 12).unwrap().slice(text),
            Some(text)
        );
        assert_eq!(SourceSpan::from_chars(text, 0, 13), None);
        assert_eq!(SourceSpan::from_chars(text, 4, 4), None);
        assert_eq!(SourceSpan::from_chars(text, 5, 2), None);
        assert_eq!(SourceSpan::from_bytes(usize::MAX, usize::MAX), None);
    }

    #[test]
    fn duplicates_merge_and_keep_first_position() {
        let text = "One. Two. Three.";
        let kept = normalize_sources(
            text,
            [
                CitedSource::from_url("https://a.example/x").with_span(span(5, 9)),
                CitedSource::from_url("https://b.example/"),
                CitedSource::from_url("https://A.example/x")
                    .with_title("  A\n\ttitle\u{7} ")
                    .with_span(span(0, 4))
                    .with_span(span(5, 9)),
                CitedSource::from_url("https://a.example/x").with_title("later title"),
            ],
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].url, "https://a.example/x");
        assert_eq!(kept[0].title.as_deref(), Some("A title"));
        assert_eq!(kept[0].spans, [span(0, 4), span(5, 9)]);
        assert_eq!(kept[1].url, "https://b.example/");
    }

    #[test]
    fn titles_are_cleaned_and_capped() {
        assert_eq!(clean_title(" \u{0}\n "), None);
        let long = "é".repeat(MAX_TITLE_CHARS + 50);
        assert_eq!(
            clean_title(&long).map(|t| t.chars().count()),
            Some(MAX_TITLE_CHARS)
        );
    }

    #[test]
    fn a_flood_of_entries_is_capped() {
        let text = "answer";
        let raw = (0..10_000).map(|i| {
            CitedSource::from_url(format!("https://site{i}.example/"))
                .with_span(span(0, 6))
                .with_title(format!("Site {i}"))
        });
        let kept = normalize_sources(text, raw);
        assert_eq!(kept.len(), MAX_SOURCES_PER_ANSWER);
        assert_eq!(kept[0].url, "https://site0.example/");
        let last = MAX_SOURCES_PER_ANSWER - 1;
        assert_eq!(kept[last].url, format!("https://site{last}.example/"));
        let spans = (0..10_000u32).map(|i| span(i % 6, 6));
        let one = normalize_sources(
            text,
            [CitedSource {
                url: "https://x.example/".into(),
                title: None,
                spans: spans.collect(),
            }],
        );
        assert_eq!(one[0].spans.len(), 6);
    }

    fn arbitrary_url() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "(https?|ftp|javascript|data|HTTP)://[a-zA-Z0-9.:@-]{0,20}(/\\PC{0,20})?",
            "https://[a-z]{1,8}\\.example/[a-z]{0,5}",
            "/[a-z/]{0,10}",
        ]
    }

    fn arbitrary_source() -> impl Strategy<Value = CitedSource> {
        (
            arbitrary_url(),
            proptest::option::of("\\PC{0,40}|[\\x00-\\x1f ]{0,5}"),
            proptest::collection::vec((0u32..80, 0u32..80), 0..6),
        )
            .prop_map(|(url, title, spans)| CitedSource {
                url,
                title,
                spans: spans
                    .into_iter()
                    .map(|(start, end)| SourceSpan { start, end })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn normalising_never_panics_and_keeps_only_valid_sources(
            text in "\\PC{0,60}",
            raw in proptest::collection::vec(arbitrary_source(), 0..80),
        ) {
            let kept = normalize_sources(&text, raw.clone());
            prop_assert!(kept.len() <= MAX_SOURCES_PER_ANSWER);
            let mut urls = std::collections::HashSet::new();
            for source in &kept {
                prop_assert!(urls.insert(source.url.clone()), "duplicate {}", source.url);
                prop_assert_eq!(source_url(&source.url), Some(source.url.clone()));
                prop_assert!(source.url.starts_with("http://") || source.url.starts_with("https://"));
                if let Some(title) = &source.title {
                    prop_assert!(!title.trim().is_empty());
                    prop_assert!(!title.chars().any(char::is_control));
                    prop_assert!(title.chars().count() <= MAX_TITLE_CHARS);
                }
                prop_assert!(source.spans.len() <= MAX_SPANS_PER_SOURCE);
                prop_assert!(source.spans.windows(2).all(|w| w[0] < w[1]));
                for s in &source.spans {
                    prop_assert!(s.slice(&text).is_some());
                }
            }
            // Every valid input URL is kept while there is room.
            let valid: std::collections::HashSet<String> =
                raw.iter().filter_map(|s| source_url(&s.url)).collect();
            prop_assert_eq!(kept.len(), valid.len().min(MAX_SOURCES_PER_ANSWER));
            // Normalising is idempotent.
            prop_assert_eq!(normalize_sources(&text, kept.clone()), kept);
        }

        #[test]
        fn char_spans_round_trip(text in "\\PC{0,40}", a in 0usize..50, b in 0usize..50) {
            let chars = text.chars().count();
            match SourceSpan::from_chars(&text, a, b) {
                Some(s) => {
                    prop_assert!(a < b && b <= chars);
                    let expected: String = text.chars().skip(a).take(b - a).collect();
                    prop_assert_eq!(s.slice(&text), Some(expected.as_str()));
                }
                None => prop_assert!(a >= b || b > chars),
            }
        }
    }
}
