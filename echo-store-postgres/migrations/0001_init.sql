-- Echo's initial PostgreSQL schema. Append-only: once released, later changes go in new files.
--
-- Storage forms: ids are `uuid`; instants are `timestamptz` (microseconds, the precision
-- `Timestamp` keeps); closed sets (status, tier, provider) are `text`, validated when read rather
-- than by CHECK, so a row written by a newer binary is reported as invalid instead of making this
-- binary's writes fail; structured values are `jsonb` (key order and duplicate keys are not kept,
-- which the model never relies on: values compare equal); every u32/u64 counter is `bigint`.
--
-- The indexes the listings, the dashboard, key lookups and the scheduler need on large tables
-- are created CONCURRENTLY by the migrations that follow this one (one per file, since
-- CREATE INDEX CONCURRENTLY cannot run in a transaction or a multi-statement query), so that
-- adding one to a populated production table never blocks writes.

CREATE TABLE users (
    id                         uuid        NOT NULL PRIMARY KEY,
    email                      text        NOT NULL,
    password_hash              text        NOT NULL,
    pricing_tier               text        NOT NULL,
    prompts_used               bigint      NOT NULL CHECK (prompts_used >= 0),
    quota_reset_at             timestamptz NOT NULL,
    is_active                  boolean     NOT NULL,
    is_admin                   boolean     NOT NULL,
    privacy_policy_version     text,
    privacy_policy_accepted_at timestamptz,
    data_processing_consent_at timestamptz,
    marketing_consent_at       timestamptz,
    scheduled_deletion_at      timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    -- `Email` is lower-cased before it gets here, so a plain unique constraint is
    -- case-insensitive.
    CONSTRAINT users_email_key UNIQUE (email)
);

-- The monthly reset sweep crosses tiers, which the (tier, reset) index cannot serve.
CREATE INDEX users_quota_reset_idx ON users (quota_reset_at);

CREATE TABLE brand_profiles (
    user_id             uuid        NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    brand               jsonb       NOT NULL,
    domain              text,
    default_competitors jsonb       NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           uuid        NOT NULL PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    public_id    text        NOT NULL,
    secret_hash  bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    is_active    boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    -- The authentication lookup: one probe, whatever the key's state.
    CONSTRAINT api_keys_public_id_key UNIQUE (public_id)
);

-- The owner's listing (newest first), and the cascade from users.
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC, id DESC);

CREATE TABLE experiments (
    id          uuid        NOT NULL PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt      text        NOT NULL,
    target      jsonb       NOT NULL,
    competitors jsonb       NOT NULL,
    iterations  bigint      NOT NULL CHECK (iterations > 0),
    providers   jsonb       NOT NULL,
    status      text        NOT NULL,
    -- Recurrence: `schedule IS NOT NULL` means recurring; `next_run_at` is NULL once the
    -- schedule has no future occurrence.
    schedule    text,
    next_run_at timestamptz CHECK (next_run_at IS NULL OR schedule IS NOT NULL),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE batch_runs (
    id                   uuid             NOT NULL PRIMARY KEY,
    experiment_id        uuid             NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    -- The experiment's owner, copied at insert (experiments never change owner) so that the
    -- dashboard reads one contiguous index range instead of joining per experiment.
    user_id              uuid             NOT NULL,
    provider             text             NOT NULL,
    model                text             NOT NULL,
    status               text             NOT NULL,
    iterations_planned   bigint           NOT NULL CHECK (iterations_planned >= 0),
    iterations_recorded  bigint           NOT NULL CHECK (iterations_recorded >= 0),
    iterations_succeeded bigint           NOT NULL CHECK (iterations_succeeded >= 0),
    input_tokens         bigint           NOT NULL CHECK (input_tokens >= 0),
    output_tokens        bigint           NOT NULL CHECK (output_tokens >= 0),
    cost_micros_usd      bigint           NOT NULL CHECK (cost_micros_usd >= 0),
    metrics              jsonb,
    visibility_rate      double precision,
    error                text,
    created_at           timestamptz      NOT NULL,
    started_at           timestamptz,
    completed_at         timestamptz
);

-- An experiment's runs, oldest first; also the cascade from experiments.
CREATE INDEX batch_runs_experiment_created_idx ON batch_runs (experiment_id, created_at, id);

CREATE TABLE iterations (
    id            uuid        NOT NULL PRIMARY KEY,
    batch_run_id  uuid        NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    idx           bigint      NOT NULL CHECK (idx >= 0),
    raw_response  text,
    mentions      jsonb,
    is_success    boolean     NOT NULL,
    error         text,
    latency_ms    bigint      NOT NULL CHECK (latency_ms >= 0),
    input_tokens  bigint      NOT NULL CHECK (input_tokens >= 0),
    output_tokens bigint      NOT NULL CHECK (output_tokens >= 0),
    created_at    timestamptz NOT NULL,
    is_anonymized boolean     NOT NULL,
    anonymized_at timestamptz,
    -- The idempotency key of iteration writes; also ordered reads, resume and the cascade.
    CONSTRAINT iterations_run_idx_key UNIQUE (batch_run_id, idx)
);

CREATE TABLE jobs (
    id               uuid        NOT NULL PRIMARY KEY,
    kind             text        NOT NULL,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL,
    attempts         bigint      NOT NULL CHECK (attempts >= 0),
    max_attempts     bigint      NOT NULL CHECK (max_attempts >= 0),
    run_at           timestamptz NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    -- The fencing token: grows on every claim.
    lease_token      bigint      NOT NULL CHECK (lease_token >= 0),
    last_error       text,
    request_id       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Claimable work in claim order; finished jobs, the bulk of the table, are not in it.
CREATE INDEX jobs_claimable_idx ON jobs (run_at, id) WHERE status = 'queued';
-- Leases to take over after a worker died; also the running count.
CREATE INDEX jobs_lease_expiry_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- Pruning, oldest first.
CREATE INDEX jobs_finished_idx
    ON jobs (updated_at, id)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
-- The failed count of the queue stats: the index above holds every finished job, mostly
-- succeeded ones, and cannot tell them apart without visiting the table.
CREATE INDEX jobs_failed_idx ON jobs (updated_at) WHERE status = 'failed';

-- No foreign key to users: the audit trail outlives the accounts it mentions.
CREATE TABLE audit_events (
    seq           bigint      NOT NULL PRIMARY KEY CHECK (seq > 0),
    actor_user_id uuid,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text,
    ip            text,
    user_agent    text,
    request_id    text,
    details       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    prev_hash     bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash          bytea       NOT NULL CHECK (octet_length(hash) = 32)
);

-- Filters of the audit listing, each in newest-first (seq) order.
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, seq);
CREATE INDEX audit_events_action_idx ON audit_events (action, seq);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_created_idx ON audit_events (created_at);

-- The chain's head, one row. Appenders lock it (SELECT ... FOR UPDATE) for the length of their
-- transaction: that serialises appends across every server, so the chain never forks, and a
-- rolled-back append leaves no gap (a sequence would).
CREATE TABLE audit_chain_head (
    singleton boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL CHECK (seq >= 0),
    hash      bytea   NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_chain_head (singleton, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));
