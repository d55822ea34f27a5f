"""Faults the service must survive: a commit that fails, keys served by a JWKS endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, exists, select
from sqlalchemy.orm import Session

from panels.panel.entities import Panel
from panels.platform.db import TENANT_KEY
from tests.conftest import Caller

Client = AsyncTestClient[Litestar]


@pytest.fixture
def failing_commit() -> Iterator[None]:
    """Make the commit of any transaction that wrote a panel named "explode" fail.

    Asked of the database in the transaction itself, so it holds however the panel was
    written (an ORM flush or a statement of its own)."""

    def explode(session: Session) -> None:
        if session.info.get(TENANT_KEY) is None:
            return
        if session.scalar(select(exists().where(Panel.name == "explode"))):
            raise RuntimeError("injected commit failure")

    event.listen(Session, "before_commit", explode)
    yield
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
