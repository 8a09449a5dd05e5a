-- Webhook endpoints and their delivery log (echo-core's `WebhookStore`). The secret is kept
-- as given: Echo signs with it, so a digest would not do.
--
-- One transaction, with plain CREATE INDEX: the tables are new and empty.

CREATE TABLE webhooks (
    id          uuid        NOT NULL PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text        NOT NULL CHECK (length(url) <= 4096),
    description text        NOT NULL,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL
);

-- The owner's listing (oldest first), the per-owner cap and the users cascade.
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id              uuid        NOT NULL PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint_id     uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        bigint      NOT NULL CHECK (attempts >= 0),
    response_status bigint      CHECK (response_status BETWEEN 100 AND 999),
    last_error      text,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL
);

-- An endpoint's log, newest first by id (ids are UUID v7), and the endpoints cascade.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
-- The users cascade.
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id);
