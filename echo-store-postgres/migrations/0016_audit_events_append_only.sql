-- audit_events is append-only for the application: any UPDATE, DELETE or TRUNCATE fails unless
-- its transaction ran `SET LOCAL echo.audit_maintenance = 'on'`, which only the store's erasure
-- (`pseudonymize_actor`) and archiving (`delete_audit_through`) do. A stray statement (a
-- migration, a support query, a bug) cannot rewrite history by accident; the hash chain
-- detects what is rewritten on purpose.
--
-- The setting is no security boundary: any session of the application's role may set it. A
-- deployment that wants one can give the application a role without UPDATE and DELETE on
-- audit_events (`REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM echo_app`) and run
-- erasure and archiving under a separate maintenance role. That needs two roles and their
-- grants set up outside these migrations, which the store cannot assume of every deployment,
-- so the trigger is the default that works with a single role everywhere.
--
-- A statement-level trigger: it runs once per statement, however many rows the statement
-- touches, so the store's own bulk deletes do not pay per row.
CREATE FUNCTION echo_audit_events_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('echo.audit_maintenance', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Audit erasure and archiving go through the store, which sets '
                      || 'echo.audit_maintenance for its own transaction.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION echo_audit_events_guard();
