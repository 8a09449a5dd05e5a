-- no-transaction
-- The dashboard trend: a user's completed runs from an instant on, in completion order.
CREATE INDEX CONCURRENTLY IF NOT EXISTS batch_runs_trend_idx
    ON batch_runs (user_id, completed_at)
    INCLUDE (visibility_rate)
    WHERE status = 'completed';
