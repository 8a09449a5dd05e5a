-- Alerts on significant change between runs of a recurring experiment (echo-core's
-- `AlertStore`). The finding (rates, z-test, adjusted p) is jsonb; provider, kind and brand are
-- copied out of it for the idempotence key.
--
-- One transaction, with plain CREATE INDEX: the table is new and empty.

CREATE TABLE alerts (
    id              uuid        NOT NULL PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    experiment_id   uuid        NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    batch_run_id    uuid        NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    previous_run_id uuid        NOT NULL REFERENCES batch_runs (id) ON DELETE CASCADE,
    provider        text        NOT NULL,
    kind            text        NOT NULL,
    brand           text        NOT NULL,
    finding         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL
);

-- Re-evaluating a run never stores the same change twice.
CREATE UNIQUE INDEX alerts_change_key ON alerts (batch_run_id, kind, brand);
-- The owner's listing, newest first by id (ids are UUID v7), and the users cascade.
CREATE INDEX alerts_user_id_idx ON alerts (user_id, id DESC);
-- The cascades from experiments and from the previous run.
CREATE INDEX alerts_experiment_idx ON alerts (experiment_id);
CREATE INDEX alerts_previous_run_idx ON alerts (previous_run_id);
