-- Login sessions (echo-core's `SessionStore`). Like API keys, only a digest of each token's
-- secret is stored; the id is the lookup handle embedded in the token, so the authentication
-- lookup is a probe of the primary key.
--
-- One transaction, with plain CREATE INDEX: the table is new and empty, so building its indexes
-- takes no time and blocks nobody (CONCURRENTLY is only needed on populated tables).

CREATE TABLE sessions (
    id          uuid        NOT NULL PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- Revoking every session of a user, and the cascade from users (which would otherwise scan the
-- table once per deleted user).
CREATE INDEX sessions_user_idx ON sessions (user_id);
-- Pruning: sessions past their expiry, and the few revoked before it.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
