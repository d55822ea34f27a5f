"""A source's records, one per key (migration 20261130_0008 explains the missing foreign keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column


class SourceRecord(DefaultBase):
    """Reachable only while its data source exists: every read joins the live source row."""

    __tablename__ = "source_record"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    panel_id: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # MD5 of the record's canonical JSON (records.writer): unchanged records are not rewritten.
    content_hash: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
