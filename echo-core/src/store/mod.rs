//! Storage traits: the contract every backend implements.
//!
//! The traits are split by concern and combined in [`Store`], which every backend implements and
//! services hold as `Arc<DynStore>`. All methods are async and object safe.
//!
//! # Contract shared by every method
//! - **Tenant isolation.** Methods that take an `owner` only see that user's rows: another
//!   user's record answers [`StoreError::NotFound`], exactly as a missing one does.
//! - **Atomicity.** Each call is all or nothing. A call that returns an error has written
//!   nothing.
//! - **Time.** Stores never read the clock. Records carry their own timestamps and time-based
//!   operations (leases, due schedules, quota resets) take `now`, so behaviour is reproducible.
//! - **Round trip.** A record read back equals the record written ([`Timestamp`] keeps the
//!   precision every backend stores exactly). A value that fails validation on the way back
//!   (e.g. an unknown enum text written by a newer version) is [`StoreError::Invalid`].
//!
//! The conformance suite (`testkit` feature) checks all of this; a backend is done when the
//! whole suite passes.

mod error;
pub mod memory;
mod prompt_sets;
#[cfg(feature = "sql")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
pub mod sql;
mod types;
mod webhooks;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

pub use error::{BoxError, StoreError};
pub use prompt_sets::{PromptSetStore, after_version, check_prompt_set_version};
pub use types::{
    AlertQuery, ApiKeyAuth, AuditQuery, DashboardStats, ExperimentCursor, ExperimentQuery, Page,
    PageSize, ProviderVisibility, QueueStats, RunGroup, ScheduleClaim, SessionAuth, TrendBrand,
    TrendPoint, TrendRun,
};
pub use webhooks::{DeliveryQuery, WebhookStore};

use crate::model::{
    Alert, AlertId, ApiKeyId, ApiKeyRecord, AuditCheckpoint, AuditErasure, AuditEvent, AuditLink,
    BatchRun, BatchRunId, BatchRunUpdate, BrandProfile, ConsentChange, Consents, Email,
    EmailVerificationRedemption, EmailVerificationToken, Experiment, ExperimentId,
    ExperimentStatus, Iteration, Job, JobId, JobLease, JobStatus, NewAuditEvent, PasswordHash,
    PricingTier, QuotaDebit, RecordOutcome, SecretDigest, SessionId, SessionRecord, Timestamp,
    User, UserId,
};

/// Accounts, their quota counters and brand profiles.
#[async_trait]
pub trait UserStore: Send + Sync + Debug + 'static {
    /// Stores a new user. [`StoreError::Conflict`] when the email (case-insensitive) or id is
    /// taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// The user with `id`, or [`StoreError::NotFound`].
    async fn get_user(&self, id: UserId) -> Result<User, StoreError>;

    /// The user with `email`, if any.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    // Account changes are targeted updates, one per operation, each writing only its own
    // columns in one statement or transaction. There is deliberately no whole-row update: a
    // handler that read the row, changed one field and wrote every field back undid whatever
    // changed in between (a consent update racing a deletion reactivated the deleted account
    // with no purge scheduled). `id`, `email`, `created_at` and the quota counter never change
    // through these.

    /// Deactivates the account and schedules its purge: `is_active = false`,
    /// `scheduled_deletion_at = purge_after`, `updated_at = at`, nothing else. Repeating it
    /// moves the purge date. [`StoreError::NotFound`] when absent.
    async fn request_deletion(
        &self,
        id: UserId,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<(), StoreError>;

    /// Cancels a pending deletion: when the account is inactive with a
    /// `scheduled_deletion_at` after `at`, it becomes active again with no deletion scheduled
    /// and `updated_at = at`, and `true` is returned. Otherwise nothing is written and `false`
    /// is returned: an active account, one deactivated without a deletion, or one whose purge
    /// is due (`scheduled_deletion_at <= at`) is never reactivated. The condition and the
    /// write are one atomic step. [`StoreError::NotFound`] when absent.
    async fn cancel_deletion(&self, id: UserId, at: Timestamp) -> Result<bool, StoreError>;

    /// Applies `change` to the user's consents as
    /// [`Consents::apply`](crate::model::Consents::apply) does, against the consents stored
    /// at that moment (not a copy the caller read earlier), and sets `updated_at = at`; no
    /// other field is written. Returns the consents after the change.
    /// [`StoreError::NotFound`] when absent.
    async fn update_consents(
        &self,
        id: UserId,
        change: &ConsentChange,
        at: Timestamp,
    ) -> Result<Consents, StoreError>;

    /// Replaces the password hash with `new` (and sets `updated_at = at`) only if the stored
    /// hash is still `expected`: a rehash after login never undoes a password change that
    /// landed in between. `true` when replaced, `false` when the stored hash differs.
    /// [`StoreError::NotFound`] when absent.
    async fn set_password_hash(
        &self,
        id: UserId,
        expected: &PasswordHash,
        new: &PasswordHash,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Sets the pricing tier (and `updated_at = at`). [`StoreError::NotFound`] when absent.
    async fn set_tier(
        &self,
        id: UserId,
        tier: PricingTier,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Grants (`true`) or takes away (`false`) the admin flag (and sets `updated_at = at`).
    /// [`StoreError::NotFound`] when absent.
    async fn set_admin(&self, id: UserId, is_admin: bool, at: Timestamp) -> Result<(), StoreError>;

    /// Stores `token` as the user's one pending email-verification token, replacing the one
    /// they had, if any (a resend makes the earlier mail's link useless). Only the digest is
    /// stored; the store never sees the secret. [`StoreError::NotFound`] when the user does not
    /// exist; [`StoreError::Conflict`] when another token has the same digest. Nothing is
    /// written on error.
    async fn put_email_verification_token(
        &self,
        token: &EmailVerificationToken,
    ) -> Result<(), StoreError>;

    /// Redeems the token whose secret digests to `token_hash`, found by that digest (an
    /// indexed lookup; the secret itself is never compared). In one atomic step, when the
    /// token exists and `now < expires_at`: the token is deleted, the owner's
    /// `email_verified_at` is set to `now` unless it is set already, `updated_at = now`, and
    /// [`EmailVerificationRedemption::Verified`] names the owner. An expired token answers
    /// [`EmailVerificationRedemption::Expired`] and nothing is written. No token with this
    /// digest (never issued, already redeemed, replaced by a newer one, or its user deleted)
    /// is [`StoreError::NotFound`]. Of several concurrent calls with the same token, exactly
    /// one verifies.
    async fn redeem_email_verification_token(
        &self,
        token_hash: &SecretDigest,
        now: Timestamp,
    ) -> Result<EmailVerificationRedemption, StoreError>;

    /// Deletes the user and, in the same transaction, every row they own: brand profile, API
    /// keys, sessions, email-verification tokens, experiments with their runs and iterations,
    /// and every job whose payload names the user, whatever its state (a worker executing one loses its lease). A payload
    /// names the user when it is an object whose top-level `"user_id"` is the id as serde
    /// writes a [`UserId`] (lower-case hyphenated), as `run_experiment` payloads do; jobs that
    /// refer to the user only indirectly (an experiment id alone) are left, fail as
    /// [`StoreError::NotFound`] if run, and go with [`JobQueue::prune_jobs`]. Afterwards no
    /// trait method reads anything of the user back, except the audit log: its events are
    /// kept, actor included, until [`AuditStore::pseudonymize_actor`] erases them.
    /// [`StoreError::NotFound`] when absent.
    ///
    /// One transaction, however much the user owns: an account with millions of iterations
    /// makes a long one (run the retention pass first to keep it short).
    async fn delete_user(&self, id: UserId) -> Result<(), StoreError>;

    /// The accounts the purge deletes now: up to `limit` users that are **inactive** and
    /// whose `scheduled_deletion_at <= now`, earliest due first (ties by id). An active user is
    /// never returned, whatever its date (a deletion cancelled by restoring the account), nor
    /// a date after `now`. Reading claims nothing: replicas racing to purge the same user get
    /// [`StoreError::NotFound`] from all but the first [`UserStore::delete_user`]. A `limit` of
    /// 0 returns none.
    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;

    /// Gives back `amount` prompts (iterations that never ran). Saturates at zero used.
    /// [`StoreError::NotFound`] when the user does not exist.
    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError>;

    /// Resets `prompts_used` to zero for every user whose `resets_at <= now`, moving `resets_at`
    /// to [`QuotaUsage::next_reset_after`](crate::model::QuotaUsage::next_reset_after)`(now)`
    /// (same day of the month, whole months later). Returns how many users were reset.
    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// The user's brand profile, or [`StoreError::NotFound`].
    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError>;

    /// Creates or replaces the brand profile of `profile.user_id`. [`StoreError::NotFound`]
    /// when the user does not exist.
    async fn put_brand_profile(&self, profile: &BrandProfile) -> Result<(), StoreError>;
}

/// API-key records. See the `auth` module for the key format and verification.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + Debug + 'static {
    /// Stores a new key record. [`StoreError::Conflict`] when the public id is taken,
    /// [`StoreError::NotFound`] when the owner does not exist.
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key with this public id, whatever its owner or state: this is the authentication
    /// lookup, one indexed probe. The caller checks state, expiry and secret.
    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// The key with this public id together with its owner's `is_active` and `tier`, read in
    /// **one round trip** (one indexed probe by public id joined on the users' primary key):
    /// the authentication lookup when no cache answers. Like [`ApiKeyStore::find_api_key`] it
    /// ignores the key's owner and state (the caller checks state, expiry, secret and
    /// `owner_active`); `key` equals what `find_api_key` returns. `None` when no key has this
    /// public id.
    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError>;

    /// The owner's keys, newest first (revoked ones included, so the history is visible).
    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Marks the owner's key inactive and sets `revoked_at = at`. Revoking a revoked key is a
    /// no-op that keeps the first `revoked_at`. [`StoreError::NotFound`] for another user's key.
    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets `expires_at` of the owner's key `id` (`None`: never expires), whatever its state;
    /// no other field changes. Rotation uses it to end the old key after a grace period.
    /// [`StoreError::NotFound`] for another user's or an unknown key (nothing is written).
    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;

    /// Records last use, in bulk (verifiers coalesce uses instead of writing per request).
    /// Never moves `last_used_at` backwards; unknown ids are ignored.
    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError>;
}

/// Login sessions: server-side rows behind browser and bearer session tokens, so that a logout
/// or an account deletion ends a session on every replica at once. See
/// [`SessionService`](crate::auth::SessionService) for the token format and verification.
///
/// Like API keys, a session is found by its id alone and checked by the caller: the store keeps
/// only a digest of the token's secret, and never judges state or expiry (it never reads the
/// clock).
#[async_trait]
pub trait SessionStore: Send + Sync + Debug + 'static {
    /// Stores a new session exactly as given. [`StoreError::Conflict`] when the id is taken,
    /// [`StoreError::NotFound`] when the owner does not exist; nothing is written on error.
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// The session with this id together with its owner's `is_active`, `is_admin` and `tier`,
    /// read in **one round trip** (one probe by session id joined on the users' primary key):
    /// the authentication lookup of every session-authenticated request. It ignores the
    /// session's owner and state, revoked and expired rows included (the caller checks state,
    /// expiry, secret and the owner's flags). `None` when no session has this id.
    async fn find_session_for_auth(&self, id: SessionId)
    -> Result<Option<SessionAuth>, StoreError>;

    /// Sets `revoked_at = at` on the owner's session `id` (logout). Revoking a revoked session
    /// is a no-op that keeps the first `revoked_at`. [`StoreError::NotFound`] for another
    /// user's or an unknown session, and nothing is written.
    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets `revoked_at = at` on every session of `owner` that is not revoked yet, expired ones
    /// included (password change, "log out everywhere", deactivation). Returns how many were
    /// revoked; already revoked sessions keep their `revoked_at` and are not counted. Other
    /// users' sessions are untouched; an unknown owner has none (0, not an error).
    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError>;

    /// Deletes up to `limit` sessions, of any user, that expired before `before`
    /// (`expires_at < before`) or were revoked before it (`revoked_at < before`). Returns how
    /// many were deleted. Which qualifying sessions go first is unspecified: call again until
    /// it returns less than `limit`. A `limit` of 0 deletes nothing.
    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// Experiments, their scheduling, and the quota debits that go with runs.
#[async_trait]
pub trait ExperimentStore: Send + Sync + Debug + 'static {
    /// In **one transaction**: debits the quota (refusing with [`StoreError::QuotaExceeded`] when
    /// `used + amount > limit`), stores the experiment and enqueues `job`. On any error nothing is
    /// stored: no experiment, no debit, no job. `debit.user_id` must be the experiment's owner
    /// ([`StoreError::Invalid`] otherwise); an unknown owner is [`StoreError::NotFound`].
    async fn create_experiment(
        &self,
        experiment: &Experiment,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<(), StoreError>;

    /// In one transaction: debits the quota, sets the experiment's status to `queued` (and
    /// `updated_at = now`) and enqueues `job` (a manual re-run). [`StoreError::NotFound`] for
    /// another user's experiment; [`StoreError::Conflict`] when it is queued, running or
    /// cancelled, or when the job id exists; [`StoreError::Invalid`] when `debit.user_id` is not
    /// `owner`; [`StoreError::QuotaExceeded`] as for `create_experiment`.
    async fn request_run(
        &self,
        owner: UserId,
        id: ExperimentId,
        debit: QuotaDebit,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The owner's experiment, or [`StoreError::NotFound`].
    async fn get_experiment(
        &self,
        owner: UserId,
        id: ExperimentId,
    ) -> Result<Experiment, StoreError>;

    /// The owner's experiments, newest first (`created_at` then `id`, both descending), after
    /// `query.after`, at most `query.limit`. `next_cursor` is set when more rows follow.
    async fn list_experiments(
        &self,
        owner: UserId,
        query: &ExperimentQuery,
    ) -> Result<Page<Experiment, ExperimentCursor>, StoreError>;

    /// Sets the status and `updated_at`. [`StoreError::NotFound`] for another user's experiment.
    async fn set_experiment_status(
        &self,
        owner: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Deletes the experiment with its runs and iterations. [`StoreError::NotFound`] for another
    /// user's experiment.
    async fn delete_experiment(&self, owner: UserId, id: ExperimentId) -> Result<(), StoreError>;

    /// Recurring, non-cancelled experiments with `next_run_at <= now`, earliest first, at most
    /// `limit`. Reading does not claim: use [`ExperimentStore::claim_schedule`].
    async fn due_recurring(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Experiment>, StoreError>;

    /// Claims one due occurrence atomically: only if the experiment's `next_run_at` still equals
    /// `expected`, sets it to `next` (`None` ends the recurrence), then debits the quota and
    /// enqueues `job` and sets the experiment's status to `queued` and `updated_at` to
    /// `job.created_at`, all in one transaction. A missing or cancelled experiment, or one
    /// whose `next_run_at` differs from `expected`, is [`ScheduleClaim::Lost`]. When over quota
    /// only the schedule advances. Of several schedulers racing with the same
    /// `expected`, exactly one gets [`ScheduleClaim::Enqueued`] (or
    /// [`ScheduleClaim::SkippedOverQuota`]); the rest get [`ScheduleClaim::Lost`].
    async fn claim_schedule(
        &self,
        id: ExperimentId,
        expected: Timestamp,
        next: Option<Timestamp>,
        debit: QuotaDebit,
        job: &Job,
    ) -> Result<ScheduleClaim, StoreError>;
}

/// Batch runs and iterations.
#[async_trait]
pub trait RunStore: Send + Sync + Debug + 'static {
    /// Stores a new batch run. [`StoreError::NotFound`] when its experiment does not exist.
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), StoreError>;

    /// The run, if its experiment belongs to `owner`; [`StoreError::NotFound`] otherwise.
    async fn get_batch_run(&self, owner: UserId, id: BatchRunId) -> Result<BatchRun, StoreError>;

    /// The runs of the owner's experiment, oldest first. [`StoreError::NotFound`] when the
    /// experiment is not the owner's.
    async fn list_batch_runs(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<Vec<BatchRun>, StoreError>;

    /// Writes the executor-owned fields of a run (the worker's view: not scoped by owner).
    /// [`StoreError::NotFound`] when absent.
    async fn update_batch_run(
        &self,
        id: BatchRunId,
        update: &BatchRunUpdate,
    ) -> Result<(), StoreError>;

    /// Stores iterations with their `sources`, **idempotently by (batch run, index)**: an index already stored is
    /// left as it was and counted as a duplicate, so a resumed run can safely re-send. Counters
    /// and token totals of the run grow only by the inserted rows. All rows of one call commit
    /// together; an index repeated within one call is stored once and its repeats count as
    /// duplicates. [`StoreError::NotFound`] when a batch run does not exist, and
    /// [`StoreError::Conflict`] when an iteration id is already stored under another (batch run,
    /// index) — in both cases nothing from the call is written.
    async fn record_iterations(
        &self,
        iterations: &[Iteration],
    ) -> Result<RecordOutcome, StoreError>;

    /// The run's iterations ordered by index, from `from_index`, at most `limit`, each with
    /// its `sources` by ascending position (spans and titles as written).
    /// [`StoreError::NotFound`] when the run's experiment is not the owner's.
    async fn list_iterations(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError>;

    /// Exactly [`RunStore::list_iterations`], except that every iteration's `sources` is
    /// empty: for passes that read only answers and mentions (the runner's metrics and its
    /// resume tally), which then neither read nor decode the source rows. The provided body
    /// reads them and drops them; SQL stores override it to skip the read.
    async fn list_iterations_without_sources(
        &self,
        owner: UserId,
        run: BatchRunId,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<Iteration>, StoreError> {
        let mut page = self.list_iterations(owner, run, from_index, limit).await?;
        for it in &mut page {
            it.sources = Vec::new();
        }
        Ok(page)
    }

    /// Indexes already recorded for the run, ascending: what a resumed run skips. Not scoped by
    /// owner (it is the worker's view); an unknown run has none.
    async fn recorded_indexes(&self, run: BatchRunId) -> Result<Vec<u32>, StoreError>;

    /// The owner's dashboard; the trend covers completed runs with `completed_at >= trend_since`.
    /// See [`DashboardStats`] for each figure's definition.
    async fn dashboard(
        &self,
        owner: UserId,
        trend_since: Timestamp,
    ) -> Result<DashboardStats, StoreError>;

    /// The owner's completed runs, most recently completed first, at most `limit`: the points
    /// of the dashboard's charts over time. Runs completed at the same instant come in an
    /// unspecified order. Backends read them newest first through their trend index
    /// (`batch_runs_trend_idx`), so the cost grows with `limit`, not with the owner's history.
    async fn recent_completed_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<BatchRun>, StoreError>;

    /// The same runs as [`RunStore::recent_completed_runs`], in the same order and through the
    /// same index, read narrowly as [`TrendRun`]s: only what the dashboard's charts draw, so
    /// the cost of a read does not grow with each run's stored metrics (whose reproducibility
    /// record holds a hash per answer). SQL backends extract the brands' figures from the
    /// metrics JSON in the query instead of returning and decoding the whole document.
    ///
    /// The default reads whole runs and narrows them; backends override it.
    async fn recent_trend_runs(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<TrendRun>, StoreError> {
        Ok(self
            .recent_completed_runs(owner, limit)
            .await?
            .iter()
            .filter_map(TrendRun::of)
            .collect())
    }

    /// Data retention: anonymizes up to `limit` iterations that qualify, in **one short
    /// transaction**, and returns how many changed (0 once none qualify). An iteration
    /// qualifies when
    /// - `created_at < created_before`,
    /// - the owner of its batch run is on `tier` at the time of the call, and
    /// - it is not anonymized yet (`is_anonymized == false`).
    ///
    /// Anonymizing sets `raw_response = None`, removes the iteration's `sources` (cited URLs
    /// and titles say as much about a conversation as its text), sets `is_anonymized = true`
    /// and `anonymized_at = Some(now)`; nothing else changes (mentions, error, tokens, latency, and
    /// the run's counters and metrics stay as they were, so reports do not move). Iterations of
    /// failed calls, whose `raw_response` is already `None`, qualify too and are flagged the
    /// same way: `is_anonymized` means "the retention pass has done this row", which makes the
    /// pass converge to 0 instead of finding them again on every call.
    ///
    /// Made for bounded batches: the caller repeats the call (with e.g. `limit` 2,000) until it
    /// returns 0, so no lock is held for long and nothing between calls. Which qualifying
    /// iterations go first is unspecified. Calls are safe to run concurrently from several
    /// processes: no iteration is anonymized by two calls (the returns add up to the rows
    /// changed), and contention is not an error. A backend may skip rows another call holds,
    /// so under concurrency a 0 can mean "the rest is being done by others": the pass is
    /// complete once every caller has seen 0. A call that fails, or a process that dies,
    /// writes nothing and leaves its rows to the next call. A `limit` of 0 changes nothing.
    ///
    /// Cost: backends find candidates through an index of the not-yet-anonymized iterations by
    /// `created_at`, newest first below `created_before`. In steady state (a pass a day) the
    /// rows to do lie just below the cut-off and a call reads about `limit` entries; what it
    /// passes over are the not-yet-anonymized iterations of *other* tiers in the same range
    /// (tiers kept longer). The call that finds nothing, ending a pass, reads all of those:
    /// backends do that read without blocking writers.
    async fn anonymize_iterations(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
        limit: u32,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The dry run of [`RunStore::anonymize_iterations`]: how many iterations qualify now, in
    /// all (what the repeated calls would change together, absent concurrent writes). It
    /// counts every qualifying row, so it costs about what the whole pass reads.
    async fn count_anonymizable(
        &self,
        tier: PricingTier,
        created_before: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// The audit log's storage: an append-only sequence with a hash chain, with two sanctioned
/// exceptions (the erasure of an actor, the deletion of archived events) and the signed
/// checkpoints that keep the log verifiable across both.
///
/// # The chain
/// Every event links to its predecessor through `prev_hash`, and its `hash` is
/// [`crate::audit::chain_hash`] over the previous hash, its `seq` and the event as appended.
/// The store keeps the **chain head** (the last appended `seq` and `hash`) apart from the
/// events, so the chain continues across [`AuditStore::delete_audit_through`], even when the
/// head event itself was archived and deleted.
///
/// # Rewritten and removed events
/// [`AuditStore::pseudonymize_actor`] rewrites three fields that are **inputs of the chain**
/// (`actor_user_id`, `ip`, `user_agent`): afterwards the erased events' hashes can no longer be
/// recomputed from their fields. It keeps `prev_hash` and `hash` as they were (so the links
/// between events still verify) and records each erased event in
/// [`AuditStore::audit_erasures`], which a verifier must be given: it then accepts exactly
/// those events' three fields as erased, and reports any other mismatch as tampering.
/// [`AuditStore::delete_audit_through`] removes the oldest events after the caller archived
/// them, usually with a checkpoint ([`AuditStore::put_audit_checkpoint`]) of the archived
/// head so that the remaining log verifies from a signed starting point. Erasure records and
/// checkpoints are never deleted with the events: an archive made before an erasure holds the
/// original fields and verifies as is, one made after needs the erasure records of its range.
///
/// A backend may enforce the exceptions: PostgreSQL refuses any other UPDATE or DELETE of
/// audit events by trigger.
#[async_trait]
pub trait AuditStore: Send + Sync + Debug + 'static {
    /// Appends one event. The store assigns the next sequence number (the head's plus one) and
    /// computes the chain with [`crate::audit::chain_hash`] over the head's hash, **serialising
    /// concurrent appends** so the chain has no fork or gap. The head is kept apart from the
    /// events: after [`AuditStore::delete_audit_through`] removed every stored event, the next
    /// append still continues the chain (its `prev_hash` is the deleted head's `hash`). The
    /// returned event has `actor_pseudonym: None`.
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError>;

    /// Events matching the query, newest (highest `seq`) first; the cursor is the last `seq`.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError>;

    /// Events with `seq >= from_seq` in ascending order, at most `limit`: for chain
    /// verification and archiving.
    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;

    /// The [`AuditLink`]s of the events [`AuditStore::audit_range`] returns for the same
    /// arguments, in the same order: what the chain verifier checks, without the events.
    ///
    /// The default builds the events and computes each link with [`AuditLink::of`]. A
    /// backend storing the details as canonical JSON text may override it to hash its rows'
    /// bytes in place ([`crate::audit::chain_hash_fields`]) instead of allocating an event
    /// per row; the links must be the same for every event as stored, except that a
    /// non-canonical spelling of the details (which only an edit of the row can produce)
    /// may count as altered.
    async fn audit_links(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditLink>, StoreError> {
        Ok(self
            .audit_range(from_seq, limit)
            .await?
            .iter()
            .map(AuditLink::of)
            .collect())
    }

    /// GDPR erasure of an actor: in one transaction, for every stored event whose
    /// `actor_user_id` is `user`, clears `actor_user_id`, `ip` and `user_agent` and sets
    /// `actor_pseudonym = Some(pseudonym)` (a keyed hash of the user, computed by the caller,
    /// so that the erased user's events can still be told apart from others'), and records
    /// one [`AuditErasure`] `{ seq, erased_at: now, pseudonym }` per changed event. Returns how
    /// many events changed; a second call for the same user changes none (0), as does a user
    /// with no events. Nothing else of the event changes, `prev_hash` and `hash` included.
    ///
    /// **This rewrites chained fields**: the changed events no longer match their `hash`, and
    /// a verifier must be told about them through [`AuditStore::audit_erasures`] (see the
    /// trait docs). Events already archived and deleted are not reached: erasing the archive
    /// is its keeper's job. Concurrent appends are not blocked, and events appended after the
    /// call keep their actor.
    async fn pseudonymize_actor(
        &self,
        user: UserId,
        pseudonym: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The erasure records with `seq >= from_seq`, ascending by `seq`, at most `limit`: one
    /// per event [`AuditStore::pseudonymize_actor`] changed, kept after the event itself is
    /// deleted, for the chain verifier.
    async fn audit_erasures(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditErasure>, StoreError>;

    /// Stores a checkpoint exactly as given. [`StoreError::Conflict`] when one with the same
    /// `seq` exists (the first is kept). The store checks neither the signature nor that the
    /// checkpoint matches a stored event (the event may already be archived); backends may
    /// refuse a `seq` beyond their integer range (above `i64::MAX`) as
    /// [`StoreError::Invalid`].
    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError>;

    /// The checkpoint with the highest `seq`, if any.
    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError>;

    /// Checkpoints with `seq >= from_seq`, ascending by `seq`, at most `limit`.
    async fn audit_checkpoints(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>, StoreError>;

    /// Deletes every stored event with `seq <= seq`, once the caller has archived them
    /// (read with [`AuditStore::audit_range`], written to a file, typically with a checkpoint
    /// of the archived head). Returns how many were deleted; a `seq` below the first stored
    /// event deletes nothing (0). The chain head, the erasure records and the checkpoints are
    /// kept, so appends continue the chain and archives stay verifiable.
    ///
    /// One transaction whose work is proportional to the events deleted: pass moderate ranges
    /// (e.g. 10,000 events a call, from the first stored `seq` on) to keep it short. Appends
    /// are not blocked. Pass only what was archived: a `seq` beyond the head also deletes
    /// events appended while the call runs.
    async fn delete_audit_through(&self, seq: u64) -> Result<u64, StoreError>;

    /// The first and last `seq` of the stored events; `None` when none are stored (a new log,
    /// or one whose every event was archived and deleted: the chain head is then only visible
    /// in the next append's `seq` and `prev_hash`).
    async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError>;
}

/// Alerts on significant change between runs of a recurring experiment (see
/// [`crate::analysis::alerts`]).
#[async_trait]
pub trait AlertStore: Send + Sync + Debug + 'static {
    /// Stores `alerts` in one transaction, **idempotently by (`batch_run_id`, `finding.kind`,
    /// `finding.brand`)**: an alert for a change already stored (re-evaluating the same run)
    /// is skipped, as is a repeat within the call. Returns how many were stored.
    ///
    /// Each alert's experiment must be its `user_id`'s and both its runs that experiment's:
    /// otherwise [`StoreError::NotFound`]. An id already stored under another key is
    /// [`StoreError::Conflict`]. On any error nothing from the call is written. Alerts go with
    /// their experiment (and its runs) and with their owner.
    async fn record_alerts(&self, alerts: &[Alert]) -> Result<u32, StoreError>;

    /// The owner's alerts, newest first (`id` descending: ids are time-ordered), after
    /// `query.after`, at most `query.limit`; `next_cursor` is set when more follow. Other
    /// users' alerts are never listed.
    async fn list_alerts(
        &self,
        owner: UserId,
        query: &AlertQuery,
    ) -> Result<Page<Alert, AlertId>, StoreError>;
}

/// A durable job queue with leases.
///
/// A claimed job is leased to one worker until `lease_expires_at`; the worker extends the lease
/// by heartbeating. If it stops (crash, network partition), the job becomes claimable again once
/// the lease expires (`lease_expires_at <= now`), with a new fencing token: the old worker's
/// later heartbeat, complete, fail or release calls get [`StoreError::LeaseLost`]. A lease that
/// expired but was not yet re-claimed is still held: its owner may settle the job. Calls with
/// the lease of an unknown job also get [`StoreError::LeaseLost`].
#[async_trait]
pub trait JobQueue: Send + Sync + Debug + 'static {
    /// Adds a job. [`StoreError::Conflict`] when its id exists.
    async fn enqueue(&self, job: &Job) -> Result<(), StoreError>;

    /// Leases up to `limit` jobs to `worker` until `now + lease`: queued jobs with
    /// `run_at <= now`, and running jobs whose lease expired, oldest `run_at` first. Each claimed
    /// job gets `attempts + 1` and a new, higher `lease_token`. A job whose lease expired on its
    /// last allowed attempt is failed instead of claimed. **Never returns a job that another
    /// caller holds under an unexpired lease**, however many callers claim at once. A `limit` of
    /// 0 claims nothing.
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Vec<Job>, StoreError>;

    /// Leases this one job to `worker` until `now + lease`, if it is claimable now (queued and
    /// due, or running under an expired lease), exactly as [`JobQueue::claim`] would; `None`
    /// when it is not claimable (held by someone else, not due, finished) or does not exist.
    /// For callers that enqueued a job and want to execute it themselves (the CLI's `run`).
    async fn claim_job(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends the lease to `until`. [`StoreError::LeaseLost`] when the token is stale or the
    /// job is no longer running.
    async fn heartbeat(&self, lease: JobLease, until: Timestamp) -> Result<(), StoreError>;

    /// Marks the job succeeded. [`StoreError::LeaseLost`] when the lease is not held.
    async fn complete(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError>;

    /// Records a failed attempt. With `retry_at` and attempts left the job is queued again for
    /// `retry_at`; otherwise it fails for good. Returns the job's new status.
    /// [`StoreError::LeaseLost`] when the lease is not held.
    async fn fail(
        &self,
        lease: JobLease,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<JobStatus, StoreError>;

    /// Gives an unfinished job back (graceful shutdown): queued again, due at `now`, and the
    /// attempt is not counted. [`StoreError::LeaseLost`] when the lease is not held.
    async fn release(&self, lease: JobLease, now: Timestamp) -> Result<(), StoreError>;

    /// The job, or [`StoreError::NotFound`].
    async fn get_job(&self, id: JobId) -> Result<Job, StoreError>;

    /// Counts by state at `now`.
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError>;

    /// Deletes up to `limit` finished (succeeded, failed, cancelled) jobs last updated before
    /// `before`. Returns how many were deleted.
    async fn prune_jobs(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// When a lease of length `lease` taken at `now` ends: the one conversion every backend's
/// `claim` needs. [`StoreError::Invalid`] when the end is not representable.
pub fn lease_expiry(now: Timestamp, lease: Duration) -> Result<Timestamp, StoreError> {
    time::Duration::try_from(lease)
        .ok()
        .and_then(|lease| now.checked_add(lease))
        .ok_or_else(|| crate::model::ValidationError::new("lease", "is too long").into())
}

/// Everything a backend provides. Implemented automatically for any type that implements all
/// the store traits.
pub trait Store:
    UserStore
    + ApiKeyStore
    + SessionStore
    + ExperimentStore
    + RunStore
    + AuditStore
    + JobQueue
    + PromptSetStore
    + AlertStore
    + WebhookStore
{
}

impl<T> Store for T where
    T: UserStore
        + ApiKeyStore
        + SessionStore
        + ExperimentStore
        + RunStore
        + AuditStore
        + JobQueue
        + PromptSetStore
        + AlertStore
        + WebhookStore
{
}

/// The trait object services hold: `Arc<DynStore>`.
pub type DynStore = dyn Store;
