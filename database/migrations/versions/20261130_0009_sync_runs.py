"""Sync runs, and the job queue that runs them.

`sync_run` is the status and history of every sync of a data source (the API's sync jobs): a
tenant-owned table like the others (composite foreign key to its source, row-level security
forced, the owner's maintenance policy). At most one run per source is queued or running: a
partial unique index says so, whatever the code does.

Scheduled syncs (`config.syncIntervalMinutes`) are found across tenants by
`due_scheduled_syncs`, which runs as the owner in maintenance mode (SECURITY DEFINER) and
returns only ids: the worker then queues each in its tenant's own transaction.

Deleting a data source (or its panel, which cascades to it) queues a purge of the tenant's
orphaned records (`source_record` has no cascading key, see 20261130_0008): a trigger inserts
the job (`panels.purge-records`, run by `panels.sync.purge`) into pgqueuer's table in the
deleting transaction, one per deleting statement and tenant, for every path that deletes a
source. No dedupe key: a purge already running may have passed the newly orphaned records.

The queue is pgqueuer's own schema, installed here from the pgqueuer release this revision
was written with (its `render_install`), owned by the migrating role and usable by the
request role, which enqueues in the request's transaction. The queue is not tenant-owned:
its jobs carry only a tenant id and a run id, and the run is read under the tenant's policy.

Revision ID: 20261130_0009
Revises: 20261130_0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from pgqueuer.adapters.persistence import schema_ddl
from pgqueuer.domain.schema.declaration import target
from pgqueuer.domain.settings import DBSettings

revision: str = "20261130_0009"
down_revision: str | None = "20261130_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAINTENANCE = "current_setting('app.maintenance', true) = 'on'"
QUEUE_TABLES = ("pgqueuer", "pgqueuer_log", "pgqueuer_statistics", "pgqueuer_schedules")
QUEUE_SEQUENCES = (
    "pgqueuer_id_seq",
    "pgqueuer_log_id_seq",
    "pgqueuer_statistics_id_seq",
    "pgqueuer_schedules_id_seq",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sync_run (
          id UUID PRIMARY KEY,
          tenant_id VARCHAR(128) NOT NULL,
          panel_id BIGINT NOT NULL,
          datasource_id BIGINT NOT NULL,
          status VARCHAR(16) NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'success', 'error')),
          progress DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
          records_processed BIGINT NOT NULL DEFAULT 0,
          records_inserted BIGINT NOT NULL DEFAULT 0,
          records_updated BIGINT NOT NULL DEFAULT 0,
          records_deleted BIGINT NOT NULL DEFAULT 0,
          attempts INTEGER NOT NULL DEFAULT 0,
          error TEXT,
          requested_by VARCHAR(255),
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          started_at TIMESTAMPTZ,
          finished_at TIMESTAMPTZ,
          CONSTRAINT fk_sync_run_datasource FOREIGN KEY (tenant_id, panel_id, datasource_id)
            REFERENCES datasource (tenant_id, panel_id, id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_sync_run_active ON sync_run (tenant_id, datasource_id)"
        " WHERE status IN ('queued', 'running')"
    )
    op.execute(
        "CREATE INDEX ix_sync_run_datasource ON sync_run"
        " (tenant_id, datasource_id, created_at DESC, id)"
    )
    op.execute("ALTER TABLE sync_run ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY tenant_isolation ON sync_run
          USING (tenant_id = current_setting('app.tenant_id', true))
          WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
        """
    )
    op.execute(
        "CREATE POLICY owner_maintenance ON sync_run TO CURRENT_USER"
        f" USING ({MAINTENANCE}) WITH CHECK ({MAINTENANCE})"
    )
    op.execute("ALTER TABLE sync_run FORCE ROW LEVEL SECURITY")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON sync_run TO panels_app")
    op.execute(
        """
        CREATE FUNCTION due_scheduled_syncs(max_count integer, only_source bigint DEFAULT NULL)
        RETURNS TABLE (tenant_id varchar, datasource_id bigint)
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
        DECLARE
          previous text := current_setting('app.maintenance', true);
        BEGIN
          -- A function's own SET clause may not name a custom setting unless a superuser
          -- creates it; set_config is transaction-local, so the caller's value is restored.
          PERFORM set_config('app.maintenance', 'on', true);
          RETURN QUERY
            SELECT d.tenant_id, d.id FROM datasource d
            WHERE d.type IN ('api', 'database')
              AND jsonb_typeof(d.config -> 'syncIntervalMinutes') = 'number'
              AND (only_source IS NULL OR d.id = only_source)
              AND NOT EXISTS (
                SELECT FROM sync_run r
                WHERE r.tenant_id = d.tenant_id AND r.datasource_id = d.id
                  AND (r.status IN ('queued', 'running')
                       OR r.created_at > now() - make_interval(
                            mins => greatest((d.config ->> 'syncIntervalMinutes')::numeric, 5)::int)))
            ORDER BY d.id
            LIMIT max_count;
          PERFORM set_config('app.maintenance', coalesce(previous, ''), true);
        END
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION due_scheduled_syncs(integer, bigint) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION due_scheduled_syncs(integer, bigint) TO panels_app")

    for statement in _queue_install():
        op.execute(statement)
    for table in QUEUE_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO panels_app")
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {', '.join(QUEUE_SEQUENCES)} TO panels_app")
    op.execute(
        """
        CREATE FUNCTION queue_record_purge() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO pgqueuer (priority, entrypoint, payload, status)
          SELECT DISTINCT 0, 'panels.purge-records',
                 convert_to(json_build_object('tenantId', gone.tenant_id)::text, 'UTF8'),
                 'queued'::pgqueuer_status
          FROM gone;
          RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER tg_datasource_purge_records AFTER DELETE ON datasource"
        " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_record_purge()"
    )


def _queue_install() -> list[str]:
    """pgqueuer's install script (`schema_ddl.render_install`), one statement at a time: the
    driver runs a single statement per call."""
    settings = DBSettings()
    schema = target(settings)
    return [
        *(schema_ddl.render_enum(entry, settings) for entry in schema.enums),
        *(schema_ddl.render_table(entry, settings) for entry in schema.tables),
        *(schema_ddl.render_index(entry, settings) for entry in schema.indexes),
        *(schema_ddl.render_function(entry, settings) for entry in schema.functions),
        *(schema_ddl.render_trigger(entry, settings) for entry in schema.triggers),
    ]


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tg_datasource_purge_records ON datasource")
    op.execute("DROP FUNCTION IF EXISTS queue_record_purge()")
    for statement in schema_ddl.render_uninstall(DBSettings()).splitlines():
        op.execute(statement)
    op.execute("DROP FUNCTION IF EXISTS due_scheduled_syncs(integer, bigint)")
    op.execute("DROP TABLE IF EXISTS sync_run")
