"""What the sockets of `/api/ws` may still read, asked of PostgreSQL for many sockets at once.

`readable_now` answers, in one query, which of the panels each principal follows it may read
and which views of those panels. `Rechecks` batches the questions of the sockets of one
process: a socket that has seen an event that may change access waits for a recheck before it
delivers anything else. Requests that come before a tenant's recheck starts share it; one that
comes while a recheck is under way waits for the next, which starts after the request and so
sees the commit whose event prompted it. A burst of grant changes thus costs a few queries per
tenant and process, however many sockets follow it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from advanced_alchemy.config import SQLAlchemyAsyncConfig
from sqlalchemy import BigInteger, Select, any_, bindparam, literal, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from panels.acl.permissions import readable_panels, readable_views
from panels.change.realtime import ChangeEvent
from panels.panel.entities import Panel
from panels.platform.auth import Principal
from panels.platform.db import bind_tenant
from panels.view.entities import PanelView

# Changes after which a principal may read fewer (or more) panels or views than before.
ACCESS_CHANGE_TYPES = frozenset(
    {"view_published", "view_unpublished", "view_deleted", "panel_deleted"}
)
# Principals per statement: each adds two branches to the union, and a statement of thousands
# of branches costs more to plan than several smaller ones.
PRINCIPALS_PER_QUERY = 200


@dataclass(slots=True)
class Readable:
    panels: set[int] = field(default_factory=set)
    views: set[int] = field(default_factory=set)


async def readable_now(
    session: AsyncSession, tenant_id: str, asked: Sequence[tuple[Principal, Collection[int]]]
) -> list[Readable]:
    """For each (principal, panel ids): those panels it may read, and the views of them it may
    read (none listed for admins, who see every view)."""
    answers = [Readable() for _ in asked]
    for start in range(0, len(asked), PRINCIPALS_PER_QUERY):
        branches: list[Select[int, bool, int]] = []
        for index in range(start, min(start + PRINCIPALS_PER_QUERY, len(asked))):
            principal, panel_ids = asked[index]
            if panel_ids:
                branches += _branches(index, tenant_id, principal, sorted(panel_ids))
        if branches:
            for index, is_panel, resource_id in await session.execute(union_all(*branches)):
                answer = answers[index]
                (answer.panels if is_panel else answer.views).add(resource_id)
    return answers


def _branches(
    index: int, tenant_id: str, principal: Principal, panel_ids: list[int]
) -> list[Select[int, bool, int]]:
    # One array parameter rather than one parameter per id: a batch may name many panels.
    followed = bindparam(f"panels_{index}", panel_ids, type_=ARRAY(BigInteger))
    branches = [
        select(literal(index), literal(True), Panel.id).where(
            Panel.tenant_id == tenant_id, Panel.id == any_(followed), *readable_panels(principal)
        )
    ]
    if not principal.is_admin:
        branches.append(
            select(literal(index), literal(False), PanelView.id).where(
                PanelView.tenant_id == tenant_id,
                PanelView.panel_id == any_(followed),
                *readable_views(principal),
            )
        )
    return branches


def may_change_access(event: ChangeEvent) -> bool:
    change = event.change
    return change.entity_type == "grant" or change.change_type in ACCESS_CHANGE_TYPES


class _Batch:
    def __init__(self) -> None:
        self.asked: dict[Principal, set[int]] = {}
        self.answered: asyncio.Future[dict[Principal, Readable]] = (
            asyncio.get_running_loop().create_future()
        )


class Rechecks:
    """One process's pending rechecks, one batch at a time per tenant."""

    def __init__(self, db: SQLAlchemyAsyncConfig) -> None:
        self._db = db
        self._waiting: dict[str, _Batch] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    async def readable(self, principal: Principal, panel_ids: Collection[int]) -> Readable:
        tenant_id = principal.tenant_id
        batch = self._waiting.get(tenant_id)
        if batch is None:
            batch = self._waiting[tenant_id] = _Batch()
        batch.asked.setdefault(principal, set()).update(panel_ids)
        if tenant_id not in self._running:
            self._running[tenant_id] = asyncio.create_task(self._run(tenant_id))
        # Shielded: a socket that closes while waiting must not cancel the others' answer.
        answers = await asyncio.shield(batch.answered)
        return answers[principal]

    async def _run(self, tenant_id: str) -> None:
        try:
            while (batch := self._waiting.pop(tenant_id, None)) is not None:
                try:
                    answers = await self._check(tenant_id, batch)
                except Exception as exc:
                    batch.answered.set_exception(exc)
                    batch.answered.exception()  # retrieved here: its waiters may all be gone
                else:
                    batch.answered.set_result(answers)
        finally:
            del self._running[tenant_id]

    async def _check(self, tenant_id: str, batch: _Batch) -> dict[Principal, Readable]:
        asked = list(batch.asked.items())
        async with self._db.get_session() as session:
            bind_tenant(session, tenant_id)
            answers = await readable_now(session, tenant_id, asked)
        return {principal: answer for (principal, _), answer in zip(asked, answers, strict=True)}
