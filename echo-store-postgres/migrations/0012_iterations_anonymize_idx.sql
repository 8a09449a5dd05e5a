-- no-transaction
-- The retention pass (`anonymize_iterations`): iterations not yet anonymized, by creation time
-- (a pass reads it newest first below its cut-off). Anonymized rows leave the index, so it
-- holds only the pass's remaining work, the rows tiers keep longer, and the recent rows;
-- `batch_run_id` lets the join to each row's run (and owner) start from the entry.
CREATE INDEX CONCURRENTLY IF NOT EXISTS iterations_anonymize_idx
    ON iterations (created_at)
    INCLUDE (batch_run_id)
    WHERE NOT is_anonymized;
