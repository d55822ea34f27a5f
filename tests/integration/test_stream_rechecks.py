"""Rechecks of the stream's sockets are batched: many sockets of a tenant, one query."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar import Litestar
from sqlalchemy import event

from panels.change.stream_access import Rechecks
from panels.platform.db import database_config
from panels.platform.runtime import Runtime
from panels.settings import Settings
from tests.conftest import Caller, CallerFactory


async def test_rechecks_asked_together_share_one_query(
    app: Litestar,
    settings: Settings,
    builder: Caller,
    make_caller: CallerFactory,
    create_panel: Callable[..., Any],
    share: Callable[..., Any],
) -> None:
    runtime: Runtime = app.state.runtime
    panel = await create_panel(builder)
    other = await create_panel(builder, name="Not shared")
    readers = [make_caller(f"reader-{i}", "user") for i in range(30)]
    for reader in readers[:10]:
        await share(builder, "panel", panel["id"], user=reader.email)
    principals = [await runtime.verifier.verify(c.token) for c in readers]
    # An engine of its own: the app's runs on the test client's event loop.
    db = database_config(settings.database_url, pool_size=2)
    rechecks = Rechecks(db)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    engine = db.get_engine()
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(
            *(rechecks.readable(p, {panel["id"], other["id"]}) for p in principals)
        )
    finally:
        await engine.dispose()
    assert [a.panels for a in answers] == [{panel["id"]}] * 10 + [set()] * 20
    assert len([s for s in statements if "FROM panel" in s]) == 1
