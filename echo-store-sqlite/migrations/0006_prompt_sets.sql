-- Prompt sets (echo-core's `PromptSetStore`): one topic in 5 to 50 phrasings, versioned.
-- A version is never updated; editing a set inserts version `latest_version + 1` and moves
-- the set's `latest_version` in the same transaction, guarded by the number it read.
CREATE TABLE prompt_sets (
    id             BLOB    NOT NULL PRIMARY KEY,
    user_id        BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    latest_version INTEGER NOT NULL CHECK (latest_version >= 1),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- A user's sets, newest first.
CREATE INDEX prompt_sets_user_created_idx ON prompt_sets (user_id, created_at DESC, id DESC);

CREATE TABLE prompt_set_versions (
    set_id     BLOB    NOT NULL REFERENCES prompt_sets (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version >= 1),
    name       TEXT    NOT NULL,
    -- JSON array of the phrasings, in order.
    prompts    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (set_id, version)
) STRICT, WITHOUT ROWID;

-- The prompt set version an experiment runs, pinned at creation (JSON of echo-core's
-- `PinnedPromptSet`); NULL for single-prompt experiments, including every existing one.
ALTER TABLE experiments ADD COLUMN prompt_set TEXT;
