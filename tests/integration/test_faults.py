"""Faults the service must survive: a commit that fails, keys served by a JWKS endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from panels.panel.entities import Panel
from tests.conftest import Caller

Client = AsyncTestClient[Litestar]


@pytest.fixture
def failing_commit() -> Iterator[None]:
    """Make the commit of any transaction holding a panel named "explode" fail."""

    def mark(session: Session, _context: Any) -> None:
        if any(isinstance(o, Panel) and o.name == "explode" for o in session.new):
            session.info["explode"] = True

    def explode(session: Session) -> None:
        if session.info.pop("explode", False):
            raise RuntimeError("injected commit failure")

    event.listen(Session, "after_flush", mark)
    event.listen(Session, "before_commit", explode)
    yield
    event.remove(Session, "after_flush", mark)
    event.remove(Session, "before_commit", explode)


async def test_a_failed_commit_is_a_500_and_writes_nothing(
    client: Client, builder: Caller, failing_commit: None
) -> None:
    response = await client.post("/api/panels", json={"name": "explode"}, headers=builder.headers)
    assert response.status_code == 500
    body = response.json()
    assert body["statusCode"] == 500
    assert body["requestId"] == response.headers["x-request-id"]
    assert "location" not in response.headers
    assert "injected" not in response.text
    listed = await client.get("/api/panels", headers=builder.headers)
    assert listed.json() == []
    changes = await client.get("/api/changes/panels", headers=builder.headers)
    assert changes.json()["total"] == 0
