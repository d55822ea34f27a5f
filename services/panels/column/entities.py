from __future__ import annotations

from typing import Any

from advanced_alchemy.base import IdentityAuditBase
from sqlalchemy import BigInteger, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column


class PanelColumn(IdentityAuditBase):
    """Base and calculated columns share this table, and so one id space."""

    __tablename__ = "panel_column"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    column_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String))
    source_field: Mapped[str | None] = mapped_column(String(1024))
    data_source_id: Mapped[int | None] = mapped_column(BigInteger)
    formula: Mapped[str | None] = mapped_column(Text)
    # Ids, not names, so that a rename needs no rewrite here (the formula text is rewritten).
    dependency_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), default=list)

    @property
    def is_calculated(self) -> bool:
        return self.column_type == "calculated"
