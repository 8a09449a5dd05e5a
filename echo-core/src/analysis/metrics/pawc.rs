//! The GEO paper's position-adjusted word count, per answer and per run. Apart from the
//! mention metrics because it needs each answer's sentences, not only the stored mentions.

use serde::{Deserialize, Serialize};

use crate::analysis::extract::{Extraction, TrackedBrands};
use crate::analysis::text::count_words;

/// One brand's word count and position-adjusted word count (PAWC) in one answer.
///
/// Source: Aggarwal et al., "GEO: Generative Engine Optimization", KDD 2024, arXiv 2311.09735,
/// §2.2.1, Eq. 2 (word count) and Eq. 3 (position-adjusted word count), defined there for cited
/// sources and applied here to brands: a sentence "cites" the brands it names.
///
/// With `|s|` the word tokens longer than 2 characters of sentence `s` ([`count_words`]), `k_s`
/// the number of tracked brands sentence `s` names, `i` its 0-based index among the answer's `N`
/// sentences and `w_i = exp(−i/(N−1))` (`w = 1` when `N = 1`):
/// - `word_share = Σ_{s names b} |s|/k_s ÷ Σ_s |s|` (Eq. 2). Unit: share of the answer's words.
/// - `position_adjusted_share = Σ_{s names b} w_i·|s|/k_s ÷ Σ_s |s|` (Eq. 3). Unit: weighted
///   words per answer word; earlier sentences weigh more.
/// - `normalised_word_share`, `normalised_position_adjusted`: the same numerators divided by
///   their sum over the brands the answer names, so the named brands share 1, as the paper
///   scales the sources of one response to sum to 1. `normalised_position_adjusted` is the
///   paper's "impression" score for the brand.
///
/// **Reading of the formula.** The weight is the GEO reference code's `exp(−i/(N−1))` with a
/// 0-based index over all sentences (`GEO-optim/GEO`, `src/utils.py`); the paper's `pos(s)/|S|`
/// read as 1-based `pos/N` gives different numbers (0.4119 / 0.5881 below). Sentences follow
/// [`text::sentences`](crate::analysis::text::sentences); an answer without word tokens, or whose named brands have no
/// words, has `None` shares (the reference code instead gives every source 1/n).
///
/// Worked example: four sentences of 10, 20, 10 and 10 words naming {A}, {B}, {A, B}, {}.
/// Weights are 1, e^(−1/3) = 0.7165, e^(−2/3) = 0.5134, e^(−1) = 0.3679. A's words are
/// 10 + 10/2 = 15 and B's 20 + 10/2 = 25 of 50: word shares 0.30 and 0.50, normalised 0.375 and
/// 0.625. Weighted, A = 10 + 5·0.5134 = 12.567 and B = 20·0.7165 + 5·0.5134 = 16.898:
/// position-adjusted shares 0.2513 and 0.3380 of 50 words, normalised 0.4265 and 0.5735.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandPawc {
    /// Canonical name.
    pub brand: String,
    /// Words attributed to the brand, `Σ |s|/k_s`.
    pub words: f64,
    /// Position-weighted words, `Σ w_i·|s|/k_s`.
    pub weighted_words: f64,
    /// Eq. 2: `words ÷` the answer's words.
    pub word_share: Option<f64>,
    /// Eq. 3: `weighted_words ÷` the answer's words.
    pub position_adjusted_share: Option<f64>,
    /// `words ÷` the named brands' total words.
    pub normalised_word_share: Option<f64>,
    /// `weighted_words ÷` the named brands' total weighted words (the GEO impression).
    pub normalised_position_adjusted: Option<f64>,
}

/// The word-count metrics of one answer (see [`BrandPawc`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerPawc {
    /// Sentences, `N`.
    pub sentences: u32,
    /// Word tokens longer than two characters in all sentences, `Σ_s |s|`.
    pub words: u32,
    /// The brands the answer names, in rank order.
    pub brands: Vec<BrandPawc>,
}

impl AnswerPawc {
    /// The row of `brand`.
    pub fn brand(&self, brand: &str) -> Option<&BrandPawc> {
        self.brands.iter().find(|b| b.brand == brand)
    }
}

/// Word count and position-adjusted word count of every brand `extraction` found in `text`
/// (which must be the text it was extracted from; spans that do not fit count no words).
///
/// ```
/// use echo_core::analysis::{BrandMatcher, position_adjusted_word_count};
/// use echo_core::model::{Brand, BrandName};
///
/// let m = BrandMatcher::new(&Brand::new(BrandName::parse("HubSpot")?),
///     &[Brand::new(BrandName::parse("Salesforce")?)])?;
/// let text = "HubSpot has a free plan. Salesforce and HubSpot both integrate widely.";
/// let pawc = position_adjusted_word_count(text, &m.extract(text));
/// // "HubSpot has free plan" and "Salesforce and HubSpot both integrate widely"
/// assert_eq!(pawc.words, 10);
/// let hs = pawc.brand("HubSpot").unwrap();
/// assert_eq!(hs.words, 4.0 + 6.0 / 2.0); // the second sentence is shared with Salesforce
/// assert!(hs.normalised_position_adjusted.unwrap() > hs.normalised_word_share.unwrap());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn position_adjusted_word_count(text: &str, extraction: &Extraction) -> AnswerPawc {
    let words: Vec<u32> = extraction
        .sentences
        .iter()
        .map(|s| s.text(text).map_or(0, count_words))
        .collect();
    let sentences: Vec<Vec<u32>> = extraction
        .brands
        .iter()
        .map(|h| h.sentences().collect())
        .collect();
    let brands: Vec<(&str, &[u32])> = extraction
        .brands
        .iter()
        .zip(&sentences)
        .map(|(h, s)| (h.brand.as_str(), s.as_slice()))
        .collect();
    pawc_from_sentences(&words, &brands)
}

/// The computation behind [`position_adjusted_word_count`]: `words[i]` is sentence `i`'s word
/// count; each brand lists the sentence indices that name it.
pub(super) fn pawc_from_sentences(words: &[u32], brands: &[(&str, &[u32])]) -> AnswerPawc {
    let n = words.len();
    let mut named_by = vec![0u32; n];
    for (_, sentences) in brands {
        let mut last = None;
        for &s in *sentences {
            if last == Some(s) {
                continue;
            }
            last = Some(s);
            if let Some(k) = named_by.get_mut(s as usize) {
                *k += 1;
            }
        }
    }
    let weight = |i: usize| {
        if n <= 1 {
            1.0
        } else {
            (-(i as f64) / (n - 1) as f64).exp()
        }
    };
    let total: u64 = words.iter().map(|&w| u64::from(w)).sum();
    let mut rows: Vec<BrandPawc> = brands
        .iter()
        .map(|(brand, sentences)| {
            let mut plain = 0.0;
            let mut weighted = 0.0;
            let mut last = None;
            for &s in *sentences {
                let i = s as usize;
                // A sentence listed twice for one brand still counts once.
                if last == Some(i) {
                    continue;
                }
                last = Some(i);
                let (Some(&w), Some(&k)) = (words.get(i), named_by.get(i)) else {
                    continue;
                };
                let share = f64::from(w) / f64::from(k.max(1));
                plain += share;
                weighted += share * weight(i);
            }
            let of_total = |x: f64| (total > 0).then(|| x / total as f64);
            BrandPawc {
                brand: (*brand).to_owned(),
                words: plain,
                weighted_words: weighted,
                word_share: of_total(plain),
                position_adjusted_share: of_total(weighted),
                normalised_word_share: None,
                normalised_position_adjusted: None,
            }
        })
        .collect();
    let sum_plain: f64 = rows.iter().map(|r| r.words).sum();
    let sum_weighted: f64 = rows.iter().map(|r| r.weighted_words).sum();
    for r in &mut rows {
        r.normalised_word_share = (sum_plain > 0.0).then(|| r.words / sum_plain);
        r.normalised_position_adjusted =
            (sum_weighted > 0.0).then(|| r.weighted_words / sum_weighted);
    }
    AnswerPawc {
        sentences: u32::try_from(n).unwrap_or(u32::MAX),
        words: u32::try_from(total).unwrap_or(u32::MAX),
        brands: rows,
    }
}

/// One brand's word-count metrics averaged over a run's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandPawcSummary {
    /// Canonical name.
    pub brand: String,
    /// Whether this is the experiment's target.
    pub is_target: bool,
    /// Mean [`BrandPawc::word_share`] over answers with words (0 where the brand is absent).
    pub mean_word_share: Option<f64>,
    /// Mean [`BrandPawc::position_adjusted_share`], same denominator.
    pub mean_position_adjusted_share: Option<f64>,
    /// Mean [`BrandPawc::normalised_word_share`] over informative answers (0 where absent).
    pub mean_normalised_word_share: Option<f64>,
    /// Mean [`BrandPawc::normalised_position_adjusted`] over informative answers (0 where
    /// absent): the brand's average GEO impression.
    pub mean_normalised_position_adjusted: Option<f64>,
}

/// Word-count metrics averaged over the successful answers of a run. Each answer weighs the
/// same. The plain shares average over answers with at least one word token; the normalised
/// shares over answers in which some tracked brand has words (the others have no brands to
/// share among). Both are `None` when there is no such answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PawcSummary {
    /// Answers averaged.
    pub answers: u32,
    /// Answers with at least one word token: the denominator of the plain means.
    pub answers_with_words: u32,
    /// Answers where tracked brands have words: the denominator of the normalised means.
    pub informative_answers: u32,
    /// One row per tracked brand, target first.
    pub brands: Vec<BrandPawcSummary>,
}

impl PawcSummary {
    /// Averages per-answer results.
    ///
    /// ```
    /// use echo_core::analysis::{BrandMatcher, PawcSummary, position_adjusted_word_count};
    /// use echo_core::model::{Brand, BrandName};
    ///
    /// let m = BrandMatcher::new(&Brand::new(BrandName::parse("Notion")?), &[])?;
    /// let answers = ["Notion is great for notes.", "Use paper notebooks instead."];
    /// let per_answer: Vec<_> = answers
    ///     .iter()
    ///     .map(|a| position_adjusted_word_count(a, &m.extract(a)))
    ///     .collect();
    /// let summary = PawcSummary::mean(m.brands(), &per_answer);
    /// assert_eq!(summary.brands[0].mean_word_share, Some(0.5)); // 1.0 and 0.0
    /// assert_eq!(summary.brands[0].mean_normalised_position_adjusted, Some(1.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mean<'a>(
        brands: &TrackedBrands,
        answers: impl IntoIterator<Item = &'a AnswerPawc>,
    ) -> Self {
        let names = brands.names();
        let mut sums = vec![[0.0f64; 4]; names.len()];
        let (mut count, mut with_words, mut informative) = (0u32, 0u32, 0u32);
        for a in answers {
            count = count.saturating_add(1);
            if a.words > 0 {
                with_words = with_words.saturating_add(1);
            }
            if a.brands.iter().any(|b| b.normalised_word_share.is_some()) {
                informative = informative.saturating_add(1);
            }
            for b in &a.brands {
                let Some(sum) = brands.index_of(&b.brand).and_then(|i| sums.get_mut(i)) else {
                    continue;
                };
                let values = [
                    b.word_share,
                    b.position_adjusted_share,
                    b.normalised_word_share,
                    b.normalised_position_adjusted,
                ];
                for (s, v) in sum.iter_mut().zip(values) {
                    *s += v.unwrap_or(0.0);
                }
            }
        }
        let mean = |sum: f64, den: u32| (den > 0).then(|| sum / f64::from(den));
        let rows = names
            .iter()
            .zip(&sums)
            .enumerate()
            .map(|(i, (name, s))| BrandPawcSummary {
                brand: name.clone(),
                is_target: i == 0,
                mean_word_share: mean(s[0], with_words),
                mean_position_adjusted_share: mean(s[1], with_words),
                mean_normalised_word_share: mean(s[2], informative),
                mean_normalised_position_adjusted: mean(s[3], informative),
            })
            .collect();
        Self {
            answers: count,
            answers_with_words: with_words,
            informative_answers: informative,
            brands: rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::BrandMatcher;
    use crate::analysis::metrics::tests::round4;
    use crate::model::{Brand, BrandName};
    use proptest::prelude::*;

    #[test]
    fn pawc_reference_vector() {
        let a: &[u32] = &[0, 2];
        let b: &[u32] = &[1, 2];
        let p = pawc_from_sentences(&[10, 20, 10, 10], &[("A", a), ("B", b)]);
        assert_eq!((p.sentences, p.words), (4, 50));
        let (ra, rb) = (p.brand("A").unwrap(), p.brand("B").unwrap());
        assert_eq!(round4(ra.word_share.unwrap()), 0.30);
        assert_eq!(round4(rb.word_share.unwrap()), 0.50);
        assert_eq!(round4(ra.normalised_word_share.unwrap()), 0.375);
        assert_eq!(round4(rb.normalised_word_share.unwrap()), 0.625);
        assert_eq!(round4(ra.normalised_position_adjusted.unwrap()), 0.4265);
        assert_eq!(round4(rb.normalised_position_adjusted.unwrap()), 0.5735);
        assert_eq!(round4(ra.position_adjusted_share.unwrap()), 0.2513);
        assert_eq!(round4(rb.position_adjusted_share.unwrap()), 0.3380);
    }

    #[test]
    fn pawc_paper_reading_differs() {
        // The paper's pos/|S| read 1-based with |S| = 4 gives 0.4119 / 0.5881: not our reading.
        let w = |i: f64| (-i / 4.0).exp();
        let a = 10.0 * w(1.0) + 5.0 * w(3.0);
        let b = 20.0 * w(2.0) + 5.0 * w(3.0);
        assert_eq!(round4(a / (a + b)), 0.4119);
        let p = pawc_from_sentences(&[10, 20, 10, 10], &[("A", &[0, 2]), ("B", &[1, 2])]);
        assert_ne!(
            round4(p.brands[0].normalised_position_adjusted.unwrap()),
            0.4119
        );
    }

    #[test]
    fn pawc_from_text_worked_example() {
        let target = Brand::new(BrandName::parse("Alpha").unwrap());
        let comps = [Brand::new(BrandName::parse("Bravo").unwrap())];
        let m = BrandMatcher::new(&target, &comps).unwrap();
        let filler = |n: usize| vec!["word"; n].join(" ");
        // Brand names are words too: each sentence below has exactly 10, 20, 10, 10 tokens.
        let text = format!(
            "Alpha {}. Bravo {}. Alpha and Bravo {}.\n{}",
            filler(9),
            filler(19),
            filler(7),
            filler(10)
        );
        let e = m.extract(&text);
        assert_eq!(e.sentences.len(), 4);
        let p = position_adjusted_word_count(&text, &e);
        assert_eq!(p.words, 50);
        let a = p.brand("Alpha").unwrap();
        let b = p.brand("Bravo").unwrap();
        assert_eq!(round4(a.word_share.unwrap()), 0.30);
        assert_eq!(round4(b.word_share.unwrap()), 0.50);
        assert_eq!(round4(a.normalised_position_adjusted.unwrap()), 0.4265);
        assert_eq!(round4(b.normalised_position_adjusted.unwrap()), 0.5735);

        let single = "Alpha is the only sentence here";
        let p = position_adjusted_word_count(single, &m.extract(single));
        assert_eq!(
            p.brands[0].position_adjusted_share,
            Some(1.0),
            "N = 1: weight 1"
        );
    }

    #[test]
    fn pawc_degenerate_answers() {
        let p = pawc_from_sentences(&[], &[]);
        assert_eq!((p.sentences, p.words, p.brands.len()), (0, 0, 0));
        let p = pawc_from_sentences(&[0, 5], &[("A", &[0, 0, 9])]);
        let a = &p.brands[0];
        assert_eq!(
            (a.words, a.word_share, a.normalised_word_share),
            (0.0, Some(0.0), None)
        );
        assert_eq!(a.normalised_position_adjusted, None);
        let p = pawc_from_sentences(&[0], &[("A", &[0])]);
        assert_eq!(p.brands[0].word_share, None);
        let brands = TrackedBrands::from_names("A", ["B"]);
        let s = PawcSummary::mean(&brands, []);
        assert_eq!(s.brands[0].mean_word_share, None);
        assert_eq!(s.answers, 0);
    }

    #[test]
    fn pawc_summary_means() {
        let brands = TrackedBrands::from_names("A", ["B"]);
        let one = pawc_from_sentences(&[10, 20, 10, 10], &[("A", &[0, 2]), ("B", &[1, 2])]);
        let none = pawc_from_sentences(&[10], &[]);
        let s = PawcSummary::mean(&brands, [&one, &none]);
        assert_eq!(
            (s.answers, s.answers_with_words, s.informative_answers),
            (2, 2, 1)
        );
        assert_eq!(round4(s.brands[0].mean_word_share.unwrap()), 0.15);
        assert_eq!(
            round4(s.brands[1].mean_normalised_position_adjusted.unwrap()),
            0.5735
        );
        assert!(s.brands[0].is_target && !s.brands[1].is_target);

        // An answer without word tokens is averaged in `answers` but not in the plain means.
        let silent = pawc_from_sentences(&[0], &[("A", &[0])]);
        let s = PawcSummary::mean(&brands, [&one, &silent]);
        assert_eq!(
            (s.answers, s.answers_with_words, s.informative_answers),
            (2, 1, 1)
        );
        assert_eq!(round4(s.brands[0].mean_word_share.unwrap()), 0.30);
    }
    proptest! {

        #[test]
        fn pawc_is_finite(
            words in prop::collection::vec(0u32..50, 0..12),
            a in prop::collection::vec(0u32..14, 0..5),
            b in prop::collection::vec(0u32..14, 0..5),
        ) {
            let (mut a, mut b) = (a, b);
            a.sort_unstable();
            b.sort_unstable();
            let p = pawc_from_sentences(&words, &[("A", &a), ("B", &b)]);
            crate::analysis::assert_json_round_trip(&p);
            let norm: f64 = p.brands.iter().filter_map(|r| r.normalised_position_adjusted).sum();
            prop_assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-9);
            for r in &p.brands {
                for v in [r.word_share, r.position_adjusted_share].into_iter().flatten() {
                    prop_assert!((0.0..=1.0 + 1e-12).contains(&v));
                }
            }
        }
    }
}
