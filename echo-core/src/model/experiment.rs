//! Experiments: what to ask, whom to look for, where and how often.

use serde::{Deserialize, Serialize};

use super::{
    BrandName, ExperimentId, ExperimentStatus, Iterations, MatchMode, PinnedPromptSet, Precision,
    Prompt, PromptSetVersion, ProviderKind, Timestamp, UserId, ValidationError,
};

/// A brand to look for in answers: its name, other spellings, and how to match them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    /// Canonical name, reported in metrics.
    pub name: BrandName,
    /// Other spellings that count as this brand ("HubSpot CRM", "Hubspot").
    #[serde(default)]
    pub aliases: Vec<BrandName>,
    /// Matching mode (see [`MatchMode`]).
    #[serde(default)]
    pub match_mode: MatchMode,
}

impl Brand {
    /// Most aliases a brand may carry.
    pub const MAX_ALIASES: usize = 50;

    /// A brand without aliases, matched case-insensitively.
    pub fn new(name: BrandName) -> Self {
        Self {
            name,
            aliases: Vec::new(),
            match_mode: MatchMode::default(),
        }
    }

    /// Checks the alias count and that [`MatchMode::AliasesOnly`] has aliases to match.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.aliases.len() > Self::MAX_ALIASES {
            return Err(ValidationError::new(
                "aliases",
                format!("must be at most {} per brand", Self::MAX_ALIASES),
            ));
        }
        if self.match_mode == MatchMode::AliasesOnly && self.aliases.is_empty() {
            return Err(ValidationError::new(
                "aliases",
                "must not be empty when match_mode is aliases_only",
            ));
        }
        Ok(())
    }
}

/// One provider/model pair an experiment queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The service.
    pub provider: ProviderKind,
    /// Model name as the provider spells it (`gpt-4o-mini`).
    pub model: String,
    /// Sampling temperature, 0.0 to 2.0.
    pub temperature: f32,
}

impl ProviderConfig {
    /// Checks model name length and the temperature range.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let model = self.model.trim();
        if model.is_empty() || model.chars().count() > 200 || model.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "model",
                "must be 1 to 200 printable characters",
            ));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(ValidationError::new(
                "temperature",
                "must be between 0.0 and 2.0",
            ));
        }
        Ok(())
    }
}

/// A recurrence: a cron expression and the next time it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Cron expression (parsed and validated by the scheduler).
    pub schedule: String,
    /// Next due instant; `None` once the schedule has no future occurrence.
    pub next_run_at: Option<Timestamp>,
}

/// An experiment: a prompt, a target brand and competitors, sent `iterations` times to each
/// provider per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Identity.
    pub id: ExperimentId,
    /// Owner; every read is scoped to it.
    pub user_id: UserId,
    /// What is asked.
    pub prompt: Prompt,
    /// The brand whose visibility is measured.
    pub target: Brand,
    /// Brands measured alongside.
    pub competitors: Vec<Brand>,
    /// Samples per provider per run.
    pub iterations: Iterations,
    /// Where the prompt is sent.
    pub providers: Vec<ProviderConfig>,
    /// Life-cycle state.
    pub status: ExperimentStatus,
    /// When set, the experiment re-runs on a schedule.
    pub recurrence: Option<Recurrence>,
    /// When set, the experiment asks this prompt set's phrasings instead of `prompt` alone
    /// (`prompt` is then its first phrasing) and `iterations` is phrasings × iterations per
    /// prompt; see [`PinnedPromptSet`].
    #[serde(default)]
    pub prompt_set: Option<PinnedPromptSet>,
    /// Adaptive sampling's target for this experiment's runs: each batch run stops once the
    /// target's visibility is known to ± this, and `iterations` is only the cap (the quota of
    /// the iterations not needed is refunded). `None` defers to the runner's
    /// [`RunnerConfig::precision`](crate::runner::RunnerConfig::precision); when both are set,
    /// this one wins. Absent from old rows and old clients' JSON, hence the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    /// Creation time; with `id`, the listing's sort key.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Experiment {
    /// Most competitors an experiment may track.
    pub const MAX_COMPETITORS: usize = 100;
    /// Most provider configurations per experiment.
    pub const MAX_PROVIDERS: usize = 20;

    /// Checks the parts that the field types alone do not guarantee.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.target.validate()?;
        if self.competitors.len() > Self::MAX_COMPETITORS {
            return Err(ValidationError::new(
                "competitor_brands",
                format!("must be at most {}", Self::MAX_COMPETITORS),
            ));
        }
        for c in &self.competitors {
            c.validate()?;
        }
        if self.providers.is_empty() || self.providers.len() > Self::MAX_PROVIDERS {
            return Err(ValidationError::new(
                "providers",
                format!("must list 1 to {} providers", Self::MAX_PROVIDERS),
            ));
        }
        for p in &self.providers {
            p.validate()?;
        }
        if let Some(set) = &self.prompt_set
            && (set.total_iterations()? != self.iterations
                || set.prompts.first() != Some(&self.prompt)
                || set.prompts.len() < PromptSetVersion::MIN_PROMPTS
                || set.prompts.len() > PromptSetVersion::MAX_PROMPTS)
        {
            return Err(ValidationError::new(
                "prompt_set",
                "does not match the experiment's prompt and iterations",
            ));
        }
        if let Some(r) = &self.recurrence
            && (r.schedule.trim().is_empty() || r.schedule.len() > 200)
        {
            return Err(ValidationError::new(
                "schedule",
                "must be 1 to 200 characters",
            ));
        }
        Ok(())
    }

    /// Makes the experiment ask `set`'s phrasings: `prompt` becomes its first phrasing and
    /// `iterations` phrasings × iterations per prompt.
    pub fn run_prompt_set(&mut self, set: PinnedPromptSet) -> Result<(), ValidationError> {
        self.iterations = set.total_iterations()?;
        if let Some(first) = set.prompts.first() {
            self.prompt = first.clone();
        }
        self.prompt_set = Some(set);
        Ok(())
    }

    /// The prompt iteration `index` of a run sends: its phrasing of the prompt set, or the
    /// experiment's prompt.
    pub fn prompt_for(&self, index: u32) -> &Prompt {
        self.prompt_set
            .as_ref()
            .and_then(|s| s.prompt_for(index))
            .unwrap_or(&self.prompt)
    }

    /// Which phrasing of the prompt set iteration `index` answers; `None` without a set.
    pub fn phrasing_of(&self, index: u32) -> Option<u32> {
        self.prompt_set.as_ref().map(|s| s.phrasing_of(index))
    }

    /// Prompts one run consumes from the quota: iterations × providers.
    pub fn prompts_per_run(&self) -> u32 {
        self.iterations
            .get()
            .saturating_mul(u32::try_from(self.providers.len()).unwrap_or(u32::MAX))
    }
}
