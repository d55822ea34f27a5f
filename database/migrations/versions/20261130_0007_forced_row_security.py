"""Row-level security binds the tables' owner too, except for deliberate maintenance.

`FORCE ROW LEVEL SECURITY` makes the policies apply to the owner (the role that runs the
migrations), so a connection as that role sees and writes no tenant's rows by accident (an API
misconfigured to log in as the owner, a psql session). Maintenance that must cross tenants
(data migrations, a retention job) sets `app.maintenance = on`: the `owner_maintenance` policy
honours it for the migrating role only, and `panels db` sets it on its own connections. The
request role, which is not a member of the owner role, gains nothing from setting it.

The API reads `alembic_version` at start (as a login role that is only a member of
`panels_app`), so the request role may read it.

Revision ID: 20261130_0007
Revises: 20261130_0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261130_0007"
down_revision: str | None = "20261130_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "panel",
    "panel_change",
    "idempotency_key",
    "datasource",
    "panel_column",
    "panel_view",
    "view_sort",
    "view_filter",
    "view_notification",
    "resource_grant",
)
MAINTENANCE = "current_setting('app.maintenance', true) = 'on'"


def upgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(
            f"CREATE POLICY owner_maintenance ON {table} TO CURRENT_USER"
            f" USING ({MAINTENANCE}) WITH CHECK ({MAINTENANCE})"
        )
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute("GRANT SELECT ON alembic_version TO panels_app")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON alembic_version FROM panels_app")
    for table in reversed(TENANT_TABLES):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY owner_maintenance ON {table}")
