-- Prompt sets (echo-core's `PromptSetStore`): one topic in 5 to 50 phrasings, versioned.
-- Expand-only: two new tables, nothing existing changes. A version is never updated; editing
-- a set inserts version `latest_version + 1` and moves the set's `latest_version` in the same
-- transaction, guarded by the number it read.
CREATE TABLE prompt_sets (
    id             uuid        NOT NULL PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text        NOT NULL,
    latest_version bigint      NOT NULL CHECK (latest_version >= 1),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- A user's sets, newest first.
CREATE INDEX prompt_sets_user_created_idx ON prompt_sets (user_id, created_at DESC, id DESC);

CREATE TABLE prompt_set_versions (
    set_id     uuid        NOT NULL REFERENCES prompt_sets (id) ON DELETE CASCADE,
    version    bigint      NOT NULL CHECK (version >= 1),
    name       text        NOT NULL,
    -- The phrasings, in order.
    prompts    jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (set_id, version)
);

-- The prompt set version an experiment runs, pinned at creation (echo-core's
-- `PinnedPromptSet`); NULL for single-prompt experiments, including every existing one. A
-- nullable column without a default is a catalog-only change, and the old binary names its
-- columns, so it never reads this one.
ALTER TABLE experiments ADD COLUMN prompt_set jsonb;
