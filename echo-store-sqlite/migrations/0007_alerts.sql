-- Alerts on significant change between runs of a recurring experiment (echo-core's
-- `AlertStore`). The finding (rates, z-test, adjusted p) is JSON; provider, kind and brand are
-- copied out of it for the idempotence key.

CREATE TABLE alerts (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    experiment_id   BLOB    NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    batch_run_id    BLOB    NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    previous_run_id BLOB    NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    provider        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    brand           TEXT    NOT NULL,
    finding         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

-- Re-evaluating a run never stores the same change twice.
CREATE UNIQUE INDEX alerts_change_key ON alerts (batch_run_id, kind, brand);
-- The owner's listing, newest first by id (ids are UUID v7), and the users cascade.
CREATE INDEX alerts_user_id_idx ON alerts (user_id, id DESC);
-- The cascades from experiments and from the previous run.
CREATE INDEX alerts_experiment_idx ON alerts (experiment_id);
CREATE INDEX alerts_previous_run_idx ON alerts (previous_run_id);
