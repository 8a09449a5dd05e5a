//! The web sources an experiment's answers cite: per run and pooled across runs.

use std::sync::Arc;

use serde::Serialize;

use super::ServiceError;
use crate::analysis::{SourceAnswer, SourceMetrics};
use crate::model::{BatchRun, BatchRunId, ExperimentId, Iteration, ProviderKind, UserId};
use crate::store::{DynStore, ExperimentStore, RunStore, StoreError, UserStore};

/// The source metrics of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSources {
    /// The run.
    pub run_id: BatchRunId,
    /// Its provider.
    pub provider: ProviderKind,
    /// The model requested.
    pub model: String,
    /// Its metrics.
    pub metrics: SourceMetrics,
}

/// The cited-source metrics of an experiment: per run, and pooled over the same runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentSources {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// One entry per run, oldest first (only the requested run when one was named).
    pub runs: Vec<RunSources>,
    /// The answers of all those runs together ([`SourceMetrics::compute`] over their union).
    pub pooled: SourceMetrics,
}

/// Reads an experiment's stored sources back as metrics. Every read is scoped to the owner:
/// another user's experiment or run is [`StoreError::NotFound`], as a missing one.
#[derive(Debug, Clone)]
pub struct SourceService {
    users: Arc<dyn UserStore>,
    experiments: Arc<dyn ExperimentStore>,
    runs: Arc<dyn RunStore>,
}

impl SourceService {
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

    /// The source metrics of the owner's experiment `id`: of every run, or of `run` alone,
    /// and pooled. The owned domain is the brand profile's `domain` (none without a profile).
    /// Answers that failed or were anonymized do not count (see
    /// [`SourceAnswer::from_iteration`]).
    ///
    /// Errors: `NotFound` when the experiment is not the owner's or `run` is not one of its
    /// runs; store failures.
    pub async fn experiment_sources(
        &self,
        owner: UserId,
        id: ExperimentId,
        run: Option<BatchRunId>,
    ) -> Result<ExperimentSources, ServiceError> {
        let experiment = self.experiments.get_experiment(owner, id).await?;
        let runs: Vec<BatchRun> = match run {
            Some(run_id) => {
                let run = self.runs.get_batch_run(owner, run_id).await?;
                if run.experiment_id != experiment.id {
                    return Err(StoreError::not_found("batch run").into());
                }
                vec![run]
            }
            None => self.runs.list_batch_runs(owner, id).await?,
        };
        let owned = match self.users.get_brand_profile(owner).await {
            Ok(profile) => profile.domain,
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut per_run = Vec::with_capacity(runs.len());
        let mut all: Vec<Iteration> = Vec::new();
        for run in runs {
            let its = super::stored_answers(&*self.runs, owner, run.id).await?;
            per_run.push(RunSources {
                run_id: run.id,
                provider: run.provider,
                model: run.model,
                metrics: SourceMetrics::compute(
                    its.iter().filter_map(SourceAnswer::from_iteration),
                    owned.as_deref(),
                ),
            });
            all.extend(its);
        }
        Ok(ExperimentSources {
            experiment_id: experiment.id,
            runs: per_run,
            pooled: SourceMetrics::compute(
                all.iter().filter_map(SourceAnswer::from_iteration),
                owned.as_deref(),
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::conformance::fixtures::{
        at, failed_iteration, iteration, new_batch_run, new_experiment, new_user,
    };
    use crate::model::{BrandName, BrandProfile, IterationSource};
    use crate::store::memory::MemoryStore;

    fn src(position: u32, domain: &str) -> IterationSource {
        IterationSource {
            position,
            url: format!("https://{domain}/"),
            domain: domain.into(),
            title: None,
            spans: vec![],
        }
    }

    #[tokio::test]
    async fn per_run_and_pooled_with_the_owned_domain_and_tenant_isolation() {
        let store: Arc<DynStore> = Arc::new(MemoryStore::new());
        let u = new_user(&*store).await;
        let intruder = new_user(&*store).await;
        let e = new_experiment(&*store, u.id, at(0)).await;
        let r1 = new_batch_run(&*store, &e, at(1)).await;
        let r2 = new_batch_run(&*store, &e, at(2)).await;
        // Run 1: two answers citing hubspot.com and g2.com, and a failure.
        store
            .record_iterations(&[
                Iteration {
                    sources: vec![src(1, "hubspot.com"), src(2, "g2.com")],
                    ..iteration(r1.id, 0, at(3))
                },
                Iteration {
                    sources: vec![src(1, "g2.com")],
                    ..iteration(r1.id, 1, at(3))
                },
                failed_iteration(r1.id, 2, at(3)),
            ])
            .await
            .unwrap();
        // Run 2: one answer without sources.
        store
            .record_iterations(&[Iteration {
                sources: vec![],
                ..iteration(r2.id, 0, at(4))
            }])
            .await
            .unwrap();
        let profile = BrandProfile {
            user_id: u.id,
            brand: crate::model::Brand::new(BrandName::parse("HubSpot").unwrap()),
            domain: Some("www.hubspot.com".into()),
            default_competitors: vec![],
            updated_at: at(5),
        };
        store.put_brand_profile(&profile).await.unwrap();

        let service = SourceService::from_store(&store);
        let all = service.experiment_sources(u.id, e.id, None).await.unwrap();
        assert_eq!(all.runs.len(), 2);
        assert_eq!(all.runs[0].metrics.n, 2, "the failure is not an answer");
        assert_eq!(all.runs[1].metrics.n, 1);
        assert_eq!(all.pooled.n, 3);
        assert_eq!(all.pooled.citations, 3);
        let owned = all.pooled.owned_citation_rate.unwrap();
        assert_eq!((owned.successes, owned.n), (1, 3));
        assert_eq!(all.pooled.domains[0].domain, "g2.com");
        assert_eq!(all.pooled.domains[0].citation_rate.successes, 2);

        let one = service
            .experiment_sources(u.id, e.id, Some(r2.id))
            .await
            .unwrap();
        assert_eq!(one.runs.len(), 1);
        assert_eq!((one.pooled.n, one.pooled.citations), (1, 0));

        for result in [
            service.experiment_sources(intruder.id, e.id, None).await,
            service
                .experiment_sources(intruder.id, e.id, Some(r1.id))
                .await,
        ] {
            assert!(matches!(
                result,
                Err(ServiceError::Store(StoreError::NotFound { .. }))
            ));
        }
        // A run of another experiment of the same owner.
        let other = new_experiment(&*store, u.id, at(6)).await;
        let foreign = new_batch_run(&*store, &other, at(7)).await;
        assert!(matches!(
            service
                .experiment_sources(u.id, e.id, Some(foreign.id))
                .await,
            Err(ServiceError::Store(StoreError::NotFound { .. }))
        ));
    }
}
