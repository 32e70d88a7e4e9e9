GRANT INSERT ON audit_events TO opennvr_runtime;
GRANT UPDATE ON audit_chain_head TO opennvr_runtime;
DROP TRIGGER audit_checkpoints_match ON audit_checkpoints;
DROP FUNCTION audit_checkpoint_matches();
DROP FUNCTION audit_link(integer);
DROP TABLE audit_inbox;
DROP FUNCTION audit_inbox_check();
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_events'
     AND current_setting('opennvr.audit_archive', true) = 'on'
     AND current_user = (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'audit_events')
  THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
