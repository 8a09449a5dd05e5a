-- no-transaction
-- The listing filtered by status, in keyset order (id breaks created_at ties), and the
-- dashboard's counts by status from the index alone.
CREATE INDEX CONCURRENTLY IF NOT EXISTS experiments_user_status_created_idx
    ON experiments (user_id, status, created_at DESC, id DESC);
