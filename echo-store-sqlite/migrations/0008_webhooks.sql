-- Webhook endpoints and their delivery log (echo-core's `WebhookStore`). The secret is kept
-- as given: Echo signs with it, so a digest would not do.

CREATE TABLE webhooks (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL CHECK (length(url) <= 4096),
    description TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- The owner's listing (oldest first), the per-owner cap and the users cascade.
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint_id     BLOB    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    response_status INTEGER CHECK (response_status BETWEEN 100 AND 999),
    last_error      TEXT,
    last_attempt_at INTEGER,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL
) STRICT;

-- An endpoint's log, newest first by id (ids are UUID v7), and the endpoints cascade.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
-- The users cascade.
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id);
