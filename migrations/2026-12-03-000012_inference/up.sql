-- AI inference: adapters (external HTTP model services), bindings that route a camera's frames to
-- one, and the detections they report.

-- The bearer token, if any, is sealed with the master key (owner "adapters/<id>/token").
CREATE TABLE adapters (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
  description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 1024),
  endpoint_url text NOT NULL,
  token_sealed bytea,
  token_kek_id text,
  timeout_ms integer NOT NULL CHECK (timeout_ms BETWEEN 100 AND 120000),
  max_concurrency integer NOT NULL CHECK (max_concurrency BETWEEN 1 AND 64),
  max_queue integer NOT NULL CHECK (max_queue BETWEEN 0 AND 1000),
  enabled boolean NOT NULL,
  -- What the adapter said of itself at its last successful capabilities call.
  model text NOT NULL DEFAULT '',
  model_version text NOT NULL DEFAULT '',
  tasks text[] NOT NULL DEFAULT '{}',
  supported_labels text[] NOT NULL DEFAULT '{}',
  max_in_flight integer NOT NULL DEFAULT 0,
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CHECK ((token_sealed IS NULL) = (token_kek_id IS NULL))
);
CREATE UNIQUE INDEX adapters_name_key ON adapters (lower(name));

-- One camera's frames to one adapter, for one task, every frame_interval_ms.
CREATE TABLE adapter_bindings (
  id uuid PRIMARY KEY,
  camera_id uuid NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
  adapter_id uuid NOT NULL REFERENCES adapters (id) ON DELETE CASCADE,
  task text NOT NULL DEFAULT '' CHECK (char_length(task) <= 64),
  frame_interval_ms integer NOT NULL CHECK (frame_interval_ms BETWEEN 200 AND 3600000),
  regions jsonb NOT NULL DEFAULT '[]',
  min_confidence real NOT NULL DEFAULT 0 CHECK (min_confidence >= 0 AND min_confidence <= 1),
  labels text[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (camera_id, adapter_id)
);
CREATE INDEX adapter_bindings_adapter_idx ON adapter_bindings (adapter_id);

-- What adapters found. The adapter and binding may be deleted since: their ids stay.
CREATE TABLE detections (
  id uuid PRIMARY KEY,
  camera_id uuid NOT NULL REFERENCES cameras (id),
  adapter_id uuid NOT NULL,
  binding_id uuid,
  task text NOT NULL DEFAULT '',
  frame_time timestamptz NOT NULL,
  label text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 128),
  confidence real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
  box_x real NOT NULL,
  box_y real NOT NULL,
  box_width real NOT NULL,
  box_height real NOT NULL,
  attributes jsonb NOT NULL DEFAULT '{}',
  track_id text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL
);
CREATE INDEX detections_camera_time_idx ON detections (camera_id, frame_time DESC, id DESC);
CREATE INDEX detections_time_idx ON detections USING brin (frame_time);

GRANT SELECT, INSERT, UPDATE, DELETE ON adapters, adapter_bindings TO opennvr_runtime;
GRANT SELECT, INSERT, DELETE ON detections TO opennvr_runtime;
