"""`panels seed` builds its demo through the API: the panel, both sources, columns and view."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.app import create_app
from panels.platform.auth import mint_token
from panels.platform.db import owner_engine
from panels.seed import (
    DEMO_PANEL,
    DEMO_TENANT,
    PATIENTS,
    build_demo,
    demographics_csv,
    first_rows,
    patients,
)
from tests.conftest import Services, build_settings


@pytest.fixture
async def demo_client(services: Services) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    # The demo's worker serves one queue with every job earlier tests left queued (their apps
    # ran no worker): hundreds of them, whose backlog made the demo's sync outwait its 60 s.
    # Production queues hold no such backlog; the demo is built as on a fresh server.
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM pgqueuer WHERE status = 'queued'"))
    finally:
        await engine.dispose()
    settings = build_settings(services, IN_PROCESS_WORKER="true")
    token = mint_token(settings.jwt, tenant=DEMO_TENANT, user="demo-admin", role="admin")
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_the_patients_are_the_same_on_every_run_and_fit_a_file_source() -> None:
    first, again = list(patients(50)), list(patients(50))
    assert first == again
    assert len({p["mrn"] for p in patients()}) == PATIENTS
    assert len(demographics_csv(list(patients())).encode()) < 1024 * 1024  # inline content cap


async def test_the_demo_is_built_and_a_second_run_replaces_it(
    demo_client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    steps: dict[str, int] = {}
    demo = await build_demo(demo_client, lambda step, done: steps.__setitem__(step, done))
    assert demo.records_synced == PATIENTS
    assert demo.scores_pushed == PATIENTS
    assert steps["risk scores (pushed records)"] == PATIENTS
    columns = (await demo_client.get(f"/api/panels/{demo.panel_id}/columns")).json()
    assert [c["name"] for c in columns["calculatedColumns"]] == ["Days in hospital", "Needs review"]
    view = (await demo_client.get(f"/api/views/{demo.view_id}")).json()
    assert view["isPublished"] is True
    assert [s["columnName"] for s in view["sort"]] == ["Risk", "Age"]
    # What `panels seed` prints: the view's first rows, riskiest first.
    page = await first_rows(demo_client, demo.view_id)
    names = [c["name"] for c in page["columns"]]
    assert names[:2] == ["Patient", "Age"]
    assert "Risk" in names
    over_65 = sum(1 for p in patients() if p["age"] >= 65)  # the view's filter
    assert page["total"] == over_65
    assert all(str(c["id"]) in page["rows"][0]["values"] for c in page["columns"])
    risk = str(next(c["id"] for c in page["columns"] if c["name"] == "Risk"))
    risks = [row["values"][risk] for row in page["rows"]]
    assert len(risks) == 5
    assert None not in risks
    assert risks == sorted(risks, reverse=True)

    again = await build_demo(demo_client, lambda step, done: None)
    listed = (await demo_client.get("/api/panels", params={"q": DEMO_PANEL})).json()
    assert [p["id"] for p in listed if p["name"] == DEMO_PANEL] == [again.panel_id]
