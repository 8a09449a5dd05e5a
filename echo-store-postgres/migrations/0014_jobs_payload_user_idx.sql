-- no-transaction
-- `delete_user` deletes the jobs whose payload names the user (a top-level "user_id"); only
-- such jobs are indexed.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_payload_user_idx
    ON jobs ((payload ->> 'user_id'))
    WHERE (payload ->> 'user_id') IS NOT NULL;
