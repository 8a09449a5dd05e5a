//! The brand profile and the prompt sets it owns.

use std::sync::Arc;

use super::ServiceError;
use crate::model::{
    Brand, BrandProfile, Experiment, Label, PinnedPromptSet, Prompt, PromptSet, PromptSetId,
    PromptSetVersion, Timestamp, UserId, ValidationError,
};
use crate::store::{DynStore, PromptSetStore, StoreError, UserStore, after_version};

/// What a user submits for their brand profile, before validation.
#[derive(Debug, Clone)]
pub struct BrandProfileDraft {
    /// The user's brand (validated by the caller's parser into a [`Brand`]).
    pub brand: Brand,
    /// Its web domain as typed (`HubSpot.com`, ` hubspot.com `), if any.
    pub domain: Option<String>,
    /// Competitors to pre-fill new experiments with.
    pub default_competitors: Vec<Brand>,
}

/// A prompt set's name and phrasings as submitted, before validation.
#[derive(Debug, Clone)]
pub struct PromptSetDraft {
    /// The topic.
    pub name: String,
    /// The phrasings, one per entry; entries that are blank after trimming are dropped (a
    /// form's empty lines), everything else is validated as an experiment prompt.
    pub prompts: Vec<String>,
}

/// Reads and writes the owner's brand profile and prompt sets. Every call is scoped to the
/// owner: another user's set is [`StoreError::NotFound`], as a missing one.
#[derive(Debug, Clone)]
pub struct BrandService {
    users: Arc<dyn UserStore>,
    sets: Arc<dyn PromptSetStore>,
}

impl BrandService {
    /// A service over the store parts it uses.
    pub fn new(users: Arc<dyn UserStore>, sets: Arc<dyn PromptSetStore>) -> Self {
        Self { users, sets }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone(), store.clone())
    }

    /// The owner's profile. Errors: `NotFound` when they have none yet.
    pub async fn profile(&self, owner: UserId) -> Result<BrandProfile, ServiceError> {
        Ok(self.users.get_brand_profile(owner).await?)
    }

    /// Creates or replaces the owner's profile, stamped `now`.
    ///
    /// Errors: `Invalid` for an invalid brand, a domain that is not a host name, more than
    /// [`Experiment::MAX_COMPETITORS`] competitors, or a competitor that is the brand itself.
    pub async fn put_profile(
        &self,
        owner: UserId,
        draft: BrandProfileDraft,
        now: Timestamp,
    ) -> Result<BrandProfile, ServiceError> {
        draft.brand.validate()?;
        if draft.default_competitors.len() > Experiment::MAX_COMPETITORS {
            return Err(ValidationError::new(
                "default_competitors",
                format!("must be at most {}", Experiment::MAX_COMPETITORS),
            )
            .into());
        }
        let domain = draft
            .domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(normalize_domain)
            .transpose()?;
        let mut profile = BrandProfile {
            user_id: owner,
            brand: draft.brand,
            domain,
            default_competitors: Vec::new(),
            updated_at: now,
        };
        for competitor in draft.default_competitors {
            // The one rule for a competitor of a profile: valid, not the brand, no repeats.
            profile
                .add_competitor(competitor)
                .map_err(|e| ValidationError::new("default_competitors", e.reason))?;
        }
        self.users.put_brand_profile(&profile).await?;
        Ok(profile)
    }

    /// Creates a prompt set owned by the owner's brand profile, as its version 1.
    ///
    /// Errors: `Invalid` when the owner has no brand profile yet, or for the name or
    /// phrasings (see [`PromptSetVersion::new`]).
    pub async fn create_set(
        &self,
        owner: UserId,
        draft: PromptSetDraft,
        now: Timestamp,
    ) -> Result<(PromptSet, PromptSetVersion), ServiceError> {
        match self.users.get_brand_profile(owner).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(ValidationError::new(
                    "brand profile",
                    "must be set up before prompt sets (they belong to it)",
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        let first = version_of(PromptSetId::new(), 1, draft, now)?;
        self.sets.create_prompt_set(owner, &first).await?;
        Ok((PromptSet::first(owner, &first), first))
    }

    /// Stores an edit of the set as its next version; earlier versions stay as they were.
    /// `based_on` is the version the editor started from, when known: if another edit landed
    /// since, the call is a `Conflict` rather than silently replacing it.
    ///
    /// Errors: `NotFound`; `Invalid` for the name or phrasings; `Conflict` as above or when a
    /// concurrent edit stored the same version number first.
    pub async fn new_version(
        &self,
        owner: UserId,
        id: PromptSetId,
        based_on: Option<u32>,
        draft: PromptSetDraft,
        now: Timestamp,
    ) -> Result<(PromptSet, PromptSetVersion), ServiceError> {
        let set = self.sets.get_prompt_set(owner, id).await?;
        if let Some(base) = based_on
            && base != set.latest_version
        {
            return Err(StoreError::conflict(format!(
                "the set is at version {}, not {base}: reload it and edit again",
                set.latest_version
            ))
            .into());
        }
        let next = version_of(id, set.latest_version.saturating_add(1), draft, now)?;
        self.sets.add_prompt_set_version(owner, &next).await?;
        Ok((after_version(&set, &next), next))
    }

    /// The owner's sets, newest first.
    pub async fn sets(&self, owner: UserId) -> Result<Vec<PromptSet>, ServiceError> {
        Ok(self.sets.list_prompt_sets(owner).await?)
    }

    /// The set with one of its versions: `version`, or the newest when `None`.
    pub async fn set(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: Option<u32>,
    ) -> Result<(PromptSet, PromptSetVersion), ServiceError> {
        let set = self.sets.get_prompt_set(owner, id).await?;
        let v = self
            .sets
            .get_prompt_set_version(owner, id, version.unwrap_or(set.latest_version))
            .await?;
        Ok((set, v))
    }

    /// Pins a version of the owner's set (the newest when `version` is `None`) for an
    /// experiment that sends each phrasing `iterations_per_prompt` times per provider; apply
    /// it with [`Experiment::run_prompt_set`].
    ///
    /// Errors: `NotFound` for another user's set or a version never stored; `Invalid` when
    /// phrasings × iterations per prompt exceeds [`crate::model::Iterations::MAX`].
    pub async fn pin(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: Option<u32>,
        iterations_per_prompt: u32,
    ) -> Result<PinnedPromptSet, ServiceError> {
        let (_, v) = self.set(owner, id, version).await?;
        Ok(PinnedPromptSet::new(&v, iterations_per_prompt)?)
    }

    /// Deletes the set and its versions.
    pub async fn delete_set(&self, owner: UserId, id: PromptSetId) -> Result<(), ServiceError> {
        Ok(self.sets.delete_prompt_set(owner, id).await?)
    }
}

/// Validates a draft into version `version` of set `id`.
fn version_of(
    id: PromptSetId,
    version: u32,
    draft: PromptSetDraft,
    now: Timestamp,
) -> Result<PromptSetVersion, ValidationError> {
    let name = Label::parse(&draft.name).map_err(|e| ValidationError::new("name", e.reason))?;
    let prompts = draft
        .prompts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .enumerate()
        .map(|(i, p)| {
            Prompt::parse(p)
                .map_err(|e| ValidationError::new("prompts", format!("phrasing {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PromptSetVersion::new(id, version, name, prompts, now)
}

/// A brand's web domain, lower-cased: a host name of at least two labels, each 1 to 63 letters,
/// digits or hyphens, not starting or ending with a hyphen; at most 253 characters. A URL or
/// an address with a path is refused rather than guessed at.
///
/// ```
/// use echo_core::service::normalize_domain;
/// assert_eq!(normalize_domain(" HubSpot.com ").unwrap(), "hubspot.com");
/// assert!(normalize_domain("https://hubspot.com").is_err());
/// ```
pub fn normalize_domain(raw: &str) -> Result<String, ValidationError> {
    let d = raw.trim();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(d.to_ascii_lowercase())
    } else {
        Err(ValidationError::new(
            "domain",
            "must be a domain like example.com",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BrandName, Email};
    use crate::service::Accounts;
    use crate::store::memory::MemoryStore;

    fn brand(name: &str) -> Brand {
        Brand::new(BrandName::parse(name).unwrap())
    }

    fn draft(name: &str, n: usize) -> PromptSetDraft {
        PromptSetDraft {
            name: name.to_owned(),
            prompts: (0..n).map(|i| format!("Which CRM, variant {i}?")).collect(),
        }
    }

    async fn setup() -> (BrandService, UserId) {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let owner = Accounts::from_store(&store)
            .local_user(&Email::parse("ada@example.com").unwrap())
            .await
            .unwrap();
        (BrandService::from_store(&store), owner.id)
    }

    #[test]
    fn domains() {
        assert_eq!(normalize_domain("a-b.co.uk").unwrap(), "a-b.co.uk");
        for bad in ["nodot", "-a.com", "a..com", "http://a.com", "a.com/x", ""] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn profile_is_validated_and_replaced() {
        let (svc, owner) = setup().await;
        assert!(matches!(
            svc.profile(owner).await,
            Err(ServiceError::Store(StoreError::NotFound { .. }))
        ));
        let bad = BrandProfileDraft {
            brand: brand("HubSpot"),
            domain: Some("not a domain".into()),
            default_competitors: vec![],
        };
        let err = svc
            .put_profile(owner, bad, Timestamp::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Invalid(ref e) if e.field == "domain"),
            "{err}"
        );
        let own = BrandProfileDraft {
            brand: brand("HubSpot"),
            domain: None,
            default_competitors: vec![brand("hubspot")],
        };
        let err = svc
            .put_profile(owner, own, Timestamp::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Invalid(ref e) if e.field == "default_competitors"),
            "{err}"
        );
        let good = BrandProfileDraft {
            brand: brand("HubSpot"),
            domain: Some(" HubSpot.com".into()),
            default_competitors: vec![brand("Salesforce"), brand("salesforce"), brand("Pipedrive")],
        };
        let p = svc
            .put_profile(owner, good, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(p.domain.as_deref(), Some("hubspot.com"));
        // A repeated competitor is kept once.
        assert_eq!(p.default_competitors.len(), 2);
        assert_eq!(svc.profile(owner).await.unwrap(), p);
    }

    #[tokio::test]
    async fn prompt_sets_need_a_profile_and_version_on_edit() {
        let (svc, owner) = setup().await;
        let err = svc
            .create_set(owner, draft("CRM", 5), Timestamp::now())
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Invalid(ref e) if e.field == "brand profile"));
        let profile = BrandProfileDraft {
            brand: brand("HubSpot"),
            domain: None,
            default_competitors: vec![],
        };
        svc.put_profile(owner, profile, Timestamp::now())
            .await
            .unwrap();

        let mut with_blanks = draft("CRM", 5);
        with_blanks.prompts.insert(2, "   ".into());
        let (set, v1) = svc
            .create_set(owner, with_blanks, Timestamp::now())
            .await
            .unwrap();
        assert_eq!((set.latest_version, v1.prompts.len()), (1, 5));

        let mut bad = draft("CRM", 6);
        bad.prompts[3] = "bad\u{0}prompt".into();
        let err = svc
            .new_version(owner, set.id, Some(1), bad, Timestamp::now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("phrasing 4"), "{err}");

        let (set2, v2) = svc
            .new_version(
                owner,
                set.id,
                Some(1),
                draft("CRM, reworded", 8),
                Timestamp::now(),
            )
            .await
            .unwrap();
        assert_eq!(
            (set2.latest_version, v2.version, set2.name.as_str()),
            (2, 2, "CRM, reworded")
        );
        // An editor that started from version 1 is told, not silently overwritten.
        let stale = svc
            .new_version(owner, set.id, Some(1), draft("Stale", 5), Timestamp::now())
            .await
            .unwrap_err();
        assert!(matches!(
            stale,
            ServiceError::Store(StoreError::Conflict { .. })
        ));
        // The old version stays readable.
        assert_eq!(svc.set(owner, set.id, Some(1)).await.unwrap().1, v1);
        assert_eq!(svc.set(owner, set.id, None).await.unwrap().1, v2);
        svc.delete_set(owner, set.id).await.unwrap();
        assert!(svc.sets(owner).await.unwrap().is_empty());
    }
}
