from __future__ import annotations

from typing import Any

from advanced_alchemy.base import IdentityAuditBase
from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class Panel(IdentityAuditBase):
    __tablename__ = "panel"
    # (tenant_id, id) is what child tables reference, so a child can never cross tenants.
    __table_args__ = (UniqueConstraint("tenant_id", "id", name="uq_panel_tenant_id_id"),)

    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    cohort_rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # `metadata` is reserved on declarative classes; the column keeps the wire name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
