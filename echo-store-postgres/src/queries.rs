//! Every SQL statement the store runs, in one place so the `EXPLAIN` tests check the statements
//! that actually run. Not a stable API.
//!
//! Column lists are echo-core's `sql_columns!`, shared with the other SQL store: their order is
//! the order in which echo-core's decoders read. JSON values are bound as text and cast to
//! `jsonb` here.

use echo_core::sql_columns;
use echo_core::store::AuditQuery;
use echo_core::store::sql::{self, SqlArg};

// ---- users -----------------------------------------------------------------------------------

/// Inserts a user (all columns).
pub const USER_INSERT: &str = concat!(
    "INSERT INTO users (",
    sql_columns!(user),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
);
/// A user by id.
pub const USER_BY_ID: &str = concat!("SELECT ", sql_columns!(user), " FROM users WHERE id = $1");
/// A user by (lower-cased) email.
pub const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    sql_columns!(user),
    " FROM users WHERE email = $1"
);
/// Whether a user exists, to tell a refused conditional update from a missing user.
pub const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = $1";
/// Deactivates a user and schedules the purge; nothing else is written.
pub const USER_REQUEST_DELETION: &str = "UPDATE users SET is_active = FALSE, \
     scheduled_deletion_at = $3, updated_at = $2 WHERE id = $1";
/// Restores a user whose deletion is pending and not yet due; the condition and the write are
/// one statement, so a purge date that passed or a cancelled deletion is never undone.
pub const USER_CANCEL_DELETION: &str = "UPDATE users SET is_active = TRUE, \
     scheduled_deletion_at = NULL, updated_at = $2 \
     WHERE id = $1 AND NOT is_active AND scheduled_deletion_at > $2";
/// A user's consents, read inside the transaction that rewrites them (locked until the transaction ends).
pub const USER_CONSENTS_FOR_UPDATE: &str = "SELECT privacy_policy_version, \
     privacy_policy_accepted_at, data_processing_consent_at, marketing_consent_at \
     FROM users WHERE id = $1 FOR UPDATE";
/// Writes the consent columns only.
pub const USER_SET_CONSENTS: &str = "UPDATE users SET privacy_policy_version = $2, \
     privacy_policy_accepted_at = $3, data_processing_consent_at = $4, \
     marketing_consent_at = $5, updated_at = $6 WHERE id = $1";
/// Replaces the password hash only if it is still the expected one.
pub const USER_SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $3, \
     updated_at = $4 WHERE id = $1 AND password_hash = $2";
/// Sets the pricing tier.
pub const USER_SET_TIER: &str = "UPDATE users SET pricing_tier = $2, updated_at = $3 WHERE id = $1";
/// Sets the admin flag.
pub const USER_SET_ADMIN: &str = "UPDATE users SET is_admin = $2, updated_at = $3 WHERE id = $1";
/// Replaces a user's pending verification token (the primary key is the user); an unknown
/// user violates the foreign key.
pub const VERIFICATION_TOKEN_UPSERT: &str = "INSERT INTO email_verification_tokens \
     (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash, \
     created_at = excluded.created_at, expires_at = excluded.expires_at";
/// Takes an unexpired token by the digest of its secret: of concurrent redeemers, only the
/// one whose DELETE removed the row gets its owner back.
pub const VERIFICATION_TOKEN_TAKE: &str = "DELETE FROM email_verification_tokens \
     WHERE token_hash = $1 AND expires_at > $2 RETURNING user_id";
/// Whether a token with this digest exists (after a take found none: it is then expired).
pub const VERIFICATION_TOKEN_EXISTS: &str =
    "SELECT 1 FROM email_verification_tokens WHERE token_hash = $1";
/// Marks a user's email verified, keeping the first time.
pub const USER_SET_EMAIL_VERIFIED: &str = "UPDATE users SET \
     email_verified_at = coalesce(email_verified_at, $2), updated_at = $2 WHERE id = $1";
/// Deletes a user; the foreign keys cascade to everything they own.
pub const USER_DELETE: &str = "DELETE FROM users WHERE id = $1";
/// Deletes the jobs whose payload names user `$1` (its id as text, as serde writes it). The
/// expression is the one of `jobs_payload_user_idx`.
pub const JOBS_DELETE_BY_PAYLOAD_USER: &str = "DELETE FROM jobs WHERE payload ->> 'user_id' = $1";
/// Inactive users whose deletion date has come (`<= $1`), earliest first, at most `$2`.
pub const USERS_DUE_FOR_DELETION: &str = "SELECT id FROM users \
     WHERE scheduled_deletion_at <= $1 AND NOT is_active \
     ORDER BY scheduled_deletion_at, id LIMIT $2";
/// The conditional quota debit: changes nothing when it would exceed the limit. Under READ
/// COMMITTED a concurrent debit's row lock makes this wait and then re-check the condition
/// against the committed count, so racing debits can never overspend.
pub const USER_DEBIT_QUOTA: &str = "UPDATE users SET prompts_used = prompts_used + $2 \
     WHERE id = $1 AND prompts_used + $2 <= $3";
/// Quota used, to explain a refused debit.
pub const USER_QUOTA_USED: &str = "SELECT prompts_used FROM users WHERE id = $1";
/// Refund, saturating at zero.
pub const USER_REFUND_QUOTA: &str =
    "UPDATE users SET prompts_used = greatest(prompts_used - $2, 0) WHERE id = $1";
/// Users whose quota period has ended, locked so that two sweeps never reset one user twice.
pub const USERS_DUE_QUOTA_RESET: &str =
    "SELECT id, quota_reset_at FROM users WHERE quota_reset_at <= $1 FOR UPDATE";
/// Starts the new quota period of many users: `$1` ids, `$2` their next reset instants.
pub const USERS_RESET_QUOTA: &str = "UPDATE users AS u SET prompts_used = 0, \
     quota_reset_at = r.next FROM unnest($1::uuid[], $2::timestamptz[]) AS r (id, next) \
     WHERE u.id = r.id";

// ---- brand profiles --------------------------------------------------------------------------

/// A user's brand profile.
pub const BRAND_PROFILE_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(brand_profile),
    " FROM brand_profiles WHERE user_id = $1"
);
/// Creates or replaces a brand profile.
pub const BRAND_PROFILE_UPSERT: &str = concat!(
    "INSERT INTO brand_profiles (",
    sql_columns!(brand_profile),
    ") VALUES ($1, $2::jsonb, $3, $4::jsonb, $5) ON CONFLICT (user_id) DO UPDATE SET \
     brand = excluded.brand, domain = excluded.domain, \
     default_competitors = excluded.default_competitors, updated_at = excluded.updated_at"
);

// ---- API keys --------------------------------------------------------------------------------

/// Inserts API key records from arrays (one row per element): the single insert and the bulk
/// loader share it.
pub const API_KEYS_INSERT: &str = concat!(
    "INSERT INTO api_keys (",
    sql_columns!(api_key),
    ") SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bytea[], \
     $6::boolean[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])"
);
/// The authentication lookup.
pub const API_KEY_BY_PUBLIC_ID: &str = concat!(
    "SELECT ",
    sql_columns!(api_key),
    " FROM api_keys WHERE public_id = $1"
);
/// The authentication lookup with the owner's status: one probe of the public-id index and
/// one of the users' primary key. Columns: the key's (as [`API_KEY_BY_PUBLIC_ID`]), then the
/// owner's `is_active` and `pricing_tier`.
pub const API_KEY_AUTH_BY_PUBLIC_ID: &str = "SELECT k.id, k.user_id, k.name, k.public_id, \
     k.secret_hash, k.is_active, k.created_at, k.last_used_at, k.expires_at, k.revoked_at, \
     u.is_active, u.pricing_tier \
     FROM api_keys AS k JOIN users AS u ON u.id = k.user_id WHERE k.public_id = $1";
/// Sets the expiry of the owner's key.
pub const API_KEY_SET_EXPIRY: &str =
    "UPDATE api_keys SET expires_at = $3 WHERE id = $1 AND user_id = $2";
/// The owner's keys, newest first.
pub const API_KEYS_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(api_key),
    " FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
);
/// Revokes a key, keeping the first revocation time.
pub const API_KEY_REVOKE: &str = "UPDATE api_keys SET is_active = false, \
     revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND user_id = $2";
/// Records uses in bulk (`$1` ids, `$2` instants), never moving `last_used_at` backwards; the
/// latest use per key wins when a key appears twice.
pub const API_KEYS_TOUCH: &str = "UPDATE api_keys AS k SET last_used_at = t.at \
     FROM (SELECT id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS u (id, at) \
     GROUP BY id) AS t \
     WHERE k.id = t.id AND (k.last_used_at IS NULL OR k.last_used_at < t.at)";

// ---- sessions --------------------------------------------------------------------------------

/// Inserts a session.
pub const SESSION_INSERT: &str = concat!(
    "INSERT INTO sessions (",
    sql_columns!(session),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
/// The authentication lookup with the owner's flags: one probe of the sessions' primary key and
/// one of the users'. Columns: the session's (as `sql_columns!(session)`), then the owner's
/// `is_active`, `is_admin` and `pricing_tier`.
pub const SESSION_AUTH_BY_ID: &str = "SELECT s.id, s.user_id, s.secret_hash, s.created_at, \
     s.expires_at, s.revoked_at, u.is_active, u.is_admin, u.pricing_tier \
     FROM sessions AS s JOIN users AS u ON u.id = s.user_id WHERE s.id = $1";
/// Revokes the owner's session, keeping the first revocation time.
pub const SESSION_REVOKE: &str = "UPDATE sessions SET revoked_at = coalesce(revoked_at, $3) \
     WHERE id = $1 AND user_id = $2";
/// Revokes every unrevoked session of a user.
pub const SESSIONS_REVOKE_BY_USER: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
/// Deletes up to `$2` sessions expired or revoked before `$1`. No order: which go first does
/// not matter, and an order would make the two-index OR sort.
pub const SESSIONS_PRUNE: &str = "DELETE FROM sessions WHERE id = ANY(ARRAY(SELECT id \
     FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2))";

// ---- experiments -----------------------------------------------------------------------------

/// Inserts experiments from arrays: the single insert and the bulk loader share it.
pub const EXPERIMENTS_INSERT: &str = concat!(
    "INSERT INTO experiments (",
    sql_columns!(experiment),
    ") SELECT id, user_id, prompt, target::jsonb, competitors::jsonb, iterations, \
     providers::jsonb, status, schedule, next_run_at, created_at, updated_at, \
     prompt_set::jsonb, precision \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
     $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
     $12::timestamptz[], $13::text[], $14::float8[]) AS e (id, user_id, prompt, target, \
     competitors, iterations, providers, status, schedule, next_run_at, created_at, updated_at, \
     prompt_set, precision)"
);
/// The owner's experiment.
pub const EXPERIMENT_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE id = $1 AND user_id = $2"
);
/// Status of the owner's experiment, locked until the transaction ends so that two manual runs
/// cannot both pass the status check.
pub const EXPERIMENT_STATUS_FOR_UPDATE: &str =
    "SELECT status FROM experiments WHERE id = $1 AND user_id = $2 FOR UPDATE";
/// Sets the status of the owner's experiment.
pub const EXPERIMENT_SET_STATUS: &str =
    "UPDATE experiments SET status = $3, updated_at = $4 WHERE id = $1 AND user_id = $2";
/// Deletes the owner's experiment; runs and iterations cascade.
pub const EXPERIMENT_DELETE: &str = "DELETE FROM experiments WHERE id = $1 AND user_id = $2";

/// First page of a user's experiments: `$1` user, `$2` rows to fetch.
pub const EXPERIMENTS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
);
/// Following page: `$3`, `$4` are the cursor's `created_at` and `id`.
pub const EXPERIMENTS_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = $1 AND (created_at, id) < ($3, $4) \
     ORDER BY created_at DESC, id DESC LIMIT $2"
);
/// First page filtered by status `$3`.
pub const EXPERIMENTS_PAGE_BY_STATUS: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = $1 AND status = $3 \
     ORDER BY created_at DESC, id DESC LIMIT $2"
);
/// Following page filtered by status `$3`; `$4`, `$5` are the cursor.
pub const EXPERIMENTS_PAGE_BY_STATUS_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = $1 AND status = $3 AND (created_at, id) < ($4, $5) \
     ORDER BY created_at DESC, id DESC LIMIT $2"
);

/// Recurring experiments due at `$1`, earliest first, at most `$2`. The terms repeat the
/// partial index's predicate so the planner can prove it applies.
pub const EXPERIMENTS_DUE_RECURRING: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE schedule IS NOT NULL AND status <> 'cancelled' \
     AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2"
);
/// The compare-and-set that claims a due occurrence: only if `next_run_at` still equals `$2`,
/// moves it to `$3` and `updated_at` to `$4`. Racing schedulers queue on the row lock and
/// re-check the condition against the winner's committed row, so exactly one succeeds.
pub const EXPERIMENT_ADVANCE_SCHEDULE: &str = "UPDATE experiments SET next_run_at = $3, \
     updated_at = $4 WHERE id = $1 AND next_run_at = $2 AND schedule IS NOT NULL \
     AND status <> 'cancelled' RETURNING user_id";
/// Marks a scheduled experiment queued (`updated_at` was set by the advance).
pub const EXPERIMENT_MARK_QUEUED: &str = "UPDATE experiments SET status = 'queued' WHERE id = $1";

// ---- batch runs and iterations ---------------------------------------------------------------

/// Inserts batch runs from arrays, copying each experiment's owner; a run whose experiment does
/// not exist is not inserted (the caller compares the count).
pub const BATCH_RUNS_INSERT: &str = concat!(
    "INSERT INTO batch_runs (",
    sql_columns!(batch_run),
    ", user_id) SELECT r.id, r.experiment_id, r.provider, r.model, r.status, \
     r.iterations_planned, r.iterations_recorded, r.iterations_succeeded, r.input_tokens, \
     r.output_tokens, r.cost_micros_usd, r.metrics::jsonb, r.visibility_rate, r.error, \
     r.created_at, r.started_at, r.completed_at, e.user_id \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], \
     $13::float8[], $14::text[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[]) \
     AS r (id, experiment_id, provider, model, status, iterations_planned, \
     iterations_recorded, iterations_succeeded, input_tokens, output_tokens, cost_micros_usd, \
     metrics, visibility_rate, error, created_at, started_at, completed_at) \
     JOIN experiments AS e ON e.id = r.experiment_id"
);
/// A run, if its experiment belongs to `$2`.
pub const BATCH_RUN_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE id = $1 AND user_id = $2"
);
/// Whether experiment `$1` belongs to `$2`.
pub const EXPERIMENT_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM experiments WHERE id = $1 AND user_id = $2)";
/// An experiment's runs, oldest first.
pub const BATCH_RUNS_BY_EXPERIMENT: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE experiment_id = $1 ORDER BY created_at, id"
);
/// The executor-owned fields of a run.
pub const BATCH_RUN_UPDATE: &str = "UPDATE batch_runs SET status = $2, metrics = $3::jsonb, \
     visibility_rate = $4, cost_micros_usd = $5, error = $6, started_at = $7, \
     completed_at = $8 WHERE id = $1";
/// Whether run `$1` belongs to an experiment of `$2`.
pub const BATCH_RUN_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM batch_runs WHERE id = $1 AND user_id = $2)";

/// The idempotent iteration write, in one statement: inserts the rows (in input order, so the
/// first of repeated indexes wins) unless their (run, index) exists, adds exactly the inserted
/// rows to their runs' counters, and returns how many were inserted. A missing run fails the
/// whole statement on the foreign key, so nothing is written.
pub const ITERATIONS_RECORD: &str = concat!(
    "WITH input AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], \
     $5::text[], $6::boolean[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], \
     $11::timestamptz[], $12::boolean[], $13::timestamptz[]) WITH ORDINALITY \
     AS i (id, batch_run_id, idx, raw_response, mentions, is_success, error, latency_ms, \
     input_tokens, output_tokens, created_at, is_anonymized, anonymized_at, ord)), \
     inserted AS (INSERT INTO iterations (",
    sql_columns!(iteration),
    ") SELECT id, batch_run_id, idx, raw_response, mentions::jsonb, is_success, error, \
     latency_ms, input_tokens, output_tokens, created_at, is_anonymized, anonymized_at \
     FROM input ORDER BY ord \
     ON CONFLICT (batch_run_id, idx) DO NOTHING \
     RETURNING id, batch_run_id, is_success, input_tokens, output_tokens), \
     sourced AS (INSERT INTO iteration_sources (",
    sql_columns!(iteration_source),
    ") SELECT s.iteration_id, s.position, s.url, s.domain, s.title, s.spans::jsonb \
     FROM unnest($14::uuid[], $15::bigint[], $16::text[], $17::text[], $18::text[], \
     $19::text[]) AS s (iteration_id, position, url, domain, title, spans) \
     WHERE s.iteration_id IN (SELECT id FROM inserted) \
     ON CONFLICT (iteration_id, position) DO NOTHING), \
     counted AS (UPDATE batch_runs AS b SET \
     iterations_recorded = b.iterations_recorded + c.recorded, \
     iterations_succeeded = b.iterations_succeeded + c.succeeded, \
     input_tokens = b.input_tokens + c.input_tokens, \
     output_tokens = b.output_tokens + c.output_tokens \
     FROM (SELECT batch_run_id, count(*) AS recorded, \
     count(*) FILTER (WHERE is_success) AS succeeded, \
     sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens \
     FROM inserted GROUP BY batch_run_id) AS c \
     WHERE b.id = c.batch_run_id RETURNING 1) \
     SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM counted)"
);
/// A run's iterations from index `$2`, at most `$3`.
pub const ITERATIONS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(iteration),
    " FROM iterations WHERE batch_run_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3"
);
/// The sources of run `$1`'s iterations with index in `$2..=$3` (the page just read), by index
/// then position: the unique `(batch_run_id, idx)` index, then the sources' primary key.
pub const ITERATION_SOURCES_PAGE: &str = "SELECT s.iteration_id, s.position, s.url, s.domain, s.title, s.spans \
     FROM iterations AS i JOIN iteration_sources AS s ON s.iteration_id = i.id \
     WHERE i.batch_run_id = $1 AND i.idx >= $2 AND i.idx <= $3 ORDER BY i.idx, s.position";
/// Indexes recorded for a run.
pub const ITERATION_INDEXES: &str =
    "SELECT idx FROM iterations WHERE batch_run_id = $1 ORDER BY idx";
/// The analysis read: analysed, successful iterations of a run. Served by the partial
/// `iterations_analysis_idx`; kept here for the plan test until the analysis service reads
/// iterations through the store.
pub const ITERATIONS_FOR_ANALYSIS: &str = "SELECT idx, mentions FROM iterations \
     WHERE batch_run_id = $1 AND is_success AND mentions IS NOT NULL";

/// The iterations of the retention pass: not yet anonymized, created before `$2`, of runs
/// whose owner is on tier `$1`.
macro_rules! anonymizable_from {
    () => {
        " FROM iterations AS i JOIN batch_runs AS b ON b.id = i.batch_run_id \
         JOIN users AS u ON u.id = b.user_id \
         WHERE NOT i.is_anonymized AND i.created_at < $2 AND u.pricing_tier = $1"
    };
}

/// Anonymizes up to `$3` iterations of the retention pass at `$4`, newest first below the
/// cut-off: in steady state the rows a pass has to do lie just below it, while the rows that
/// other tiers keep longer lie further down, so a batch meets few of those. The batch is
/// locked with `SKIP LOCKED`, so concurrent passes take disjoint rows instead of queueing on
/// each other's; a row another pass anonymized since this statement's snapshot fails the
/// re-checked `NOT is_anonymized` when locked, so no row is counted twice. The same statement
/// deletes the anonymized iterations' sources; it returns how many iterations changed.
pub const ITERATIONS_ANONYMIZE: &str = concat!(
    "WITH batch AS (SELECT i.id",
    anonymizable_from!(),
    " ORDER BY i.created_at DESC LIMIT $3 FOR UPDATE OF i SKIP LOCKED) \
     , done AS (UPDATE iterations AS i \
     SET raw_response = NULL, is_anonymized = true, anonymized_at = $4 \
     FROM batch WHERE i.id = batch.id RETURNING i.id), \
     forgotten AS (DELETE FROM iteration_sources AS s USING done WHERE s.iteration_id = done.id) \
     SELECT count(*) FROM done"
);
/// How many iterations the retention pass would anonymize.
pub const ITERATIONS_ANONYMIZABLE_COUNT: &str = concat!("SELECT count(*)", anonymizable_from!());

/// Dashboard, part 1: the user's experiments by status, from the index alone.
pub const DASHBOARD_EXPERIMENTS_BY_STATUS: &str =
    "SELECT status, count(*) FROM experiments WHERE user_id = $1 GROUP BY status";

/// Dashboard, part 2: the user's runs by provider and status, from the runs' maintained
/// counters (`sum(bigint)` is numeric in PostgreSQL, hence the casts).
pub const DASHBOARD_RUNS: &str = "SELECT provider, status, \
     coalesce(sum(iterations_recorded), 0)::bigint, \
     coalesce(sum(iterations_succeeded), 0)::bigint, count(visibility_rate), \
     sum(visibility_rate) \
     FROM batch_runs WHERE user_id = $1 GROUP BY provider, status";

/// Dashboard, part 3: the user's runs completed since `$2`, by UTC day of completion (binned
/// from the Unix epoch, so the session's time zone plays no part).
pub const DASHBOARD_TREND: &str = "SELECT \
     date_bin('1 day', completed_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS day, \
     count(*), count(visibility_rate), sum(visibility_rate) \
     FROM batch_runs WHERE user_id = $1 AND status = 'completed' AND completed_at >= $2 \
     GROUP BY day ORDER BY day";

/// The user's completed runs, most recently completed first, at most `$2`: read backwards
/// through `batch_runs_trend_idx`, so no sort and no more rows than the limit.
pub const RECENT_COMPLETED_RUNS: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE user_id = $1 AND status = 'completed' \
     AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2"
);
/// [`RECENT_COMPLETED_RUNS`] read narrowly for the dashboard's charts: the same rows through
/// the same index, with only the brands' figures of the metrics as text (`TrendRun`'s
/// columns), so the rest of the document is neither sent nor decoded.
pub const RECENT_TREND_RUNS: &str = "SELECT id, experiment_id, provider, completed_at, \
     (metrics -> 'metrics' -> 'brands')::text \
     FROM batch_runs WHERE user_id = $1 AND status = 'completed' \
     AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2";

// ---- audit -----------------------------------------------------------------------------------

/// The chain's head, locked until the appending transaction ends: concurrent appenders queue
/// here, so each reads the head its predecessor wrote.
pub const AUDIT_HEAD_FOR_UPDATE: &str =
    "SELECT seq, hash FROM audit_chain_head WHERE singleton FOR UPDATE";
/// Moves the head.
pub const AUDIT_HEAD_SET: &str = "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE singleton";
/// Appends an event.
pub const AUDIT_INSERT: &str = concat!(
    "INSERT INTO audit_events (",
    sql_columns!(audit_insert),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)"
);
/// Events from `$1`, ascending, at most `$2`.
pub const AUDIT_RANGE: &str = concat!(
    "SELECT ",
    sql_columns!(audit),
    " FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2"
);
/// Lets this transaction update and delete audit events (see migration 0016's trigger).
pub const AUDIT_MAINTENANCE_ON: &str = "SET LOCAL echo.audit_maintenance = 'on'";
/// Clears actor `$1`, IP and user agent of the actor's events, setting pseudonym `$2`, and
/// records each erasure at `$3`; returns one row per erased event.
pub const AUDIT_ERASE_ACTOR: &str = "WITH erased AS (UPDATE audit_events SET \
     actor_user_id = NULL, ip = NULL, user_agent = NULL, actor_pseudonym = $2 \
     WHERE actor_user_id = $1 RETURNING seq) \
     INSERT INTO audit_erasures (seq, erased_at, pseudonym) SELECT seq, $3, $2 FROM erased";
/// Erasure records from `$1`, ascending, at most `$2`.
pub const AUDIT_ERASURES_RANGE: &str = "SELECT seq, erased_at, pseudonym FROM audit_erasures \
     WHERE seq >= $1 ORDER BY seq LIMIT $2";
/// Stores a checkpoint.
pub const AUDIT_CHECKPOINT_INSERT: &str = concat!(
    "INSERT INTO audit_checkpoints (",
    sql_columns!(audit_checkpoint),
    ") VALUES ($1, $2, $3, $4)"
);
/// The checkpoint with the highest `seq`.
pub const AUDIT_CHECKPOINT_LATEST: &str = concat!(
    "SELECT ",
    sql_columns!(audit_checkpoint),
    " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
);
/// Checkpoints from `$1`, ascending, at most `$2`.
pub const AUDIT_CHECKPOINTS_RANGE: &str = concat!(
    "SELECT ",
    sql_columns!(audit_checkpoint),
    " FROM audit_checkpoints WHERE seq >= $1 ORDER BY seq LIMIT $2"
);
/// Deletes the archived events up to `$1`.
pub const AUDIT_DELETE_THROUGH: &str = "DELETE FROM audit_events WHERE seq <= $1";
/// The first and last stored `seq` (NULLs when empty), each from one end of the primary key.
pub const AUDIT_BOUNDS: &str = "SELECT min(seq), max(seq) FROM audit_events";
const AUDIT_LIST_PREFIX: &str = concat!(
    "SELECT ",
    sql_columns!(audit),
    " FROM audit_events WHERE true"
);

pub use echo_core::store::sql::seq_bound;

/// One bound value of the dynamic audit listing.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditArg {
    /// `bigint`.
    Int(i64),
    /// `uuid`.
    Uuid(uuid::Uuid),
    /// `text`.
    Text(String),
    /// `timestamptz`.
    Time(time::OffsetDateTime),
}

impl From<SqlArg> for AuditArg {
    fn from(arg: SqlArg) -> Self {
        match arg {
            SqlArg::Int(i) => AuditArg::Int(i),
            SqlArg::Uuid(u) => AuditArg::Uuid(u),
            SqlArg::Text(t) => AuditArg::Text(t),
            SqlArg::Time(t) => AuditArg::Time(t.as_datetime()),
        }
    }
}

/// The audit listing for `query` (see [`sql::audit_list`]).
pub fn audit_list(query: &AuditQuery) -> (String, Vec<AuditArg>) {
    let (sql, args) = sql::audit_list(AUDIT_LIST_PREFIX, '$', query);
    (sql, args.into_iter().map(AuditArg::from).collect())
}

// ---- jobs ------------------------------------------------------------------------------------

/// Enqueues jobs from arrays: `enqueue`, transactional enqueues and the bulk loader share it.
pub const JOBS_INSERT: &str = concat!(
    "INSERT INTO jobs (",
    sql_columns!(job),
    ") SELECT id, kind, payload::jsonb, status, attempts, max_attempts, run_at, lease_owner, \
     lease_expires_at, lease_token, last_error, request_id, created_at, updated_at \
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
     $7::timestamptz[], $8::text[], $9::timestamptz[], $10::bigint[], $11::text[], $12::text[], \
     $13::timestamptz[], $14::timestamptz[]) AS j (id, kind, payload, status, attempts, \
     max_attempts, run_at, lease_owner, lease_expires_at, lease_token, last_error, request_id, \
     created_at, updated_at)"
);
/// Whether a job id is taken.
pub const JOB_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)";
/// A job by id.
pub const JOB_BY_ID: &str = concat!("SELECT ", sql_columns!(job), " FROM jobs WHERE id = $1");

/// The batch claim, in one statement (`$1` now, `$2` limit, `$3` worker, `$4` lease end):
/// - fails running jobs whose lease expired on their final attempt (at most 1,000 a call; they
///   never take a claim slot);
/// - takes, with `FOR UPDATE SKIP LOCKED`, up to `$2` due queued jobs and up to `$2` expired
///   leases with attempts left, each arm walking its own partial index in claim order, so
///   concurrent claimers skip each other's rows instead of queueing behind them and a claim
///   reads about `$2` index entries however long the backlog;
/// - leases the `$2` oldest of those (`run_at`, then `id`), with one more attempt and a new,
///   higher fencing token.
///
/// A row a concurrent claimer committed after this statement's snapshot is re-checked when
/// locked (READ COMMITTED) and skipped if no longer claimable, so no job is leased twice.
pub const JOBS_CLAIM: &str = concat!(
    "WITH exhausted AS (UPDATE jobs SET status = 'failed', \
     last_error = 'lease expired on the final attempt', lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = $1 \
     WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at <= $1 \
     AND attempts >= max_attempts ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED) \
     RETURNING id), \
     queued AS (SELECT id, run_at FROM jobs WHERE status = 'queued' AND run_at <= $1 \
     ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
     expired AS (SELECT id, run_at FROM jobs WHERE status = 'running' \
     AND lease_expires_at <= $1 AND attempts < max_attempts \
     ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
     picked AS (SELECT id FROM (SELECT id, run_at FROM queued UNION ALL \
     SELECT id, run_at FROM expired) AS c ORDER BY run_at, id LIMIT $2) \
     UPDATE jobs AS j SET status = 'running', attempts = j.attempts + 1, \
     lease_token = j.lease_token + 1, lease_owner = $3, lease_expires_at = $4, updated_at = $1 \
     FROM picked WHERE j.id = picked.id RETURNING ",
    "j.id, j.kind, j.payload, j.status, j.attempts, j.max_attempts, j.run_at, j.lease_owner, \
     j.lease_expires_at, j.lease_token, j.last_error, j.request_id, j.created_at, j.updated_at"
);
/// Claims job `$4` alone, by the same rules as [`JOBS_CLAIM`] (`$1` now, `$2` worker, `$3`
/// lease end). A job whose lease expired on its final attempt is failed instead and no row is
/// returned; a job another transaction has locked right now is not claimable.
pub const JOB_CLAIM_ONE: &str = concat!(
    "WITH target AS (SELECT id, status = 'running' AND attempts >= max_attempts AS exhausted \
     FROM jobs WHERE id = $4 AND ((status = 'queued' AND run_at <= $1) \
     OR (status = 'running' AND lease_expires_at <= $1)) FOR UPDATE SKIP LOCKED), \
     failed AS (UPDATE jobs SET status = 'failed', \
     last_error = 'lease expired on the final attempt', lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = $1 \
     WHERE id IN (SELECT id FROM target WHERE exhausted) RETURNING id) \
     UPDATE jobs AS j SET status = 'running', attempts = j.attempts + 1, \
     lease_token = j.lease_token + 1, lease_owner = $2, lease_expires_at = $3, updated_at = $1 \
     FROM target WHERE j.id = target.id AND NOT target.exhausted RETURNING ",
    "j.id, j.kind, j.payload, j.status, j.attempts, j.max_attempts, j.run_at, j.lease_owner, \
     j.lease_expires_at, j.lease_token, j.last_error, j.request_id, j.created_at, j.updated_at"
);
/// Extends a held lease.
pub const JOB_HEARTBEAT: &str = "UPDATE jobs SET lease_expires_at = $3 \
     WHERE id = $1 AND lease_token = $2 AND status = 'running'";
/// Completes a held job.
pub const JOB_COMPLETE: &str = "UPDATE jobs SET status = 'succeeded', lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = $3 \
     WHERE id = $1 AND lease_token = $2 AND status = 'running'";
/// Completes many held jobs (`$1` ids, `$2` their tokens) at `$3`, returning those completed.
pub const JOBS_COMPLETE_MANY: &str = "UPDATE jobs AS j SET status = 'succeeded', \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
     FROM unnest($1::uuid[], $2::bigint[]) AS l (id, token) \
     WHERE j.id = l.id AND j.lease_token = l.token AND j.status = 'running' RETURNING j.id";
/// Records a failed attempt of a held job: queued again for `$4` when given and attempts are
/// left, failed otherwise.
pub const JOB_FAIL: &str = "UPDATE jobs SET \
     status = CASE WHEN $4::timestamptz IS NOT NULL AND attempts < max_attempts \
     THEN 'queued' ELSE 'failed' END, \
     run_at = CASE WHEN $4::timestamptz IS NOT NULL AND attempts < max_attempts \
     THEN $4::timestamptz ELSE run_at END, \
     last_error = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = $5 \
     WHERE id = $1 AND lease_token = $2 AND status = 'running' RETURNING status";
/// Gives a held job back without counting the attempt (the token keeps growing).
pub const JOB_RELEASE: &str = "UPDATE jobs SET status = 'queued', run_at = $3, \
     attempts = greatest(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = $3 WHERE id = $1 AND lease_token = $2 AND status = 'running'";
/// Queue counts at `$1`, each from a partial index.
pub const JOB_STATS: &str = "SELECT \
     (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at <= $1), \
     (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at > $1), \
     (SELECT count(*) FROM jobs WHERE status = 'running'), \
     (SELECT count(*) FROM jobs WHERE status = 'failed')";
/// Deletes up to `$2` finished jobs last updated before `$1`, oldest first.
/// `= ANY(ARRAY(…))` rather than `IN (…)`: the planner then probes the primary key per id
/// instead of possibly hashing the subquery and scanning the whole table to join it.
pub const JOB_PRUNE: &str = "DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM jobs \
     WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1 \
     ORDER BY updated_at, id LIMIT $2))";
/// Wakes listening workers (see the crate docs); sent outside any enqueueing transaction.
pub const JOBS_NOTIFY: &str = "SELECT pg_notify('echo_jobs', '')";

// ---- alerts ----------------------------------------------------------------------------------

/// Whether run `$1` belongs to experiment `$2` of user `$3`: the ownership check of an alert.
pub const ALERT_RUN_OWNED: &str = "SELECT EXISTS (SELECT 1 FROM batch_runs AS r \
     JOIN experiments AS e ON e.id = r.experiment_id \
     WHERE r.id = $1 AND e.id = $2 AND e.user_id = $3)";
/// Inserts an alert unless its change (run, kind, brand) is stored already. A reused id still
/// fails on the primary key.
pub const ALERT_INSERT: &str = concat!(
    "INSERT INTO alerts (",
    sql_columns!(alert),
    ", provider, kind, brand) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10) \
     ON CONFLICT (batch_run_id, kind, brand) DO NOTHING"
);
/// The owner's alerts, newest first; `$2` rows.
pub const ALERTS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(alert),
    " FROM alerts WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);
/// The page after alert `$3`.
pub const ALERTS_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(alert),
    " FROM alerts WHERE user_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
);

// ---- webhooks --------------------------------------------------------------------------------

/// Locks the owner's row so concurrent registrations count endpoints one at a time.
pub const WEBHOOK_LOCK_OWNER: &str = "SELECT (SELECT count(*) FROM webhooks WHERE user_id = $1) \
     FROM users WHERE id = $1 FOR UPDATE";
/// Registers an endpoint.
pub const WEBHOOK_INSERT: &str = concat!(
    "INSERT INTO webhooks (",
    sql_columns!(webhook),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
/// The owner's endpoints, oldest first.
pub const WEBHOOKS_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(webhook),
    " FROM webhooks WHERE user_id = $1 ORDER BY created_at, id"
);
/// One of the owner's endpoints.
pub const WEBHOOK_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(webhook),
    " FROM webhooks WHERE id = $1 AND user_id = $2"
);
/// Deletes one of the owner's endpoints (its deliveries cascade).
pub const WEBHOOK_DELETE: &str = "DELETE FROM webhooks WHERE id = $1 AND user_id = $2";
/// Whether an endpoint is the user's.
pub const WEBHOOK_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1 AND user_id = $2)";
/// Stores a delivery.
pub const DELIVERY_INSERT: &str = concat!(
    "INSERT INTO webhook_deliveries (",
    sql_columns!(webhook_delivery),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);
/// One of the owner's deliveries.
pub const DELIVERY_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE id = $1 AND user_id = $2"
);
/// Records an attempt at a pending delivery, returning it.
pub const DELIVERY_ATTEMPT: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $3, response_status = $4, \
     last_error = $5, last_attempt_at = $6, next_attempt_at = $7 \
     WHERE id = $1 AND user_id = $2 AND status = 'pending' RETURNING ",
    sql_columns!(webhook_delivery)
);
/// Whether a delivery is the user's (to tell a settled one from a missing one).
pub const DELIVERY_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1 AND user_id = $2)";
/// An endpoint's deliveries, newest first; `$2` rows.
pub const DELIVERIES_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2"
);
/// The page after delivery `$3`.
pub const DELIVERIES_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE endpoint_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
);
