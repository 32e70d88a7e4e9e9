-- Identity: users, sessions, refresh tokens, login throttling, the signing key ring.
-- The server's queries run as members of the NOLOGIN group role opennvr_runtime, which gets only the
-- privileges it needs; the owner role that runs migrations owns the tables.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opennvr_runtime') THEN
    CREATE ROLE opennvr_runtime NOLOGIN;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO opennvr_runtime;
GRANT SELECT ON __diesel_schema_migrations TO opennvr_runtime;

CREATE TABLE users (
  id uuid PRIMARY KEY,
  username text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
  display_name text NOT NULL DEFAULT '',
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'auditor')),
  disabled boolean NOT NULL DEFAULT false,
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username);

-- A deleted user's sessions stay (revoked, user_id NULL) until housekeeping drops them, so the
-- revocation cache still sees them after a restart.
CREATE TABLE sessions (
  id uuid PRIMARY KEY,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL,
  last_refresh_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_reason text,
  client_address text NOT NULL DEFAULT '',
  user_agent text NOT NULL DEFAULT '',
  step_up_at timestamptz
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
  token_hash bytea PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  used_at timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Failed logins per (username, client address): throttling one address never locks out another.
CREATE TABLE login_failures (
  -- Counted before the password is checked, under a row lock, so parallel guesses cannot slip by.
  username text NOT NULL,
  client_address text NOT NULL,
  failures integer NOT NULL,
  last_failure_at timestamptz NOT NULL,
  blocked_until timestamptz NOT NULL,
  PRIMARY KEY (username, client_address)
);

-- Ed25519 signing keys; the private half is sealed with the operator's master key (never in clear).
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  purpose text NOT NULL CHECK (purpose IN ('access')),
  public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
  private_key_sealed bytea NOT NULL,
  kek_id text NOT NULL,
  created_at timestamptz NOT NULL,
  activates_at timestamptz NOT NULL
);
CREATE INDEX signing_keys_purpose_activates_idx ON signing_keys (purpose, activates_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions, refresh_tokens, login_failures TO opennvr_runtime;
GRANT SELECT, INSERT, DELETE ON signing_keys TO opennvr_runtime;
