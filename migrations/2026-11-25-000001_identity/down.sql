DROP TABLE signing_keys;
DROP TABLE login_failures;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
REVOKE SELECT ON __diesel_schema_migrations FROM opennvr_runtime;
REVOKE USAGE ON SCHEMA public FROM opennvr_runtime;
