#!/bin/sh
# Creates OpenNVR's runtime roles in the compose PostgreSQL (runs once, at cluster creation).
set -eu
APP_PW="$(cat /run/secrets/db_app_password)"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE opennvr_runtime NOLOGIN;
CREATE ROLE opennvr_app LOGIN PASSWORD '${APP_PW}' IN ROLE opennvr_runtime;
SQL
