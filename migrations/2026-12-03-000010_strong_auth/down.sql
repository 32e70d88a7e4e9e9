DROP TABLE api_keys;
DROP INDEX sessions_step_up_credential_id_idx;
DROP INDEX sessions_credential_id_idx;
ALTER TABLE sessions DROP COLUMN auth_methods, DROP COLUMN credential_id, DROP COLUMN step_up_credential_id;
DROP TABLE auth_ceremonies;
DROP TABLE recovery_codes;
DROP TABLE credentials;
