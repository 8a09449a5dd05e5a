-- Audit erasure, checkpoints and archiving (echo-core's `AuditStore`). The head of the chain
-- already lives in `audit_chain_head` (0001), apart from the events, so appends continue the
-- chain after archived events, the head included, are deleted.
--
-- One transaction. Adding a nullable column without a default only changes the catalog, but
-- it takes a brief ACCESS EXCLUSIVE lock on audit_events: the lock timeout makes the migration
-- fail (and be retried by the next `migrate`) rather than queue behind a long reader while
-- every append queues behind it.
SET LOCAL lock_timeout = '5s';

-- Set when the actor was erased: the keyed hash that stands in for actor, IP and user agent.
-- Not an input of the hash chain.
ALTER TABLE audit_events ADD COLUMN actor_pseudonym text;

-- One row per erased event, for the chain verifier: these events' actor, IP and user agent
-- were cleared on purpose. No foreign key: the record outlives the archived event.
CREATE TABLE audit_erasures (
    seq       bigint      NOT NULL PRIMARY KEY CHECK (seq > 0),
    erased_at timestamptz NOT NULL,
    pseudonym text        NOT NULL
);

-- Signed statements of the chain's head, made before archiving.
CREATE TABLE audit_checkpoints (
    seq        bigint      NOT NULL PRIMARY KEY CHECK (seq >= 0),
    head_hash  bytea       NOT NULL CHECK (octet_length(head_hash) = 32),
    created_at timestamptz NOT NULL,
    signature  bytea       NOT NULL
);
