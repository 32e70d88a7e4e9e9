-- Clip exports: files the server keeps for download until they expire; the record (with the file's
-- SHA-256, for chain of custody) stays after the file goes.
CREATE TABLE exports (
  id uuid PRIMARY KEY,
  camera_id uuid NOT NULL REFERENCES cameras (id),
  start_time timestamptz NOT NULL,
  end_time timestamptz NOT NULL CHECK (end_time > start_time),
  format text NOT NULL CHECK (format IN ('mp4', 'fmp4')),
  state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'expired')),
  reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 2000),
  case_id text NOT NULL DEFAULT '' CHECK (char_length(case_id) <= 200),
  creator_user_id uuid,
  created_at timestamptz NOT NULL,
  finished_at timestamptz,
  expire_at timestamptz,
  size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  sha256 bytea,
  error text NOT NULL DEFAULT '',
  media_duration_us bigint NOT NULL DEFAULT 0,
  file_name text NOT NULL
);
CREATE INDEX exports_created_idx ON exports (created_at DESC, id DESC);
CREATE INDEX exports_camera_idx ON exports (camera_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON exports TO opennvr_runtime;
