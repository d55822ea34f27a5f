"""Stored totals of a panel's rows: counted by a job, read by pages instead of counting.

A page's `total` counts every matching row. At 1,000,000 rows a view's total took 168 ms
even with its index: the 83,334 rows of the view lie on every heap page of the panel, and
the count is a bitmap heap scan of all of them (benchmarks/README.md). Counted once per
change of the rows by a job (`rows/totals.py`), a page miss reads it in the same statement.

- `panel_row_version`: one number per panel, raised by the records writer in the
  transaction that changes the panel's rows. A total is valid only at the version it was
  counted at, so no stored total can outlive the rows it counted.
- `panel_row_total`: per panel and count key (what decides a count: live sources, cohort,
  filters, columns; `rows/services.py`) the total and the version it was counted at.

Both hold tenant data (a count says how many rows match a filter) and get the same policies
as every tenant table: the tenant's rows only, forced, and the owner's maintenance policy.
They are derived data: losing them costs a count, never a wrong answer.

Revision ID: 20261201_0013
Revises: 20261201_0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261201_0013"
down_revision: str | None = "20261201_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAINTENANCE = "current_setting('app.maintenance', true) = 'on'"
TABLES = {
    "panel_row_version": """
        CREATE TABLE panel_row_version (
          tenant_id VARCHAR(128) NOT NULL,
          panel_id BIGINT NOT NULL REFERENCES panel (id) ON DELETE CASCADE,
          version BIGINT NOT NULL,
          CONSTRAINT pk_panel_row_version PRIMARY KEY (tenant_id, panel_id)
        )
    """,
    "panel_row_total": """
        CREATE TABLE panel_row_total (
          tenant_id VARCHAR(128) NOT NULL,
          panel_id BIGINT NOT NULL REFERENCES panel (id) ON DELETE CASCADE,
          count_key TEXT COLLATE "C" NOT NULL,
          version BIGINT NOT NULL,
          total BIGINT NOT NULL,
          counted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          CONSTRAINT pk_panel_row_total PRIMARY KEY (tenant_id, panel_id, count_key)
        )
    """,
}


def upgrade() -> None:
    for table, create in TABLES.items():
        op.execute(create)
        op.execute(f"CREATE INDEX ix_{table}_panel ON {table} (panel_id)")  # the cascade's
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY tenant_isolation ON {table}
              USING (tenant_id = current_setting('app.tenant_id', true))
              WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
            """
        )
        op.execute(
            f"CREATE POLICY owner_maintenance ON {table} TO CURRENT_USER"
            f" USING ({MAINTENANCE}) WITH CHECK ({MAINTENANCE})"
        )
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO panels_app")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
