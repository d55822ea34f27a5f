from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import IdentityAuditBase, IdentityBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship


class ViewSort(IdentityBase):
    __tablename__ = "view_sort"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    view_id: Mapped[int] = mapped_column(BigInteger)
    column_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(4))
    sort_order: Mapped[int] = mapped_column(Integer)


class ViewFilter(IdentityBase):
    __tablename__ = "view_filter"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    view_id: Mapped[int] = mapped_column(BigInteger)
    column_id: Mapped[int] = mapped_column(BigInteger)
    operator: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSONB(none_as_null=True), nullable=True)
    logical_operator: Mapped[str] = mapped_column(String(3))
    position: Mapped[int] = mapped_column(Integer)


class PanelView(IdentityAuditBase):
    __tablename__ = "panel_view"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    owner_user_id: Mapped[str] = mapped_column(String(255))
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    published_by: Mapped[str | None] = mapped_column(String(255))
    visible_columns: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)

    # Never loaded behind a caller's back: every query that needs them says so.
    sorts: Mapped[list[ViewSort]] = relationship(
        ViewSort,
        primaryjoin=lambda: PanelView.id == foreign(ViewSort.view_id),
        order_by=lambda: (ViewSort.sort_order, ViewSort.id),
        cascade="all, delete-orphan",
        lazy="raise",
    )
    filters: Mapped[list[ViewFilter]] = relationship(
        ViewFilter,
        primaryjoin=lambda: PanelView.id == foreign(ViewFilter.view_id),
        order_by=lambda: ViewFilter.position,
        cascade="all, delete-orphan",
        lazy="raise",
    )
