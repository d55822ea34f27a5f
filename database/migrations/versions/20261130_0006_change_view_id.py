"""The view a change record is about, so that records about a private view stay private.

Records about a view (the view itself, and grants on it) are visible only to those who may
read that view. Existing records get their view from `entity_id` (view records) or from the
description that grant records have always carried ("Sharing of view 12: …").

Revision ID: 20261130_0006
Revises: 20261121_0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261130_0006"
down_revision: str | None = "20261121_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE panel_change ADD COLUMN view_id BIGINT")
    op.execute("UPDATE panel_change SET view_id = entity_id WHERE entity_type = 'view'")
    op.execute(
        """
        UPDATE panel_change
           SET view_id = substring(description FROM '^Sharing of view ([0-9]+):')::bigint
         WHERE entity_type = 'grant' AND description LIKE 'Sharing of view %'
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE panel_change DROP COLUMN view_id")
