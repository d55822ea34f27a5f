"""A rows page's `total` is counted once per panel version and filters: cached apart from the
pages, so the next page, or the same filters in another order, runs only the page's query; a
push, a column change or a change of the view's filters counts again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Litestar

from tests.conftest import Caller
from tests.integration.rows_world import Client, RowsWorld, rows_world, statements

PATIENTS = [{"mrn": f"p{n}", "name": f"N{n}", "age": n, "ward": "AB"[n % 2]} for n in range(1, 9)]


@pytest.fixture
async def world(client: Client, builder: Caller) -> RowsWorld:
    world = await rows_world(client, builder, sources=1)
    await world.base("Name", "text", "name")
    await world.base("Age", "number", "age")
    await world.base("Ward", "text", "ward")
    await world.calculated("Older", "number", "Age + 10")
    await world.push(world.sources[0], PATIENTS)
    return world


def counts(seen: list[str]) -> list[str]:
    return [statement for statement in seen if "count(*)" in statement]


async def read(world: RowsWorld, app: Litestar, url: str, **params: Any) -> tuple[Any, int]:
    """The page and how many counts its read ran."""
    async with statements(app) as seen:
        page = await world.rows(url, **params)
    return page, len(counts(seen))


async def test_the_next_page_of_a_view_reuses_the_count(world: RowsWorld, app: Litestar) -> None:
    view = await world.view(
        ["Name", "Age"],
        sorts=[{"columnName": "Age", "direction": "desc"}],
        filters=[{"columnName": "Ward", "operator": "eq", "value": "A"}],
    )
    url = f"/api/views/{view}/rows"
    first, counted = await read(world, app, url, limit=2)
    assert (first["total"], counted) == (4, 1)
    async with statements(app) as seen:
        second = await world.rows(url, limit=2, offset=2)
    assert second["total"] == 4
    assert [row["id"] for row in second["rows"]] == ["p4", "p2"]
    assert counts(seen) == []
    assert any("LIMIT" in statement for statement in seen)  # the page itself was read
    # The same filter, ad hoc on the panel and in another order, is the same count.
    adhoc = json.dumps([{"columnName": "Ward", "operator": "eq", "value": "A"}])
    by_name, counted = await read(
        world, app, f"/api/panels/{world.panel}/rows", sort="Name:asc", filter=adhoc
    )
    assert (by_name["total"], counted) == (4, 0)
    # Other filters are another count.
    other = json.dumps([{"columnName": "Older", "operator": "gt", "value": 15}])
    filtered, counted = await read(world, app, f"/api/panels/{world.panel}/rows", filter=other)
    assert (filtered["total"], counted) == (3, 1)


async def test_pushes_columns_and_view_filters_count_again(world: RowsWorld, app: Litestar) -> None:
    view = await world.view(
        ["Name"], filters=[{"columnName": "Ward", "operator": "eq", "value": "A"}]
    )
    url = f"/api/views/{view}/rows"
    assert (await read(world, app, url, limit=2))[1] == 1
    assert (await read(world, app, url, limit=3))[1] == 0

    await world.push(world.sources[0], [{"mrn": "p10", "name": "N10", "age": 10, "ward": "A"}])
    page, counted = await read(world, app, url, limit=3)
    assert (page["total"], counted) == (5, 1)

    await world.calculated("Younger", "number", "Age - 1")
    page, counted = await read(world, app, url, limit=2)
    assert (page["total"], counted) == (5, 1)

    await world.call(
        "PUT",
        f"/api/views/{view}/filters",
        {"filters": [{"columnName": "Ward", "operator": "eq", "value": "B"}]},
    )
    page, counted = await read(world, app, url, limit=2)
    assert (page["total"], counted) == (4, 1)
    assert (await read(world, app, url, limit=2, offset=2))[1] == 0


async def test_a_reader_without_the_right_gets_no_cached_count(
    world: RowsWorld, app: Litestar, outsider: Caller
) -> None:
    view = await world.view(["Name"], filters=[{"columnName": "Age", "operator": "gt", "value": 2}])
    page = await world.rows(f"/api/views/{view}/rows", limit=1)
    assert page["total"] == 6
    response = await world.client.get(
        f"/api/views/{view}/rows", params={"limit": 2}, headers=outsider.headers
    )
    assert response.status_code == 404
    assert "total" not in response.text


async def test_a_page_miss_reads_the_view_and_the_panel_once_each(
    world: RowsWorld, app: Litestar
) -> None:
    """The cache's permission check, the page's load and the count's own check need the same
    readable view (or panel): one query serves them."""
    view = await world.view(
        ["Name"], filters=[{"columnName": "Ward", "operator": "eq", "value": "A"}]
    )
    async with statements(app) as seen:
        page = await world.rows(f"/api/views/{view}/rows", limit=2)
    assert page["total"] == 4
    readable_views = [s for s in seen if "FROM panel_view" in s and "panel_view.id =" in s]
    assert len(readable_views) == 2, readable_views  # the view's panel id, then the view
    async with statements(app) as seen:
        panel_page = await world.rows(f"/api/panels/{world.panel}/rows", limit=2)
    assert panel_page["total"] == 8
    readable_panels = [s for s in seen if "FROM panel " in s and "panel.id =" in s]
    assert len(readable_panels) == 1, readable_panels
