//! Echo's domain model: typed ids, validated values and the records the stores keep.
//!
//! Records are plain data. Constructors (`User::new`, `BatchRun::new`, `Job::new`) assign ids and
//! timestamps in the caller, so stores only persist and tests can pick their own clocks.

mod alert;
mod api_key;
mod audit;
mod enums;
mod experiment;
mod ids;
mod job;
mod prompt_set;
mod run;
mod session;
mod source;
mod time;
mod user;
mod validated;
mod webhook;

pub use alert::Alert;
pub use api_key::{ApiKeyRecord, SecretDigest};
pub use audit::{AuditCheckpoint, AuditErasure, AuditEvent, AuditLink, NewAuditEvent};
pub use enums::{
    AlertKind, BatchRunStatus, ExperimentStatus, JobStatus, MatchMode, PricingTier, ProviderKind,
};
pub use experiment::{Brand, Experiment, ProviderConfig, Recurrence};
pub use ids::{
    AlertId, ApiKeyId, BatchRunId, ExperimentId, IterationId, JobId, PromptSetId, SessionId,
    UserId, WebhookDeliveryId, WebhookId,
};
pub use job::{Job, JobLease, JobPayload};
pub use prompt_set::{PinnedPromptSet, PromptSet, PromptSetVersion};
pub use run::{BatchRun, BatchRunMetrics, BatchRunUpdate, BrandMention, Iteration, RecordOutcome};
pub use session::SessionRecord;
pub use source::{IterationSource, registrable_domain};
pub use time::Timestamp;
pub use user::{
    BrandProfile, ConsentChange, Consents, EmailVerificationRedemption, EmailVerificationToken,
    PasswordHash, QuotaDebit, QuotaUsage, User,
};
pub use validated::{
    BrandName, Email, Iterations, Label, Precision, Prompt, ValidationError, is_invisible_format,
    normalize_name,
};
pub use webhook::{
    DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookUrl,
};
