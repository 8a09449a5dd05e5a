//! Cited sources: which domains the answers cite, how often, and how much of each answer the
//! GEO paper's impression metrics attribute to each source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::pawc::pawc_from_sentences;
use crate::analysis::stats::Proportion;
use crate::analysis::text::{TextSpan, count_words, sentences};
use crate::model::{Iteration, IterationSource, registrable_domain};

/// The GEO reference code's citation marker (`GEO-optim/GEO`, `src/utils.py`): `[1]`, `[^2]`,
/// `[*3*]`; the number is the source's 1-based position.
static MARKER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\[[^\w\s]*(\d+)[^\w\s]*\]").ok());

/// One source's word count and position-adjusted word count in one answer.
///
/// Source: Aggarwal et al., "GEO: Generative Engine Optimization", KDD 2024, arXiv 2311.09735,
/// §2.2.1, Eq. 2 and Eq. 3, with the conventions of the paper's reference code:
/// - the answer is split into [`sentences`] and a sentence's size `|s|` is its word tokens
///   longer than two characters ([`count_words`]);
/// - a sentence is attributed to a source when one of the source's spans overlaps it or, for a
///   source without spans, when it carries the source's `[n]` marker (`n` its 1-based
///   position; a marker with no such source, a hallucinated citation, is ignored). A sentence
///   attributed to `k` sources gives each `|s|/k`;
/// - the weight of the sentence with 0-based index `i` among `N` is `exp(−i/(N−1))` (1 when
///   `N = 1`);
/// - `word_share = Σ |s|/k ÷ Σ_s |s|` (Eq. 2) and `position_adjusted_share = Σ w_i·|s|/k ÷
///   Σ_s |s|` (Eq. 3), over the whole answer's words;
/// - the `normalised_` values divide by the answer's sources' total so they sum to 1 (the
///   paper's impressions); **when no source is attributed any word, each source gets 1/n**, as
///   the reference code does.
///
/// Worked example (the toy vector of the project's metric notes): four sentences of 10, 20, 10
/// and 10 words citing {1}, {2}, {1, 2}, {}. Word shares 15/50 = 0.30 and 25/50 = 0.50,
/// normalised 0.375 and 0.625; with weights 1, 0.7165, 0.5134, 0.3679 the position-adjusted
/// words are 12.567 and 16.898, normalised 0.4265 and 0.5735.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceImpression {
    /// The source's 1-based position in the answer's list.
    pub position: u32,
    /// Its registrable domain.
    pub domain: String,
    /// Words attributed to it, `Σ |s|/k`.
    pub words: f64,
    /// Position-weighted words, `Σ w_i·|s|/k`.
    pub weighted_words: f64,
    /// Eq. 2: `words ÷` the answer's words; `None` for an answer without words.
    pub word_share: Option<f64>,
    /// Eq. 3: `weighted_words ÷` the answer's words.
    pub position_adjusted_share: Option<f64>,
    /// Word-count impression: `words ÷` all sources' words (1/n when that is 0).
    pub normalised_word_share: f64,
    /// Position-adjusted impression: `weighted_words ÷` all sources' weighted words (1/n when
    /// that is 0).
    pub normalised_position_adjusted: f64,
}

/// The impression of every source of one answer, in the answer's source order.
///
/// ```
/// use echo_core::analysis::source_impressions;
/// use echo_core::model::IterationSource;
///
/// let src = |position: u32, domain: &str| IterationSource {
///     position, url: format!("https://{domain}/"), domain: domain.into(), title: None, spans: vec![],
/// };
/// let text = "HubSpot offers a generous free CRM plan [1]. Salesforce dominates enterprise sales [2].";
/// let got = source_impressions(text, &[src(1, "hubspot.com"), src(2, "salesforce.com")]);
/// // 6 and 4 words ("[1]" and words of one or two letters do not count); the first sentence
/// // weighs 1, the second e^-1.
/// assert!((got[0].normalised_word_share - 6.0 / 10.0).abs() < 1e-12);
/// assert!(got[0].normalised_position_adjusted > got[0].normalised_word_share);
/// ```
pub fn source_impressions(text: &str, sources: &[IterationSource]) -> Vec<SourceImpression> {
    if sources.is_empty() {
        return Vec::new();
    }
    let spans = sentences(text);
    let words: Vec<u32> = spans
        .iter()
        .map(|s| s.text(text).map_or(0, count_words))
        .collect();
    let markers: Vec<BTreeSet<u32>> = spans.iter().map(|s| markers_in(s, text)).collect();
    let cited: Vec<Vec<u32>> = sources
        .iter()
        .map(|src| {
            (0u32..)
                .zip(&spans)
                .zip(&markers)
                .filter(|((_, sentence), marked)| {
                    if src.spans.is_empty() {
                        marked.contains(&src.position)
                    } else {
                        src.spans.iter().any(|span| {
                            (span.start as usize) < sentence.end
                                && sentence.start < span.end as usize
                        })
                    }
                })
                .map(|((i, _), _)| i)
                .collect()
        })
        .collect();
    let labels: Vec<String> = (0..sources.len()).map(|i| i.to_string()).collect();
    let rows: Vec<(&str, &[u32])> = labels
        .iter()
        .zip(&cited)
        .map(|(l, c)| (l.as_str(), c.as_slice()))
        .collect();
    let answer = pawc_from_sentences(&words, &rows);
    let even = 1.0 / sources.len() as f64;
    sources
        .iter()
        .zip(answer.brands)
        .map(|(src, row)| SourceImpression {
            position: src.position,
            domain: src.domain.clone(),
            words: row.words,
            weighted_words: row.weighted_words,
            word_share: row.word_share,
            position_adjusted_share: row.position_adjusted_share,
            normalised_word_share: row.normalised_word_share.unwrap_or(even),
            normalised_position_adjusted: row.normalised_position_adjusted.unwrap_or(even),
        })
        .collect()
}

fn markers_in(sentence: &TextSpan, text: &str) -> BTreeSet<u32> {
    let (Some(re), Some(s)) = (MARKER.as_ref(), sentence.text(text)) else {
        return BTreeSet::new();
    };
    re.captures_iter(s)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .collect()
}

/// One answer as the source metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAnswer<'a> {
    /// The stored answer, for the impression metrics.
    pub text: &'a str,
    /// Its sources.
    pub sources: &'a [IterationSource],
}

impl<'a> SourceAnswer<'a> {
    /// The iteration as a sample of the source metrics: `None` for a failed call (no answer)
    /// and for an anonymized one, whose sources the retention policy removed (counting it
    /// would read as "cited nothing").
    pub fn from_iteration(it: &'a Iteration) -> Option<Self> {
        if !it.is_success || it.is_anonymized {
            return None;
        }
        Some(Self {
            text: it.raw_response.as_deref()?,
            sources: &it.sources,
        })
    }
}

/// How often one domain is cited, and how much of the answers its sources account for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainCitations {
    /// Registrable domain.
    pub domain: String,
    /// Citation rate: answers citing the domain at least once ÷ answers (`n` of
    /// [`SourceMetrics`]), with its Wilson 95% interval.
    pub citation_rate: Proportion,
    /// Citations of the domain (each cited source counts; one answer may cite it twice).
    pub citations: u32,
    /// Citation share: `citations ÷` all citations; `None` when nothing was cited.
    pub citation_share: Option<f64>,
    /// Mean word-count impression (GEO Eq. 2, normalised per answer; see [`SourceImpression`])
    /// of the domain's sources, over the answers that cite anything (an answer citing other
    /// domains only counts 0); `None` when no answer cites anything.
    pub word_impression: Option<f64>,
    /// Mean position-adjusted word-count impression (GEO Eq. 3), same denominator.
    pub position_adjusted_impression: Option<f64>,
    /// Whether this is the brand profile's own domain.
    pub is_owned: bool,
}

/// The cited-source metrics of a set of answers: one run, or several pooled.
///
/// Unit of sampling: the successful, not anonymized answer ([`SourceAnswer::from_iteration`]).
/// Pooling runs is computing over the union of their answers, so the pooled rate's
/// denominator is the sum of the runs'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceMetrics {
    /// Answers, the denominator of every citation rate.
    pub n: u32,
    /// Answers citing at least one source (the denominator of the mean impressions).
    pub answers_with_sources: u32,
    /// Sources cited, all answers together (the denominator of citation shares).
    pub citations: u32,
    /// The brand profile's domain, as a registrable domain, when it has one.
    pub owned_domain: Option<String>,
    /// Answers citing the owned domain ÷ answers, with its Wilson interval; `None` without an
    /// owned domain.
    pub owned_citation_rate: Option<Proportion>,
    /// Every cited domain: most answers citing it first, then most citations, then by name.
    pub domains: Vec<DomainCitations>,
}

#[derive(Default)]
struct Tally {
    answers: u32,
    citations: u32,
    words: f64,
    weighted: f64,
}

impl SourceMetrics {
    /// The metrics of `answers`, with `owned_domain` (the brand profile's `domain`, as a bare
    /// host or a URL) reduced to its registrable domain.
    ///
    /// ```
    /// use echo_core::analysis::{SourceAnswer, SourceMetrics};
    /// use echo_core::model::IterationSource;
    ///
    /// let src = |position: u32, domain: &str| IterationSource {
    ///     position, url: format!("https://{domain}/"), domain: domain.into(), title: None, spans: vec![],
    /// };
    /// let a = [src(1, "hubspot.com"), src(2, "g2.com")];
    /// let b = [src(1, "g2.com"), src(2, "g2.com")];
    /// let answers = [
    ///     SourceAnswer { text: "HubSpot is free [1]. G2 ranks it first [2].", sources: &a },
    ///     SourceAnswer { text: "Reviews agree [1][2].", sources: &b },
    ///     SourceAnswer { text: "No sources here.", sources: &[] },
    /// ];
    /// let m = SourceMetrics::compute(answers, Some("www.HubSpot.com"));
    /// assert_eq!((m.n, m.answers_with_sources, m.citations), (3, 2, 4));
    /// let g2 = &m.domains[0];
    /// assert_eq!((g2.domain.as_str(), g2.citation_rate.successes, g2.citations), ("g2.com", 2, 3));
    /// assert_eq!(g2.citation_share, Some(0.75));
    /// assert_eq!(m.owned_citation_rate.unwrap().successes, 1);
    /// ```
    pub fn compute<'a>(
        answers: impl IntoIterator<Item = SourceAnswer<'a>>,
        owned_domain: Option<&str>,
    ) -> Self {
        let owned = owned_domain.and_then(owned_registrable_domain);
        let mut n = 0u32;
        let mut with_sources = 0u32;
        let mut citations = 0u32;
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        for answer in answers {
            n = n.saturating_add(1);
            if answer.sources.is_empty() {
                continue;
            }
            with_sources = with_sources.saturating_add(1);
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for imp in source_impressions(answer.text, answer.sources) {
                citations = citations.saturating_add(1);
                let t = tallies.entry(imp.domain.clone()).or_default();
                t.citations = t.citations.saturating_add(1);
                t.words += imp.normalised_word_share;
                t.weighted += imp.normalised_position_adjusted;
            }
            for src in answer.sources {
                if seen.insert(&src.domain)
                    && let Some(t) = tallies.get_mut(&src.domain)
                {
                    t.answers = t.answers.saturating_add(1);
                }
            }
        }
        let mean = |x: f64| (with_sources > 0).then(|| x / f64::from(with_sources));
        let mut domains: Vec<DomainCitations> = tallies
            .into_iter()
            .map(|(domain, t)| DomainCitations {
                is_owned: owned.as_deref() == Some(domain.as_str()),
                citation_rate: Proportion::new(t.answers, n),
                citations: t.citations,
                citation_share: (citations > 0)
                    .then(|| f64::from(t.citations) / f64::from(citations)),
                word_impression: mean(t.words),
                position_adjusted_impression: mean(t.weighted),
                domain,
            })
            .collect();
        domains.sort_by(|a, b| {
            b.citation_rate
                .successes
                .cmp(&a.citation_rate.successes)
                .then(b.citations.cmp(&a.citations))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        let owned_citation_rate = owned.as_ref().map(|o| {
            let citing = domains
                .iter()
                .find(|d| &d.domain == o)
                .map_or(0, |d| d.citation_rate.successes);
            Proportion::new(citing, n)
        });
        Self {
            n,
            answers_with_sources: with_sources,
            citations,
            owned_domain: owned,
            owned_citation_rate,
            domains,
        }
    }

    /// The `k` most cited domains (the order of [`SourceMetrics::domains`]).
    pub fn top_domains(&self, k: usize) -> &[DomainCitations] {
        &self.domains[..k.min(self.domains.len())]
    }
}

/// The registrable domain of a brand profile's `domain` setting, which users write as
/// `hubspot.com`, `www.hubspot.com` or a full URL.
fn owned_registrable_domain(setting: &str) -> Option<String> {
    let setting = setting.trim();
    if setting.is_empty() {
        return None;
    }
    if setting.contains("://") {
        registrable_domain(setting)
    } else {
        registrable_domain(&format!("https://{setting}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::provider::SourceSpan;

    fn src(position: u32, domain: &str, spans: Vec<SourceSpan>) -> IterationSource {
        IterationSource {
            position,
            url: format!("https://{domain}/page"),
            domain: domain.into(),
            title: None,
            spans,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    /// `n` distinct words of four letters or more.
    fn words(n: usize, tag: &str) -> String {
        (0..n)
            .map(|i| format!("{tag}word{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The reference notes' toy vector, checked by hand: sentences of 10, 20, 10 and 10 words
    /// citing {1}, {2}, {1, 2} and nothing.
    ///
    /// Word count: source 1 has 10 + 10/2 = 15 of 50 words (0.30), source 2 has 20 + 5 = 25
    /// (0.50); normalised 15/40 = 0.375 and 25/40 = 0.625.
    /// PAWC, weights exp(−i/3): 1, 0.71653, 0.51342, 0.36788. Source 1: 10 + 5·0.51342 =
    /// 12.5671; source 2: 20·0.71653 + 5·0.51342 = 16.8977; of 50 words 0.25134 and 0.33795;
    /// normalised 12.5671/29.4648 = 0.4265 and 0.5735.
    #[test]
    fn toy_vector_with_markers() {
        let text = format!(
            "{} [1]. {} [2]. {} [1][2]. {}.",
            words(10, "a"),
            words(20, "b"),
            words(10, "c"),
            words(10, "d")
        );
        let s = [src(1, "one.com", vec![]), src(2, "two.com", vec![])];
        let got = source_impressions(&text, &s);
        assert_eq!(got.len(), 2);
        assert!(close(got[0].words, 15.0) && close(got[1].words, 25.0));
        assert!(close(got[0].word_share.unwrap(), 0.30));
        assert!(close(got[1].word_share.unwrap(), 0.50));
        assert!(close(got[0].normalised_word_share, 0.375));
        assert!(close(got[1].normalised_word_share, 0.625));
        assert!(close(got[0].weighted_words, 12.5671));
        assert!(close(got[1].weighted_words, 16.8977));
        assert!(close(got[0].position_adjusted_share.unwrap(), 0.25134));
        assert!(close(got[1].position_adjusted_share.unwrap(), 0.33795));
        assert!(close(got[0].normalised_position_adjusted, 0.4265));
        assert!(close(got[1].normalised_position_adjusted, 0.5735));
    }

    /// The same vector attributed through spans instead of markers gives the same numbers.
    #[test]
    fn toy_vector_with_spans() {
        let parts = [
            words(10, "a"),
            words(20, "b"),
            words(10, "c"),
            words(10, "d"),
        ];
        let text = parts
            .iter()
            .map(|p| format!("{p}."))
            .collect::<Vec<_>>()
            .join(" ");
        let mut offsets = Vec::new();
        let mut at = 0u32;
        for p in &parts {
            let len = p.len() as u32 + 1;
            offsets.push(SourceSpan {
                start: at,
                end: at + len,
            });
            at += len + 1;
        }
        let s = [
            src(1, "one.com", vec![offsets[0], offsets[2]]),
            // A span covering only part of a sentence still attributes all of it.
            src(
                2,
                "two.com",
                vec![
                    offsets[1],
                    SourceSpan {
                        start: offsets[2].start + 3,
                        end: offsets[2].start + 9,
                    },
                ],
            ),
        ];
        let got = source_impressions(&text, &s);
        assert!(close(got[0].normalised_word_share, 0.375));
        assert!(close(got[0].normalised_position_adjusted, 0.4265));
        assert!(close(got[1].normalised_position_adjusted, 0.5735));
    }

    #[test]
    fn unattributed_sources_share_evenly_and_hallucinated_markers_are_ignored() {
        let s = [
            src(1, "one.com", vec![]),
            src(2, "two.com", vec![]),
            src(3, "three.com", vec![]),
        ];
        let got = source_impressions("Plain answer without markers [9].", &s);
        for imp in &got {
            assert!(close(imp.normalised_word_share, 1.0 / 3.0));
            assert!(close(imp.normalised_position_adjusted, 1.0 / 3.0));
            assert_eq!(imp.words, 0.0);
        }
        assert!(source_impressions("text", &[]).is_empty());
        // An empty answer: no words, shares undefined, impressions even.
        let empty = source_impressions("", &s[..1]);
        assert_eq!(empty[0].word_share, None);
        assert_eq!(empty[0].normalised_word_share, 1.0);
    }

    #[test]
    fn rates_shares_and_owned_domain() {
        let a = [
            src(1, "hubspot.com", vec![]),
            src(2, "g2.com", vec![]),
            src(3, "g2.com", vec![]),
        ];
        let b = [src(1, "g2.com", vec![])];
        let text_a = "HubSpot leads [1]. Reviews agree [2]. More reviews concur [3].";
        let answers = [
            SourceAnswer {
                text: text_a,
                sources: &a,
            },
            SourceAnswer {
                text: "Reviews [1].",
                sources: &b,
            },
            SourceAnswer {
                text: "Nothing cited.",
                sources: &[],
            },
            SourceAnswer {
                text: "Nothing cited either.",
                sources: &[],
            },
        ];
        let m = SourceMetrics::compute(answers, Some("https://www.hubspot.com/about"));
        assert_eq!((m.n, m.answers_with_sources, m.citations), (4, 2, 4));
        assert_eq!(m.owned_domain.as_deref(), Some("hubspot.com"));
        let owned = m.owned_citation_rate.unwrap();
        assert_eq!((owned.successes, owned.n), (1, 4));
        assert_eq!(m.domains.len(), 2);
        let g2 = &m.domains[0];
        assert_eq!(g2.domain, "g2.com");
        assert_eq!((g2.citation_rate.successes, g2.citation_rate.n), (2, 4));
        assert_eq!(g2.citation_rate.rate, Some(0.5));
        let ci = g2.citation_rate.ci95.unwrap();
        assert!(close(ci.lower, 0.15004) && close(ci.upper, 0.84996));
        assert_eq!(g2.citations, 3);
        assert_eq!(g2.citation_share, Some(0.75));
        assert!(!g2.is_owned);
        let hs = &m.domains[1];
        assert!(hs.is_owned);
        assert_eq!(hs.citation_share, Some(0.25));
        // Impressions average over the two answers with sources and, per answer, sum to 1.
        let total: f64 = m.domains.iter().filter_map(|d| d.word_impression).sum();
        assert!(close(total, 1.0));
        // In answer b g2 has everything; in answer a two of three sentences (2 + 3 of 7 words).
        assert!(close(g2.word_impression.unwrap(), (5.0 / 7.0 + 1.0) / 2.0));
        assert_eq!(m.top_domains(1).len(), 1);
        assert_eq!(m.top_domains(10).len(), 2);
    }

    #[test]
    fn no_answers_and_no_owned_domain() {
        let m = SourceMetrics::compute([], None);
        assert_eq!((m.n, m.citations), (0, 0));
        assert!(m.owned_citation_rate.is_none() && m.domains.is_empty());
        let m = SourceMetrics::compute(
            [SourceAnswer {
                text: "x",
                sources: &[],
            }],
            Some("example.org"),
        );
        let owned = m.owned_citation_rate.unwrap();
        assert_eq!((owned.successes, owned.n), (0, 1));
    }
}
