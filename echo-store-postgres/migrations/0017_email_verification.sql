-- Email verification (echo-core's `UserStore::put_email_verification_token` and
-- `redeem_email_verification_token`). Expand-only: adding a column with a constant default is
-- a catalog change in PostgreSQL 11+ (no table rewrite), existing accounts get
-- `email_verification_required = false` and keep working, and the old binary, which names its
-- columns, never sees the new ones.

ALTER TABLE users ADD COLUMN email_verification_required boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- At most one pending token per user (a resend replaces it). Only the SHA-256 digest of the
-- mailed secret is stored; redeeming looks the digest up through its unique constraint.
CREATE TABLE email_verification_tokens (
    user_id    uuid        NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
