//! Every SQL statement the store runs, in one place so the `EXPLAIN QUERY PLAN` tests check the
//! statements that actually run. Not a stable API.
//!
//! Column lists are echo-core's `sql_columns!`, shared with the other SQL store: their order is
//! the order in which echo-core's decoders read.

use echo_core::sql_columns;
use echo_core::store::AuditQuery;
use echo_core::store::sql::{self, SqlArg};
use rusqlite::types::Value;

// ---- users -----------------------------------------------------------------------------------

/// Inserts a user (all columns).
pub const USER_INSERT: &str = concat!(
    "INSERT INTO users (",
    sql_columns!(user),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
);
/// A user by id.
pub const USER_BY_ID: &str = concat!("SELECT ", sql_columns!(user), " FROM users WHERE id = ?1");
/// A user by (lower-cased) email.
pub const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    sql_columns!(user),
    " FROM users WHERE email = ?1"
);
/// Whether a user exists, to tell a refused conditional update from a missing user.
pub const USER_EXISTS: &str = "SELECT 1 FROM users WHERE id = ?1";
/// Deactivates a user and schedules the purge; nothing else is written.
pub const USER_REQUEST_DELETION: &str = "UPDATE users SET is_active = 0, \
     scheduled_deletion_at = ?3, updated_at = ?2 WHERE id = ?1";
/// Restores a user whose deletion is pending and not yet due; the condition and the write are
/// one statement, so a purge date that passed or a cancelled deletion is never undone.
pub const USER_CANCEL_DELETION: &str = "UPDATE users SET is_active = 1, \
     scheduled_deletion_at = NULL, updated_at = ?2 \
     WHERE id = ?1 AND NOT is_active AND scheduled_deletion_at > ?2";
/// A user's consents, read inside the transaction that rewrites them (the write transaction holds the database's write lock).
pub const USER_CONSENTS_FOR_UPDATE: &str = "SELECT privacy_policy_version, \
     privacy_policy_accepted_at, data_processing_consent_at, marketing_consent_at \
     FROM users WHERE id = ?1";
/// Writes the consent columns only.
pub const USER_SET_CONSENTS: &str = "UPDATE users SET privacy_policy_version = ?2, \
     privacy_policy_accepted_at = ?3, data_processing_consent_at = ?4, \
     marketing_consent_at = ?5, updated_at = ?6 WHERE id = ?1";
/// Replaces the password hash only if it is still the expected one.
pub const USER_SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = ?3, \
     updated_at = ?4 WHERE id = ?1 AND password_hash = ?2";
/// Sets the pricing tier.
pub const USER_SET_TIER: &str = "UPDATE users SET pricing_tier = ?2, updated_at = ?3 WHERE id = ?1";
/// Sets the admin flag.
pub const USER_SET_ADMIN: &str = "UPDATE users SET is_admin = ?2, updated_at = ?3 WHERE id = ?1";
/// Replaces a user's pending verification token (the primary key is the user).
pub const VERIFICATION_TOKEN_UPSERT: &str = "INSERT INTO email_verification_tokens \
     (user_id, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash, \
     created_at = excluded.created_at, expires_at = excluded.expires_at";
/// A verification token's owner and expiry, by the digest of its secret.
pub const VERIFICATION_TOKEN_BY_HASH: &str =
    "SELECT user_id, expires_at FROM email_verification_tokens WHERE token_hash = ?1";
/// Deletes a redeemed token.
pub const VERIFICATION_TOKEN_DELETE: &str =
    "DELETE FROM email_verification_tokens WHERE token_hash = ?1";
/// Marks a user's email verified, keeping the first time.
pub const USER_SET_EMAIL_VERIFIED: &str = "UPDATE users SET \
     email_verified_at = coalesce(email_verified_at, ?2), updated_at = ?2 WHERE id = ?1";
/// Deletes a user; the foreign keys cascade to everything they own.
pub const USER_DELETE: &str = "DELETE FROM users WHERE id = ?1";
/// Deletes the jobs whose payload names user `?1` (its id as text, as serde writes it). The
/// expression must stay token for token the one of `jobs_payload_user_idx`.
pub const JOBS_DELETE_BY_PAYLOAD_USER: &str =
    "DELETE FROM jobs WHERE json_extract(payload, '$.user_id') = ?1";
/// Inactive users whose deletion date has come (`<= ?1`), earliest first, at most `?2`. The
/// comparison implies the partial index's `IS NOT NULL`, so the index serves it in order.
pub const USERS_DUE_FOR_DELETION: &str = "SELECT id FROM users \
     WHERE scheduled_deletion_at <= ?1 AND NOT is_active \
     ORDER BY scheduled_deletion_at, id LIMIT ?2";
/// The conditional quota debit: changes nothing when it would exceed the limit.
pub const USER_DEBIT_QUOTA: &str = "UPDATE users SET prompts_used = prompts_used + ?2 \
     WHERE id = ?1 AND prompts_used + ?2 <= ?3";
/// Quota used, to explain a refused debit.
pub const USER_QUOTA_USED: &str = "SELECT prompts_used FROM users WHERE id = ?1";
/// Refund, saturating at zero.
pub const USER_REFUND_QUOTA: &str =
    "UPDATE users SET prompts_used = max(prompts_used - ?2, 0) WHERE id = ?1";
/// Users whose quota period has ended.
pub const USERS_DUE_QUOTA_RESET: &str =
    "SELECT id, quota_reset_at FROM users WHERE quota_reset_at <= ?1";
/// Starts a user's new quota period.
pub const USER_RESET_QUOTA: &str =
    "UPDATE users SET prompts_used = 0, quota_reset_at = ?2 WHERE id = ?1";

// ---- brand profiles --------------------------------------------------------------------------

/// A user's brand profile.
pub const BRAND_PROFILE_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(brand_profile),
    " FROM brand_profiles WHERE user_id = ?1"
);
/// Creates or replaces a brand profile.
pub const BRAND_PROFILE_UPSERT: &str = concat!(
    "INSERT INTO brand_profiles (",
    sql_columns!(brand_profile),
    ") VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id) DO UPDATE SET brand = excluded.brand, \
     domain = excluded.domain, default_competitors = excluded.default_competitors, \
     updated_at = excluded.updated_at"
);

// ---- API keys --------------------------------------------------------------------------------

/// Inserts an API key record.
pub const API_KEY_INSERT: &str = concat!(
    "INSERT INTO api_keys (",
    sql_columns!(api_key),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
);
/// The authentication lookup.
pub const API_KEY_BY_PUBLIC_ID: &str = concat!(
    "SELECT ",
    sql_columns!(api_key),
    " FROM api_keys WHERE public_id = ?1"
);
/// The authentication lookup with the owner's status: one probe of the public-id index and
/// one of the users' primary key. Columns: the key's (as [`API_KEY_BY_PUBLIC_ID`]), then the
/// owner's `is_active` and `pricing_tier`.
pub const API_KEY_AUTH_BY_PUBLIC_ID: &str = "SELECT k.id, k.user_id, k.name, k.public_id, \
     k.secret_hash, k.is_active, k.created_at, k.last_used_at, k.expires_at, k.revoked_at, \
     u.is_active, u.pricing_tier \
     FROM api_keys AS k JOIN users AS u ON u.id = k.user_id WHERE k.public_id = ?1";
/// Sets the expiry of the owner's key.
pub const API_KEY_SET_EXPIRY: &str =
    "UPDATE api_keys SET expires_at = ?3 WHERE id = ?1 AND user_id = ?2";
/// The owner's keys, newest first.
pub const API_KEYS_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(api_key),
    " FROM api_keys WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"
);
/// Revokes a key, keeping the first revocation time.
pub const API_KEY_REVOKE: &str = "UPDATE api_keys SET is_active = 0, \
     revoked_at = coalesce(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2";
/// Records a use, never moving `last_used_at` backwards.
pub const API_KEY_TOUCH: &str = "UPDATE api_keys SET last_used_at = ?2 \
     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)";

// ---- sessions --------------------------------------------------------------------------------

/// Inserts a session.
pub const SESSION_INSERT: &str = concat!(
    "INSERT INTO sessions (",
    sql_columns!(session),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
);
/// The authentication lookup with the owner's flags: one probe of the sessions' primary key and
/// one of the users'. Columns: the session's (as `sql_columns!(session)`), then the owner's
/// `is_active`, `is_admin` and `pricing_tier`.
pub const SESSION_AUTH_BY_ID: &str = "SELECT s.id, s.user_id, s.secret_hash, s.created_at, \
     s.expires_at, s.revoked_at, u.is_active, u.is_admin, u.pricing_tier \
     FROM sessions AS s JOIN users AS u ON u.id = s.user_id WHERE s.id = ?1";
/// Revokes the owner's session, keeping the first revocation time.
pub const SESSION_REVOKE: &str = "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?3) \
     WHERE id = ?1 AND user_id = ?2";
/// Revokes every unrevoked session of a user.
pub const SESSIONS_REVOKE_BY_USER: &str =
    "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL";
/// Deletes up to `?2` sessions expired or revoked before `?1`. No order: which go first does
/// not matter, and an order would make the two-index OR sort.
pub const SESSIONS_PRUNE: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
     WHERE expires_at < ?1 OR revoked_at < ?1 LIMIT ?2)";

// ---- experiments -----------------------------------------------------------------------------

/// Inserts an experiment.
pub const EXPERIMENT_INSERT: &str = concat!(
    "INSERT INTO experiments (",
    sql_columns!(experiment),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
);
/// The owner's experiment.
pub const EXPERIMENT_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE id = ?1 AND user_id = ?2"
);
/// Status of the owner's experiment.
pub const EXPERIMENT_STATUS: &str = "SELECT status FROM experiments WHERE id = ?1 AND user_id = ?2";
/// Sets the status of the owner's experiment.
pub const EXPERIMENT_SET_STATUS: &str =
    "UPDATE experiments SET status = ?3, updated_at = ?4 WHERE id = ?1 AND user_id = ?2";
/// Deletes the owner's experiment; runs and iterations cascade.
pub const EXPERIMENT_DELETE: &str = "DELETE FROM experiments WHERE id = ?1 AND user_id = ?2";

/// First page of a user's experiments: `?1` user, `?2` rows to fetch.
pub const EXPERIMENTS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
);
/// Following page: `?3`, `?4` are the cursor's `created_at` and `id`.
pub const EXPERIMENTS_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = ?1 AND (created_at, id) < (?3, ?4) \
     ORDER BY created_at DESC, id DESC LIMIT ?2"
);
/// First page filtered by status `?3`.
pub const EXPERIMENTS_PAGE_BY_STATUS: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = ?1 AND status = ?3 \
     ORDER BY created_at DESC, id DESC LIMIT ?2"
);
/// Following page filtered by status `?3`; `?4`, `?5` are the cursor.
pub const EXPERIMENTS_PAGE_BY_STATUS_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE user_id = ?1 AND status = ?3 AND (created_at, id) < (?4, ?5) \
     ORDER BY created_at DESC, id DESC LIMIT ?2"
);

/// Recurring experiments due at `?1`, earliest first, at most `?2`. The terms repeat the
/// partial index's condition so the planner can use it.
pub const EXPERIMENTS_DUE_RECURRING: &str = concat!(
    "SELECT ",
    sql_columns!(experiment),
    " FROM experiments WHERE schedule IS NOT NULL AND status <> 'cancelled' \
     AND next_run_at <= ?1 ORDER BY next_run_at, id LIMIT ?2"
);
/// Advances a due occurrence if nobody else did: `?2` expected, `?3` next, `?4` change time.
pub const EXPERIMENT_ADVANCE_SCHEDULE: &str = "UPDATE experiments SET next_run_at = ?3, \
     updated_at = ?4 WHERE id = ?1 AND next_run_at = ?2 AND schedule IS NOT NULL \
     AND status <> 'cancelled' RETURNING user_id";
/// Marks a scheduled experiment queued, without touching `updated_at`.
pub const EXPERIMENT_MARK_QUEUED: &str = "UPDATE experiments SET status = 'queued' WHERE id = ?1";

// ---- batch runs and iterations ---------------------------------------------------------------

/// Inserts a batch run, copying its experiment's owner; inserts nothing when the experiment
/// does not exist.
pub const BATCH_RUN_INSERT: &str = concat!(
    "INSERT INTO batch_runs (",
    sql_columns!(batch_run),
    ", user_id) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
     ?17, e.user_id FROM experiments AS e WHERE e.id = ?2"
);
/// A run, if its experiment belongs to `?2`.
pub const BATCH_RUN_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE id = ?1 AND user_id = ?2"
);
/// Whether experiment `?1` belongs to `?2`.
pub const EXPERIMENT_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM experiments WHERE id = ?1 AND user_id = ?2)";
/// An experiment's runs, oldest first.
pub const BATCH_RUNS_BY_EXPERIMENT: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE experiment_id = ?1 ORDER BY created_at, id"
);
/// The executor-owned fields of a run.
pub const BATCH_RUN_UPDATE: &str = "UPDATE batch_runs SET status = ?2, metrics = ?3, \
     visibility_rate = ?4, cost_micros_usd = ?5, error = ?6, started_at = ?7, \
     completed_at = ?8 WHERE id = ?1";
/// Adds newly recorded iterations to a run's counters.
pub const BATCH_RUN_ADD_COUNTS: &str = "UPDATE batch_runs SET \
     iterations_recorded = iterations_recorded + ?2, \
     iterations_succeeded = iterations_succeeded + ?3, \
     input_tokens = input_tokens + ?4, output_tokens = output_tokens + ?5 WHERE id = ?1";
/// Whether run `?1` belongs to an experiment of `?2`.
pub const BATCH_RUN_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM batch_runs WHERE id = ?1 AND user_id = ?2)";

/// Inserts an iteration unless its (run, index) exists: the idempotent write.
pub const ITERATION_INSERT: &str = concat!(
    "INSERT INTO iterations (",
    sql_columns!(iteration),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
     ON CONFLICT (batch_run_id, idx) DO NOTHING"
);
/// A run's iterations from index `?2`, at most `?3`.
pub const ITERATIONS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(iteration),
    " FROM iterations WHERE batch_run_id = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3"
);
/// Source rows per multi-row `INSERT`: 6 parameters each keeps a statement at 192, far under
/// SQLite's limit, while a batch of 500 answers citing 8 sources needs 125 executions instead
/// of 4,000.
pub const SOURCE_ROWS_PER_INSERT: usize = 32;

/// Stores `rows` sources (1 to [`SOURCE_ROWS_PER_INSERT`]), 6 parameters each in
/// `iteration_source` column order, in one statement: written in the iterations'
/// transaction, only for iterations that were inserted. The text depends on `rows` alone, so
/// the statement cache holds one full-size and at most a few remainder statements.
pub fn iteration_sources_insert(rows: usize) -> String {
    let mut sql = String::from(concat!(
        "INSERT INTO iteration_sources (",
        sql_columns!(iteration_source),
        ") VALUES "
    ));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let p = r * 6;
        sql.push_str(&format!(
            "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    sql
}
/// The sources of run `?1`'s iterations with index in `?2..=?3` (the page just read), by index
/// then position: the unique `(batch_run_id, idx)` index, then the sources' primary key.
pub const ITERATION_SOURCES_PAGE: &str = "SELECT s.iteration_id, s.position, s.url, s.domain, s.title, s.spans \
     FROM iterations AS i CROSS JOIN iteration_sources AS s ON s.iteration_id = i.id \
     WHERE i.batch_run_id = ?1 AND i.idx >= ?2 AND i.idx <= ?3 ORDER BY i.idx, s.position";
/// Removes the sources of the iteration at rowid `?1`: the retention pass, after it
/// anonymized that iteration.
pub const ITERATION_SOURCES_DELETE_BY_ROWID: &str = "DELETE FROM iteration_sources \
     WHERE iteration_id = (SELECT id FROM iterations WHERE rowid = ?1)";
/// Indexes recorded for a run.
pub const ITERATION_INDEXES: &str =
    "SELECT idx FROM iterations WHERE batch_run_id = ?1 ORDER BY idx";
/// The analysis read: analysed, successful iterations of a run. Served by the partial
/// `iterations_analysis_idx`; kept here for the plan test until the analysis service reads
/// iterations through the store.
pub const ITERATIONS_FOR_ANALYSIS: &str = "SELECT idx, mentions FROM iterations \
     WHERE batch_run_id = ?1 AND is_success = 1 AND mentions IS NOT NULL";

/// The iterations of the retention pass: not yet anonymized, created before `?2`, of runs
/// whose owner is on tier `?1`. `CROSS JOIN` fixes the join order (SQLite never reorders it):
/// the scan starts from the partial `iterations_anonymize_idx`, so a batch reads about as many
/// entries as it takes (plus other tiers' rows it passes over). Left to the planner, a rare
/// tier could make it start from the tier's users and read every iteration of theirs,
/// anonymized or not.
macro_rules! anonymizable_from {
    () => {
        " FROM iterations AS i CROSS JOIN batch_runs AS b ON b.id = i.batch_run_id \
         CROSS JOIN users AS u ON u.id = b.user_id \
         WHERE NOT i.is_anonymized AND i.created_at < ?2 AND u.pricing_tier = ?1"
    };
}

/// Up to `?3` rowids of the retention pass, newest first below the cut-off: in steady state
/// the rows a pass has to do lie just below it, while the rows that other tiers keep longer
/// lie further down, so a batch meets few of those. Read outside the write lock.
pub const ITERATIONS_ANONYMIZABLE: &str = concat!(
    "SELECT i.rowid",
    anonymizable_from!(),
    " ORDER BY i.created_at DESC LIMIT ?3"
);
/// Anonymizes iteration `?1` at `?2` if it still qualifies (`?3` tier, `?4` cut-off): another
/// pass may have taken it, or its owner may have changed tier, since it was read.
pub const ITERATION_ANONYMIZE: &str = "UPDATE iterations \
     SET raw_response = NULL, is_anonymized = 1, anonymized_at = ?2 \
     WHERE rowid = ?1 AND NOT is_anonymized AND created_at < ?4 AND EXISTS (SELECT 1 \
     FROM batch_runs AS b JOIN users AS u ON u.id = b.user_id \
     WHERE b.id = iterations.batch_run_id AND u.pricing_tier = ?3)";
/// How many iterations the retention pass would anonymize.
pub const ITERATIONS_ANONYMIZABLE_COUNT: &str = concat!("SELECT count(*)", anonymizable_from!());

/// Dashboard, part 1: the user's experiments by status, from the index alone.
pub const DASHBOARD_EXPERIMENTS_BY_STATUS: &str =
    "SELECT status, count(*) FROM experiments WHERE user_id = ?1 GROUP BY status";

/// Dashboard, part 2: the user's runs by provider and status, from the runs' maintained
/// counters, in index order.
pub const DASHBOARD_RUNS: &str = "SELECT provider, status, sum(iterations_recorded), \
     sum(iterations_succeeded), count(visibility_rate), total(visibility_rate) \
     FROM batch_runs WHERE user_id = ?1 GROUP BY provider, status";

/// Dashboard, part 3: the user's runs completed since `?2` by UTC day; `?3` is the day of `?2`,
/// which lets the range start at the right day of `batch_runs_trend_idx`. The day expression
/// must stay token for token the one of that index.
pub const DASHBOARD_TREND: &str = "SELECT \
     (completed_at - ((completed_at % 86400000000) + 86400000000) % 86400000000) / 86400000000, \
     count(*), count(visibility_rate), total(visibility_rate) \
     FROM batch_runs WHERE user_id = ?1 AND status = 'completed' \
     AND (completed_at - ((completed_at % 86400000000) + 86400000000) % 86400000000) \
     / 86400000000 >= ?3 AND completed_at >= ?2 \
     GROUP BY 1 ORDER BY 1";

/// The user's completed runs, most recently completed first, at most `?2`: read backwards
/// through `batch_runs_trend_idx` (its day key orders like `completed_at`), so no sort and no
/// more rows than the limit. The day expression must stay token for token the one of that index.
pub const RECENT_COMPLETED_RUNS: &str = concat!(
    "SELECT ",
    sql_columns!(batch_run),
    " FROM batch_runs WHERE user_id = ?1 AND status = 'completed' \
     AND completed_at IS NOT NULL \
     ORDER BY (completed_at - ((completed_at % 86400000000) + 86400000000) % 86400000000) \
     / 86400000000 DESC, completed_at DESC LIMIT ?2"
);
/// [`RECENT_COMPLETED_RUNS`] read narrowly for the dashboard's charts: the same rows through
/// the same index, with only the brands' figures of the metrics (`TrendRun`'s columns).
pub const RECENT_TREND_RUNS: &str = "SELECT id, experiment_id, provider, completed_at, \
     json_extract(metrics, '$.metrics.brands') \
     FROM batch_runs WHERE user_id = ?1 AND status = 'completed' \
     AND completed_at IS NOT NULL \
     ORDER BY (completed_at - ((completed_at % 86400000000) + 86400000000) % 86400000000) \
     / 86400000000 DESC, completed_at DESC LIMIT ?2";

// ---- audit -----------------------------------------------------------------------------------

/// The chain's head: the last appended `seq` and `hash`, kept even when that event is deleted.
pub const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_chain_head WHERE singleton = 1";
/// Moves the chain's head.
pub const AUDIT_HEAD_SET: &str =
    "UPDATE audit_chain_head SET seq = ?1, hash = ?2 WHERE singleton = 1";
/// Appends an event.
pub const AUDIT_INSERT: &str = concat!(
    "INSERT INTO audit_events (",
    sql_columns!(audit_insert),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
);
/// Events from `?1`, ascending, at most `?2`.
pub const AUDIT_RANGE: &str = concat!(
    "SELECT ",
    sql_columns!(audit),
    " FROM audit_events WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
);
/// Records the erasure, at `?2` with pseudonym `?3`, of every event of actor `?1`; run before
/// [`AUDIT_ERASE_ACTOR`] in the same transaction.
pub const AUDIT_ERASURES_RECORD: &str = "INSERT INTO audit_erasures (seq, erased_at, pseudonym) \
     SELECT seq, ?2, ?3 FROM audit_events WHERE actor_user_id = ?1";
/// Clears actor `?1`, IP and user agent of the actor's events, setting pseudonym `?2`.
pub const AUDIT_ERASE_ACTOR: &str = "UPDATE audit_events SET actor_user_id = NULL, ip = NULL, \
     user_agent = NULL, actor_pseudonym = ?2 WHERE actor_user_id = ?1";
/// Erasure records from `?1`, ascending, at most `?2`.
pub const AUDIT_ERASURES_RANGE: &str = "SELECT seq, erased_at, pseudonym FROM audit_erasures \
     WHERE seq >= ?1 ORDER BY seq LIMIT ?2";
/// Stores a checkpoint.
pub const AUDIT_CHECKPOINT_INSERT: &str = concat!(
    "INSERT INTO audit_checkpoints (",
    sql_columns!(audit_checkpoint),
    ") VALUES (?1, ?2, ?3, ?4)"
);
/// The checkpoint with the highest `seq`: two probes of the primary key (`max` is answered
/// from the end of the B-tree).
pub const AUDIT_CHECKPOINT_LATEST: &str = concat!(
    "SELECT ",
    sql_columns!(audit_checkpoint),
    " FROM audit_checkpoints WHERE seq = (SELECT max(seq) FROM audit_checkpoints)"
);
/// Checkpoints from `?1`, ascending, at most `?2`.
pub const AUDIT_CHECKPOINTS_RANGE: &str = concat!(
    "SELECT ",
    sql_columns!(audit_checkpoint),
    " FROM audit_checkpoints WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
);
/// Deletes the archived events up to `?1`.
pub const AUDIT_DELETE_THROUGH: &str = "DELETE FROM audit_events WHERE seq <= ?1";
/// The first and last stored `seq` (NULLs when empty). Two subqueries, because SQLite only
/// answers a `min` or a `max` from the index when it is the query's sole aggregate.
pub const AUDIT_BOUNDS: &str =
    "SELECT (SELECT min(seq) FROM audit_events), (SELECT max(seq) FROM audit_events)";
const AUDIT_LIST_PREFIX: &str = concat!(
    "SELECT ",
    sql_columns!(audit),
    " FROM audit_events WHERE 1 = 1"
);

pub use echo_core::store::sql::seq_bound;

/// The audit listing for `query` (see [`sql::audit_list`]), with SQLite's values: ids as their
/// 16 bytes, instants as microseconds.
pub fn audit_list(query: &AuditQuery) -> (String, Vec<Value>) {
    let (sql, args) = sql::audit_list(AUDIT_LIST_PREFIX, '?', query);
    let values = args
        .into_iter()
        .map(|arg| match arg {
            SqlArg::Int(i) => Value::Integer(i),
            SqlArg::Uuid(u) => Value::Blob(u.as_bytes().to_vec()),
            SqlArg::Text(t) => Value::Text(t),
            SqlArg::Time(t) => Value::Integer(t.unix_micros()),
        })
        .collect();
    (sql, values)
}

// ---- jobs ------------------------------------------------------------------------------------

/// Enqueues a job.
pub const JOB_INSERT: &str = concat!(
    "INSERT INTO jobs (",
    sql_columns!(job),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
);
/// Whether a job id is taken.
pub const JOB_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)";
/// A job by id.
pub const JOB_BY_ID: &str = concat!("SELECT ", sql_columns!(job), " FROM jobs WHERE id = ?1");

/// Claim candidates at `?1` after the position `(?2, ?3)` in claim order, at most `?4`: due
/// queued jobs and running jobs whose lease expired.
pub const JOB_CLAIM_CANDIDATES: &str = "SELECT id, status, attempts, max_attempts, run_at \
     FROM jobs WHERE status = 'queued' AND run_at <= ?1 AND (run_at, id) > (?2, ?3) \
     UNION ALL \
     SELECT id, status, attempts, max_attempts, run_at \
     FROM jobs WHERE status = 'running' AND lease_expires_at <= ?1 \
     AND (run_at, id) > (?2, ?3) \
     ORDER BY run_at, id LIMIT ?4";
/// The job `?1` if it is claimable at `?2` (same rule as [`JOB_CLAIM_CANDIDATES`]).
pub const JOB_CLAIM_ONE_CANDIDATE: &str = "SELECT id, status, attempts, max_attempts, run_at \
     FROM jobs WHERE id = ?1 AND ((status = 'queued' AND run_at <= ?2) \
     OR (status = 'running' AND lease_expires_at <= ?2))";
/// Leases a job to `?2` until `?3`, with a new fencing token.
pub const JOB_CLAIM: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
     lease_token = lease_token + 1, lease_owner = ?2, lease_expires_at = ?3, updated_at = ?4 \
     WHERE id = ?1 RETURNING ",
    sql_columns!(job)
);
/// Fails a job whose lease expired on its final attempt.
pub const JOB_FAIL_EXPIRED: &str = "UPDATE jobs SET status = 'failed', \
     last_error = 'lease expired on the final attempt', lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = ?2 WHERE id = ?1";
/// Extends a held lease.
pub const JOB_HEARTBEAT: &str = "UPDATE jobs SET lease_expires_at = ?3 \
     WHERE id = ?1 AND lease_token = ?2 AND status = 'running'";
/// Completes a held job.
pub const JOB_COMPLETE: &str = "UPDATE jobs SET status = 'succeeded', lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = ?3 \
     WHERE id = ?1 AND lease_token = ?2 AND status = 'running'";
/// Records a failed attempt of a held job: queued again for `?4` when given and attempts are
/// left, failed otherwise.
pub const JOB_FAIL: &str = "UPDATE jobs SET \
     status = CASE WHEN ?4 IS NOT NULL AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
     run_at = CASE WHEN ?4 IS NOT NULL AND attempts < max_attempts THEN ?4 ELSE run_at END, \
     last_error = ?3, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5 \
     WHERE id = ?1 AND lease_token = ?2 AND status = 'running' RETURNING status";
/// Gives a held job back without counting the attempt (the token keeps growing).
pub const JOB_RELEASE: &str = "UPDATE jobs SET status = 'queued', run_at = ?3, \
     attempts = max(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = ?3 WHERE id = ?1 AND lease_token = ?2 AND status = 'running'";
/// Queue counts at `?1`, each from a partial index.
pub const JOB_STATS: &str = "SELECT \
     (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at <= ?1), \
     (SELECT count(*) FROM jobs WHERE status = 'queued' AND run_at > ?1), \
     (SELECT count(*) FROM jobs WHERE status = 'running'), \
     (SELECT count(*) FROM jobs WHERE status = 'failed')";
/// Deletes up to `?2` finished jobs last updated before `?1`, oldest first.
pub const JOB_PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
     WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?1 \
     ORDER BY updated_at, id LIMIT ?2)";

// ---- alerts ----------------------------------------------------------------------------------

/// Whether run `?1` belongs to experiment `?2` of user `?3`: the ownership check of an alert.
pub const ALERT_RUN_OWNED: &str = "SELECT EXISTS (SELECT 1 FROM batch_runs AS r \
     JOIN experiments AS e ON e.id = r.experiment_id \
     WHERE r.id = ?1 AND e.id = ?2 AND e.user_id = ?3)";
/// Inserts an alert unless its change (run, kind, brand) is stored already. A reused id still
/// fails on the primary key.
pub const ALERT_INSERT: &str = concat!(
    "INSERT INTO alerts (",
    sql_columns!(alert),
    ", provider, kind, brand) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (batch_run_id, kind, brand) DO NOTHING"
);
/// The owner's alerts, newest first; `?2` rows.
pub const ALERTS_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(alert),
    " FROM alerts WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"
);
/// The page after alert `?3`.
pub const ALERTS_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(alert),
    " FROM alerts WHERE user_id = ?1 AND id < ?3 ORDER BY id DESC LIMIT ?2"
);

// ---- webhooks --------------------------------------------------------------------------------

/// How many endpoints a user has (the cap is checked in the inserting transaction).
pub const WEBHOOKS_COUNT: &str = "SELECT count(*) FROM webhooks WHERE user_id = ?1";
/// Registers an endpoint.
pub const WEBHOOK_INSERT: &str = concat!(
    "INSERT INTO webhooks (",
    sql_columns!(webhook),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
);
/// The owner's endpoints, oldest first.
pub const WEBHOOKS_BY_USER: &str = concat!(
    "SELECT ",
    sql_columns!(webhook),
    " FROM webhooks WHERE user_id = ?1 ORDER BY created_at, id"
);
/// One of the owner's endpoints.
pub const WEBHOOK_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(webhook),
    " FROM webhooks WHERE id = ?1 AND user_id = ?2"
);
/// Deletes one of the owner's endpoints (its deliveries cascade).
pub const WEBHOOK_DELETE: &str = "DELETE FROM webhooks WHERE id = ?1 AND user_id = ?2";
/// Whether an endpoint is the user's.
pub const WEBHOOK_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = ?1 AND user_id = ?2)";
/// Stores a delivery.
pub const DELIVERY_INSERT: &str = concat!(
    "INSERT INTO webhook_deliveries (",
    sql_columns!(webhook_delivery),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
);
/// One of the owner's deliveries.
pub const DELIVERY_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE id = ?1 AND user_id = ?2"
);
/// Records an attempt at a pending delivery, returning it.
pub const DELIVERY_ATTEMPT: &str = concat!(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?3, response_status = ?4, \
     last_error = ?5, last_attempt_at = ?6, next_attempt_at = ?7 \
     WHERE id = ?1 AND user_id = ?2 AND status = 'pending' RETURNING ",
    sql_columns!(webhook_delivery)
);
/// Whether a delivery is the user's (to tell a settled one from a missing one).
pub const DELIVERY_OWNED: &str =
    "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1 AND user_id = ?2)";
/// An endpoint's deliveries, newest first; `?2` rows.
pub const DELIVERIES_PAGE: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE endpoint_id = ?1 ORDER BY id DESC LIMIT ?2"
);
/// The page after delivery `?3`.
pub const DELIVERIES_PAGE_AFTER: &str = concat!(
    "SELECT ",
    sql_columns!(webhook_delivery),
    " FROM webhook_deliveries WHERE endpoint_id = ?1 AND id < ?3 ORDER BY id DESC LIMIT ?2"
);
