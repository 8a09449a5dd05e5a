//! Query, page and report types shared by the store traits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::Proportion;
use crate::model::{
    AlertId, ApiKeyRecord, BatchRun, BatchRunId, BatchRunStatus, Experiment, ExperimentId,
    ExperimentStatus, PricingTier, ProviderKind, SessionRecord, Timestamp, UserId, ValidationError,
};

/// One page of results and the cursor for the next, if there are more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T, C> {
    /// The rows, in the listing's order.
    pub items: Vec<T>,
    /// Pass this back to get the following page; `None` on the last page.
    pub next_cursor: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from rows fetched with one more than `limit`, which is how keyset pagination
    /// learns whether another page follows: keeps `limit` rows and, when there were more, takes
    /// the cursor from the last row kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: usize, cursor: impl FnOnce(&T) -> C) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// Rows per page: 1 to [`PageSize::MAX`], default [`PageSize::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PageSize(u32);

impl PageSize {
    /// Default rows per page.
    pub const DEFAULT: PageSize = PageSize(20);
    /// Largest page.
    pub const MAX: u32 = 100;

    /// Validates a page size.
    pub fn new(n: u32) -> Result<Self, ValidationError> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }

    /// The size.
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for PageSize {
    type Error = ValidationError;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<PageSize> for u32 {
    fn from(p: PageSize) -> u32 {
        p.0
    }
}

/// Position in a user's experiment listing (newest first): the last row's `(created_at, id)`.
///
/// A keyset cursor, not an offset: rows inserted while a client pages never shift or repeat the
/// rows it has yet to see. Clients see it as an opaque string ([`ExperimentCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExperimentCursor {
    /// `created_at` of the last row returned.
    pub created_at: Timestamp,
    /// `id` of the last row returned (tie-breaker).
    pub id: ExperimentId,
}

impl ExperimentCursor {
    /// The cursor that continues after `experiment`.
    pub fn after(experiment: &Experiment) -> Self {
        Self {
            created_at: experiment.created_at,
            id: experiment.id,
        }
    }

    /// The opaque string form.
    pub fn encode(&self) -> String {
        format!(
            "{:x}-{}",
            self.created_at.unix_micros(),
            self.id.as_uuid().simple()
        )
    }

    /// Parses [`ExperimentCursor::encode`]'s output.
    pub fn decode(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("cursor", "is not a valid cursor");
        let (micros, id) = s.split_once('-').ok_or_else(bad)?;
        let micros = i64::from_str_radix(micros, 16).map_err(|_| bad())?;
        let created_at = Timestamp::from_unix_micros(micros).ok_or_else(bad)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self {
            created_at,
            id: ExperimentId::from_uuid(id),
        })
    }
}

/// Filters and position for listing a user's experiments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExperimentQuery {
    /// Only experiments in this status.
    pub status: Option<ExperimentStatus>,
    /// Continue after this row.
    pub after: Option<ExperimentCursor>,
    /// Rows per page.
    pub limit: PageSize,
}

/// Position for listing a user's alerts (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Continue after this alert (the previous page's `next_cursor`).
    pub after: Option<AlertId>,
    /// Rows per page.
    pub limit: PageSize,
}

/// Filters and position for reading the audit log (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events by this actor.
    pub actor_user_id: Option<UserId>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// Events at or after this instant.
    pub from: Option<Timestamp>,
    /// Events strictly before this instant.
    pub to: Option<Timestamp>,
    /// Continue below this sequence number.
    pub before_seq: Option<u64>,
    /// Rows per page.
    pub limit: PageSize,
}

/// Average target visibility of one provider's completed runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderVisibility {
    /// The provider.
    pub provider: ProviderKind,
    /// Completed runs with a visibility figure.
    pub completed_runs: u64,
    /// Unweighted mean of those runs' visibility rates (0..=1): each run counts once, whatever
    /// its size, so one large run cannot drown the trend.
    pub mean_visibility: f64,
}

/// One day of the dashboard trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Start of the UTC day.
    pub day: Timestamp,
    /// Runs completed that day.
    pub completed_runs: u64,
    /// Mean visibility of those runs (0..=1); `None` when none had a figure.
    pub mean_visibility: Option<f64>,
}

/// One tracked brand's figures in a completed run: the part of its stored
/// [`BrandMetrics`](crate::analysis::BrandMetrics) the dashboard's charts draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendBrand {
    /// The brand, as the run named it.
    pub brand: String,
    /// Whether it is the run's target; otherwise a competitor.
    pub is_target: bool,
    /// Answers naming it out of successful answers, with the Wilson 95% interval.
    pub visibility: Proportion,
    /// Its matches in the run's successful answers.
    pub mentions: u64,
}

impl TrendBrand {
    /// Decodes the `brands` array of a run's stored metrics JSON, reading only the fields
    /// above (the rest of each brand's figures are skipped without being built). An array
    /// of another shape (an older or newer Echo) reads as no brands, the way
    /// [`BatchRunMetrics::from_json`](crate::model::BatchRunMetrics::from_json) reads such a
    /// run as one without metrics, rather than failing the whole read.
    pub fn decode_stored(json: &[u8]) -> Vec<Self> {
        match serde_json::from_slice(json) {
            Ok(brands) => brands,
            Err(e) => {
                tracing::warn!(error = %e, "stored run metrics not readable by this version");
                Vec::new()
            }
        }
    }
}

/// A completed run as the dashboard's charts over time read it: its identity, when it
/// completed, and its brands' figures, without the rest of its metrics (which carry its
/// reproducibility record and are large).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRun {
    /// The run.
    pub id: BatchRunId,
    /// Its experiment.
    pub experiment_id: ExperimentId,
    /// Its provider.
    pub provider: ProviderKind,
    /// When it completed.
    pub completed_at: Timestamp,
    /// Its tracked brands' figures, in the metrics' order (target first); empty when the run
    /// has no metrics.
    pub brands: Vec<TrendBrand>,
}

impl TrendRun {
    /// The trend's view of a run; `None` unless it is completed with a completion instant.
    pub fn of(run: &BatchRun) -> Option<Self> {
        if run.status != BatchRunStatus::Completed {
            return None;
        }
        Some(Self {
            id: run.id,
            experiment_id: run.experiment_id,
            provider: run.provider,
            completed_at: run.completed_at?,
            brands: run
                .metrics
                .as_ref()
                .map(|m| {
                    m.metrics
                        .brands
                        .iter()
                        .map(|b| TrendBrand {
                            brand: b.brand.clone(),
                            is_target: b.is_target,
                            visibility: b.visibility,
                            mentions: b.mentions,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// A user's dashboard figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardStats {
    /// Experiments per status (statuses with none are absent).
    pub experiments_by_status: BTreeMap<ExperimentStatus, u64>,
    /// All the user's experiments.
    pub experiments_total: u64,
    /// Iterations recorded across all the user's runs.
    pub iterations_total: u64,
    /// Successful iterations across all the user's runs.
    pub iterations_succeeded: u64,
    /// Mean visibility per provider over completed runs with a visibility figure (all time),
    /// ordered by the provider's text form; providers with no such run are absent.
    pub providers: Vec<ProviderVisibility>,
    /// Completed runs per UTC day of `completed_at`, from the requested instant (inclusive),
    /// oldest first; days without runs are absent.
    pub trend: Vec<TrendPoint>,
}

/// Sums over a user's batch runs of one provider in one status: what a backend aggregates
/// (in SQL, for instance) and [`DashboardStats::from_parts`] turns into the dashboard, so every
/// backend derives the figures the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunGroup {
    /// The provider.
    pub provider: ProviderKind,
    /// The runs' status.
    pub status: BatchRunStatus,
    /// Sum of `iterations_recorded`.
    pub recorded: u64,
    /// Sum of `iterations_succeeded`.
    pub succeeded: u64,
    /// Runs with a visibility figure.
    pub with_figure: u64,
    /// Sum of those runs' visibility rates.
    pub visibility_sum: f64,
}

impl DashboardStats {
    /// Assembles the dashboard from experiment counts per status, run sums per provider and
    /// status, and the trend (already one point per day, oldest first).
    pub fn from_parts(
        experiments_by_status: impl IntoIterator<Item = (ExperimentStatus, u64)>,
        run_groups: impl IntoIterator<Item = RunGroup>,
        trend: Vec<TrendPoint>,
    ) -> Self {
        let mut stats = DashboardStats {
            trend,
            ..DashboardStats::default()
        };
        for (status, n) in experiments_by_status {
            *stats.experiments_by_status.entry(status).or_default() += n;
            stats.experiments_total += n;
        }
        let mut providers: BTreeMap<&'static str, ProviderVisibility> = BTreeMap::new();
        for g in run_groups {
            stats.iterations_total += g.recorded;
            stats.iterations_succeeded += g.succeeded;
            if g.status != BatchRunStatus::Completed || g.with_figure == 0 {
                continue;
            }
            // Keyed by text form: the contract's order, and one row per provider even if a
            // backend returns a provider in several groups.
            let p = providers
                .entry(g.provider.as_str())
                .or_insert(ProviderVisibility {
                    provider: g.provider,
                    completed_runs: 0,
                    mean_visibility: 0.0,
                });
            let total = p.mean_visibility * p.completed_runs as f64 + g.visibility_sum;
            p.completed_runs += g.with_figure;
            p.mean_visibility = total / p.completed_runs as f64;
        }
        stats.providers = providers.into_values().collect();
        stats
    }
}

/// Counts of jobs by state, for metrics and autoscaling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queued and due now.
    pub due: u64,
    /// Queued for later.
    pub scheduled: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Failed for good.
    pub failed: u64,
}

/// What [`ExperimentStore::claim_schedule`](super::ExperimentStore::claim_schedule) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleClaim {
    /// This caller advanced the schedule, debited the quota and enqueued the job.
    Enqueued,
    /// This caller advanced the schedule, but the owner is over quota: no job, no debit.
    SkippedOverQuota,
    /// Another scheduler advanced it first (or it is no longer due or recurring); nothing done.
    Lost,
}

/// An API key with what authentication needs of its owner, read in one round trip by
/// [`ApiKeyStore::find_api_key_for_auth`](super::ApiKeyStore::find_api_key_for_auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    /// The key record, exactly as [`ApiKeyStore::find_api_key`](super::ApiKeyStore::find_api_key)
    /// returns it.
    pub key: ApiKeyRecord,
    /// The owner's `is_active` flag at the time of the read.
    pub owner_active: bool,
    /// The owner's pricing tier at the time of the read.
    pub owner_tier: PricingTier,
}

/// A login session with what authentication needs of its owner, read in one round trip by
/// [`SessionStore::find_session_for_auth`](super::SessionStore::find_session_for_auth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAuth {
    /// The session record as stored, whatever its state.
    pub session: SessionRecord,
    /// The owner's `is_active` flag at the time of the read.
    pub owner_active: bool,
    /// The owner's `is_admin` flag at the time of the read.
    pub owner_is_admin: bool,
    /// The owner's pricing tier at the time of the read.
    pub owner_tier: PricingTier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = ExperimentCursor {
            created_at: Timestamp::now(),
            id: ExperimentId::new(),
        };
        assert_eq!(ExperimentCursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "-", "zz-", "10-notauuid", "ffffffffffffffffff-0"] {
            assert!(ExperimentCursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_size_bounds() {
        assert!(PageSize::new(0).is_err());
        assert!(PageSize::new(101).is_err());
        assert_eq!(PageSize::new(100).unwrap().get(), 100);
    }
}
