-- no-transaction
-- The unfiltered listing in keyset order; also the cascade from users.
CREATE INDEX CONCURRENTLY IF NOT EXISTS experiments_user_created_idx
    ON experiments (user_id, created_at DESC, id DESC);
