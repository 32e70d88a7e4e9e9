-- Linking in batches. An audited transaction now only INSERTs its entry into audit_inbox — no lock, so
-- audited transactions commit concurrently like any others (a rolled-back change takes its entry with
-- it). audit_link(), run by the server's linker task as entries commit and by readers of the trail
-- before they read, moves committed inbox entries into audit_events under one lock, as they commit,
-- giving each the next sequence and its chain hash. Only that function (SECURITY DEFINER, owner's rights) writes audit_events, advances the
-- head or empties the inbox: the runtime role can add entries, never place or rewrite them.
CREATE TABLE audit_inbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The chained text fields in canonical order (see audit_chain_hash).
  fields text[] NOT NULL CHECK (cardinality(fields) = 19)
);

-- An entry must be linkable, or it would stop every entry behind it: its fields are checked as they
-- arrive, against the same rules as audit_events.
CREATE UNIQUE INDEX audit_inbox_entry_id ON audit_inbox ((fields[1]));
CREATE FUNCTION audit_inbox_check() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  entry_id uuid;
BEGIN
  IF array_ndims(NEW.fields) <> 1 OR array_lower(NEW.fields, 1) <> 1
     OR array_position(NEW.fields, NULL) IS NOT NULL
     OR NEW.fields[1] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     OR NEW.fields[3] NOT IN ('user', 'api_key', 'system', 'anonymous')
     OR NEW.fields[15] NOT IN ('success', 'denied', 'failed')
     OR NEW.fields[16] !~ '^[A-Z_]+$'
     OR NEW.fields[2] !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$'
     -- Indexed fields stay well inside an index row; details may be larger.
     OR greatest(octet_length(NEW.fields[4]), octet_length(NEW.fields[10]), octet_length(NEW.fields[12]),
                 octet_length(NEW.fields[13]), octet_length(NEW.fields[14])) > 512
     OR EXISTS (SELECT 1 FROM unnest(NEW.fields) WITH ORDINALITY AS u(f, i) WHERE i <> 18 AND octet_length(f) > 4096)
     OR octet_length(NEW.fields[18]) > 65536
  THEN
    RAISE EXCEPTION 'malformed audit entry' USING ERRCODE = 'check_violation';
  END IF;
  entry_id := NEW.fields[1]::uuid;
  -- The time must read back as written, or the stored entry would no longer match its hash.
  IF to_char(NEW.fields[2]::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') <> NEW.fields[2] THEN
    RAISE EXCEPTION 'malformed audit entry time' USING ERRCODE = 'check_violation';
  END IF;
  IF EXISTS (SELECT 1 FROM public.audit_events e WHERE e.id = entry_id) THEN
    RAISE EXCEPTION 'audit entry % exists already', entry_id USING ERRCODE = 'unique_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_inbox_check BEFORE INSERT ON audit_inbox
  FOR EACH ROW EXECUTE FUNCTION audit_inbox_check();

CREATE TRIGGER audit_inbox_no_update BEFORE UPDATE ON audit_inbox
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_inbox_no_truncate BEFORE TRUNCATE ON audit_inbox
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The second wall lets a DELETE through only from the owner inside audit_link (inbox) or
-- audit_archive_through (events), each of which sets its own switch for the length of its statement.
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE'
     AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID)
     AND ((TG_TABLE_NAME = 'audit_events' AND current_setting('opennvr.audit_archive', true) = 'on')
       OR (TG_TABLE_NAME = 'audit_inbox' AND current_setting('opennvr.audit_link', true) = 'on'))
  THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
-- Per statement: the linker deletes whole batches.
CREATE TRIGGER audit_inbox_no_delete BEFORE DELETE ON audit_inbox
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- The same opennvr-audit-v1 hash, computed by a loop: several times cheaper for the linker than the
-- aggregate form.
CREATE OR REPLACE FUNCTION audit_chain_hash(prev bytea, seq bigint, fields text[]) RETURNS bytea
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  message bytea := prev || int4send(16) || convert_to('opennvr-audit-v1', 'UTF8') || int8send(seq);
  field text;
  encoded bytea;
BEGIN
  FOREACH field IN ARRAY fields LOOP
    encoded := convert_to(field, 'UTF8');
    message := message || int4send(octet_length(encoded)) || encoded;
  END LOOP;
  RETURN sha256(message);
END
$$;

-- Links up to max_entries committed inbox entries (oldest first) and returns how many it linked.
-- Run by the server's one linker task right after entries commit, and by readers of the trail before
-- they read; a call waits for one already at work. An empty inbox costs no write.
CREATE FUNCTION audit_link(max_entries integer) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  entry record;
  seq bigint;
  prev bytea;
  cur bytea;
  next_hash bytea;
  linked integer := 0;
  ids bigint[] := '{}';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('opennvr.audit_link'));
  IF NOT EXISTS (SELECT 1 FROM public.audit_inbox) THEN
    RETURN 0;
  END IF;
  SELECT h.sequence, h.prev_hash, h.hash INTO seq, prev, cur FROM public.audit_chain_head h FOR UPDATE;
  FOR entry IN SELECT i.id, i.fields FROM public.audit_inbox i ORDER BY i.id LIMIT max_entries LOOP
    ids := ids || entry.id;
    next_hash := public.audit_chain_hash(cur, seq + 1, entry.fields);
    INSERT INTO public.audit_events (sequence, id, time, actor_type, actor_user_id, actor_username,
        actor_api_key_id, actor_session_id, client_address, user_agent, action, method, target_type,
        target_id, camera_id, result, code, reason, details, request_id, prev_hash, hash)
      VALUES (seq + 1, entry.fields[1]::uuid, entry.fields[2]::timestamptz, entry.fields[3], entry.fields[4],
        entry.fields[5], entry.fields[6], entry.fields[7], entry.fields[8], entry.fields[9], entry.fields[10],
        entry.fields[11], entry.fields[12], entry.fields[13], entry.fields[14], entry.fields[15],
        entry.fields[16], entry.fields[17], entry.fields[18], entry.fields[19], cur, next_hash)
      ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
      -- Only a forged copy of a linked entry's id gets here (ids are random): it is dropped, loudly,
      -- rather than stopping every entry behind it.
      RAISE WARNING 'audit inbox entry % repeats the id of a linked entry; dropped', entry.fields[1];
      CONTINUE;
    END IF;
    seq := seq + 1;
    prev := cur;
    cur := next_hash;
    linked := linked + 1;
  END LOOP;
  PERFORM set_config('opennvr.audit_link', 'on', true);
  DELETE FROM public.audit_inbox WHERE id = ANY (ids);
  PERFORM set_config('opennvr.audit_link', 'off', true);
  UPDATE public.audit_chain_head SET sequence = seq, prev_hash = prev, hash = cur;
  RETURN cardinality(ids);
END
$$;
REVOKE ALL ON FUNCTION audit_link(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_link(integer) TO opennvr_runtime;

-- A checkpoint vouches for an entry that exists, with that entry's hash: nobody can plant one ahead
-- of the chain (which would stop the real checkpoints) or beside it.
CREATE FUNCTION audit_checkpoint_matches() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.audit_events e WHERE e.sequence = NEW.sequence AND e.hash = NEW.hash) THEN
    RAISE EXCEPTION 'checkpoint at % does not match an entry of the trail', NEW.sequence
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_checkpoints_match BEFORE INSERT ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_matches();

-- The runtime role adds entries to the inbox and reads the trail; it no longer writes events or the
-- head itself.
REVOKE INSERT ON audit_events FROM opennvr_runtime;
REVOKE UPDATE ON audit_chain_head FROM opennvr_runtime;
GRANT INSERT ON audit_inbox TO opennvr_runtime;
