from __future__ import annotations

from advanced_alchemy.base import IdentityAuditBase
from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

EVERYONE = "_all"


class Grant(IdentityAuditBase):
    """A permission on a panel or a view, for one user (email or user id) or `_all`."""

    __tablename__ = "resource_grant"

    tenant_id: Mapped[str] = mapped_column(String(128))
    resource_type: Mapped[str] = mapped_column(String(8))
    resource_id: Mapped[int] = mapped_column(BigInteger)
    user_email: Mapped[str] = mapped_column(String(320))
    permission: Mapped[str] = mapped_column(String(8))
