-- The web sources each answer cited (`Iteration::sources`), one row per source. Written in the
-- statement that writes their iteration, deleted with it (cascade from users, experiments,
-- runs) and by the retention pass in the statement that anonymizes the iteration.
-- Expand-only: a new table, which older binaries never read.
--
-- The primary key serves both reads: a page of a run's iterations joins here by iteration id
-- and reads the sources in position order, and the cascade from `iterations` finds the rows.
-- `spans` is a JSON array of `{"start", "end"}` byte ranges of the answer (`[]` when none).
CREATE TABLE iteration_sources (
    iteration_id uuid   NOT NULL REFERENCES iterations (id) ON DELETE CASCADE,
    position     bigint NOT NULL CHECK (position >= 1),
    url          text   NOT NULL,
    domain       text   NOT NULL,
    title        text,
    spans        jsonb  NOT NULL,
    PRIMARY KEY (iteration_id, position)
);
