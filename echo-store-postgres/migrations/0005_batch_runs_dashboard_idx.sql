-- no-transaction
-- The dashboard per provider and status: a user's runs in GROUP BY order with every column it
-- sums, so it neither joins experiments nor visits the table.
CREATE INDEX CONCURRENTLY IF NOT EXISTS batch_runs_dashboard_idx
    ON batch_runs (user_id, provider, status)
    INCLUDE (visibility_rate, iterations_recorded, iterations_succeeded, completed_at);
