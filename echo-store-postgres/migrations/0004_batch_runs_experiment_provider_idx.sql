-- no-transaction
-- An experiment's runs by provider and status with the figures a per-experiment summary reads,
-- without touching the table. The metric columns are the denormalised ones: the metrics jsonb
-- itself can exceed a B-tree entry's size limit (about 2.7 kB), so it is not included.
CREATE INDEX CONCURRENTLY IF NOT EXISTS batch_runs_experiment_provider_status_idx
    ON batch_runs (experiment_id, provider, status)
    INCLUDE (visibility_rate, iterations_recorded, iterations_succeeded, input_tokens,
             output_tokens, completed_at);
