//! Competitor discovery over an experiment's stored answers, and "add as competitor".

use std::sync::Arc;

use super::ServiceError;
use crate::analysis::{BrandMatcher, Discoverer, Discovery};
use crate::model::{Brand, BrandProfile, ExperimentId, Timestamp, UserId};
use crate::store::{DynStore, ExperimentStore, RunStore, UserStore};

/// Finds the brands an experiment's answers name but it does not track, and adds one to the
/// owner's brand profile. Every read is scoped to the owner: another user's experiment is
/// [`StoreError::NotFound`](crate::store::StoreError::NotFound), as a missing one.
#[derive(Debug, Clone)]
pub struct DiscoveryService {
    users: Arc<dyn UserStore>,
    experiments: Arc<dyn ExperimentStore>,
    runs: Arc<dyn RunStore>,
}

impl DiscoveryService {
    /// A service over the store parts it uses.
    pub fn new(
        users: Arc<dyn UserStore>,
        experiments: Arc<dyn ExperimentStore>,
        runs: Arc<dyn RunStore>,
    ) -> Self {
        Self {
            users,
            experiments,
            runs,
        }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone(), store.clone(), store.clone())
    }

    /// The untracked brands named in the successful answers of all the experiment's runs,
    /// excluding its target, competitors (with aliases) and the prompt's words; see
    /// [`Discoverer`]. Anonymized answers, whose text is gone, do not count.
    ///
    /// Errors: `NotFound` when the experiment is not the owner's; store failures.
    pub async fn discovered_brands(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Discovery, ServiceError> {
        let experiment = self.experiments.get_experiment(owner, id).await?;
        let mut answers = Vec::new();
        for run in self.runs.list_batch_runs(owner, id).await? {
            answers.extend(
                super::stored_answers(&*self.runs, owner, run.id)
                    .await?
                    .into_iter()
                    .filter_map(|it| it.raw_response),
            );
        }
        let matcher = BrandMatcher::new(&experiment.target, &experiment.competitors)?;
        Ok(Discoverer::new()
            .tracking(matcher)
            .prompt(experiment.prompt.as_str())
            .discover(answers.iter().map(String::as_str)))
    }

    /// Adds `competitor` to the owner's brand profile's default competitors (the rule is
    /// [`BrandProfile::add_competitor`]) and returns the profile with whether it changed; an
    /// unchanged profile is not written.
    ///
    /// Errors: `NotFound` when the owner has no brand profile yet; `Invalid` for the profile's
    /// own brand or a full list.
    pub async fn add_competitor(
        &self,
        owner: UserId,
        competitor: Brand,
    ) -> Result<(BrandProfile, bool), ServiceError> {
        let mut profile = self.users.get_brand_profile(owner).await?;
        let added = profile.add_competitor(competitor)?;
        if added {
            profile.updated_at = Timestamp::now();
            self.users.put_brand_profile(&profile).await?;
        }
        Ok((profile, added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BrandName, Email, Iteration, Prompt, ProviderKind};
    use crate::service::{Accounts, ExperimentDraft, ExperimentService};
    use crate::store::memory::MemoryStore;

    fn brand(name: &str) -> Brand {
        Brand::new(BrandName::parse(name).unwrap())
    }

    async fn setup() -> (Arc<DynStore>, UserId, UserId) {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let accounts = Accounts::from_store(&store);
        let a = accounts
            .local_user(&Email::parse("a@example.com").unwrap())
            .await
            .unwrap();
        let b = accounts
            .local_user(&Email::parse("b@example.com").unwrap())
            .await
            .unwrap();
        (store, a.id, b.id)
    }

    #[tokio::test]
    async fn discovers_over_stored_answers_of_the_owner_only() {
        let (store, owner, other) = setup().await;
        let draft = ExperimentDraft::new(Prompt::parse("Best CRM?").unwrap(), brand("HubSpot"))
            .competitor(brand("Salesforce"))
            .provider(ProviderKind::Simulated, "sim")
            .iterations(3)
            .unwrap();
        let submitted = ExperimentService::from_store(&store)
            .submit(owner, draft)
            .await
            .unwrap();
        let experiment = submitted.experiment;
        let run = crate::model::BatchRun::new(
            experiment.id,
            ProviderKind::Simulated,
            "sim",
            4,
            Timestamp::now(),
        );
        store.create_batch_run(&run).await.unwrap();
        let answers = [
            Some("1. **HubSpot**\n2. **Pipedrive**\n3. **CRM** basics"),
            Some("Pipedrive and Attio; Salesforce too."),
            Some("Attio's data model is flexible. Pipedrive is simple."),
            None,
        ];
        let iterations: Vec<Iteration> = answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut it =
                    crate::conformance::fixtures::iteration(run.id, i as u32, Timestamp::now());
                it.raw_response = a.map(str::to_owned);
                it.is_success = a.is_some();
                it
            })
            .collect();
        store.record_iterations(&iterations).await.unwrap();
        let service = DiscoveryService::from_store(&store);
        let d = service
            .discovered_brands(owner, experiment.id)
            .await
            .unwrap();
        assert_eq!(d.answers, 3, "failed iterations do not count");
        let names: Vec<&str> = d.brands.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["Pipedrive", "Attio"],
            "tracked and prompt words excluded"
        );
        assert_eq!(d.brands[0].answers.successes, 3);
        let err = service
            .discovered_brands(other, experiment.id)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Store(crate::store::StoreError::NotFound { .. })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn add_competitor_to_the_brand_profile() {
        let (store, owner, _) = setup().await;
        let service = DiscoveryService::from_store(&store);
        let missing = service.add_competitor(owner, brand("Attio")).await;
        assert!(matches!(
            missing,
            Err(ServiceError::Store(
                crate::store::StoreError::NotFound { .. }
            ))
        ));
        let mut own = brand("HubSpot");
        own.aliases = vec![BrandName::parse("HubSpot CRM").unwrap()];
        let profile = BrandProfile {
            user_id: owner,
            brand: own,
            domain: None,
            default_competitors: vec![brand("Salesforce")],
            updated_at: Timestamp::now(),
        };
        store.put_brand_profile(&profile).await.unwrap();

        let (p, added) = service.add_competitor(owner, brand("Attio")).await.unwrap();
        assert!(added);
        assert_eq!(p.default_competitors.len(), 2);
        let stored = store.get_brand_profile(owner).await.unwrap();
        assert_eq!(stored.default_competitors, p.default_competitors);

        let (_, again) = service.add_competitor(owner, brand("attio")).await.unwrap();
        assert!(!again, "case-insensitive duplicate");
        let own_alias = service.add_competitor(owner, brand("hubspot crm")).await;
        assert!(matches!(own_alias, Err(ServiceError::Invalid(_))));

        let mut full = store.get_brand_profile(owner).await.unwrap();
        full.default_competitors = (0..crate::model::Experiment::MAX_COMPETITORS)
            .map(|i| brand(&format!("Brand {i}")))
            .collect();
        store.put_brand_profile(&full).await.unwrap();
        let over = service.add_competitor(owner, brand("Zoho")).await;
        assert!(matches!(over, Err(ServiceError::Invalid(_))));
    }
}
