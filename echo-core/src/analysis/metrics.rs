//! Metrics of a batch run (one provider, n answers) and of an experiment across providers.
//!
//! Every rate names its unit and denominator. The unit of sampling is the *successful answer*:
//! failed calls are counted but never enter a denominator, because a failure says nothing about
//! what the assistant would have said. Rates that are undefined (no successful answer, no brand
//! named) are `None`, never NaN, and the counts behind every rate are kept so runs can be pooled
//! exactly.
//!
//! Metrics are computed from the compact [`BrandMention`] lists stored with each iteration
//! ([`RunMetrics::compute`]) or straight from [`Extraction`]s
//! ([`RunMetrics::from_extractions`]); no re-extraction is needed. The position-adjusted word
//! count needs the answer's sentences, so it is a separate per-answer computation
//! ([`position_adjusted_word_count`]) whose results are averaged by [`PawcSummary::mean`].

use serde::{Deserialize, Serialize};

use super::extract::{Extraction, TrackedBrands};
use super::stats::{Proportion, ProportionChange};
use super::text::count_words;
use crate::model::{BrandMention, Iteration, ProviderKind};

/// One iteration as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRecord<'a> {
    /// The provider call failed: counted in `failures`, excluded from every denominator.
    Failed,
    /// The call succeeded but the answer was not analysed (no mention list stored): counted in
    /// `unanalysed`, excluded from denominators rather than read as "named nobody".
    Unanalysed,
    /// A successful, analysed answer and the tracked brands it names (possibly none).
    Analysed(&'a [BrandMention]),
}

impl<'a> AnswerRecord<'a> {
    /// From the stored fields of an iteration.
    pub fn from_stored(is_success: bool, mentions: Option<&'a [BrandMention]>) -> Self {
        match (is_success, mentions) {
            (false, _) => Self::Failed,
            (true, None) => Self::Unanalysed,
            (true, Some(m)) => Self::Analysed(m),
        }
    }

    /// From a stored iteration.
    pub fn from_iteration(iteration: &'a Iteration) -> Self {
        Self::from_stored(iteration.is_success, iteration.mentions.as_deref())
    }
}

/// Cautions that travel with the numbers, for reports to show beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Caveat {
    /// No successful, analysed answer: every rate is undefined.
    NoAnswers,
    /// Fewer than half of the answers name any tracked brand. Visibility stays meaningful, but
    /// share of voice, rank and first place then describe a minority of answers, and a rate over
    /// answers naming nobody says little about how the brands compare.
    FewInformativeAnswers {
        /// Answers naming a tracked brand.
        informative: u32,
        /// Successful answers.
        n: u32,
    },
    /// The prompt names the target, which inflates its visibility: report it apart from
    /// non-branded prompts, never pooled with them.
    BrandedPrompt,
    /// Successful answers without a stored analysis were left out of every denominator.
    Unanalysed {
        /// How many.
        count: u32,
    },
}

/// One tracked brand's numbers in a run (or pooled over runs).
///
/// Worked example: 10 successful answers; HubSpot is named in 4 of them (ranks 1, 2, 1, 3;
/// 7 matches), any tracked brand in 8, and tracked brands have 20 matches in all. Then
/// visibility = 4/10 = 0.40 (Wilson 95% [0.168, 0.687]), mention share of voice = 7/20 = 0.35,
/// answer share of voice = 4/8 = 0.50, average rank = 7/4 = 1.75, first place = 2/10 = 0.20.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandMetrics {
    /// Canonical name.
    pub brand: String,
    /// Whether this is the experiment's target.
    pub is_target: bool,
    /// **Visibility rate**: successful answers naming the brand ÷ successful answers, with a
    /// Wilson 95% interval. Unit: share of answers. The market's common definition (Profound,
    /// Peec: "responses mentioning the brand ÷ responses"), each answer counted once however
    /// often it names the brand (as Ahrefs does).
    pub visibility: Proportion,
    /// Matches of the brand's names and aliases in all successful answers.
    pub mentions: u64,
    /// **Share of voice, mention-based**: this brand's matches ÷ matches of all tracked brands
    /// (Peec's "tracked set" definition; the universe is the tracked brands only, not every
    /// company named). `None` when no tracked brand was named.
    pub mention_share_of_voice: Option<f64>,
    /// **Share of voice, answer-based**: answers naming this brand ÷ answers naming any tracked
    /// brand (AirOps' definition). Unit: share of informative answers. `None` when no answer
    /// named a tracked brand.
    pub answer_share_of_voice: Option<f64>,
    /// Sum of the brand's ranks over the answers naming it (for exact pooling).
    pub rank_sum: u64,
    /// **Average rank**: mean, over the answers naming the brand, of its 1-based rank among the
    /// tracked brands of that answer by first appearance (Peec's "position"). Lower is better;
    /// `None` when no answer names it. It is conditional on being named, so read it beside
    /// visibility.
    pub average_rank: Option<f64>,
    /// **First-place rate**: answers in which the brand is named first (rank 1) ÷ successful
    /// answers, with a Wilson interval. Over all answers rather than the answers naming the
    /// brand, so that the brands' first-place rates add up to the informative rate (ranks being
    /// among the tracked brands); `first_place.successes ÷ visibility.successes` is the rate
    /// among the answers that name the brand.
    pub first_place: Proportion,
    /// Answers whose first mention of the brand is a markdown list item.
    pub list_answers: u32,
    /// Sum of those list positions.
    pub list_position_sum: u64,
    /// Mean list position over `list_answers`; `None` when 0.
    pub average_list_position: Option<f64>,
}

/// A batch run's metrics: sample, informative rate, and one row per tracked brand.
///
/// ```
/// use echo_core::analysis::{AnswerRecord, RunMetrics, TrackedBrands};
/// use echo_core::model::BrandMention;
///
/// let mention = |brand: &str, rank| BrandMention {
///     brand: brand.into(), count: 1, first_offset: 0, rank, list_position: None,
/// };
/// let a1 = [mention("HubSpot", 1), mention("Salesforce", 2)];
/// let a2 = [mention("Salesforce", 1)];
/// let answers = [
///     AnswerRecord::Analysed(&a1),
///     AnswerRecord::Analysed(&a2),
///     AnswerRecord::Analysed(&[]),
///     AnswerRecord::Failed,
/// ];
/// let brands = TrackedBrands::from_names("HubSpot", ["Salesforce"]);
/// let m = RunMetrics::compute(&brands, false, answers);
/// assert_eq!((m.n, m.failures, m.informative.successes), (3, 1, 2));
/// let hubspot = m.target().unwrap();
/// assert_eq!(hubspot.visibility.successes, 1);
/// assert_eq!(hubspot.mention_share_of_voice, Some(1.0 / 3.0));
/// assert_eq!(hubspot.answer_share_of_voice, Some(0.5));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Iterations considered (successful, failed and unanalysed).
    pub answers: u32,
    /// **Sample size**: successful, analysed answers; the denominator of every rate.
    pub n: u32,
    /// Failed provider calls.
    pub failures: u32,
    /// Successful answers without a stored analysis (excluded from `n`).
    pub unanalysed: u32,
    /// **Informative rate**: answers naming any tracked brand ÷ `n`. Unit: share of answers.
    /// When low, most answers named nobody and the comparative metrics (share of voice, rank)
    /// rest on few answers; see [`Caveat::FewInformativeAnswers`].
    pub informative: Proportion,
    /// Matches of all tracked brands in all successful answers.
    pub mentions: u64,
    /// Whether the prompt names the target ([`BrandMatcher::is_branded`]).
    ///
    /// [`BrandMatcher::is_branded`]: super::BrandMatcher::is_branded
    pub branded_prompt: bool,
    /// One row per tracked brand: the target first, then competitors in order.
    pub brands: Vec<BrandMetrics>,
    /// Cautions for reports.
    pub caveats: Vec<Caveat>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BrandTally {
    answers: u32,
    mentions: u64,
    rank_sum: u64,
    first_place: u32,
    list_answers: u32,
    list_position_sum: u64,
}

/// Plain counts: what pooling adds up and what every rate is derived from.
#[derive(Debug, Clone, Default)]
struct Tally {
    answers: u32,
    n: u32,
    failures: u32,
    unanalysed: u32,
    informative: u32,
    mentions: u64,
    brands: Vec<BrandTally>,
}

/// One brand as named in one answer.
#[derive(Debug, Clone, Copy)]
struct Named {
    brand: usize,
    count: u32,
    rank: u32,
    list_position: Option<u32>,
}

impl Tally {
    fn new(brands: usize) -> Self {
        Self {
            brands: vec![BrandTally::default(); brands],
            ..Self::default()
        }
    }

    fn failed(&mut self) {
        self.answers = self.answers.saturating_add(1);
        self.failures = self.failures.saturating_add(1);
    }

    fn unanalysed(&mut self) {
        self.answers = self.answers.saturating_add(1);
        self.unanalysed = self.unanalysed.saturating_add(1);
    }

    /// A successful answer. `seen` is scratch space (one flag per brand) so a brand listed twice
    /// in one answer still counts once.
    fn analysed(&mut self, named: impl Iterator<Item = Named>, seen: &mut [bool]) {
        self.answers = self.answers.saturating_add(1);
        self.n = self.n.saturating_add(1);
        seen.fill(false);
        let mut any = false;
        for m in named {
            let (Some(b), Some(flag)) = (self.brands.get_mut(m.brand), seen.get_mut(m.brand))
            else {
                continue;
            };
            if m.count == 0 {
                continue;
            }
            self.mentions = self.mentions.saturating_add(u64::from(m.count));
            b.mentions = b.mentions.saturating_add(u64::from(m.count));
            if *flag {
                continue;
            }
            *flag = true;
            any = true;
            b.answers = b.answers.saturating_add(1);
            b.rank_sum = b.rank_sum.saturating_add(u64::from(m.rank));
            if m.rank == 1 {
                b.first_place = b.first_place.saturating_add(1);
            }
            if let Some(p) = m.list_position {
                b.list_answers = b.list_answers.saturating_add(1);
                b.list_position_sum = b.list_position_sum.saturating_add(u64::from(p));
            }
        }
        if any {
            self.informative = self.informative.saturating_add(1);
        }
    }

    fn finish(&self, names: &[String], branded_prompt: bool) -> RunMetrics {
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let brands = names
            .iter()
            .zip(&self.brands)
            .enumerate()
            .map(|(i, (name, t))| BrandMetrics {
                brand: name.clone(),
                is_target: i == 0,
                visibility: Proportion::new(t.answers, self.n),
                mentions: t.mentions,
                mention_share_of_voice: ratio(t.mentions, self.mentions),
                answer_share_of_voice: ratio(u64::from(t.answers), u64::from(self.informative)),
                rank_sum: t.rank_sum,
                average_rank: ratio(t.rank_sum, u64::from(t.answers)),
                first_place: Proportion::new(t.first_place, self.n),
                list_answers: t.list_answers,
                list_position_sum: t.list_position_sum,
                average_list_position: ratio(t.list_position_sum, u64::from(t.list_answers)),
            })
            .collect();
        let mut caveats = Vec::new();
        if self.n == 0 {
            caveats.push(Caveat::NoAnswers);
        } else if u64::from(self.informative) * 2 < u64::from(self.n) {
            caveats.push(Caveat::FewInformativeAnswers {
                informative: self.informative,
                n: self.n,
            });
        }
        if branded_prompt {
            caveats.push(Caveat::BrandedPrompt);
        }
        if self.unanalysed > 0 {
            caveats.push(Caveat::Unanalysed {
                count: self.unanalysed,
            });
        }
        RunMetrics {
            answers: self.answers,
            n: self.n,
            failures: self.failures,
            unanalysed: self.unanalysed,
            informative: Proportion::new(self.informative, self.n),
            mentions: self.mentions,
            branded_prompt,
            brands,
            caveats,
        }
    }
}

impl RunMetrics {
    /// Metrics of a run from its stored iterations. Mentions of brands that are not in `brands`
    /// (e.g. a competitor removed since) are ignored; `branded_prompt` comes from
    /// [`BrandMatcher::is_branded`](super::BrandMatcher::is_branded) on the prompt.
    pub fn compute<'a>(
        brands: &TrackedBrands,
        branded_prompt: bool,
        answers: impl IntoIterator<Item = AnswerRecord<'a>>,
    ) -> Self {
        let names = brands.names();
        let mut tally = Tally::new(names.len());
        let mut seen = vec![false; names.len()];
        for answer in answers {
            match answer {
                AnswerRecord::Failed => tally.failed(),
                AnswerRecord::Unanalysed => tally.unanalysed(),
                AnswerRecord::Analysed(mentions) => {
                    let named = mentions.iter().filter_map(|m| {
                        Some(Named {
                            brand: brands.index_of(&m.brand)?,
                            count: m.count,
                            rank: m.rank,
                            list_position: m.list_position,
                        })
                    });
                    tally.analysed(named, &mut seen);
                }
            }
        }
        tally.finish(names, branded_prompt)
    }

    /// The same from fresh extractions; `None` is a failed call.
    pub fn from_extractions<'a>(
        brands: &TrackedBrands,
        branded_prompt: bool,
        answers: impl IntoIterator<Item = Option<&'a Extraction>>,
    ) -> Self {
        let names = brands.names();
        let mut tally = Tally::new(names.len());
        let mut seen = vec![false; names.len()];
        for answer in answers {
            match answer {
                None => tally.failed(),
                Some(e) => {
                    let named = e.brands.iter().filter_map(|h| {
                        Some(Named {
                            brand: brands.index_of(&h.brand)?,
                            count: h.count,
                            rank: h.rank,
                            list_position: h.list_position,
                        })
                    });
                    tally.analysed(named, &mut seen);
                }
            }
        }
        tally.finish(names, branded_prompt)
    }

    /// The target's row.
    pub fn target(&self) -> Option<&BrandMetrics> {
        self.brands.iter().find(|b| b.is_target)
    }

    /// The row of `brand`.
    pub fn brand(&self, brand: &str) -> Option<&BrandMetrics> {
        self.brands.iter().find(|b| b.brand == brand)
    }

    /// The change of the target's visibility from `before` to `self`, with its significance
    /// (see [`ProportionChange`]); `None` when either run has no target row.
    ///
    /// ```
    /// use echo_core::analysis::{AnswerRecord, RunMetrics, TrackedBrands};
    /// use echo_core::model::BrandMention;
    ///
    /// let brands = TrackedBrands::from_names("HubSpot", Vec::<String>::new());
    /// let named = [BrandMention {
    ///     brand: "HubSpot".into(), count: 1, first_offset: 0, rank: 1, list_position: None,
    /// }];
    /// let run = |hits: usize| {
    ///     let answers = (0..100).map(|i| AnswerRecord::Analysed(if i < hits { &named } else { &[] }));
    ///     RunMetrics::compute(&brands, false, answers)
    /// };
    /// let change = run(55).visibility_change(&run(40)).unwrap();
    /// assert!((change.p_value.unwrap() - 0.0337).abs() < 1e-4);
    /// ```
    pub fn visibility_change(&self, before: &RunMetrics) -> Option<ProportionChange> {
        Some(ProportionChange::between(
            before.target()?.visibility,
            self.target()?.visibility,
        ))
    }

    /// Runs pooled as one sample: counts add up and every rate is recomputed, so pooled rates
    /// weight each answer equally (a provider with more answers weighs more). Brands are matched
    /// by name, in order of first appearance with the target first. The Wilson intervals treat
    /// answers from different providers as exchangeable, which understates uncertainty when
    /// providers differ; compare providers through their own rows.
    pub fn pooled<'a>(runs: impl IntoIterator<Item = &'a RunMetrics>) -> Self {
        let runs: Vec<&RunMetrics> = runs.into_iter().collect();
        let mut names: Vec<String> = Vec::new();
        let mut target_first = true;
        for b in runs.iter().flat_map(|r| &r.brands) {
            if !names.contains(&b.brand) {
                if b.is_target && target_first {
                    names.insert(0, b.brand.clone());
                    target_first = false;
                } else {
                    names.push(b.brand.clone());
                }
            }
        }
        let mut tally = Tally::new(names.len());
        let mut branded = false;
        for r in &runs {
            tally.answers = tally.answers.saturating_add(r.answers);
            tally.n = tally.n.saturating_add(r.n);
            tally.failures = tally.failures.saturating_add(r.failures);
            tally.unanalysed = tally.unanalysed.saturating_add(r.unanalysed);
            tally.informative = tally.informative.saturating_add(r.informative.successes);
            tally.mentions = tally.mentions.saturating_add(r.mentions);
            branded |= r.branded_prompt;
            for b in &r.brands {
                let Some(t) = names
                    .iter()
                    .position(|n| *n == b.brand)
                    .and_then(|i| tally.brands.get_mut(i))
                else {
                    continue;
                };
                t.answers = t.answers.saturating_add(b.visibility.successes);
                t.mentions = t.mentions.saturating_add(b.mentions);
                t.rank_sum = t.rank_sum.saturating_add(b.rank_sum);
                t.first_place = t.first_place.saturating_add(b.first_place.successes);
                t.list_answers = t.list_answers.saturating_add(b.list_answers);
                t.list_position_sum = t.list_position_sum.saturating_add(b.list_position_sum);
            }
        }
        let mut pooled = tally.finish(&names, branded);
        if target_first {
            // No run marked a target: the first name is not one either.
            if let Some(first) = pooled.brands.first_mut() {
                first.is_target = false;
            }
        }
        pooled
    }
}

/// One provider's run within an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRun {
    /// The service.
    pub provider: ProviderKind,
    /// Model requested.
    pub model: String,
    /// Its metrics.
    pub metrics: RunMetrics,
}

/// An experiment's metrics across providers.
///
/// Two summaries of target visibility, labelled because they differ whenever providers have
/// different sample sizes: `pooled` weights every answer equally; `provider_mean_visibility`
/// weights every provider equally. Example: 8/10 from one provider and 20/100 from another give
/// pooled 28/110 = 0.255 but provider mean (0.8 + 0.2)/2 = 0.50.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentMetrics {
    /// Per provider.
    pub runs: Vec<ProviderRun>,
    /// All answers of all runs as one sample (see [`RunMetrics::pooled`]).
    pub pooled: RunMetrics,
    /// Unweighted mean of the runs' target visibility rates, over runs with `n > 0`; `None`
    /// when there are none. Unit: share of answers, averaged over providers.
    pub provider_mean_visibility: Option<f64>,
}

impl ExperimentMetrics {
    /// Summarises `runs`.
    pub fn new(runs: Vec<ProviderRun>) -> Self {
        let pooled = RunMetrics::pooled(runs.iter().map(|r| &r.metrics));
        let rates: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.metrics.target()?.visibility.rate)
            .collect();
        let provider_mean_visibility =
            (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
        Self {
            runs,
            pooled,
            provider_mean_visibility,
        }
    }
}

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
/// [`super::text::sentences`]; an answer without word tokens, or whose named brands have no
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
fn pawc_from_sentences(words: &[u32], brands: &[(&str, &[u32])]) -> AnswerPawc {
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
    use crate::model::{Brand, BrandName};
    use proptest::prelude::*;

    fn round4(x: f64) -> f64 {
        (x * 1e4).round() / 1e4
    }

    fn mention(brand: &str, count: u32, rank: u32, list_position: Option<u32>) -> BrandMention {
        BrandMention {
            brand: brand.into(),
            count,
            first_offset: 0,
            rank,
            list_position,
        }
    }

    fn brands() -> TrackedBrands {
        TrackedBrands::from_names("HubSpot", ["Salesforce", "Pipedrive"])
    }

    /// 10 answers + 2 failures; hand-checked in the assertions below.
    fn sample() -> Vec<Vec<BrandMention>> {
        vec![
            vec![
                mention("HubSpot", 2, 1, Some(1)),
                mention("Salesforce", 1, 2, Some(2)),
            ],
            vec![
                mention("Salesforce", 3, 1, None),
                mention("HubSpot", 1, 2, None),
            ],
            vec![mention("HubSpot", 1, 1, Some(1))],
            vec![
                mention("Pipedrive", 1, 1, Some(1)),
                mention("Salesforce", 1, 2, Some(2)),
                mention("HubSpot", 3, 3, Some(3)),
            ],
            vec![mention("Salesforce", 2, 1, None)],
            vec![mention("Salesforce", 1, 1, None)],
            vec![
                mention("Unknown", 5, 1, None),
                mention("Salesforce", 1, 2, None),
            ],
            vec![mention("Pipedrive", 1, 1, None)],
            vec![],
            vec![],
        ]
    }

    fn sample_metrics() -> RunMetrics {
        let answers = sample();
        let records = answers
            .iter()
            .map(|a| AnswerRecord::Analysed(a))
            .chain([AnswerRecord::Failed, AnswerRecord::Failed]);
        RunMetrics::compute(&brands(), false, records)
    }

    #[test]
    fn run_metrics_hand_checked() {
        let m = sample_metrics();
        assert_eq!((m.answers, m.n, m.failures, m.unanalysed), (12, 10, 2, 0));
        assert_eq!(m.informative.successes, 8);
        assert_eq!(m.informative.rate, Some(0.8));
        assert_eq!(m.mentions, 18, "2+1+3+1+1+1+1+3+2+1+1+1, Unknown excluded");
        let hs = m.target().unwrap();
        assert_eq!(hs.brand, "HubSpot");
        assert_eq!(hs.visibility.successes, 4);
        assert_eq!(hs.visibility.rate, Some(0.4));
        let ci = hs.visibility.ci95.unwrap();
        assert_eq!((round4(ci.lower), round4(ci.upper)), (0.1682, 0.6873));
        assert_eq!(hs.mentions, 7);
        assert_eq!(hs.mention_share_of_voice, Some(7.0 / 18.0));
        assert_eq!(hs.answer_share_of_voice, Some(0.5));
        assert_eq!(hs.average_rank, Some(7.0 / 4.0));
        assert_eq!(hs.first_place.successes, 2);
        assert_eq!(hs.first_place.rate, Some(0.2));
        assert_eq!(
            (hs.list_answers, hs.average_list_position),
            (3, Some(5.0 / 3.0))
        );

        let sf = m.brand("Salesforce").unwrap();
        assert_eq!(sf.visibility.successes, 6);
        assert_eq!(sf.mentions, 9);
        assert_eq!(sf.answer_share_of_voice, Some(6.0 / 8.0));
        assert_eq!(sf.average_rank, Some(1.5), "(2+1+2+1+1+2)/6");
        assert_eq!(sf.first_place.successes, 3);
        let pd = m.brand("Pipedrive").unwrap();
        assert_eq!((pd.visibility.successes, pd.first_place.successes), (2, 2));
        assert!(!pd.is_target);
        // First places add up to the informative answers, except where an untracked brand was
        // first (answer 7): 2 + 3 + 2 = 7 of 8.
        let firsts: u32 = m.brands.iter().map(|b| b.first_place.successes).sum();
        assert_eq!(firsts, 7);
        let sov: f64 = m
            .brands
            .iter()
            .filter_map(|b| b.mention_share_of_voice)
            .sum();
        assert!((sov - 1.0).abs() < 1e-12);
        assert!(m.caveats.is_empty());
    }

    #[test]
    fn empty_and_all_failed_runs_are_defined() {
        for records in [vec![], vec![AnswerRecord::Failed; 3]] {
            let m = RunMetrics::compute(&brands(), false, records);
            assert_eq!(m.n, 0);
            assert_eq!(m.informative.rate, None);
            for b in &m.brands {
                assert_eq!(b.visibility.rate, None);
                assert_eq!(b.visibility.ci95, None);
                assert_eq!(b.mention_share_of_voice, None);
                assert_eq!(b.answer_share_of_voice, None);
                assert_eq!(b.average_rank, None);
            }
            assert_eq!(m.caveats, [Caveat::NoAnswers]);
            crate::analysis::assert_json_round_trip(&m);
        }
    }

    #[test]
    fn answers_naming_nobody() {
        let records = vec![AnswerRecord::Analysed(&[]); 4];
        let m = RunMetrics::compute(&brands(), true, records);
        assert_eq!(m.informative.rate, Some(0.0));
        let hs = m.target().unwrap();
        assert_eq!(hs.visibility.rate, Some(0.0));
        assert_eq!(hs.mention_share_of_voice, None);
        assert_eq!(hs.answer_share_of_voice, None);
        assert_eq!(
            m.caveats,
            [
                Caveat::FewInformativeAnswers {
                    informative: 0,
                    n: 4
                },
                Caveat::BrandedPrompt
            ]
        );
    }

    #[test]
    fn records_from_stored_iterations() {
        let m = [mention("HubSpot", 1, 1, None)];
        assert_eq!(
            AnswerRecord::from_stored(false, Some(&m)),
            AnswerRecord::Failed
        );
        assert_eq!(
            AnswerRecord::from_stored(true, None),
            AnswerRecord::Unanalysed
        );
        let r = RunMetrics::compute(
            &brands(),
            false,
            [
                AnswerRecord::from_stored(true, Some(&m)),
                AnswerRecord::Unanalysed,
            ],
        );
        assert_eq!((r.n, r.unanalysed, r.answers), (1, 1, 2));
        assert_eq!(r.caveats, [Caveat::Unanalysed { count: 1 }]);
        let dup = [
            mention("HubSpot", 1, 1, None),
            mention("HubSpot", 2, 1, None),
        ];
        let r = RunMetrics::compute(&brands(), false, [AnswerRecord::Analysed(&dup)]);
        let hs = r.target().unwrap();
        assert_eq!(
            (hs.visibility.successes, hs.mentions, hs.rank_sum),
            (1, 3, 1)
        );
    }

    #[test]
    fn from_extractions_matches_stored_path() {
        let target = Brand::new(BrandName::parse("HubSpot").unwrap());
        let comps = [
            Brand::new(BrandName::parse("Salesforce").unwrap()),
            Brand::new(BrandName::parse("Pipedrive").unwrap()),
        ];
        let m = BrandMatcher::new(&target, &comps).unwrap();
        let texts = [
            "1. HubSpot\n2. Salesforce\nHubSpot again.",
            "Salesforce, then Pipedrive.",
            "Nothing here.",
        ];
        let ex: Vec<Extraction> = texts.iter().map(|t| m.extract(t)).collect();
        let stored: Vec<Vec<BrandMention>> = ex.iter().map(Extraction::to_mentions).collect();
        let a = RunMetrics::from_extractions(m.brands(), false, ex.iter().map(Some).chain([None]));
        let b = RunMetrics::compute(
            m.brands(),
            false,
            stored
                .iter()
                .map(|s| AnswerRecord::Analysed(s))
                .chain([AnswerRecord::Failed]),
        );
        assert_eq!(a, b);
        assert_eq!(a.target().unwrap().mentions, 2);
        assert_eq!(a.target().unwrap().average_list_position, Some(1.0));
    }

    #[test]
    fn pooling_and_provider_mean() {
        let brands = TrackedBrands::from_names("HubSpot", ["Salesforce"]);
        let named = [mention("HubSpot", 1, 1, None)];
        let run = |hits: usize, n: usize| {
            let records = (0..n).map(|i| {
                if i < hits {
                    AnswerRecord::Analysed(&named)
                } else {
                    AnswerRecord::Analysed(&[])
                }
            });
            RunMetrics::compute(&brands, false, records)
        };
        let e = ExperimentMetrics::new(vec![
            ProviderRun {
                provider: ProviderKind::OpenAi,
                model: "gpt".into(),
                metrics: run(8, 10),
            },
            ProviderRun {
                provider: ProviderKind::Anthropic,
                model: "claude".into(),
                metrics: run(20, 100),
            },
            ProviderRun {
                provider: ProviderKind::Gemini,
                model: "gemini".into(),
                metrics: run(0, 0),
            },
        ]);
        let v = e.pooled.target().unwrap().visibility;
        assert_eq!((v.successes, v.n), (28, 110));
        assert_eq!(round4(v.rate.unwrap()), 0.2545);
        assert_eq!(e.provider_mean_visibility, Some(0.5));
        assert_eq!(e.pooled.brands.len(), 2);
        assert_eq!(e.pooled.brands[0].average_rank, Some(1.0));
        let none = ExperimentMetrics::new(vec![]);
        assert_eq!(none.provider_mean_visibility, None);
        assert_eq!(none.pooled.n, 0);
    }

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
    }

    fn arb_mentions() -> impl Strategy<Value = Option<Vec<BrandMention>>> {
        let one = (
            prop::sample::select(vec!["HubSpot", "Salesforce", "Pipedrive", "Other"]),
            0u32..5,
            0u32..6,
            prop::option::of(0u32..10),
        )
            .prop_map(|(b, c, r, l)| mention(b, c, r, l));
        prop::option::of(prop::collection::vec(one, 0..5))
    }

    proptest! {
        #[test]
        fn metrics_are_finite_and_round_trip(
            answers in prop::collection::vec(arb_mentions(), 0..30),
            branded: bool,
        ) {
            let records = answers.iter().map(|a| match a {
                None => AnswerRecord::Failed,
                Some(m) => AnswerRecord::Analysed(m),
            });
            let m = RunMetrics::compute(&brands(), branded, records);
            let e = ExperimentMetrics::new(vec![ProviderRun {
                provider: ProviderKind::Simulated,
                model: "sim".into(),
                metrics: m.clone(),
            }]);
            prop_assert_eq!(&e.pooled, &m);
            crate::analysis::assert_json_round_trip(&e);
            for b in &m.brands {
                for p in [b.visibility, b.first_place] {
                    if let (Some(r), Some(ci)) = (p.rate, p.ci95) {
                        prop_assert!(ci.contains(r) && 0.0 <= ci.lower && ci.upper <= 1.0);
                    }
                }
            }
        }

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
