"""The records data sources bring in: one row per (source, key), the record as JSONB.

`content_hash` (MD5 of the record's canonical JSON, computed by the writer) lets an upsert skip
a record whose content did not change: no new row version, no WAL, no bloat.

The table references its panel through no foreign key, and its source through none either, on
purpose: a cascade would delete a million records inside the request that deletes their source
or panel. Instead every read joins the live `datasource` row (tenant, panel, source), so the
records of a deleted source are unreachable in the deleting transaction itself, and
`purge_orphaned_records` frees their space later, in batches. Source and panel ids come from
identity columns and are never reused, so an orphan can never reappear under a new source.
The writer locks the source row (`FOR KEY SHARE`) before writing, so a concurrent delete of the
source waits for the push, and a push after the delete finds no source.

Tenant isolation is the same as every other tenant table: row-level security, enabled and
forced, with the `owner_maintenance` policy of 20261130_0007.

Revision ID: 20261130_0008
Revises: 20261130_0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261130_0008"
down_revision: str | None = "20261130_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAINTENANCE = "current_setting('app.maintenance', true) = 'on'"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE source_record (
          tenant_id VARCHAR(128) NOT NULL,
          panel_id BIGINT NOT NULL,
          source_id BIGINT NOT NULL,
          key TEXT NOT NULL,
          record JSONB NOT NULL,
          content_hash BYTEA NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          CONSTRAINT pk_source_record PRIMARY KEY (tenant_id, source_id, key)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_source_record_panel_key ON source_record (tenant_id, panel_id, key)"
    )
    op.execute("ALTER TABLE source_record ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY tenant_isolation ON source_record
          USING (tenant_id = current_setting('app.tenant_id', true))
          WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
        """
    )
    op.execute(
        "CREATE POLICY owner_maintenance ON source_record TO CURRENT_USER"
        f" USING ({MAINTENANCE}) WITH CHECK ({MAINTENANCE})"
    )
    op.execute("ALTER TABLE source_record FORCE ROW LEVEL SECURITY")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON source_record TO panels_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS source_record")
