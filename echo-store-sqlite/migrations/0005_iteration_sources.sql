-- The web sources each answer cited (`Iteration::sources`), one row per source. Written in the
-- transaction of their iteration, deleted with it (cascade from users, experiments, runs) and
-- by the retention pass when it anonymizes the iteration. Expand-only: older builds never read
-- the table.
--
-- The primary key serves both reads: a page of a run's iterations joins here by iteration id
-- and reads the sources in position order, and the cascade from `iterations` finds the rows.
-- `spans` is a JSON array of `{"start", "end"}` byte ranges of the answer (`[]` when none).
CREATE TABLE iteration_sources (
    iteration_id BLOB    NOT NULL REFERENCES iterations (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL CHECK (position >= 1),
    url          TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    title        TEXT,
    spans        TEXT    NOT NULL,
    PRIMARY KEY (iteration_id, position)
) STRICT, WITHOUT ROWID;
