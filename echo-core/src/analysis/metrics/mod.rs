//! Metrics of a batch run (one provider, n answers) and of an experiment across providers.
//!
//! Every rate names its unit and denominator. The unit of sampling is the *successful answer*:
//! failed calls are counted but never enter a denominator, because a failure says nothing about
//! what the assistant would have said. Rates that are undefined (no successful answer, no brand
//! named) are `None`, never NaN, and the counts behind every rate are kept so runs can be pooled
//! exactly.
//!
//! Metrics are computed from the compact [`BrandMention`] lists stored with each iteration
//! ([`RunMetrics::compute`]) or straight from [`Extraction`](super::Extraction)s
//! ([`RunMetrics::from_extractions`]); no re-extraction is needed. The position-adjusted word
//! count needs the answer's sentences, so it is a separate per-answer computation
//! ([`position_adjusted_word_count`]) whose results are averaged by [`PawcSummary::mean`].

mod experiment;
mod pawc;
mod run;
mod sources;

use serde::{Deserialize, Serialize};

use super::stats::Proportion;
use crate::model::{BrandMention, Iteration};
pub use experiment::{ExperimentMetrics, ProviderRun};
pub use pawc::{
    AnswerPawc, BrandPawc, BrandPawcSummary, PawcSummary, position_adjusted_word_count,
};
pub use sources::{
    DomainCitations, SourceAnswer, SourceImpression, SourceMetrics, source_impressions,
};

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

#[cfg(test)]
mod tests;
