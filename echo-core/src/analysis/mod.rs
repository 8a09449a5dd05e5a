//! Brand analysis: extraction of brand mentions from answers, metrics and statistics.
//! Pure functions, no I/O.
//!
//! - [`extract`]: [`BrandMatcher`] finds the tracked brands in an answer (one Aho-Corasick
//!   automaton for all names and aliases, word boundaries in any script, markdown- and
//!   URL-aware) and returns an [`Extraction`]: per brand its count, first offset, rank, list
//!   position, matched spans and sentences. [`Extraction::to_mentions`] gives the compact
//!   [`BrandMention`](crate::model::BrandMention)s stored with each iteration.
//! - [`metrics`]: [`RunMetrics`] (sample size, informative rate, visibility with a Wilson
//!   interval, both shares of voice, average rank, first-place rate, per brand) from stored
//!   mentions or extractions; [`ExperimentMetrics`] across providers; the GEO paper's
//!   position-adjusted word count per answer ([`position_adjusted_word_count`]) and per run
//!   ([`PawcSummary`]); the cited-source metrics ([`SourceMetrics`]: citation rate and share
//!   per domain, the owned domain's rate, and the GEO impressions per source,
//!   [`source_impressions`]).
//! - [`stats`]: [`Proportion`] and the Wilson interval, the normal CDF, the comparison of two
//!   runs ([`ProportionChange`]: two-proportion z-test and Newcombe interval), the sample-size
//!   planner and [`should_continue`] for adaptive sampling.
//! - [`discover`]: [`Discoverer`] finds the brands answers name but the experiment does not
//!   track (list leads, table first columns, recurring capitalised names), ranked by the share
//!   of answers naming them with its Wilson interval.
//! - [`alerts`]: which changes between a recurring experiment's runs are real
//!   ([`evaluate_alerts`]: two-proportion tests with a Benjamini–Hochberg correction).
//! - [`repro`]: the [`ReproducibilityRecord`] of a batch run.
//! - [`text`]: sentence splitting and word tokens.
//!
//! From answers to a report:
//!
//! ```
//! use echo_core::analysis::{AnswerRecord, BrandMatcher, RunMetrics};
//! use echo_core::model::{Brand, BrandName};
//!
//! let target = Brand::new(BrandName::parse("HubSpot")?);
//! let competitors = [Brand::new(BrandName::parse("Salesforce")?)];
//! let matcher = BrandMatcher::new(&target, &competitors)?;
//! let branded = matcher.is_branded("Best CRM for a startup?");
//!
//! let answers = ["1. **HubSpot**\n2. **Salesforce**", "Salesforce is the leader.", "Use a spreadsheet."];
//! let stored: Vec<_> = answers.iter().map(|a| matcher.extract(a).to_mentions()).collect();
//! let metrics = RunMetrics::compute(
//!     matcher.brands(),
//!     branded,
//!     stored.iter().map(|m| AnswerRecord::Analysed(m)),
//! );
//! let visibility = metrics.target().unwrap().visibility;
//! assert_eq!((visibility.successes, visibility.n), (1, 3));
//! println!("{}", serde_json::to_string_pretty(&metrics)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod alerts;
pub mod clustered;
pub mod discover;
pub mod extract;
mod markdown;
pub mod metrics;
pub mod repro;
pub mod stats;
pub mod text;

pub use alerts::{AlertFinding, RunComparison, evaluate_alerts};
pub use clustered::{PooledRate, PromptCount, PromptSetMetrics};
pub use discover::{DiscoveredBrand, Discoverer, Discovery};
pub use extract::{BrandHit, BrandMatcher, Extraction, MatchSpan, MatcherError, TrackedBrands};
pub use metrics::{
    AnswerPawc, AnswerRecord, BrandMetrics, BrandPawc, BrandPawcSummary, Caveat, ExperimentMetrics,
    PawcSummary, ProviderRun, RunMetrics, position_adjusted_word_count,
};
pub use metrics::{
    DomainCitations, SourceAnswer, SourceImpression, SourceMetrics, source_impressions,
};
pub use repro::{AnswerFingerprint, ECHO_VERSION, ReproducibilityRecord, sha256_hex};
pub use stats::{Interval, Proportion, ProportionChange, should_continue};
pub use text::TextSpan;

/// Serializes `value` to JSON and back. Through `serde_json::Value` the numbers are not
/// re-parsed from text, so the round trip is exact and any NaN or infinity (which serde_json
/// writes as `null`) shows up as a failed read or a changed value.
#[cfg(test)]
pub(crate) fn assert_json_round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_value(value).expect("serializes");
    assert!(serde_json::to_string(&json).is_ok());
    let back: T = serde_json::from_value(json).expect("reads back: no NaN or infinity");
    assert_eq!(&back, value);
}
