-- Motion detection, event-based recording and retention tiers, snapshots.

-- A camera's motion detector settings (NULL: off) and the event types whose footage counts as event
-- footage for it (NULL: motion, detections and IDS alerts). A binding may send frames only while its
-- camera's detector reports motion.
ALTER TABLE cameras ADD COLUMN motion jsonb;
ALTER TABLE cameras ADD COLUMN recording_event_types text[];
ALTER TABLE adapter_bindings ADD COLUMN motion_gated boolean NOT NULL DEFAULT false;

-- Events that last (a motion episode) end at `until`; others are instants (NULL).
ALTER TABLE event_inbox ADD COLUMN until timestamptz;
ALTER TABLE events ADD COLUMN until timestamptz;

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
  INSERT INTO public.events (position, id, time, type, camera_id, also_for, payload, until)
    SELECT head + row_number() OVER (ORDER BY f.id), f.event_id, f.time, f.type, f.camera_id, f.also_for, f.payload, f.until
      FROM fresh f;
  GET DIAGNOSTICS linked = ROW_COUNT;
  IF linked > 0 THEN
    UPDATE public.event_head SET position = head + linked;
    PERFORM pg_notify('opennvr_events', (head + linked)::text);
  END IF;
  RETURN linked;
END
$$;

-- Motion episodes under way: written when one starts, removed in the transaction that stores its
-- event. Retention keeps the footage of a camera from (since - pre-roll) while its row is fresh.
CREATE TABLE motion_open (
  camera_id uuid PRIMARY KEY,
  since timestamptz NOT NULL,
  seen timestamptz NOT NULL
);

-- One JPEG per motion episode and per detection track: the best frame, and the box in it (two
-- tracks may have their best sighting in the same frame, so in the same event).
CREATE TABLE snapshots (
  id uuid PRIMARY KEY,
  event_id uuid NOT NULL,
  camera_id uuid NOT NULL,
  time timestamptz NOT NULL,
  jpeg bytea NOT NULL,
  box_x real NOT NULL,
  box_y real NOT NULL,
  box_width real NOT NULL,
  box_height real NOT NULL,
  label text NOT NULL,
  score real NOT NULL
);
CREATE INDEX snapshots_event_idx ON snapshots (event_id);
CREATE INDEX snapshots_time_idx ON snapshots (time);

-- Whether a segment overlaps an event of its camera (widened by the rolls): NULL until judged,
-- which happens once no event that could still come would overlap it.
ALTER TABLE segments ADD COLUMN event_footage boolean;
CREATE INDEX segments_unjudged_idx ON segments (camera_id, start_time) WHERE event_footage IS NULL;
CREATE INDEX segments_continuous_idx ON segments (camera_id, start_time) WHERE event_footage IS FALSE;

-- Retention tiers: footage overlapping events may be kept longer than the rest.
ALTER TABLE site_retention ADD COLUMN event_max_age_secs bigint CHECK (event_max_age_secs > 0);
ALTER TABLE camera_retention ADD COLUMN event_max_age_secs bigint CHECK (event_max_age_secs > 0);

-- Bytes of event footage per camera, maintained with the other totals.
ALTER TABLE recording_summaries ADD COLUMN event_bytes bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION recording_summaries_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO recording_summaries AS s
    (camera_id, segments, bytes, duration_us, oldest_start, newest_start, newest_end, event_bytes)
  SELECT camera_id, count(*), sum(size_bytes), sum(duration_us), min(start_time), max(start_time),
         max(start_time + duration_us * interval '1 microsecond'),
         coalesce(sum(size_bytes) FILTER (WHERE event_footage), 0)
  FROM new_rows GROUP BY camera_id
  ON CONFLICT (camera_id) DO UPDATE SET
    segments = s.segments + excluded.segments,
    bytes = s.bytes + excluded.bytes,
    duration_us = s.duration_us + excluded.duration_us,
    oldest_start = least(s.oldest_start, excluded.oldest_start),
    newest_start = greatest(s.newest_start, excluded.newest_start),
    newest_end = greatest(s.newest_end, excluded.newest_end),
    event_bytes = s.event_bytes + excluded.event_bytes;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION recording_summaries_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows n LEFT JOIN old_rows o USING (camera_id, start_time) WHERE o.camera_id IS NULL) THEN
    RAISE EXCEPTION 'a segment''s camera and start time never change';
  END IF;
  UPDATE recording_summaries s SET
    bytes = s.bytes + d.bytes,
    duration_us = s.duration_us + d.duration_us,
    newest_end = greatest(s.newest_end, d.newest_end),
    event_bytes = s.event_bytes + d.event_bytes
  FROM (
    SELECT n.camera_id, sum(n.size_bytes - o.size_bytes) AS bytes, sum(n.duration_us - o.duration_us) AS duration_us,
           max(n.start_time + n.duration_us * interval '1 microsecond') AS newest_end,
           sum(CASE WHEN n.event_footage THEN n.size_bytes ELSE 0 END
             - CASE WHEN o.event_footage THEN o.size_bytes ELSE 0 END) AS event_bytes
    FROM new_rows n JOIN old_rows o USING (camera_id, start_time)
    GROUP BY n.camera_id
  ) d
  WHERE s.camera_id = d.camera_id;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION recording_summaries_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE recording_summaries s SET
    segments = s.segments - d.n,
    bytes = s.bytes - d.bytes,
    duration_us = s.duration_us - d.duration_us,
    event_bytes = s.event_bytes - d.event_bytes,
    oldest_start = (SELECT g.start_time FROM segments g WHERE g.camera_id = s.camera_id
                    ORDER BY g.start_time LIMIT 1),
    newest_start = (SELECT g.start_time FROM segments g WHERE g.camera_id = s.camera_id
                    ORDER BY g.start_time DESC LIMIT 1),
    newest_end = (SELECT g.start_time + g.duration_us * interval '1 microsecond' FROM segments g
                  WHERE g.camera_id = s.camera_id ORDER BY g.start_time DESC LIMIT 1)
  FROM (
    SELECT camera_id, count(*) AS n, sum(size_bytes) AS bytes, sum(duration_us) AS duration_us,
           coalesce(sum(size_bytes) FILTER (WHERE event_footage), 0) AS event_bytes
    FROM old_rows GROUP BY camera_id
  ) d
  WHERE s.camera_id = d.camera_id;
  RETURN NULL;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON motion_open TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON snapshots TO opennvr_runtime;
