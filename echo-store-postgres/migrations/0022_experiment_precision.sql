-- Adaptive sampling's target per experiment (echo-core's `Experiment::precision`): the 95%
-- half-width of the target's visibility at which each batch run stops early. NULL defers to
-- the runner's configuration, as every existing experiment did. Nullable without a default,
-- so adding it rewrites no rows and holds the table's lock only for the catalog change; the
-- bounds repeat `Precision`'s so that no row the store holds fails to decode.
ALTER TABLE experiments ADD COLUMN precision double precision
    CHECK (precision IS NULL OR (precision >= 0.01 AND precision <= 0.5));
