from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import IdentityAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class DataSource(IdentityAuditBase):
    __tablename__ = "datasource"

    tenant_id: Mapped[str] = mapped_column(String(128))
    panel_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    # Secret values inside are sealed (see datasource.config); never return this as is.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    last_sync: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    sync_status: Mapped[str] = mapped_column(String(16), default="never")
