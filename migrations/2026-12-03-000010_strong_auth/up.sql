-- Strong authentication: second factors (TOTP, passkeys), recovery codes, ceremonies in flight,
-- what each session signed in with, and API keys of service accounts.

-- A second factor of a user. TOTP seeds are sealed with the master key (owner
-- "credentials/<id>/totp"); passkeys keep their public key and signature counter as webauthn-rs
-- serialises them (nothing secret).
CREATE TABLE credentials (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('totp', 'passkey')),
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
  totp_secret_sealed bytea,
  totp_kek_id text,
  -- The last RFC 6238 time step accepted: a code is good once.
  totp_last_step bigint,
  passkey_credential_id bytea UNIQUE,
  passkey jsonb,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz,
  CHECK ((kind = 'totp') = (totp_secret_sealed IS NOT NULL AND totp_kek_id IS NOT NULL AND totp_last_step IS NOT NULL)),
  CHECK ((kind = 'passkey') = (passkey_credential_id IS NOT NULL AND passkey IS NOT NULL))
);
CREATE INDEX credentials_user_id_idx ON credentials (user_id);
CREATE UNIQUE INDEX credentials_one_totp_per_user ON credentials (user_id) WHERE kind = 'totp';

-- Single-use recovery codes, as SHA-256 of high-entropy codes.
CREATE TABLE recovery_codes (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash bytea NOT NULL CHECK (octet_length(code_hash) = 32),
  created_at timestamptz NOT NULL,
  used_at timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

-- Ceremonies in flight, each behind a single-use token stored as its SHA-256: MFA tickets of a
-- password login, passwordless logins, step-ups, passkey registrations and TOTP enrolments. Short
-- expiry; a pending TOTP seed is sealed (owner "auth_ceremonies/<id>/totp").
CREATE TABLE auth_ceremonies (
  id uuid PRIMARY KEY,
  token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  kind text NOT NULL CHECK (kind IN ('login_mfa', 'passkey_login', 'step_up', 'passkey_registration', 'totp_enrollment')),
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
  passkey_state jsonb,
  secret_sealed bytea,
  kek_id text,
  failures integer NOT NULL DEFAULT 0,
  -- Who started it (for passwordless starts, which anyone may make: bounded per address).
  client_address text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  CHECK ((secret_sealed IS NULL) = (kek_id IS NULL))
);
CREATE INDEX auth_ceremonies_expires_at_idx ON auth_ceremonies (expires_at);
CREATE INDEX auth_ceremonies_kind_client_idx ON auth_ceremonies (kind, client_address);

-- How each session signed in ("pwd", "otp", "rec", "hwk"), and which factor: deleting a credential
-- ends the sessions it signed in or stepped up (no foreign key: the sessions are revoked first).
ALTER TABLE sessions
  ADD COLUMN auth_methods text[] NOT NULL DEFAULT '{}',
  ADD COLUMN credential_id uuid,
  ADD COLUMN step_up_credential_id uuid;
CREATE INDEX sessions_credential_id_idx ON sessions (credential_id) WHERE credential_id IS NOT NULL;
CREATE INDEX sessions_step_up_credential_id_idx ON sessions (step_up_credential_id)
  WHERE step_up_credential_id IS NOT NULL;

-- API keys: credentials of service accounts. Only the SHA-256 of the secret is kept. A key holds its
-- role's permissions narrowed to `permissions` (empty = the role's), on `camera_ids` (empty = every
-- camera), and may call the step-up RPCs in `step_up_methods` only. Revoked keys stay listed.
-- `updated_at` moves on every change the server's key cache must see (not on last use).
CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
  secret_hash bytea NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
  secret_prefix text NOT NULL,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_by_username text NOT NULL,
  -- The key that created this one, if a key did: revoking a key revokes what it created.
  created_by_key uuid REFERENCES api_keys (id) ON DELETE RESTRICT,
  role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'auditor')),
  permissions text[] NOT NULL DEFAULT '{}',
  camera_ids uuid[] NOT NULL DEFAULT '{}',
  step_up_methods text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text,
  updated_at timestamptz NOT NULL
);
CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);
CREATE INDEX api_keys_updated_at_idx ON api_keys (updated_at);
CREATE INDEX api_keys_created_by_idx ON api_keys (created_by);
CREATE INDEX api_keys_created_by_key_idx ON api_keys (created_by_key) WHERE created_by_key IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON credentials, recovery_codes, auth_ceremonies TO opennvr_runtime;
GRANT SELECT, INSERT, UPDATE ON api_keys TO opennvr_runtime;
