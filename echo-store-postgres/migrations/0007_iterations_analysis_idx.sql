-- no-transaction
-- Analysis reads only a run's analysed iterations.
CREATE INDEX CONCURRENTLY IF NOT EXISTS iterations_analysis_idx
    ON iterations (batch_run_id, is_success)
    WHERE mentions IS NOT NULL;
