-- Optional archiving of old audit entries: the one way entries may leave the trail. A narrow
-- function, run with the owner's rights, deletes entries up to a signed checkpoint and nothing else;
-- the trigger lets exactly that delete through.
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

-- Written only by the owner (the server sets it from its configuration when it migrates): archiving is
-- refused unless the operator turned it on.
CREATE TABLE audit_settings (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  archive_enabled boolean NOT NULL DEFAULT false
);
INSERT INTO audit_settings (id) VALUES (true);
GRANT SELECT ON audit_settings TO opennvr_runtime;

CREATE FUNCTION audit_archive_through(upto bigint) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  removed bigint;
BEGIN
  IF NOT coalesce((SELECT archive_enabled FROM public.audit_settings), false) THEN
    RAISE EXCEPTION 'audit archiving is disabled' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- The checkpoint must vouch for exactly the entry it ends at.
  IF NOT EXISTS (
    SELECT 1 FROM public.audit_checkpoints cp JOIN public.audit_events e ON e.sequence = cp.sequence AND e.hash = cp.hash
     WHERE cp.sequence = upto
  ) THEN
    RAISE EXCEPTION 'no signed checkpoint at sequence %: entries are archived only up to a checkpoint', upto
      USING ERRCODE = 'check_violation';
  END IF;
  PERFORM set_config('opennvr.audit_archive', 'on', true);
  DELETE FROM public.audit_events WHERE sequence <= upto;
  GET DIAGNOSTICS removed = ROW_COUNT;
  PERFORM set_config('opennvr.audit_archive', 'off', true);
  RETURN removed;
END
$$;
REVOKE ALL ON FUNCTION audit_archive_through(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_archive_through(bigint) TO opennvr_runtime;
