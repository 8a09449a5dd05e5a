-- Data retention, account purge, and audit erasure, checkpoints and archiving (echo-core's
-- `RunStore::anonymize_iterations`, `UserStore::users_due_for_deletion` and `delete_user`,
-- and the `AuditStore` methods beyond append and read).
--
-- Applied on open in the migration transaction like every file here: building the indexes
-- reads the tables once (about a second per million iterations), which is acceptable for the
-- single-node store; the PostgreSQL store builds its equivalents CONCURRENTLY instead.

-- The retention pass: iterations not yet anonymized, by creation time (a pass reads it newest
-- first below its cut-off). Anonymized rows leave the index, so it holds only the pass's
-- remaining work, the rows tiers keep longer, and the recent rows. The trailing columns
-- make it covering for the batch's selection: `batch_run_id` for the join that finds each
-- row's owner, and `is_anonymized` because SQLite does not treat the index's own condition as
-- known, and would otherwise read each row past its (large) answer to check the flag.
CREATE INDEX iterations_anonymize_idx
    ON iterations (created_at, batch_run_id, is_anonymized)
    WHERE NOT is_anonymized;

-- The purge: accounts with a deletion date, earliest first (id breaks ties without a sort).
CREATE INDEX users_scheduled_deletion_idx
    ON users (scheduled_deletion_at, id)
    WHERE scheduled_deletion_at IS NOT NULL;

-- `delete_user` deletes the jobs whose payload names the user; only such jobs are indexed.
CREATE INDEX jobs_payload_user_idx
    ON jobs (json_extract(payload, '$.user_id'))
    WHERE json_extract(payload, '$.user_id') IS NOT NULL;

-- Set when the actor was erased: the keyed hash that stands in for actor, IP and user agent.
-- Not an input of the hash chain.
ALTER TABLE audit_events ADD COLUMN actor_pseudonym TEXT;

-- The chain's head, one row, kept apart from the events so that appends continue the chain
-- after the events (the head included) were archived and deleted. Seeded from the log.
CREATE TABLE audit_chain_head (
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO audit_chain_head (singleton, seq, hash)
SELECT 1, coalesce(max(seq), 0),
       coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), zeroblob(32))
FROM audit_events;

-- One row per erased event, for the chain verifier: these events' actor, IP and user agent
-- were cleared on purpose. Kept when the event itself is archived and deleted.
CREATE TABLE audit_erasures (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    erased_at INTEGER NOT NULL,
    pseudonym TEXT    NOT NULL
) STRICT;

-- Signed statements of the chain's head, made before archiving.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 0),
    head_hash  BLOB    NOT NULL CHECK (length(head_hash) = 32),
    created_at INTEGER NOT NULL,
    signature  BLOB    NOT NULL
) STRICT;
