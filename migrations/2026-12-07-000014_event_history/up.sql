-- Stored event history. A change writes its event into event_inbox in its own transaction; the
-- linker (events_link) moves committed inbox rows into events and numbers them. Positions are given
-- in the order rows are linked, and a link commits before the next begins, so a reader that has seen
-- position P and reads "position > P" later never misses an event: positions totally order commits,
-- which timestamps cannot. Each link notifies channel opennvr_events with the newest position, so
-- every server process on the database wakes its watchers; the rows are the truth.
CREATE TABLE event_inbox (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL,
  time timestamptz NOT NULL,
  type text NOT NULL,
  camera_id uuid,
  also_for uuid[] NOT NULL DEFAULT '{}',
  payload jsonb NOT NULL
);

CREATE TABLE events (
  position bigint PRIMARY KEY,
  id uuid NOT NULL UNIQUE,
  time timestamptz NOT NULL,
  type text NOT NULL,
  camera_id uuid,
  -- Users who may see the event without a grant on its camera (who held one on a camera just deleted).
  also_for uuid[] NOT NULL DEFAULT '{}',
  payload jsonb NOT NULL
);
-- One camera's events over a time range, and a page of all events by time.
CREATE INDEX events_camera_time_idx ON events (camera_id, time DESC, position DESC);
CREATE INDEX events_time_idx ON events (time DESC, position DESC);

-- The newest position given, and the oldest still kept (retention raises it).
CREATE TABLE event_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  position bigint NOT NULL,
  kept_from bigint NOT NULL
);
INSERT INTO event_head (position, kept_from) VALUES (0, 1);

CREATE FUNCTION events_link(max_events integer) RETURNS integer
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
  )
  INSERT INTO public.events (position, id, time, type, camera_id, also_for, payload)
    SELECT head + row_number() OVER (ORDER BY m.id), m.event_id, m.time, m.type, m.camera_id, m.also_for, m.payload
      FROM moved m;
  GET DIAGNOSTICS linked = ROW_COUNT;
  IF linked > 0 THEN
    UPDATE public.event_head SET position = head + linked;
    PERFORM pg_notify('opennvr_events', (head + linked)::text);
  END IF;
  RETURN linked;
END
$$;

GRANT SELECT, INSERT ON event_inbox TO opennvr_runtime;
GRANT USAGE ON SEQUENCE event_inbox_id_seq TO opennvr_runtime;
GRANT SELECT, DELETE ON event_inbox TO opennvr_runtime;
GRANT SELECT, INSERT, DELETE ON events TO opennvr_runtime;
GRANT SELECT, UPDATE ON event_head TO opennvr_runtime;
GRANT EXECUTE ON FUNCTION events_link(integer) TO opennvr_runtime;
