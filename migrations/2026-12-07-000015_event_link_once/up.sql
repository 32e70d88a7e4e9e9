-- An inbox row whose event is already in the history (a store retried after its commit's answer was
-- lost) is dropped instead of failing every later link on events' unique id; positions stay dense.
CREATE OR REPLACE FUNCTION events_link(max_events integer) RETURNS integer
  LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  head bigint;
  linked integer;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('opennvr.events_link'));
  SELECT h.position INTO head FROM public.event_head h FOR UPDATE;
  WITH moved AS (
    DELETE FROM public.event_inbox WHERE id IN (SELECT i.id FROM public.event_inbox i ORDER BY i.id LIMIT max_events)
    RETURNING *
  ), fresh AS (
    SELECT DISTINCT ON (m.event_id) m.* FROM moved m
     WHERE NOT EXISTS (SELECT 1 FROM public.events e WHERE e.id = m.event_id)
     ORDER BY m.event_id, m.id
  )
  INSERT INTO public.events (position, id, time, type, camera_id, also_for, payload)
    SELECT head + row_number() OVER (ORDER BY f.id), f.event_id, f.time, f.type, f.camera_id, f.also_for, f.payload
      FROM fresh f;
  GET DIAGNOSTICS linked = ROW_COUNT;
  IF linked > 0 THEN
    UPDATE public.event_head SET position = head + linked;
    PERFORM pg_notify('opennvr_events', (head + linked)::text);
  END IF;
  RETURN linked;
END
$$;
