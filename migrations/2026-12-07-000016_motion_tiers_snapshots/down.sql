-- Undoes 16: the functions of migrations 8 and 15 come back before the columns they do not know go.
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
CREATE OR REPLACE FUNCTION recording_summaries_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO recording_summaries AS s
    (camera_id, segments, bytes, duration_us, oldest_start, newest_start, newest_end)
  SELECT camera_id, count(*), sum(size_bytes), sum(duration_us), min(start_time), max(start_time),
         max(start_time + duration_us * interval '1 microsecond')
  FROM new_rows GROUP BY camera_id
  ON CONFLICT (camera_id) DO UPDATE SET
    segments = s.segments + excluded.segments,
    bytes = s.bytes + excluded.bytes,
    duration_us = s.duration_us + excluded.duration_us,
    oldest_start = least(s.oldest_start, excluded.oldest_start),
    newest_start = greatest(s.newest_start, excluded.newest_start),
    newest_end = greatest(s.newest_end, excluded.newest_end);
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
    newest_end = greatest(s.newest_end, d.newest_end)
  FROM (
    SELECT n.camera_id, sum(n.size_bytes - o.size_bytes) AS bytes, sum(n.duration_us - o.duration_us) AS duration_us,
           max(n.start_time + n.duration_us * interval '1 microsecond') AS newest_end
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
    oldest_start = (SELECT g.start_time FROM segments g WHERE g.camera_id = s.camera_id
                    ORDER BY g.start_time LIMIT 1),
    newest_start = (SELECT g.start_time FROM segments g WHERE g.camera_id = s.camera_id
                    ORDER BY g.start_time DESC LIMIT 1),
    newest_end = (SELECT g.start_time + g.duration_us * interval '1 microsecond' FROM segments g
                  WHERE g.camera_id = s.camera_id ORDER BY g.start_time DESC LIMIT 1)
  FROM (
    SELECT camera_id, count(*) AS n, sum(size_bytes) AS bytes, sum(duration_us) AS duration_us
    FROM old_rows GROUP BY camera_id
  ) d
  WHERE s.camera_id = d.camera_id;
  RETURN NULL;
END $$;

DROP TABLE snapshots;
DROP TABLE motion_open;
DROP INDEX segments_unjudged_idx;
DROP INDEX segments_continuous_idx;
ALTER TABLE segments DROP COLUMN event_footage;
ALTER TABLE site_retention DROP COLUMN event_max_age_secs;
ALTER TABLE camera_retention DROP COLUMN event_max_age_secs;
ALTER TABLE recording_summaries DROP COLUMN event_bytes;
ALTER TABLE events DROP COLUMN until;
ALTER TABLE event_inbox DROP COLUMN until;
ALTER TABLE adapter_bindings DROP COLUMN motion_gated;
ALTER TABLE cameras DROP COLUMN recording_event_types;
ALTER TABLE cameras DROP COLUMN motion;
