-- The audit trail: append-only, hash-chained, with signed checkpoints.
-- Every audited transaction locks the one-row chain head, takes the next sequence and links its entry
-- to the head's hash, so entries chain in commit order without gaps even under concurrent writers.
CREATE TABLE audit_chain_head (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  sequence bigint NOT NULL,
  hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_chain_head (id, sequence, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_events (
  sequence bigint PRIMARY KEY CHECK (sequence > 0),
  id uuid NOT NULL UNIQUE,
  time timestamptz NOT NULL,
  actor_type text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
  actor_user_id text NOT NULL DEFAULT '',
  actor_username text NOT NULL DEFAULT '',
  actor_api_key_id text NOT NULL DEFAULT '',
  actor_session_id text NOT NULL DEFAULT '',
  client_address text NOT NULL DEFAULT '',
  user_agent text NOT NULL DEFAULT '',
  action text NOT NULL,
  method text NOT NULL DEFAULT '',
  target_type text NOT NULL DEFAULT '',
  target_id text NOT NULL DEFAULT '',
  camera_id text NOT NULL DEFAULT '',
  result text NOT NULL CHECK (result IN ('success', 'denied', 'failed')),
  -- The call's gRPC status code name: OK, or the code it was refused or failed with.
  code text NOT NULL CHECK (code ~ '^[A-Z_]+$'),
  reason text NOT NULL DEFAULT '',
  -- Canonical JSON object of strings (sorted keys), exactly the bytes that were hashed.
  details text NOT NULL DEFAULT '{}',
  request_id text NOT NULL DEFAULT '',
  prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
  hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX audit_events_time_brin ON audit_events USING brin (time);
CREATE INDEX audit_events_action_idx ON audit_events (action text_pattern_ops, sequence);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, sequence);
CREATE INDEX audit_events_target_idx ON audit_events (target_type, target_id, sequence);

-- Ed25519 keys that sign checkpoints (not the token-signing keys); private halves sealed.
CREATE TABLE audit_signing_keys (
  kid text PRIMARY KEY,
  public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
  private_key_sealed bytea NOT NULL,
  kek_id text NOT NULL,
  created_at timestamptz NOT NULL,
  retired_at timestamptz
);

CREATE TABLE audit_checkpoints (
  sequence bigint PRIMARY KEY,
  hash bytea NOT NULL CHECK (octet_length(hash) = 32),
  time timestamptz NOT NULL,
  key_id text NOT NULL REFERENCES audit_signing_keys (kid) ON DELETE RESTRICT,
  signature bytea NOT NULL CHECK (octet_length(signature) = 64)
);

-- Second wall behind the privileges: the trail refuses UPDATE, DELETE and TRUNCATE from anyone.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO opennvr_runtime;
GRANT SELECT, UPDATE ON audit_chain_head TO opennvr_runtime;
GRANT SELECT, INSERT ON audit_signing_keys TO opennvr_runtime;
GRANT UPDATE (retired_at) ON audit_signing_keys TO opennvr_runtime;
