//! The home dashboard's charts over time: the followed brand's visibility per provider, one
//! point per completed run with its Wilson 95% interval, and its share of voice against the
//! competitors tracked beside it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::ServiceError;
use crate::analysis::Proportion;
use crate::model::{BatchRun, BatchRunId, ExperimentId, ProviderKind, Timestamp, UserId};
use crate::store::{DynStore, RunStore, TrendRun};

/// How many of the latest completed runs the charts draw: enough for months of daily runs on
/// every provider, and a bound that keeps the page's cost independent of the account's history.
pub const TREND_RUNS: u32 = 200;

/// One completed run as a point over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisibilityPoint {
    /// When the run completed (the point's x).
    pub at: Timestamp,
    /// The run.
    pub run_id: BatchRunId,
    /// Its experiment.
    pub experiment_id: ExperimentId,
    /// The brand's visibility in the run: answers naming it out of successful answers, with
    /// the Wilson 95% interval that the chart draws as the band.
    pub visibility: Proportion,
}

/// One provider's points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderSeries {
    /// The provider.
    pub provider: ProviderKind,
    /// Its runs, oldest first.
    pub points: Vec<VisibilityPoint>,
}

/// One brand's part of the mentions in the followed brand's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceShare {
    /// The brand, as its latest run names it.
    pub brand: String,
    /// Whether it is the followed brand.
    pub is_target: bool,
    /// Its matches, summed over the runs.
    pub mentions: u64,
    /// `mentions` ÷ the matches of all tracked brands in those runs (the mention-based share
    /// of voice of [`BrandMetrics`](crate::analysis::BrandMetrics), pooled over runs).
    /// `None` when no tracked brand was named.
    pub share: Option<f64>,
}

/// The home dashboard's charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BrandTrend {
    /// The followed brand: the target of the most recently completed run with metrics; `None`
    /// before any. Runs of experiments with another target are left out (matched by name,
    /// ignoring case), so the lines never mix two brands.
    pub brand: Option<String>,
    /// Visibility over time, per provider, ordered by the provider's text form.
    pub series: Vec<ProviderSeries>,
    /// Share of voice over the same runs, the most mentioned first (ties by name).
    pub share_of_voice: Vec<VoiceShare>,
    /// Runs drawn.
    pub runs: u32,
    /// Whether older runs exist beyond the [`TREND_RUNS`] read.
    pub truncated: bool,
}

/// Reads the dashboard's charts. Every read is scoped to the owner.
#[derive(Debug, Clone)]
pub struct DashboardService {
    runs: Arc<dyn RunStore>,
}

impl DashboardService {
    /// A service over the store part it uses.
    pub fn new(runs: Arc<dyn RunStore>) -> Self {
        Self { runs }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone())
    }

    /// The owner's [`BrandTrend`] over their latest [`TREND_RUNS`] completed runs.
    ///
    /// Errors: store failures.
    pub async fn brand_trend(&self, owner: UserId) -> Result<BrandTrend, ServiceError> {
        let runs = self.runs.recent_trend_runs(owner, TREND_RUNS).await?;
        Ok(BrandTrend::from_trend_runs(
            &runs,
            runs.len() >= TREND_RUNS as usize,
        ))
    }
}

impl BrandTrend {
    /// Builds the charts from completed runs, newest first (what
    /// [`RunStore::recent_completed_runs`] returns).
    pub fn from_runs(runs: &[BatchRun], truncated: bool) -> Self {
        let runs: Vec<TrendRun> = runs.iter().filter_map(TrendRun::of).collect();
        Self::from_trend_runs(&runs, truncated)
    }

    /// Builds the charts from completed runs read narrowly, newest first (what
    /// [`RunStore::recent_trend_runs`] returns).
    pub fn from_trend_runs(runs: &[TrendRun], truncated: bool) -> Self {
        let with_metrics = || {
            runs.iter().filter_map(|r| {
                let target = r.brands.iter().find(|b| b.is_target)?;
                Some((r, target))
            })
        };
        let Some(brand) = with_metrics().next().map(|(_, t)| t.brand.clone()) else {
            return Self::default();
        };
        let key = brand.to_lowercase();
        let mut series: BTreeMap<&'static str, ProviderSeries> = BTreeMap::new();
        let mut voices: BTreeMap<String, VoiceShare> = BTreeMap::new();
        let mut total_mentions = 0u64;
        let mut drawn = 0u32;
        for (run, target) in with_metrics() {
            if target.brand.to_lowercase() != key {
                continue;
            }
            let at = run.completed_at;
            drawn += 1;
            series
                .entry(run.provider.as_str())
                .or_insert_with(|| ProviderSeries {
                    provider: run.provider,
                    points: Vec::new(),
                })
                .points
                .push(VisibilityPoint {
                    at,
                    run_id: run.id,
                    experiment_id: run.experiment_id,
                    visibility: target.visibility,
                });
            for b in &run.brands {
                // Newest first: the first spelling seen is the latest one.
                let v = voices
                    .entry(b.brand.to_lowercase())
                    .or_insert_with(|| VoiceShare {
                        brand: b.brand.clone(),
                        is_target: b.is_target,
                        mentions: 0,
                        share: None,
                    });
                v.mentions += b.mentions;
                total_mentions += b.mentions;
            }
        }
        let mut share_of_voice: Vec<VoiceShare> = voices
            .into_values()
            .map(|mut v| {
                v.share = (total_mentions > 0).then(|| v.mentions as f64 / total_mentions as f64);
                v
            })
            .collect();
        share_of_voice.sort_by(|a, b| {
            b.mentions
                .cmp(&a.mentions)
                .then_with(|| a.brand.cmp(&b.brand))
        });
        let series = series
            .into_values()
            .map(|mut s| {
                s.points.reverse();
                s
            })
            .collect();
        Self {
            brand: Some(brand),
            series,
            share_of_voice,
            runs: drawn,
            truncated,
        }
    }
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use super::*;
    use crate::conformance::fixtures::{at, batch_metrics, batch_run, experiment};
    use crate::model::BatchRunStatus;

    fn completed(provider: ProviderKind, vis: Option<f64>, secs: i64) -> BatchRun {
        let e = experiment(UserId::new(), at(0));
        let mut r = batch_run(&e, provider, at(0));
        r.status = BatchRunStatus::Completed;
        r.metrics = vis.map(batch_metrics);
        r.completed_at = Some(at(secs));
        r
    }

    #[test]
    fn no_runs_no_brand() {
        assert_eq!(BrandTrend::from_runs(&[], false), BrandTrend::default());
        let bare = completed(ProviderKind::OpenAi, None, 10);
        assert_eq!(BrandTrend::from_runs(&[bare], false), BrandTrend::default());
    }

    #[test]
    fn points_per_provider_oldest_first_with_their_interval() {
        let newest = completed(ProviderKind::OpenAi, Some(0.5), 300);
        let gemini = completed(ProviderKind::Gemini, Some(0.25), 200);
        let oldest = completed(ProviderKind::OpenAi, Some(0.75), 100);
        let runs = [newest.clone(), gemini.clone(), oldest.clone()];
        let trend = BrandTrend::from_runs(&runs, true);
        let target = batch_metrics(0.5).metrics.brands[0].clone();
        assert!(target.is_target);
        assert_eq!(trend.brand.as_deref(), Some(target.brand.as_str()));
        assert_eq!(trend.runs, 3);
        assert!(trend.truncated);
        let providers: Vec<_> = trend.series.iter().map(|s| s.provider).collect();
        assert_eq!(providers, vec![ProviderKind::Gemini, ProviderKind::OpenAi]);
        let openai = &trend.series[1].points;
        assert_eq!(
            openai.iter().map(|p| p.run_id).collect::<Vec<_>>(),
            vec![oldest.id, newest.id]
        );
        let expected = batch_metrics(0.5).metrics.brands[0].visibility;
        assert_eq!(openai[1].visibility, expected);
        let ci = openai[1].visibility.ci95.expect("an interval");
        let rate = openai[1].visibility.rate.expect("a rate");
        assert!(ci.lower <= rate && rate <= ci.upper);
    }

    #[test]
    fn share_of_voice_pools_mentions_over_the_brands_runs() {
        let a = completed(ProviderKind::OpenAi, Some(0.5), 300);
        let b = completed(ProviderKind::Gemini, Some(0.25), 200);
        let trend = BrandTrend::from_runs(&[a.clone(), b.clone()], false);
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for r in [&a, &b] {
            for m in &r.metrics.as_ref().expect("metrics").metrics.brands {
                *expected.entry(m.brand.clone()).or_default() += m.mentions;
            }
        }
        let total: u64 = expected.values().sum();
        assert!(total > 0);
        assert_eq!(trend.share_of_voice.len(), expected.len());
        for v in &trend.share_of_voice {
            assert_eq!(v.mentions, expected[&v.brand]);
            let share = v.share.expect("a share");
            assert!((share - v.mentions as f64 / total as f64).abs() < 1e-12);
        }
        let sum: f64 = trend.share_of_voice.iter().filter_map(|v| v.share).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(
            trend
                .share_of_voice
                .windows(2)
                .all(|w| w[0].mentions >= w[1].mentions)
        );
    }

    #[test]
    fn runs_of_another_target_are_left_out() {
        let followed = completed(ProviderKind::OpenAi, Some(0.5), 300);
        let mut other = completed(ProviderKind::OpenAi, Some(0.25), 200);
        if let Some(m) = other.metrics.as_mut() {
            for b in &mut m.metrics.brands {
                b.brand = format!("Other {}", b.brand);
            }
        }
        let trend = BrandTrend::from_runs(&[followed, other], false);
        assert_eq!(trend.runs, 1);
        assert!(
            trend
                .share_of_voice
                .iter()
                .all(|v| !v.brand.starts_with("Other "))
        );
    }
}
