#!/usr/bin/env bash
# Creates the two application databases, each owned by its own role, on the first start of an empty Postgres
# volume (files in /docker-entrypoint-initdb.d run only then). Passwords come from the environment and are
# passed as psql variables (:'name' quotes them), never spliced into SQL text.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v airflow_pw="${AIRFLOW_DB_PASSWORD}" -v mlflow_pw="${MLFLOW_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE DATABASE mlflow OWNER mlflow;
SQL
echo "init-databases: created databases airflow and mlflow"
