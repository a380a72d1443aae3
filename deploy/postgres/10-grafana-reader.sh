#!/bin/sh
# Run once by the postgres image when it creates the database: a read-only role for Grafana's PostgreSQL
# datasource. Tables created later by flockwatch's migrations are readable through the default privileges.
set -eu

psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set reader_password="$GRAFANA_DB_PASSWORD" --set db="$POSTGRES_DB" --set owner="$POSTGRES_USER" <<'SQL'
CREATE ROLE flockwatch_grafana LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE :"db" TO flockwatch_grafana;
GRANT USAGE ON SCHEMA public TO flockwatch_grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO flockwatch_grafana;
SQL
