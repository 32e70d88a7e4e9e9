-- Cameras and per-camera grants. A camera's RTSP password is sealed (envelope encryption, the row's
-- id as associated data); the URL never carries credentials. A deleted camera keeps its row, marked
-- deleted, so that the footage it leaves (kept until retention removes it) still names its camera.
CREATE TABLE cameras (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  description text NOT NULL DEFAULT '',
  location text NOT NULL DEFAULT '',
  source_url text NOT NULL CHECK (source_url ~ '^rtsps?://'),
  username text NOT NULL DEFAULT '',
  password_sealed bytea,
  password_kek_id text,
  transport text NOT NULL CHECK (transport IN ('automatic', 'tcp', 'udp')),
  enabled boolean NOT NULL,
  recording_enabled boolean NOT NULL,
  recording_mode text NOT NULL CHECK (recording_mode IN ('continuous', 'events')),
  segment_seconds integer NOT NULL CHECK (segment_seconds BETWEEN 10 AND 3600),
  event_pre_roll_ms bigint CHECK (event_pre_roll_ms >= 0),
  event_post_roll_ms bigint CHECK (event_post_roll_ms >= 0),
  labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
  ip_addresses text[] NOT NULL DEFAULT '{}',
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  deleted_at timestamptz,
  CHECK ((password_sealed IS NULL) = (password_kek_id IS NULL))
);
CREATE UNIQUE INDEX cameras_name_key ON cameras (lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX cameras_labels_idx ON cameras USING gin (labels jsonb_path_ops);

CREATE TABLE camera_grants (
  camera_id uuid NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  permissions text[] NOT NULL CHECK (cardinality(permissions) > 0
    AND permissions <@ ARRAY['camera.read', 'camera.live', 'camera.write', 'recording.read', 'recording.export']),
  expire_at timestamptz,
  grantor_user_id uuid,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (camera_id, user_id)
);
CREATE INDEX camera_grants_user_idx ON camera_grants (user_id, camera_id);

GRANT SELECT, INSERT, UPDATE ON cameras TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON camera_grants TO opennvr_runtime;
