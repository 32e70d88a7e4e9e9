-- The recording index. One row per fMP4 segment MediaMTX writes: tens of millions of rows, inserted
-- in time order by many cameras at once, so one camera's rows are scattered over the heap.
--
-- * The primary key (camera_id, start_time) INCLUDEs what listings and timelines return, so that they
--   are index-only scans; autovacuum runs after a fixed number of changes (not a fraction of a huge
--   table) to keep the visibility map current, which index-only scans need.
-- * BRIN on start_time for cross-camera time ranges; deliberately no btree on start_time alone.
-- * state: 0 = being written (duration unknown), 1 = complete, 2 = marked for deletion (listed
--   nowhere; its file may be gone already, the row goes after the file; a hold created before its
--   deletion gives it back).
CREATE TABLE segments (
  camera_id uuid NOT NULL REFERENCES cameras (id),
  start_time timestamptz NOT NULL,
  duration_us bigint NOT NULL DEFAULT 0 CHECK (duration_us BETWEEN 0 AND 90000000000),
  size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  state smallint NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
  file_path text NOT NULL CHECK (char_length(file_path) BETWEEN 1 AND 4096),
  CONSTRAINT segments_pkey PRIMARY KEY (camera_id, start_time) INCLUDE (duration_us, size_bytes, state)
) WITH (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 20000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 20000,
  autovacuum_analyze_scale_factor = 0.01
);
CREATE INDEX segments_start_brin ON segments USING brin (start_time) WITH (pages_per_range = 32);
-- The few segments being deleted, found without touching the rest.
CREATE INDEX segments_deleting_idx ON segments (camera_id, start_time) WHERE state = 2;

-- Per-camera totals, maintained by statement-level triggers in the same transaction as every change
-- of segments: "latest footage" and storage figures never aggregate over the segments table.
CREATE TABLE recording_summaries (
  camera_id uuid PRIMARY KEY REFERENCES cameras (id),
  segments bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  duration_us bigint NOT NULL DEFAULT 0,
  oldest_start timestamptz,
  newest_start timestamptz,
  newest_end timestamptz
);

-- Rows arriving.
CREATE FUNCTION recording_summaries_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- Rows completed or resized (a segment's camera and start never change).
CREATE FUNCTION recording_summaries_update() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- Rows leaving: the bounds are looked up again (one index probe per camera and bound).
CREATE FUNCTION recording_summaries_delete() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER segments_summary_insert AFTER INSERT ON segments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recording_summaries_insert();
CREATE TRIGGER segments_summary_update AFTER UPDATE ON segments
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recording_summaries_update();
CREATE TRIGGER segments_summary_delete AFTER DELETE ON segments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION recording_summaries_delete();

-- Evidence holds. A hold is never deleted, only released; its cameras are fixed at creation.
CREATE TABLE holds (
  id uuid PRIMARY KEY,
  case_id text NOT NULL CHECK (char_length(case_id) BETWEEN 1 AND 200),
  reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 2000),
  start_time timestamptz NOT NULL,
  end_time timestamptz CHECK (end_time > start_time),
  creator_user_id uuid,
  creator_username text NOT NULL,
  created_at timestamptz NOT NULL,
  released_at timestamptz,
  release_user_id uuid,
  release_reason text,
  CHECK ((released_at IS NULL) = (release_reason IS NULL))
);
CREATE TABLE hold_cameras (
  hold_id uuid NOT NULL REFERENCES holds (id),
  camera_id uuid NOT NULL REFERENCES cameras (id),
  PRIMARY KEY (hold_id, camera_id)
);
CREATE INDEX hold_cameras_camera_idx ON hold_cameras (camera_id, hold_id);

-- Retention limits: the site default (one row) and per-camera overrides (a NULL limit inherits).
CREATE TABLE site_retention (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  max_age_secs bigint CHECK (max_age_secs > 0),
  max_bytes bigint CHECK (max_bytes > 0),
  min_free_bytes bigint CHECK (min_free_bytes > 0),
  version bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO site_retention DEFAULT VALUES;
CREATE TABLE camera_retention (
  camera_id uuid PRIMARY KEY REFERENCES cameras (id),
  max_age_secs bigint CHECK (max_age_secs > 0),
  max_bytes bigint CHECK (max_bytes > 0),
  version bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON segments TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE ON recording_summaries TO opennvr_runtime;
GRANT SELECT, INSERT ON holds, hold_cameras TO opennvr_runtime;
GRANT UPDATE (released_at, release_user_id, release_reason) ON holds TO opennvr_runtime;
GRANT SELECT, UPDATE ON site_retention TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON camera_retention TO opennvr_runtime;
