//! Prompt sets: one topic asked in many phrasings, versioned so that results always name the
//! exact wording they came from.

use serde::{Deserialize, Serialize};

use super::{Label, Prompt, PromptSetId, Timestamp, UserId, ValidationError};

/// A named set of phrasings of one question, owned by a user's brand profile.
///
/// The set itself only carries identity and the number of its newest version; the wording
/// lives in its [`PromptSetVersion`]s, which never change once stored. Editing a set stores a
/// new version, so a report that names `(id, version)` can always show what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSet {
    /// Identity.
    pub id: PromptSetId,
    /// Owner.
    pub user_id: UserId,
    /// The newest version's name (the topic), kept here so lists need no second read.
    pub name: Label,
    /// The newest version's number (1-based).
    pub latest_version: u32,
    /// When version 1 was stored.
    pub created_at: Timestamp,
    /// When the newest version was stored.
    pub updated_at: Timestamp,
}

/// One immutable version of a [`PromptSet`]: its name and 5 to 50 phrasings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSetVersion {
    /// The set.
    pub set_id: PromptSetId,
    /// 1-based, consecutive.
    pub version: u32,
    /// The topic, e.g. "CRM for startups".
    pub name: Label,
    /// The phrasings, each validated as an experiment prompt, in the order given; an
    /// iteration records the index of the one it answered.
    pub prompts: Vec<Prompt>,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl PromptSetVersion {
    /// Fewest phrasings a set may have: fewer cannot estimate the spread between phrasings
    /// that the pooled interval needs.
    pub const MIN_PROMPTS: usize = 5;
    /// Most phrasings a set may have.
    pub const MAX_PROMPTS: usize = 50;

    /// A validated version: 5 to 50 phrasings, no two the same (after trimming, ignoring
    /// case), since a repeated phrasing would count twice in the pooled rate.
    pub fn new(
        set_id: PromptSetId,
        version: u32,
        name: Label,
        prompts: Vec<Prompt>,
        created_at: Timestamp,
    ) -> Result<Self, ValidationError> {
        let v = Self {
            set_id,
            version,
            name,
            prompts,
            created_at,
        };
        v.validate()?;
        Ok(v)
    }

    /// Checks the version number and the phrasings (see [`PromptSetVersion::new`]); stores call
    /// it before writing, so an invalid version is never stored.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.version == 0 {
            return Err(ValidationError::new("version", "must be at least 1"));
        }
        let n = self.prompts.len();
        if !(Self::MIN_PROMPTS..=Self::MAX_PROMPTS).contains(&n) {
            return Err(ValidationError::new(
                "prompts",
                format!(
                    "must have {} to {} phrasings (got {n})",
                    Self::MIN_PROMPTS,
                    Self::MAX_PROMPTS
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.prompts.iter().enumerate() {
            if !seen.insert(p.as_str().trim().to_lowercase()) {
                return Err(ValidationError::new(
                    "prompts",
                    format!("phrasing {} repeats an earlier one", i + 1),
                ));
            }
        }
        Ok(())
    }
}

impl PromptSet {
    /// The set whose first version is `first` (owned by `owner`).
    pub fn first(owner: UserId, first: &PromptSetVersion) -> Self {
        Self {
            id: first.set_id,
            user_id: owner,
            name: first.name.clone(),
            latest_version: first.version,
            created_at: first.created_at,
            updated_at: first.created_at,
        }
    }
}

/// The prompt set version an experiment runs, copied into the experiment when it is created:
/// later edits of the set (new versions) or its deletion never change what an experiment asks
/// or how its results are labelled.
///
/// Each run sends every phrasing `iterations_per_prompt` times per provider, interleaved:
/// iteration `i` of a run answers phrasing `i mod K` (K phrasings), so a run stopped early or
/// cut short by adaptive precision still covers the phrasings evenly. The phrasing of an
/// iteration is a function of its index and this pinned copy, so it is recorded with the
/// iteration as exactly as a stored column would be, and survives anonymization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedPromptSet {
    /// The set.
    pub set_id: PromptSetId,
    /// The version pinned.
    pub version: u32,
    /// Its name.
    pub name: Label,
    /// Its phrasings.
    pub prompts: Vec<Prompt>,
    /// Answers per phrasing per provider in one run.
    pub iterations_per_prompt: u32,
}

impl PinnedPromptSet {
    /// Pins `version` with `iterations_per_prompt` answers per phrasing. The total per provider
    /// (phrasings × iterations per prompt) must fit [`super::Iterations`]' bounds.
    pub fn new(
        version: &PromptSetVersion,
        iterations_per_prompt: u32,
    ) -> Result<Self, ValidationError> {
        let pinned = Self {
            set_id: version.set_id,
            version: version.version,
            name: version.name.clone(),
            prompts: version.prompts.clone(),
            iterations_per_prompt,
        };
        pinned.total_iterations()?;
        Ok(pinned)
    }

    /// Iterations per provider per run: phrasings × iterations per prompt.
    pub fn total_iterations(&self) -> Result<super::Iterations, ValidationError> {
        if self.iterations_per_prompt == 0 {
            return Err(ValidationError::new(
                "iterations",
                "must be at least 1 per phrasing",
            ));
        }
        let k = u32::try_from(self.prompts.len()).unwrap_or(u32::MAX);
        super::Iterations::new(k.saturating_mul(self.iterations_per_prompt)).map_err(|_| {
            ValidationError::new(
                "iterations",
                format!(
                    "per phrasing times {k} phrasings must be at most {}",
                    super::Iterations::MAX
                ),
            )
        })
    }

    /// Which phrasing iteration `index` answers (0-based).
    pub fn phrasing_of(&self, index: u32) -> u32 {
        let k = u32::try_from(self.prompts.len()).unwrap_or(u32::MAX).max(1);
        index % k
    }

    /// The phrasing iteration `index` sends.
    pub fn prompt_for(&self, index: u32) -> Option<&Prompt> {
        self.prompts.get(self.phrasing_of(index) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(n: usize) -> Vec<Prompt> {
        (0..n)
            .map(|i| Prompt::parse(format!("Best CRM, take {i}?")).unwrap())
            .collect()
    }

    #[test]
    fn limits_and_duplicates() {
        let name = Label::parse("CRM for startups").unwrap();
        let id = PromptSetId::new();
        let now = Timestamp::now();
        assert!(PromptSetVersion::new(id, 1, name.clone(), prompts(5), now).is_ok());
        assert!(PromptSetVersion::new(id, 1, name.clone(), prompts(50), now).is_ok());
        let few = PromptSetVersion::new(id, 1, name.clone(), prompts(4), now).unwrap_err();
        assert_eq!(few.field, "prompts");
        assert!(PromptSetVersion::new(id, 1, name.clone(), prompts(51), now).is_err());
        assert!(PromptSetVersion::new(id, 0, name.clone(), prompts(5), now).is_err());
        let mut dup = prompts(5);
        dup.push(Prompt::parse(" best crm, TAKE 2? ").unwrap());
        let err = PromptSetVersion::new(id, 1, name.clone(), dup, now).unwrap_err();
        assert!(err.reason.contains("phrasing 6"), "{err}");

        let v = PromptSetVersion::new(id, 3, name, prompts(5), now).unwrap();
        let pinned = PinnedPromptSet::new(&v, 4).unwrap();
        assert_eq!(pinned.total_iterations().unwrap().get(), 20);
        assert_eq!(
            (
                pinned.phrasing_of(0),
                pinned.phrasing_of(6),
                pinned.phrasing_of(19)
            ),
            (0, 1, 4)
        );
        assert_eq!(pinned.prompt_for(7), Some(&v.prompts[2]));
        assert!(PinnedPromptSet::new(&v, 0).is_err());
        assert!(PinnedPromptSet::new(&v, 2001).is_err());
        assert!(PinnedPromptSet::new(&v, 2000).is_ok());
    }
}
