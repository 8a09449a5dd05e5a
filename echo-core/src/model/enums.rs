//! Closed sets of values stored as text. Reading an unknown value back from storage is an error
//! (never a silent default), so a newer schema cannot be misread by an older binary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident $(: $($derive:ident),+)?, $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize $($(, $derive)+)?)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable text form used in storage and JSON.
            pub const fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    other => Err(ValidationError::new(
                        $field,
                        format!("has unknown value {other:?}"),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// A user's pricing tier; each has a monthly prompt quota.
    PricingTier, "pricing tier" {
        /// The free tier.
        Free => "free",
        /// The paid tier for individuals and small teams.
        Pro => "pro",
        /// Contracted tier.
        Enterprise => "enterprise",
    }
);

impl PricingTier {
    /// The default monthly prompt quota (iterations × providers). Operators may configure
    /// their own limits; this is what a fresh deployment uses.
    pub const fn default_monthly_quota(&self) -> u32 {
        match self {
            PricingTier::Free => 500,
            PricingTier::Pro => 20_000,
            PricingTier::Enterprise => 500_000,
        }
    }
}

string_enum!(
    /// Where an experiment is in its life.
    ExperimentStatus, "experiment status" {
        /// Created, no run requested yet.
        Pending => "pending",
        /// A run job is in the queue.
        Queued => "queued",
        /// A worker is executing a run.
        Running => "running",
        /// The last run finished.
        Completed => "completed",
        /// The last run failed.
        Failed => "failed",
        /// Cancelled by its owner; recurring runs stop.
        Cancelled => "cancelled",
    }
);

impl ExperimentStatus {
    /// Whether another run may be requested: not while one is queued or running (it would
    /// race the first), and not once the owner cancelled it. The stores' re-run and the
    /// service layer both apply this rule.
    pub const fn can_rerun(&self) -> bool {
        !self.is_in_flight() && !matches!(self, ExperimentStatus::Cancelled)
    }

    /// Whether a run is queued or executing: such an experiment cannot be deleted (cancel
    /// it first) or re-run.
    pub const fn is_in_flight(&self) -> bool {
        matches!(self, ExperimentStatus::Queued | ExperimentStatus::Running)
    }

    /// Whether an execution may still start or is under way (pending, queued, running):
    /// cancelling stops it.
    pub const fn is_active(&self) -> bool {
        matches!(
            self,
            ExperimentStatus::Pending | ExperimentStatus::Queued | ExperimentStatus::Running
        )
    }
}

string_enum!(
    /// Where a batch run (one provider, one execution) is in its life.
    BatchRunStatus, "batch run status" {
        /// Created, not started.
        Pending => "pending",
        /// Iterations are being executed.
        Running => "running",
        /// All iterations ran (some may have failed individually).
        Completed => "completed",
        /// Stopped by a permanent error or a time-out.
        Failed => "failed",
        /// Stopped by a cancellation.
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Queue state of a job.
    JobStatus, "job status" {
        /// Waiting for `run_at`, or due.
        Queued => "queued",
        /// Leased by a worker.
        Running => "running",
        /// Finished successfully.
        Succeeded => "succeeded",
        /// Gave up: attempts exhausted or a permanent error.
        Failed => "failed",
        /// Cancelled before it finished.
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    /// Whether the job will never run again.
    pub const fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

string_enum!(
    /// The LLM service an experiment queries.
    ProviderKind, "provider" {
        /// OpenAI Chat Completions.
        OpenAi => "openai",
        /// Anthropic Messages.
        Anthropic => "anthropic",
        /// Google Gemini generateContent.
        Gemini => "gemini",
        /// Perplexity (with citations).
        Perplexity => "perplexity",
        /// Any OpenAI-compatible endpoint (Ollama, vLLM, gateways).
        OpenAiCompatible => "openai_compatible",
        /// Echo's seeded simulator: no key, no network; always labelled simulated.
        Simulated => "simulated",
    }
);

string_enum!(
    /// What an alert reports: which significant change between two runs of a recurring
    /// experiment (see [`crate::analysis::alerts`]).
    AlertKind, "alert kind" {
        /// The target's visibility (share of answers naming it) changed.
        Visibility => "visibility",
        /// The target's first-place rate (share of answers naming it first) changed.
        FirstPlace => "first_place",
        /// A competitor's visibility rose above the target's, which it was not before.
        CompetitorOvertook => "competitor_overtook",
    }
);

string_enum!(
    /// How a brand's names are matched in an answer.
    MatchMode: Default, "match mode" {
        /// Name and aliases, ignoring case (the default).
        #[default]
        CaseInsensitive => "case_insensitive",
        /// Name and aliases, exact case: for brands named by ordinary words ("Close", "Bear").
        CaseSensitive => "case_sensitive",
        /// Only the aliases, ignoring case: when the name itself is too common to count.
        AliasesOnly => "aliases_only",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn life_cycle_rules() {
        use ExperimentStatus::*;
        let rerunnable: Vec<_> = ALL_STATUSES.iter().filter(|s| s.can_rerun()).collect();
        assert_eq!(rerunnable, [&Pending, &Completed, &Failed]);
        let in_flight: Vec<_> = ALL_STATUSES.iter().filter(|s| s.is_in_flight()).collect();
        assert_eq!(in_flight, [&Queued, &Running]);
        let active: Vec<_> = ALL_STATUSES.iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [&Pending, &Queued, &Running]);
    }

    const ALL_STATUSES: &[ExperimentStatus] = ExperimentStatus::ALL;

    #[test]
    fn text_round_trip_and_unknown() {
        for s in ExperimentStatus::ALL {
            assert_eq!(s.as_str().parse::<ExperimentStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for p in ProviderKind::ALL {
            assert_eq!(p.as_str().parse::<ProviderKind>().unwrap(), *p);
        }
        let err = "exploded".parse::<JobStatus>().unwrap_err();
        assert!(err.to_string().contains("exploded"));
    }
}
