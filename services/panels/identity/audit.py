"""The audit list: who created, changed or removed users, API keys and grants, and which emails
were locked out of logging in.

Identity's own actions write their event in the request's transaction (`record`). Grant
changes are already recorded once, by the sharing feature's change record (`change.recording`);
rather than restating that in the sharing code, the audit event is derived from that record
when it is flushed (`_audit_grant_changes`), so both commit or roll back together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from advanced_alchemy.filters import OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from panels.change.entities import PanelChange
from panels.identity.entities import AuditEvent
from panels.identity.schemas import AuditAction, AuditEventRead, AuditPage
from panels.platform.errors import Forbidden
from panels.platform.http import JsonBody, encoded
from panels.platform.paging import get_page
from panels.platform.tenancy import RequestContext, tenant_statement


def record(
    session: AsyncSession,
    ctx: RequestContext,
    action: AuditAction,
    target_type: str,
    target_id: str | int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """An event of the caller's tenant, by the caller, in the request's transaction."""
    record_event(
        session, ctx.tenant_id, ctx.user_id, ctx.request_id, action, target_type, target_id, details
    )


def record_event(
    session: AsyncSession,
    tenant_id: str,
    actor: str | None,
    request_id: str | None,
    action: AuditAction,
    target_type: str,
    target_id: str | int | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            action=action,
            actor_user_id=actor,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details or {},
            request_id=request_id,
            created_at=datetime.now(UTC),
        )
    )


@event.listens_for(Session, "before_flush")
def _audit_grant_changes(session: Session, _context: Any, _instances: Any) -> None:
    for change in [c for c in session.new if isinstance(c, PanelChange)]:
        if change.entity_type != "grant":
            continue
        old, new = change.old_values or {}, change.new_values or {}
        action: AuditAction = (
            "grant_deleted" if not new else "grant_created" if not old else "grant_updated"
        )
        session.add(
            AuditEvent(
                tenant_id=change.tenant_id,
                action=action,
                actor_user_id=change.changed_by,
                target_type="grant",
                target_id=None if change.entity_id is None else str(change.entity_id),
                details={"description": change.description, "old": old, "new": new},
                request_id=change.request_id,
                created_at=change.changed_at,
            )
        )


class AuditRepository(SQLAlchemyAsyncRepository[AuditEvent]):
    model_type = AuditEvent


class AuditService(SQLAlchemyAsyncRepositoryService[AuditEvent, AuditRepository]):
    repository_type = AuditRepository

    def __init__(self, session: AsyncSession, ctx: RequestContext) -> None:
        super().__init__(session=session, statement=tenant_statement(AuditEvent, ctx))
        self.ctx = ctx

    async def page(
        self, action: AuditAction | None, since: datetime | None, limit: int, offset: int
    ) -> JsonBody:
        if not self.ctx.principal.is_admin:
            raise Forbidden("Only admins may read the audit list")
        conditions: list[Any] = []
        if action is not None:
            conditions.append(AuditEvent.action == action)
        if since is not None:
            conditions.append(AuditEvent.created_at >= since)
        events, total = await get_page(
            self,
            order=[
                OrderBy(field_name="created_at", sort_order="desc"),
                OrderBy(field_name="id", sort_order="desc"),
            ],
            limit=limit,
            offset=offset,
            conditions=conditions,
        )
        return encoded(
            AuditPage(
                events=[AuditEventRead.from_entity(e) for e in events],
                total=total,
                has_more=offset + len(events) < total,
            )
        )
