//! Metrics across the providers of one experiment. Apart from a run's metrics because the two
//! summaries here weigh providers differently and say so.

use serde::{Deserialize, Serialize};

use super::RunMetrics;
use crate::model::ProviderKind;

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
