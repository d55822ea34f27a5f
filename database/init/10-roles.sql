-- The database roles Panels runs with, created once by a superuser before the first migration.
-- compose.yaml runs this file on the first start of an empty volume (the postgres image runs
-- /docker-entrypoint-initdb.d/*.sql as its superuser, in POSTGRES_DB);
-- scripts/docker-equivalent.sh runs it the same way. Elsewhere, create the same roles with
-- passwords of your own.
--
--   panels      owns the database and its tables; runs `panels db upgrade`. Not a superuser,
--               so row-level security (forced on every tenant table) binds it too.
--   panels_api  the API's login: neither owner nor superuser, a member of panels_app only.
--   panels_app  the request role: every request transaction runs as it (SET LOCAL ROLE), so
--               the tenant policies apply whatever the login.

CREATE ROLE panels_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
CREATE ROLE panels LOGIN PASSWORD 'panels' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
CREATE ROLE panels_api LOGIN PASSWORD 'panels_api' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
-- The owner grants the request role its table privileges in the migrations.
GRANT panels_app TO panels WITH ADMIN OPTION;
GRANT panels_app TO panels_api;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO panels', current_database()); END $$;
