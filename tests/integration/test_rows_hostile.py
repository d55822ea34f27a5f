"""Generated `sort`, `filter` and `cursor` values on the rows routes: a page or a 400 naming the
parameter, never a 5xx; a cursor forged from a real one is read or refused, never a 5xx."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import Caller
from tests.integration.rows_world import Client, RowsWorld, rows_world
from tests.integration.test_hostile_input import assert_client_error, hostile


@pytest.fixture
async def world(client: Client, builder: Caller) -> RowsWorld:
    world = await rows_world(client, builder, sources=1)
    await world.base("Age", "number", "age")
    await world.base("Name", "text", "name")
    await world.base("Seen", "datetime", "seen")
    await world.calculated("Twice", "number", "Age * 2")
    await world.push(
        world.sources[0],
        [
            {"mrn": "a", "age": 3, "name": "x", "seen": "2026-01-01T00:00:00Z"},
            {"mrn": "b", "age": "9" * 100, "name": None},
            {"mrn": "c", "age": 1e300, "name": "\u00e9"},
        ],
    )
    return world


sort_texts = st.text(max_size=30) | st.sampled_from(
    ["Age:desc", "Twice:asc,Name", "Seen:desc,Age:asc", "Name:sideways", ",,,", ":"]
)
filter_texts = st.text(max_size=60) | st.lists(
    st.fixed_dictionaries(
        {
            "columnName": st.sampled_from(["Age", "Name", "Seen", "Twice", "nope"]),
            "operator": st.sampled_from(["eq", "gt", "between", "in", "contains", "isNull", "x"]),
        },
        optional={
            "value": st.none()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=10)
            | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31", "2026-01-01"])
            | st.lists(st.integers() | st.text(max_size=4), max_size=3)
        },
    ),
    max_size=3,
).map(json.dumps)


@given(sort=sort_texts, filter_text=filter_texts, cursor=st.none() | st.text(max_size=40))
@hostile
async def test_generated_sorts_filters_and_cursors_never_make_a_5xx(
    world: RowsWorld, sort: str, filter_text: str, cursor: str | None
) -> None:
    query = f"sort={quote(sort)}&filter={quote(filter_text)}"
    if cursor is not None:
        query += f"&cursor={quote(cursor)}"
    url = f"/api/panels/{world.panel}/rows?{query}"
    response = await world.client.get(url, headers=world.owner.headers)
    body = assert_client_error(response, 200, 400)
    if body:
        assert body["details"][0]["field"].split("[")[0] in (
            "query",  # a NUL anywhere in the query string
            "query.sort",
            "query.filter",
            "query.cursor",
        ), body


def _forge(document: Any) -> str:
    text = json.dumps(document)
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


forged_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(
        ["1E+999999999", "NaN", "-Infinity", "1e131071", "\u0000", "\ud800", "2026-01-01T00:00:00"]
    )
)


@given(
    sort=st.sampled_from(["Age:desc", "Twice:asc,Name:desc", "Seen:desc", ""]),
    values=st.lists(forged_values, max_size=3),
    key=st.text(max_size=8) | st.sampled_from(["\u0000", "\ud800"]) | st.integers(),
)
@example(sort="", values=[], key="\u0000")
@example(sort="", values=[], key="\ud800")
@example(sort="Age:desc", values=["1E+999999999"], key="a")
@example(sort="Age:desc", values=["1e131071"], key="a")
@example(sort="Twice:asc,Name:desc", values=["1", "\u0000"], key="a")
@example(sort="Seen:desc", values=["0001-01-01T00:00:00"], key="a")
@hostile
async def test_forged_cursors_are_read_or_a_400_naming_the_cursor(
    world: RowsWorld, sort: str, values: list[Any], key: Any
) -> None:
    url = f"/api/panels/{world.panel}/rows"
    params = {"sort": sort} if sort else {}
    first = await world.rows(url, limit=1, **params)
    real = json.loads(base64.urlsafe_b64decode(first["nextCursor"] + "=" * 4))
    forged = _forge({"s": real["s"], "v": values, "k": key})
    response = await world.client.get(
        url, params={**params, "cursor": forged}, headers=world.owner.headers
    )
    body = assert_client_error(response, 200, 400)
    if body:
        assert body["details"][0]["field"] == "query.cursor", body
