-- no-transaction
-- Lookups restricted to live keys; revoked keys stay out of it, so it stays small.
CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_active_public_id_idx
    ON api_keys (public_id, is_active)
    INCLUDE (user_id, expires_at)
    WHERE is_active;
