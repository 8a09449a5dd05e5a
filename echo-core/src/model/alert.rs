//! Alerts: significant changes between two finished runs of a recurring experiment.

use serde::{Deserialize, Serialize};

use super::{AlertId, BatchRunId, ExperimentId, Timestamp, UserId};
use crate::analysis::alerts::AlertFinding;

/// A stored alert: one [`AlertFinding`] of the comparison of `batch_run_id` (the newer run)
/// with `previous_run_id`, both runs of the owner's experiment with the same provider.
///
/// Alerts are idempotent by (`batch_run_id`, `finding.kind`, `finding.brand`): evaluating the
/// same run again never stores a second alert for the same change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The alert's id (time-ordered: listings are newest first by id).
    pub id: AlertId,
    /// The owner of the experiment.
    pub user_id: UserId,
    /// The recurring experiment.
    pub experiment_id: ExperimentId,
    /// The newer run, whose completion raised the alert.
    pub batch_run_id: BatchRunId,
    /// The previous finished run it was compared with.
    pub previous_run_id: BatchRunId,
    /// What changed, how much, and how significant it is.
    pub finding: AlertFinding,
    /// When the alert was raised.
    pub created_at: Timestamp,
}
