-- Echo's initial schema. Append-only: once released, later changes go in new files.
--
-- Storage forms: ids are 16-byte UUID BLOBs; timestamps are INTEGER unix microseconds (UTC),
-- the precision `Timestamp` keeps; closed sets (status, tier, provider) are TEXT validated when
-- read rather than by CHECK, so a row written by a newer binary is reported as invalid instead
-- of making this binary's writes fail; structured values are JSON TEXT.
-- STRICT tables refuse values of the wrong storage class, which the decoder would reject anyway.

CREATE TABLE users (
    id                         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email                      TEXT    NOT NULL,
    password_hash              TEXT    NOT NULL,
    pricing_tier               TEXT    NOT NULL,
    prompts_used               INTEGER NOT NULL CHECK (prompts_used >= 0),
    quota_reset_at             INTEGER NOT NULL,
    is_active                  INTEGER NOT NULL CHECK (is_active IN (0, 1)),
    is_admin                   INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    privacy_policy_version     TEXT,
    privacy_policy_accepted_at INTEGER,
    data_processing_consent_at INTEGER,
    marketing_consent_at       INTEGER,
    scheduled_deletion_at      INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
) STRICT;

-- `Email` is lower-cased before it gets here, so a plain unique index is case-insensitive.
CREATE UNIQUE INDEX users_email_key ON users (email);
-- Billing: users of a tier whose quota period ends in a range.
CREATE INDEX users_tier_quota_reset_idx ON users (pricing_tier, quota_reset_at);
-- The monthly reset sweep crosses tiers, which the index above cannot serve without a skip-scan.
CREATE INDEX users_quota_reset_idx ON users (quota_reset_at);

CREATE TABLE brand_profiles (
    user_id             BLOB    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    brand               TEXT    NOT NULL,
    domain              TEXT,
    default_competitors TEXT    NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    public_id    TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    is_active    INTEGER NOT NULL CHECK (is_active IN (0, 1)),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER,
    revoked_at   INTEGER
) STRICT;

-- The authentication lookup: one probe, whatever the key's state.
CREATE UNIQUE INDEX api_keys_public_id_key ON api_keys (public_id);
-- Lookups restricted to live keys; revoked keys stay out of it, so it stays small.
CREATE INDEX api_keys_active_public_id_idx ON api_keys (public_id, is_active) WHERE is_active;
-- The owner's listing (newest first), and the cascade from users.
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC, id DESC);

CREATE TABLE experiments (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    competitors TEXT    NOT NULL,
    iterations  INTEGER NOT NULL CHECK (iterations > 0),
    providers   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    -- Recurrence: `schedule IS NOT NULL` means recurring; `next_run_at` is NULL once the
    -- schedule has no future occurrence.
    schedule    TEXT,
    next_run_at INTEGER CHECK (next_run_at IS NULL OR schedule IS NOT NULL),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- Unfiltered listing in keyset order; also the dashboard's driver and the users cascade.
CREATE INDEX experiments_user_created_idx
    ON experiments (user_id, created_at DESC, id DESC);
-- Listing filtered by status (without it the filter would walk all the user's rows), and the
-- dashboard's counts by status from the index alone.
CREATE INDEX experiments_user_status_created_idx
    ON experiments (user_id, status, created_at DESC, id DESC);
-- The scheduler's due scan only ever sees live recurring experiments.
CREATE INDEX experiments_due_recurring_idx
    ON experiments (next_run_at, id)
    WHERE schedule IS NOT NULL AND status <> 'cancelled';

CREATE TABLE batch_runs (
    id                   BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    experiment_id        BLOB    NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    -- The experiment's owner, copied at insert (experiments never change owner) so that the
    -- dashboard reads one contiguous index range instead of probing per experiment.
    user_id              BLOB    NOT NULL CHECK (length(user_id) = 16),
    provider             TEXT    NOT NULL,
    model                TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    iterations_planned   INTEGER NOT NULL CHECK (iterations_planned >= 0),
    iterations_recorded  INTEGER NOT NULL CHECK (iterations_recorded >= 0),
    iterations_succeeded INTEGER NOT NULL CHECK (iterations_succeeded >= 0),
    input_tokens         INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens        INTEGER NOT NULL CHECK (output_tokens >= 0),
    cost_micros_usd      INTEGER NOT NULL CHECK (cost_micros_usd >= 0),
    metrics              TEXT,
    visibility_rate      REAL,
    error                TEXT,
    created_at           INTEGER NOT NULL,
    started_at           INTEGER,
    completed_at         INTEGER
) STRICT;

-- Dashboard per provider and status: everything it reads from a user's runs, in GROUP BY order,
-- so it neither touches the table nor sorts. SQLite has no INCLUDE, so the covered columns trail
-- the key.
CREATE INDEX batch_runs_dashboard_idx
    ON batch_runs (user_id, provider, status, visibility_rate, iterations_recorded,
                   iterations_succeeded, input_tokens, output_tokens, completed_at);
-- Dashboard trend: a user's completed runs by UTC day of completion (floored division, so that
-- days before 1970 are whole days too), then time. Keyed on the day itself so the per-day
-- aggregate reads the window in GROUP BY order instead of computing and sorting every row.
CREATE INDEX batch_runs_trend_idx
    ON batch_runs (
        user_id,
        (completed_at - ((completed_at % 86400000000) + 86400000000) % 86400000000)
            / 86400000000,
        completed_at,
        visibility_rate)
    WHERE status = 'completed';
-- An experiment's runs, oldest first; also the cascade from experiments.
CREATE INDEX batch_runs_experiment_created_idx ON batch_runs (experiment_id, created_at, id);

CREATE TABLE iterations (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    batch_run_id  BLOB    NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    raw_response  TEXT,
    mentions      TEXT,
    is_success    INTEGER NOT NULL CHECK (is_success IN (0, 1)),
    error         TEXT,
    latency_ms    INTEGER NOT NULL CHECK (latency_ms >= 0),
    input_tokens  INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    created_at    INTEGER NOT NULL,
    is_anonymized INTEGER NOT NULL CHECK (is_anonymized IN (0, 1)),
    anonymized_at INTEGER
) STRICT;

-- The idempotency key of iteration writes; also ordered reads and resume.
CREATE UNIQUE INDEX iterations_run_idx_key ON iterations (batch_run_id, idx);
-- Analysis reads only the iterations that were analysed.
CREATE INDEX iterations_analysis_idx
    ON iterations (batch_run_id, is_success)
    WHERE mentions IS NOT NULL;

CREATE TABLE jobs (
    id               BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 0),
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    lease_token      INTEGER NOT NULL CHECK (lease_token >= 0),
    last_error       TEXT,
    request_id       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

-- Claimable work in claim order; finished jobs, the bulk of the table, are not in it.
CREATE INDEX jobs_claimable_idx ON jobs (run_at, id) WHERE status = 'queued';
-- Leases to take over after a worker died; also the running count.
CREATE INDEX jobs_lease_expiry_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- Pruning, oldest first.
CREATE INDEX jobs_finished_idx
    ON jobs (updated_at, id)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
-- The failed count of the queue stats (SQLite cannot prove `status = 'failed'` implies the
-- IN list above, so that index does not serve it).
CREATE INDEX jobs_failed_idx ON jobs (status) WHERE status = 'failed';

-- No foreign key to users: the audit trail outlives the accounts it mentions.
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY CHECK (seq > 0),
    actor_user_id BLOB    CHECK (actor_user_id IS NULL OR length(actor_user_id) = 16),
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT,
    ip            TEXT,
    user_agent    TEXT,
    request_id    TEXT,
    details       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    prev_hash     BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash          BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- Filters of the audit listing, each in newest-first (seq) order.
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, seq);
CREATE INDEX audit_events_action_idx ON audit_events (action, seq);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_created_idx ON audit_events (created_at);
