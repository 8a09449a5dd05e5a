-- Login sessions (echo-core's `SessionStore`). Like API keys, only a digest of each token's
-- secret is stored; the id is the lookup handle embedded in the token.

CREATE TABLE sessions (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- Revoking every session of a user, and the cascade from users (which would otherwise scan the
-- table once per deleted user).
CREATE INDEX sessions_user_idx ON sessions (user_id);
-- Pruning: sessions past their expiry, and the few revoked before it.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
