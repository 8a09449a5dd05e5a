//! The schema facts both SQL backends share: column lists and unique keys.

/// The column list of a table, as a string literal for `concat!`, in the order its record's
/// [`FromColumns`](crate::store::sql::FromColumns) implementation reads them.
///
/// Lists: `user`, `brand_profile`, `api_key`, `session`, `experiment`, `batch_run`,
/// `iteration`, `iteration_source`, `job`, `prompt_set`, `prompt_set_version`, `audit_insert` (what an audit append writes: the chained fields and the
/// links), `audit` (what an audit read returns: `audit_insert`, then `actor_pseudonym`, set by
/// an erasure), `audit_checkpoint`, `alert`, `webhook` and `webhook_delivery`.
///
/// ```
/// const JOB_BY_ID: &str = concat!("SELECT ", echo_core::sql_columns!(job), " FROM jobs WHERE id = $1");
/// assert!(JOB_BY_ID.starts_with("SELECT id, kind, payload, status, "));
/// ```
#[macro_export]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
macro_rules! sql_columns {
    (user) => {
        "id, email, password_hash, pricing_tier, prompts_used, quota_reset_at, is_active, \
         is_admin, privacy_policy_version, privacy_policy_accepted_at, \
         data_processing_consent_at, marketing_consent_at, scheduled_deletion_at, created_at, \
         updated_at, email_verification_required, email_verified_at"
    };
    (brand_profile) => {
        "user_id, brand, domain, default_competitors, updated_at"
    };
    (api_key) => {
        "id, user_id, name, public_id, secret_hash, is_active, created_at, last_used_at, \
         expires_at, revoked_at"
    };
    (session) => {
        "id, user_id, secret_hash, created_at, expires_at, revoked_at"
    };
    (experiment) => {
        "id, user_id, prompt, target, competitors, iterations, providers, status, schedule, \
         next_run_at, created_at, updated_at, prompt_set, precision"
    };
    (batch_run) => {
        "id, experiment_id, provider, model, status, iterations_planned, iterations_recorded, \
         iterations_succeeded, input_tokens, output_tokens, cost_micros_usd, metrics, \
         visibility_rate, error, created_at, started_at, completed_at"
    };
    (iteration) => {
        "id, batch_run_id, idx, raw_response, mentions, is_success, error, latency_ms, \
         input_tokens, output_tokens, created_at, is_anonymized, anonymized_at"
    };
    (iteration_source) => {
        "iteration_id, position, url, domain, title, spans"
    };
    (job) => {
        "id, kind, payload, status, attempts, max_attempts, run_at, lease_owner, \
         lease_expires_at, lease_token, last_error, request_id, created_at, updated_at"
    };
    (audit_insert) => {
        "seq, actor_user_id, action, resource_type, resource_id, ip, user_agent, request_id, \
         details, created_at, prev_hash, hash"
    };
    (audit) => {
        concat!($crate::sql_columns!(audit_insert), ", actor_pseudonym")
    };
    (audit_checkpoint) => {
        "seq, head_hash, created_at, signature"
    };
    (prompt_set) => {
        "id, user_id, name, latest_version, created_at, updated_at"
    };
    (prompt_set_version) => {
        "set_id, version, name, prompts, created_at"
    };
    (alert) => {
        "id, user_id, experiment_id, batch_run_id, previous_run_id, finding, created_at"
    };
    (webhook) => {
        "id, user_id, url, description, secret, created_at"
    };
    (webhook_delivery) => {
        "id, user_id, endpoint_id, event, body, status, attempts, response_status, last_error, \
         last_attempt_at, next_attempt_at, created_at"
    };
}

/// A unique key of Echo's schema, with the message its violation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueKey {
    /// The table.
    pub table: &'static str,
    /// The key's column.
    pub column: &'static str,
    /// Whether it is the table's primary key (else a `UNIQUE` column).
    pub primary: bool,
    /// What collided, safe to show to the user.
    pub message: &'static str,
}

const fn key(table: &'static str, column: &'static str, message: &'static str) -> UniqueKey {
    UniqueKey {
        table,
        column,
        primary: false,
        message,
    }
}

const fn pkey(table: &'static str, column: &'static str, message: &'static str) -> UniqueKey {
    UniqueKey {
        table,
        column,
        primary: true,
        message,
    }
}

/// Every unique key a write can violate, with its user-safe message.
pub const UNIQUE_KEYS: &[UniqueKey] = &[
    key("users", "email", "email is already registered"),
    pkey("users", "id", "user id already exists"),
    key("api_keys", "public_id", "API key id already exists"),
    pkey("api_keys", "id", "API key id already exists"),
    pkey("sessions", "id", "session id already exists"),
    key(
        "email_verification_tokens",
        "token_hash",
        "verification token already exists",
    ),
    pkey("experiments", "id", "experiment id already exists"),
    pkey("batch_runs", "id", "batch run id already exists"),
    pkey("iterations", "id", "iteration id already exists"),
    pkey("jobs", "id", "a job with this id already exists"),
    pkey("prompt_sets", "id", "prompt set id already exists"),
    pkey(
        "audit_events",
        "seq",
        "audit sequence number already exists",
    ),
    pkey("audit_erasures", "seq", "audit event already erased"),
    pkey("alerts", "id", "alert id already exists"),
    pkey("webhooks", "id", "a webhook with this id already exists"),
    pkey(
        "webhook_deliveries",
        "id",
        "a delivery with this id already exists",
    ),
    pkey(
        "audit_checkpoints",
        "seq",
        "an audit checkpoint with this sequence number already exists",
    ),
];

/// The message of a unique violation no key of [`UNIQUE_KEYS`] matches.
pub const CONFLICT_FALLBACK: &str = "record already exists";

/// The user-safe message of a unique violation: that of the first key `is_violated` accepts
/// (each backend matches the key against what its database reports), else
/// [`CONFLICT_FALLBACK`].
pub fn conflict_message(is_violated: impl Fn(&UniqueKey) -> bool) -> &'static str {
    UNIQUE_KEYS
        .iter()
        .find(|k| is_violated(k))
        .map_or(CONFLICT_FALLBACK, |k| k.message)
}
