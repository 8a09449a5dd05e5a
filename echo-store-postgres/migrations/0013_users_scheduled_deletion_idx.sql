-- no-transaction
-- The account purge (`users_due_for_deletion`): the few accounts with a deletion date, earliest
-- first, `id` breaking ties without a sort.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_scheduled_deletion_idx
    ON users (scheduled_deletion_at, id)
    WHERE scheduled_deletion_at IS NOT NULL;
