"""The append-only change log. It has no foreign key to what it describes, so it outlives it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import IdentityBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class PanelChange(IdentityBase):
    __tablename__ = "panel_change"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    change_type: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    affected_column: Mapped[str | None] = mapped_column(String(255))
    old_values: Mapped[dict[str, Any]] = mapped_column(JSONB)
    new_values: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(128))
    # The view a record is about (the view itself or a grant on it), if any: such records are
    # visible only to those who may read that view.
    view_id: Mapped[int | None] = mapped_column(BigInteger)


class ViewNotification(IdentityBase):
    """What a change did to a view, for the view's owner."""

    __tablename__ = "view_notification"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    view_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(255))
    panel_change_id: Mapped[int] = mapped_column(BigInteger)
    impact: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    is_read: Mapped[bool] = mapped_column(Boolean, default=False)
    read_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
