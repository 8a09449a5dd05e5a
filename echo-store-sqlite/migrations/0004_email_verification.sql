-- Email verification (echo-core's `UserStore::put_email_verification_token` and
-- `redeem_email_verification_token`). Expand-only: existing accounts get
-- `email_verification_required = 0`, so they keep working as before.

ALTER TABLE users ADD COLUMN email_verification_required INTEGER NOT NULL DEFAULT 0
    CHECK (email_verification_required IN (0, 1));
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

-- At most one pending token per user (a resend replaces it). Only the SHA-256 digest of the
-- mailed secret is stored; redeeming looks the digest up through its unique index.
CREATE TABLE email_verification_tokens (
    user_id    BLOB    NOT NULL PRIMARY KEY CHECK (length(user_id) = 16)
                       REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL CHECK (length(token_hash) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX email_verification_tokens_hash_key
    ON email_verification_tokens (token_hash);
