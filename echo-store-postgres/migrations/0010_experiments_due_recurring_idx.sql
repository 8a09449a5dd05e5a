-- no-transaction
-- The scheduler's due scan only ever sees live recurring experiments, earliest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS experiments_due_recurring_idx
    ON experiments (next_run_at, id)
    WHERE schedule IS NOT NULL AND status <> 'cancelled';
