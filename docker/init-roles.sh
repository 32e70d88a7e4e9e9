#!/bin/sh
# Creates OpenNVR's database and roles in the compose PostgreSQL (runs once, at cluster creation):
# an owner that runs migrations (no superuser) and a runtime login in the opennvr_runtime group.
set -eu
OWNER_PW="$(cat /run/secrets/db_owner_password)"
APP_PW="$(cat /run/secrets/db_app_password)"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE opennvr_runtime NOLOGIN;
CREATE ROLE opennvr_owner LOGIN NOSUPERUSER PASSWORD '${OWNER_PW}';
CREATE ROLE opennvr_app LOGIN NOSUPERUSER PASSWORD '${APP_PW}' IN ROLE opennvr_runtime;
CREATE DATABASE opennvr OWNER opennvr_owner;
SQL
