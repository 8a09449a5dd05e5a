//! Batch runs (one provider, one execution of an experiment) and their iterations.

use serde::{Deserialize, Serialize};

use super::{
    BatchRunId, BatchRunStatus, ExperimentId, IterationId, IterationSource, ProviderKind, Timestamp,
};
use crate::analysis::{PawcSummary, ReproducibilityRecord, RunMetrics};

/// What a finished batch run measured, computed from its stored iterations (so a resumed run's
/// numbers include the answers of every attempt).
///
/// Stores keep it as JSON in this shape; [`BatchRunMetrics::from_json`] reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRunMetrics {
    /// Sample size, visibility with its interval, shares of voice and ranks, per brand.
    pub metrics: RunMetrics,
    /// Position-adjusted word count (GEO) per brand, averaged over answers.
    pub word_count: PawcSummary,
    /// What produced the answers, and a hash of each.
    pub reproducibility: ReproducibilityRecord,
    /// For an experiment that runs a prompt set: the target's visibility per phrasing and
    /// pooled over the set, naming the set version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_set: Option<crate::analysis::PromptSetMetrics>,
}

impl BatchRunMetrics {
    /// Decodes the stored JSON form. `None` when it was written in a shape this version does
    /// not read (an older or newer Echo): the run then shows as one without metrics rather
    /// than making every read of its experiment fail.
    pub fn from_json(value: serde_json::Value) -> Option<Self> {
        match serde_json::from_value(value) {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!(error = %e, "stored batch-run metrics are in a shape this version does not read");
                None
            }
        }
    }
}

/// One execution of an experiment against one provider.
///
/// The counters and token totals are maintained by the store as iterations are recorded, so
/// they are exact even while the run is in progress and after a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRun {
    /// Identity.
    pub id: BatchRunId,
    /// The experiment it belongs to.
    pub experiment_id: ExperimentId,
    /// Provider queried.
    pub provider: ProviderKind,
    /// Model requested (the model each answer reports is on the reproducibility record).
    pub model: String,
    /// Life-cycle state.
    pub status: BatchRunStatus,
    /// Iterations planned for this run.
    pub iterations_planned: u32,
    /// Iterations recorded (successful or not). Store-maintained.
    pub iterations_recorded: u32,
    /// Successful iterations recorded. Store-maintained.
    pub iterations_succeeded: u32,
    /// Sum of input tokens of recorded iterations. Store-maintained.
    pub input_tokens: u64,
    /// Sum of output tokens of recorded iterations. Store-maintained.
    pub output_tokens: u64,
    /// Cost in millionths of a US dollar (exact integer arithmetic).
    pub cost_micros_usd: u64,
    /// What the run measured, set when it ends (completed, cancelled or failed with answers).
    pub metrics: Option<BatchRunMetrics>,
    /// Visibility rate of the target (0..=1), denormalised from `metrics` for the dashboard.
    pub visibility_rate: Option<f64>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When execution began.
    pub started_at: Option<Timestamp>,
    /// When execution ended (any final status).
    pub completed_at: Option<Timestamp>,
}

impl BatchRun {
    /// A pending run of `planned` iterations.
    pub fn new(
        experiment_id: ExperimentId,
        provider: ProviderKind,
        model: impl Into<String>,
        planned: u32,
        now: Timestamp,
    ) -> Self {
        Self {
            id: BatchRunId::new(),
            experiment_id,
            provider,
            model: model.into(),
            status: BatchRunStatus::Pending,
            iterations_planned: planned,
            iterations_recorded: 0,
            iterations_succeeded: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros_usd: 0,
            metrics: None,
            visibility_rate: None,
            error: None,
            created_at: now,
            started_at: None,
            completed_at: None,
        }
    }

    /// Whether adaptive sampling ended the run before its planned iterations: it completed
    /// with fewer recorded. Every other early end (cancel, time limit, a permanent provider
    /// error) fails or cancels the run instead, so completed-but-short means "precise
    /// enough", and the iterations not asked were refunded.
    pub fn stopped_early(&self) -> bool {
        self.status == BatchRunStatus::Completed
            && self.iterations_recorded < self.iterations_planned
    }
}

/// The fields of a batch run its executor may change. Counters are not here: the store keeps
/// them in step with the recorded iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRunUpdate {
    /// New state.
    pub status: BatchRunStatus,
    /// Metrics, when computed.
    pub metrics: Option<BatchRunMetrics>,
    /// Target visibility, when computed.
    pub visibility_rate: Option<f64>,
    /// Total cost so far.
    pub cost_micros_usd: u64,
    /// Failure reason.
    pub error: Option<String>,
    /// Start time.
    pub started_at: Option<Timestamp>,
    /// End time.
    pub completed_at: Option<Timestamp>,
}

/// Where and how often one brand appears in one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandMention {
    /// Canonical brand name.
    pub brand: String,
    /// Number of matches (name and aliases).
    pub count: u32,
    /// Byte offset of the first match (a char boundary) in the original answer.
    pub first_offset: u32,
    /// 1-based rank among the brands of this answer by first appearance.
    pub rank: u32,
    /// 1-based position in a markdown list, when the first mention is a list item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_position: Option<u32>,
}

/// One answer from one provider: the unit of sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// Identity.
    pub id: IterationId,
    /// The run it belongs to.
    pub batch_run_id: BatchRunId,
    /// 0-based index, unique within the run: the idempotency key of writes.
    pub index: u32,
    /// The provider's answer; `None` when it failed or after anonymization.
    pub raw_response: Option<String>,
    /// Brands found in the answer; `None` when not analysed (e.g. failed call).
    pub mentions: Option<Vec<BrandMention>>,
    /// Whether the provider returned an answer.
    pub is_success: bool,
    /// Failure reason when not successful.
    pub error: Option<String>,
    /// Wall-clock latency of the call, milliseconds.
    pub latency_ms: u32,
    /// Input tokens billed.
    pub input_tokens: u32,
    /// Output tokens billed.
    pub output_tokens: u32,
    /// When the answer was stored.
    pub created_at: Timestamp,
    /// Whether the raw answer was removed by the retention policy.
    pub is_anonymized: bool,
    /// When it was removed.
    pub anonymized_at: Option<Timestamp>,
    /// The web sources the answer cited, by ascending `position`; stored and read with the
    /// iteration, and removed with the raw answer by the retention policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<IterationSource>,
}

/// What a batch of iteration writes did: idempotent writes report duplicates instead of
/// failing, so a resumed run can re-send without double counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Iterations newly stored.
    pub inserted: u32,
    /// Iterations whose (batch run, index) already existed and were left untouched.
    pub duplicates: u32,
}
