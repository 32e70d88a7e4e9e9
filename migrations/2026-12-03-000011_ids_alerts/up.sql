-- Network intrusion alerts read from Suricata's EVE log, and where the reader stands in that log.

-- One Suricata `alert` record. Addresses are kept as the canonical text of the address; the original
-- line is kept whole for protocol details not mapped to columns.
CREATE TABLE ids_alerts (
  id uuid PRIMARY KEY,
  time timestamptz NOT NULL,
  ingest_time timestamptz NOT NULL,
  flow_id bigint NOT NULL DEFAULT 0,
  in_iface text NOT NULL DEFAULT '',
  community_id text NOT NULL DEFAULT '',
  src_ip text NOT NULL,
  src_port integer NOT NULL DEFAULT 0,
  dest_ip text NOT NULL,
  dest_port integer NOT NULL DEFAULT 0,
  proto text NOT NULL DEFAULT '',
  app_proto text NOT NULL DEFAULT '',
  action text NOT NULL DEFAULT '' CHECK (action IN ('', 'allowed', 'blocked')),
  gid bigint NOT NULL DEFAULT 0,
  signature_id bigint NOT NULL DEFAULT 0,
  rev bigint NOT NULL DEFAULT 0,
  signature text NOT NULL DEFAULT '',
  category text NOT NULL DEFAULT '',
  severity integer NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}',
  source_ip text NOT NULL DEFAULT '',
  target_ip text NOT NULL DEFAULT '',
  rule text NOT NULL DEFAULT '',
  -- Cameras whose address is src_ip or dest_ip when the alert was read.
  camera_ids uuid[] NOT NULL DEFAULT '{}',
  eve_json text NOT NULL
);
CREATE INDEX ids_alerts_time_idx ON ids_alerts (time DESC, id DESC);
CREATE INDEX ids_alerts_camera_ids_idx ON ids_alerts USING gin (camera_ids);

-- Where the reader of an EVE file stands: the file's identity (device and inode, so a rotation is
-- seen even across restarts) and the offset of the first byte not yet read. Advanced in the same
-- transaction as the alerts read up to it: no alert is lost or stored twice.
CREATE TABLE ids_eve_positions (
  path text PRIMARY KEY,
  device bigint NOT NULL,
  inode bigint NOT NULL,
  byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
  -- The bytes just before the offset: when they differ, the file was truncated and written again
  -- (copytruncate), even if it grew past the offset since.
  tail bytea NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, DELETE ON ids_alerts TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE ON ids_eve_positions TO opennvr_runtime;
