//! The business rules that every caller shares: submitting, re-running, cancelling and deleting
//! an experiment, reading a run's answers with their matched spans and an experiment's
//! progress, discovering the competitors its answers name and adding one to the brand profile,
//! exporting an experiment's metrics and answers as CSV, the metrics of the web sources its
//! answers cite, and the local account an embedded program runs under.
//!
//! The reference server's JSON routes, its CLI and the scheduler all go through these
//! functions, so a rule (the quota debit by tier, which statuses may be re-run, what a cancel
//! may stop) is written once. Each service holds only the store traits it uses; build one from
//! a whole store with its `from_store` constructor.
//!
//! ```
//! use std::sync::Arc;
//! use echo_core::model::{Brand, BrandName, Email, ExperimentStatus, Prompt};
//! use echo_core::service::{Accounts, ExperimentDraft, ExperimentService};
//! use echo_core::store::{DynStore, memory::MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: Arc<DynStore> = Arc::new(MemoryStore::new());
//! let owner = Accounts::from_store(&store).local_user(&Email::parse("ada@example.com")?).await?;
//! let experiments = ExperimentService::from_store(&store);
//!
//! let draft = ExperimentDraft::new(
//!     Prompt::parse("Best CRM for startups?")?,
//!     Brand::new(BrandName::parse("HubSpot")?),
//! )
//! .competitor(Brand::new(BrandName::parse("Salesforce")?))
//! .iterations(20)?;
//! let submitted = experiments.submit(owner.id, draft).await?;
//! assert_eq!(submitted.prompts_debited, 20);
//! assert_eq!(submitted.experiment.status, ExperimentStatus::Queued);
//!
//! // A queued experiment cannot be re-run or deleted until it ends or is cancelled.
//! assert!(experiments.rerun(owner.id, submitted.experiment.id).await.is_err());
//! experiments.cancel(owner.id, submitted.experiment.id).await?;
//! experiments.delete(owner.id, submitted.experiment.id).await?;
//! # Ok(())
//! # }
//! ```

mod accounts;
mod alerts;
mod brand;
mod dashboard;
mod discovery;
mod experiments;
mod export;
mod runs;
mod sources;
#[cfg(test)]
mod test_support;
mod webhooks;

pub use accounts::{Accounts, Registered, Registration, Resent, VerificationSettings};
pub use alerts::{AlertService, describe_alert};
pub use brand::{BrandProfileDraft, BrandService, PromptSetDraft, normalize_domain};
pub use dashboard::{
    BrandTrend, DashboardService, ProviderSeries, TREND_RUNS, VisibilityPoint, VoiceShare,
};
pub use discovery::DiscoveryService;
pub use experiments::{ExperimentDraft, ExperimentService, SubmitOptions, Submitted};
pub use export::{ANSWER_COLUMNS, CsvStream, CsvTable, ExportService, RUN_COLUMNS, csv_record};
pub use runs::{
    Answer, AnswerCursor, AnswerQuery, AnswerSpan, ExperimentProgress, RunProgress, RunService,
};
pub use sources::{ExperimentSources, RunSources, SourceService};
pub use webhooks::{MAX_WEBHOOKS_PER_USER, WebhookDraft, WebhookService};

use crate::model::{BatchRunId, ExperimentStatus, Iteration, User, UserId, ValidationError};
use crate::store::{RunStore, StoreError};

/// Iterations read per store call by [`stored_answers`].
const ANSWER_PAGE: u32 = 500;

/// Every successful iteration of the owner's run whose answer is still stored (not
/// anonymized), by index, read in pages: what discovery and the source metrics analyse.
async fn stored_answers(
    runs: &dyn RunStore,
    owner: UserId,
    run: BatchRunId,
) -> Result<Vec<Iteration>, StoreError> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let page = runs.list_iterations(owner, run, from, ANSWER_PAGE).await?;
        let Some(last) = page.last() else { break };
        let full = page.len() >= ANSWER_PAGE as usize;
        let next = last.index.checked_add(1);
        out.extend(
            page.into_iter()
                .filter(|it| it.is_success && !it.is_anonymized),
        );
        match next {
            Some(n) if full => from = n,
            _ => break,
        }
    }
    Ok(out)
}

/// Why a service call was refused or failed. Nothing was written when it returns one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The input broke a rule of the model (an empty prompt, too many competitors…).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The experiment is in a state that does not allow the action (re-running a queued one,
    /// deleting a running one); the message says which, and is safe to show.
    #[error("the experiment is {status}: {action}")]
    State {
        /// Its status when the action was refused.
        status: ExperimentStatus,
        /// What the caller may do instead.
        action: &'static str,
    },
    /// The owner has not given, or has withdrawn, data-processing consent
    /// ([`Consents::allows_processing`](crate::model::Consents::allows_processing)): nothing
    /// of theirs is created or run until they give it again.
    #[error("data-processing consent is required to create or run experiments")]
    ConsentRequired,
    /// The owner registered while email verification was required and has not verified their
    /// address yet ([`User::email_verification_pending`]): nothing of theirs is created or run
    /// until they do.
    #[error("the account's email address must be verified to create or run experiments")]
    EmailUnverified,
    /// The verification token is unknown: never issued, already used, replaced by a newer one,
    /// or its account deleted.
    #[error("the verification token is invalid or has already been used")]
    VerificationTokenInvalid,
    /// The verification token expired; a new one can be requested.
    #[error("the verification token has expired")]
    VerificationTokenExpired,
    /// A message could not be handed to the mailer.
    #[error("the message could not be sent")]
    Mail(#[from] crate::mail::MailError),
    /// The system's random source failed, so no secret could be drawn.
    #[error(transparent)]
    Entropy(#[from] crate::auth::EntropyError),
    /// The store refused or failed (not found, over quota, unavailable…), with its meaning
    /// and source kept.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The experiment's brands could not be indexed for extraction (validated experiments
    /// never reach the matcher's limits).
    #[error(transparent)]
    Matcher(#[from] crate::analysis::MatcherError),
}

/// The consent rule, in one place: an experiment of `owner` may be created or run only while
/// they consent to data processing. The submit and re-run services refuse with
/// [`ServiceError::ConsentRequired`]; the scheduler skips the occurrence.
pub(crate) fn require_consent(owner: &User) -> Result<(), ServiceError> {
    if owner.consents.allows_processing() {
        Ok(())
    } else {
        Err(ServiceError::ConsentRequired)
    }
}

/// The verification rule, in one place: an account registered while email verification was
/// required creates and runs experiments only once its address is verified. The submit and
/// re-run services refuse with [`ServiceError::EmailUnverified`]; the scheduler skips the
/// occurrence.
pub(crate) fn require_verified_email(owner: &User) -> Result<(), ServiceError> {
    if owner.email_verification_pending() {
        Err(ServiceError::EmailUnverified)
    } else {
        Ok(())
    }
}

/// Every rule an owner must meet before an experiment of theirs is created or run, in the order
/// the refusals are reported: consent ([`require_consent`]), then a verified email
/// ([`require_verified_email`]). The submit and re-run services and the scheduler all ask this.
pub(crate) fn require_may_run(owner: &User) -> Result<(), ServiceError> {
    require_consent(owner)?;
    require_verified_email(owner)
}
