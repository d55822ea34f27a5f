"""A panel with data for the rows route tests: two custom sources whose records share keys,
base columns on each, a calculated column, and helpers to push records and read rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from tests.conftest import Caller

Client = AsyncTestClient[Litestar]


@asynccontextmanager
async def statements(app: Litestar) -> AsyncIterator[list[str]]:
    """The SQL the app runs meanwhile."""
    seen: list[str] = []
    engine = app.state.runtime.db.get_engine().sync_engine

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass
class RowsWorld:
    client: Client
    owner: Caller
    panel: int
    sources: list[int]
    columns: dict[str, int] = field(default_factory=dict)

    async def call(self, method: str, url: str, body: Any = None, ok: int = 200) -> Any:
        response = await self.client.request(method, url, json=body, headers=self.owner.headers)
        assert response.status_code == ok, (method, url, response.status_code, response.text)
        return response.json() if response.content else None

    async def push(self, source: int, records: list[dict[str, Any]], mode: str = "upsert") -> Any:
        return await self.call(
            "POST",
            f"/api/panels/{self.panel}/datasources/{source}/records?mode={mode}",
            records,
        )

    async def base(self, name: str, kind: str, field_path: str, source: int | None = None) -> int:
        body: dict[str, Any] = {"name": name, "type": kind, "sourceField": field_path}
        if source is not None:
            body["dataSourceId"] = source
        column = await self.call("POST", f"/api/panels/{self.panel}/columns/base", body, 201)
        self.columns[name] = column["id"]
        return int(column["id"])

    async def calculated(self, name: str, kind: str, formula: str) -> int:
        body = {"name": name, "type": kind, "formula": formula}
        column = await self.call("POST", f"/api/panels/{self.panel}/columns/calculated", body, 201)
        self.columns[name] = column["id"]
        return int(column["id"])

    async def view(
        self,
        visible: list[str],
        sorts: list[dict[str, Any]] | None = None,
        filters: list[dict[str, Any]] | None = None,
        name: str = "Worklist",
    ) -> int:
        body = {
            "panelId": self.panel,
            "name": name,
            "visibleColumns": [str(self.columns[n]) for n in visible],
        }
        view = await self.call("POST", "/api/views", body, 201)
        if sorts is not None:
            await self.call("PUT", f"/api/views/{view['id']}/sorts", {"sorts": sorts})
        if filters is not None:
            await self.call("PUT", f"/api/views/{view['id']}/filters", {"filters": filters})
        return int(view["id"])

    async def rows(self, url: str, caller: Caller | None = None, **params: Any) -> Any:
        response = await self.client.get(url, params=params, headers=(caller or self.owner).headers)
        assert response.status_code == 200, (url, params, response.text)
        return response.json()

    def by_name(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """The page's rows as {"id", column name: value}."""
        names = {str(c["id"]): c["name"] for c in page["columns"]}
        return [
            {"id": row["id"], **{names[k]: v for k, v in row["values"].items()}}
            for row in page["rows"]
        ]


async def rows_world(client: Client, owner: Caller, sources: int = 2) -> RowsWorld:
    panel = await client.post("/api/panels", json={"name": "Ward 7"}, headers=owner.headers)
    assert panel.status_code == 201, panel.text
    world = RowsWorld(client, owner, panel.json()["id"], [])
    for _ in range(sources):
        source = await world.call(
            "POST",
            f"/api/panels/{world.panel}/datasources",
            {"type": "custom", "config": {"keyField": "mrn"}},
            201,
        )
        world.sources.append(source["id"])
    return world
