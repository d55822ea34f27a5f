"""CSV export of a view, and rows pages through the cache: ETags and 304s, HIT then MISS after
each change that alters rows, and who may read them, cached or not."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from panels.app import create_app
from panels.rows.export import FORMULA_STARTS
from panels.rows.planning import EXPORT_PLANS
from panels.rows.routes import content_disposition
from tests.conftest import Caller, CallerFactory, Services, build_settings
from tests.integration.rows_world import Client, RowsWorld, rows_world, statements

AWKWARD = [
    {"mrn": "a", "name": 'Lee, "Al"', "age": 40, "tags": ["x", "y"], "ok": True},
    {"mrn": "b", "name": "two\nlines\r\nhere", "age": 1.5, "seen": "2026-01-02T03:04:05Z"},
    {"mrn": "c", "name": "=HYPERLINK(1)", "age": -3, "born": "2000-02-29"},
    {"mrn": "d", "name": "", "ok": "false"},
    {"mrn": "e", "name": "-1+1", "tags": "solo"},
]


async def _world(client: Client, owner: Caller) -> RowsWorld:
    world = await rows_world(client, owner, sources=1)
    await world.base("Name, full", "text", "name")
    await world.base("Age", "number", "age")
    await world.base("Born", "date", "born")
    await world.base("Seen", "datetime", "seen")
    await world.base("OK", "boolean", "ok")
    await world.base("Tags", "multi_select", "tags")
    await world.push(world.sources[0], AWKWARD)
    return world


async def test_the_export_is_planned_for_its_values_and_its_whole_result(
    client: Client, builder: Caller
) -> None:
    """As every rows statement (a generic plan can use none of the panel's indexes), and for
    every row rather than a fast first one: the settings go just before the export's cursor."""
    world = await _world(client, builder)
    view = await world.view(["Age"], sorts=[{"columnName": "Age", "direction": "desc"}])
    async with statements(client.app) as sent:
        response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    assert response.status_code == 200, response.text
    [reading] = [i for i, s in enumerate(sent) if "FROM panel_row_visible" in s]
    assert sent[reading - 1] == str(EXPORT_PLANS)


def _read_csv(content: bytes) -> list[list[str]]:
    assert content.endswith(b"\r\n")
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


async def test_a_view_exports_as_rfc_4180_csv(client: Client, builder: Caller) -> None:
    world = await _world(client, builder)
    view = await world.view(
        ["Name, full", "Age", "Born", "Seen", "OK", "Tags"],
        sorts=[{"columnName": "Age", "direction": "desc"}],
        name='Ward 7 / "today"',
    )
    response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="Ward 7 _ _today.csv"; '
        "filename*=UTF-8''Ward%207%20%2F%20%22today%22.csv"
    )
    assert _read_csv(response.content) == [
        ["Name, full", "Age", "Born", "Seen", "OK", "Tags"],
        ['Lee, "Al"', "40", "", "", "true", '["x", "y"]'],
        ["two\nlines\r\nhere", "1.5", "", "2026-01-02T03:04:05.000Z", "", ""],
        ["'=HYPERLINK(1)", "-3", "2000-02-29", "", "", ""],
        ["", "", "", "", "false", ""],
        ["'-1+1", "", "", "", "", '["solo"]'],
    ]
    # Quoting: text always, so an empty text is "" and a null is nothing.
    assert b'\r\n"",,,,false,\r\n' in response.content
    assert "etag" not in response.headers


async def test_the_export_shows_the_values_of_the_pages(client: Client, builder: Caller) -> None:
    """The export computes its rows with a statement of its own (`compile_export`): each of
    its cells is the page route's value of that row, for base and calculated columns of
    every type, filtered and sorted alike."""
    world = await _world(client, builder)
    await world.base("Custom", "custom", "tags")
    await world.calculated("Twice", "number", "Age * 2")
    await world.calculated("Greeting", "text", 'IF(OK, "=yes", "plain")')
    await world.calculated("Old", "boolean", "Age > 1")
    await world.calculated("Day", "date", "Born")
    await world.calculated("Moment", "datetime", "Seen")
    await world.calculated("Chain", "number", "Twice + 1")
    shown = ["Name, full", "Age", "Born", "Seen", "OK", "Tags", "Custom"]
    shown += ["Twice", "Greeting", "Old", "Day", "Moment", "Chain"]
    view = await world.view(
        shown,
        sorts=[{"columnName": "Chain", "direction": "asc"}],
        filters=[{"columnName": "Name, full", "operator": "isNotNull"}],
    )
    page = await world.rows(f"/api/views/{view}/rows", limit=100)
    response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    header, *lines = _read_csv(response.content)
    assert header == shown
    assert len(page["rows"]) == 5
    as_json = {"Tags", "Custom"}  # multi-select and custom: their JSON text
    assert lines == [
        [_cell(row[name], name in as_json) for name in shown] for row in world.by_name(page)
    ]


def _cell(value: Any, as_json: bool) -> str:
    """The CSV cell of a page's JSON value, by the export's rules."""
    if value is None:
        return ""
    if as_json:
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format(Decimal(str(value)), "f")
    assert isinstance(value, str)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


async def test_the_csv_of_a_view_without_rows_is_its_header(
    client: Client, builder: Caller
) -> None:
    world = await rows_world(client, builder, sources=1)
    await world.base("=cmd", "text", "x")
    view = await world.view(["=cmd"])
    response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    assert response.content == b'"\'=cmd"\r\n'


async def test_a_wide_view_exports_every_column(client: Client, builder: Caller) -> None:
    world = await rows_world(client, builder, sources=1)
    names = [f"c{index}" for index in range(60)]  # past concat()'s 100 arguments per line
    for name in names:
        await world.base(name, "number" if name.endswith("7") else "text", name)
    await world.push(world.sources[0], [{"mrn": "a", **dict.fromkeys(names, 7)}])
    view = await world.view(names)
    response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    assert _read_csv(response.content) == [names, ["7"] * 60]
    assert response.content.count(b'"7"') == 54  # text cells quoted, number cells not


async def test_a_big_export_streams_every_row_in_order(client: Client, builder: Caller) -> None:
    world = await rows_world(client, builder, sources=1)
    await world.base("n", "number", "n")
    await world.calculated("twice", "number", "n * 2")
    count = 12_345  # more than two batches
    records = [{"mrn": f"k{i:06d}", "n": i} for i in range(count)]
    await world.push(world.sources[0], records)
    view = await world.view(
        ["twice"],
        sorts=[{"columnName": "n", "direction": "desc"}],
        filters=[
            {"columnName": "n", "operator": "gte", "value": 45},
            {"columnName": "twice", "operator": "notIn", "value": [100, 102]},
            {"columnName": "n", "operator": "between", "value": [3, 5], "logicalOperator": "or"},
        ],
    )
    response = await client.get(f"/api/views/{view}/rows.csv", headers=builder.headers)
    lines = response.content.split(b"\r\n")
    assert lines[0] == b'"twice"'
    assert lines[-1] == b""
    # (n >= 45 and twice not in (100, 102)) or n between 3 and 5
    kept = [i for i in range(count) if (i >= 45 and i not in (50, 51)) or 3 <= i <= 5]
    expected = [2 * i for i in reversed(kept)]
    assert [int(line) for line in lines[1:-1]] == expected


async def test_pages_send_etags_and_answer_304(client: Client, builder: Caller) -> None:
    world = await _world(client, builder)
    view = await world.view(["Age"])
    for url in (f"/api/panels/{world.panel}/rows", f"/api/views/{view}/rows"):
        first = await client.get(url, params={"limit": 2}, headers=builder.headers)
        etag = first.headers["etag"]
        again = await client.get(
            url, params={"limit": 2}, headers={**builder.headers, "If-None-Match": etag}
        )
        assert (again.status_code, again.headers["etag"], again.content) == (304, etag, b"")
        other = await client.get(
            url, params={"limit": 3}, headers={**builder.headers, "If-None-Match": etag}
        )
        assert other.status_code == 200


async def _cache_states(client: Client, caller: Caller, urls: list[str]) -> list[str]:
    states = []
    for url in urls:
        response = await client.get(url, headers=caller.headers)
        assert response.status_code == 200, response.text
        states.append(response.headers["x-cache"])
    return states


@pytest.fixture(scope="module")
async def sync_client(services: Services) -> AsyncIterator[Client]:
    """A second app with a worker in its process, on the same database and Redis."""
    app = create_app(build_settings(services, IN_PROCESS_WORKER="true"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    "change",
    ["push", "sync", "column", "cohort", "view sorts", "view filters", "source deleted"],
)
async def test_a_page_is_a_hit_until_a_change_alters_rows(
    client: Client,
    sync_client: Client,
    builder: Caller,
    member: Caller,
    share: Any,
    change: str,
) -> None:
    world = await _world(client, builder)
    panel = f"/api/panels/{world.panel}"
    file_config = {"format": "csv", "keyField": "mrn", "content": "mrn,age\nq,9\n"}
    file_source = await world.call(
        "POST", f"{panel}/datasources", {"type": "file", "config": file_config}, 201
    )
    view = await world.view(["Age"])
    await share(builder, "panel", world.panel)
    await share(builder, "view", view)
    urls = [f"{panel}/rows", f"/api/views/{view}/rows"]
    assert await _cache_states(client, builder, urls) == ["MISS", "MISS"]
    assert await _cache_states(client, builder, urls) == ["HIT", "HIT"]
    # Shared by every reader allowed (each one's right checked first).
    assert await _cache_states(client, member, urls) == ["HIT", "HIT"]
    if change == "push":
        await world.push(world.sources[0], [{"mrn": "z", "age": 1}])
    elif change == "sync":
        synced = await sync_client.post(
            f"/api/datasources/{file_source['id']}/sync?wait=true", headers=builder.headers
        )
        assert synced.json()["status"] == "success", synced.text
    elif change == "column":
        await world.base("More", "text", "more")
    elif change == "cohort":
        rule = {"logic": "AND", "conditions": [{"field": "Age", "operator": "gt", "value": 0}]}
        await world.call("PUT", panel, {"cohortRule": rule})
    elif change == "view sorts":
        await world.call("PUT", f"/api/views/{view}/sorts", {"sorts": [{"columnName": "Age"}]})
    elif change == "view filters":
        filters = [{"columnName": "Age", "operator": "isNotNull"}]
        await world.call("PUT", f"/api/views/{view}/filters", {"filters": filters})
    else:
        await world.call("DELETE", f"{panel}/datasources/{world.sources[0]}", ok=204)
    assert await _cache_states(client, builder, urls) == ["MISS", "MISS"]


async def test_who_may_read_rows_cached_or_not(
    client: Client, builder: Caller, make_caller: CallerFactory, share: Any
) -> None:
    world = await _world(client, builder)
    view = await world.view(["Age"])
    viewer = make_caller("vera", "user")
    view_only = make_caller("otto", "user")
    stranger = make_caller("sam", "user")
    await share(builder, "panel", world.panel, user=viewer.email)
    await share(builder, "view", view, user=view_only.email)
    panel_rows, view_rows = f"/api/panels/{world.panel}/rows", f"/api/views/{view}/rows"
    csv_url = f"/api/views/{view}/rows.csv"
    for _ in range(2):  # cold, then warm (the owner has just read every page)
        await _cache_states(client, builder, [panel_rows, view_rows])
        expected = {
            viewer: (200, 404, 404),  # the view is the owner's personal one
            view_only: (404, 200, 200),
            stranger: (404, 404, 404),
        }
        for caller, statuses in expected.items():
            got = []
            for url in (panel_rows, view_rows, csv_url):
                response = await client.get(url, headers=caller.headers)
                got.append(response.status_code)
                if response.status_code == 404:
                    assert "Age" not in response.text
            assert tuple(got) == statuses, caller.user
    # Publishing the view makes it and its panel readable by the whole tenant.
    await world.call("POST", f"/api/views/{view}/publish")
    for url in (panel_rows, view_rows, csv_url):
        assert (await client.get(url, headers=stranger.headers)).status_code == 200


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Ward 7", "attachment; filename=\"Ward 7.csv\"; filename*=UTF-8''Ward%207.csv"),
        ("Überblick: März", "attachment; filename=\"berblick_ M_rz.csv\"; "
         "filename*=UTF-8''%C3%9Cberblick%3A%20M%C3%A4rz.csv"),
        ("../..\\", "attachment; filename=\"view-7.csv\"; filename*=UTF-8''..%2F..%5C.csv"),
        ("a\r\nSet-Cookie: x", "attachment; filename=\"a_Set-Cookie_ x.csv\"; "
         "filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x.csv"),
    ],
)  # fmt: skip
def test_the_file_name_is_safe_in_a_header(name: str, header: str) -> None:
    assert content_disposition(name, 7) == header
