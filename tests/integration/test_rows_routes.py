"""The rows routes: rows merged by key across sources, the cohort, a view's shape, ad-hoc sorts
and filters, paging by offset and by cursor, values on the wire, and hostile data."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Caller
from tests.integration.rows_world import Client, RowsWorld, rows_world

PATIENTS = [
    {"mrn": "p1", "name": "Ann", "age": 71, "born": "1955-03-02", "seen": "2026-11-30T08:15:00Z"},
    {"mrn": "p2", "name": "Bob", "age": "44", "born": "1982-13-01"},
    {"mrn": "p3", "name": "cy", "age": None, "seen": "2026-11-30T10:00:00.123456+01:00"},
    {"mrn": "p4", "name": "Dee", "age": 30, "ward": "A"},
]
RISKS = [
    {"mrn": "p1", "risk": 0.9, "active": True},
    {"mrn": "p5", "risk": 0.2, "active": "FALSE"},
]


@pytest.fixture
async def world(client: Client, builder: Caller) -> RowsWorld:
    world = await rows_world(client, builder)
    demographics, risks = world.sources
    await world.base("Name", "text", "name", demographics)
    await world.base("Age", "number", "age", demographics)
    await world.base("Born", "date", "born", demographics)
    await world.base("Seen", "datetime", "seen", demographics)
    await world.base("Risk", "number", "risk", risks)
    await world.base("Active", "boolean", "active")
    await world.calculated("Next age", "number", "Age + 1")
    await world.push(demographics, PATIENTS)
    await world.push(risks, RISKS)
    return world


async def test_records_sharing_a_key_are_one_row_and_values_have_their_types(
    world: RowsWorld,
) -> None:
    page = await world.rows(f"/api/panels/{world.panel}/rows")
    assert page["total"] == 5
    assert page["nextCursor"] is None
    assert [c["name"] for c in page["columns"]] == [
        "Name",
        "Age",
        "Born",
        "Seen",
        "Risk",
        "Active",
        "Next age",
    ]
    assert world.by_name(page) == [
        {
            "id": "p1",
            "Name": "Ann",
            "Age": 71,
            "Born": "1955-03-02",
            "Seen": "2026-11-30T08:15:00.000Z",
            "Risk": 0.9,
            "Active": True,
            "Next age": 72,
        },
        {
            "id": "p2",
            "Name": "Bob",
            "Age": 44,
            "Born": None,
            "Seen": None,
            "Risk": None,
            "Active": None,
            "Next age": 45,
        },
        {
            "id": "p3",
            "Name": "cy",
            "Age": None,
            "Born": None,
            "Seen": "2026-11-30T09:00:00.123456Z",
            "Risk": None,
            "Active": None,
            "Next age": None,
        },
        {
            "id": "p4",
            "Name": "Dee",
            "Age": 30,
            "Born": None,
            "Seen": None,
            "Risk": None,
            "Active": None,
            "Next age": 31,
        },
        {
            "id": "p5",
            "Name": None,
            "Age": None,
            "Born": None,
            "Seen": None,
            "Risk": 0.2,
            "Active": False,
            "Next age": None,
        },
    ]
