"""API.md's Data sources section: both path forms, per-type config, secrets, change records."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from panels.platform.db import owner_engine
from tests.conftest import Caller, CallerFactory, Services

Client = AsyncTestClient[Litestar]
# Hosts are public addresses written as such (93.184.215.0/24): a saved name must resolve,
# and these tests must not depend on DNS.
API_SOURCE = {
    "type": "api",
    "config": {
        "url": "https://93.184.215.14/patients?api_key=k-SECRET-1&page=1",
        "method": "POST",
        "headers": {"Authorization": "Bearer t-SECRET-2", "Accept": "application/json"},
        "itemsPath": "data.items",
        "keyField": "mrn",
    },
}
DATABASE_SOURCE = {
    "type": "database",
    "config": {
        "url": "postgresql://reader:p-SECRET-3@93.184.215.15:5432/ehr",
        "query": "SELECT id, name FROM patients",
    },
}
SECRETS = ("k-SECRET-1", "t-SECRET-2", "p-SECRET-3")


@pytest.fixture
async def panel(create_panel: Any, builder: Caller) -> dict[str, Any]:
    return dict(await create_panel(builder, name="Sources"))


async def add(
    client: Client, caller: Caller, panel_id: int, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"/api/panels/{panel_id}/datasources", json=body, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_and_list_each_type(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    bodies = [
        API_SOURCE,
        DATABASE_SOURCE,
        {"type": "file", "config": {"format": "csv", "content": "id,name\n1,Ann\n"}},
        {"type": "custom", "config": {}},
    ]
    created = [await add(client, builder, panel["id"], body) for body in bodies]
    api, database, file, custom = created
    assert api["panelId"] == panel["id"]
    assert api["syncStatus"] == "never"
    assert api["lastSync"] is None
    assert api["config"] == {
        "url": "https://93.184.215.14/patients?api_key=***&page=1",
        "method": "POST",
        "headers": {"Authorization": "***", "Accept": "***"},
        "itemsPath": "data.items",
        "keyField": "mrn",
    }
    assert database["config"]["url"] == "postgresql://reader:***@93.184.215.15:5432/ehr"
    assert database["config"]["keyField"] == "id"
    assert file["config"] == {"format": "csv", "keyField": "id", "content": "id,name\n1,Ann\n"}
    assert custom["config"] == {"keyField": "id"}
    listed = await client.get(f"/api/panels/{panel['id']}/datasources", headers=builder.headers)
    assert listed.status_code == 200
    assert listed.headers["x-total-count"] == "4"
    assert [s["id"] for s in listed.json()] == [s["id"] for s in created]


async def test_secrets_never_leave_in_plain_text(
    client: Client,
    builder: Caller,
    panel: dict[str, Any],
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    api = await add(client, builder, panel["id"], API_SOURCE)
    database = await add(client, builder, panel["id"], DATABASE_SOURCE)
    for url in (
        f"/api/panels/{panel['id']}/datasources",
        f"/api/panels/{panel['id']}/changes",
        "/api/changes/panels",
    ):
        texts.append((await client.get(url, headers=builder.headers)).text)
    changed = await client.put(
        f"/api/datasources/{api['id']}",
        json={"config": {**API_SOURCE["config"], "keyField": "id"}},
        headers=builder.headers,
    )
    texts.append(changed.text)
    texts.append(
        (
            await client.put(
                f"/api/datasources/{database['id']}", json=DATABASE_SOURCE, headers=builder.headers
            )
        ).text
    )
    texts.append(caplog.text)
    for secret in SECRETS:
        for body in texts:
            assert secret not in body
    engine = owner_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT config::text FROM datasource WHERE panel_id = :p"),
                    {"p": panel["id"]},
                )
            ).scalars()
            stored = " ".join(rows)
    finally:
        await engine.dispose()
    assert "enc:v1:" in stored
    for secret in SECRETS:
        assert secret not in stored


async def test_masked_secrets_sent_back_are_kept(
    client: Client, builder: Caller, panel: dict[str, Any], app: Litestar
) -> None:
    source = await add(client, builder, panel["id"], API_SOURCE)
    url = f"/api/panels/{panel['id']}/datasources/{source['id']}"
    masked = source["config"]
    changed = {**masked, "headers": {**masked["headers"], "Accept": "text/csv"}}
    response = await client.put(url, json={"config": changed}, headers=builder.headers)
    assert response.status_code == 200, response.text
    box = app.state.runtime.secrets
    assert response.json()["config"]["url"] == masked["url"]
    engine = owner_engine(str(app.state.runtime.settings.database_url))
    try:
        async with engine.connect() as connection:
            stored = (
                await connection.execute(
                    text("SELECT config FROM datasource WHERE id = :i"), {"i": source["id"]}
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert box.open(stored["url"]) == API_SOURCE["config"]["url"]
    assert box.open(stored["headers"]["Authorization"]) == "Bearer t-SECRET-2"
    assert box.open(stored["headers"]["Accept"]) == "text/csv"
    database = await add(client, builder, panel["id"], DATABASE_SOURCE)
    same_host = {
        "url": "postgresql://reader:***@93.184.215.15:5432/ehr2",
        "query": "SELECT 1 AS id",
    }
    response = await client.put(
        f"/api/datasources/{database['id']}", json={"config": same_host}, headers=builder.headers
    )
    assert response.json()["config"]["url"] == "postgresql://reader:***@93.184.215.15:5432/ehr2"


async def test_mask_without_a_stored_secret_is_400(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    source = await add(
        client, builder, panel["id"], {"type": "api", "config": {"url": "https://93.184.215.16/"}}
    )
    body = {"config": {"url": "https://93.184.215.16/", "headers": {"Authorization": "***"}}}
    response = await client.put(
        f"/api/datasources/{source['id']}", json=body, headers=builder.headers
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "body.config.headers.Authorization"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.type"),
        ({"type": "ftp", "config": {}}, "body.type"),
        ({"type": "api", "config": {"url": "ftp://files.example.com"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://127.0.0.1:8080/"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://localhost/"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://169.254.169.254/latest"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://[::1]/"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://10.1.2.3/"}}, "body.config.url"),
        ({"type": "api", "config": {"url": "http://2130706433/"}}, "body.config.url"),
        (
            {"type": "api", "config": {"url": "https://93.184.215.16", "method": "DELETE"}},
            "body.config.method",
        ),
        (
            {
                "type": "api",
                "config": {"url": "https://93.184.215.16", "headers": {"Bad Name": "v"}},
            },
            "body.config.headers",
        ),
        (
            {"type": "database", "config": {"url": "mysql://db/x", "query": "SELECT 1"}},
            "body.config.url",
        ),
        (
            {
                "type": "database",
                "config": {"url": "postgresql://93.184.215.15/x", "query": "DELETE FROM t"},
            },
            "body.config.query",
        ),
        (
            {
                "type": "database",
                "config": {
                    "url": "postgresql://93.184.215.15/x",
                    "query": "SELECT 1; DROP TABLE t",
                },
            },
            "body.config.query",
        ),
        (
            {
                "type": "database",
                "config": {
                    "url": "postgresql://93.184.215.15/x",
                    "query": "SELECT * INTO t2 FROM t",
                },
            },
            "body.config.query",
        ),
        ({"type": "file", "config": {"format": "xml"}}, "body.config.format"),
        ({"type": "file", "config": {}}, "body.config.format"),
        ({"type": "custom", "config": {"keyField": ""}}, "body.config.keyField"),
        ({"type": "custom", "config": None}, "body.config"),
    ],
)
async def test_config_is_checked_per_type(
    client: Client, builder: Caller, panel: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.post(
        f"/api/panels/{panel['id']}/datasources", json=body, headers=builder.headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"].startswith(field)


async def test_update_type_and_config(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    source = await add(client, builder, panel["id"], {"type": "custom", "config": {}})
    url = f"/api/datasources/{source['id']}"
    no_config = await client.put(url, json={"type": "file"}, headers=builder.headers)
    assert no_config.status_code == 400
    assert no_config.json()["details"][0]["field"] == "body.config"
    changed = await client.put(
        url, json={"type": "file", "config": {"format": "ndjson"}}, headers=builder.headers
    )
    assert changed.status_code == 200
    assert changed.json()["type"] == "file"
    assert changed.json()["config"] == {"format": "ndjson", "keyField": "id"}
    bad = await client.put(url, json={"config": {"format": "pdf"}}, headers=builder.headers)
    assert bad.status_code == 400


async def test_both_path_forms_and_panel_mismatch(
    client: Client, builder: Caller, panel: dict[str, Any], create_panel: Any
) -> None:
    other = await create_panel(builder, name="Other")
    source = await add(client, builder, panel["id"], {"type": "custom", "config": {}})
    wrong = f"/api/panels/{other['id']}/datasources/{source['id']}"
    assert (await client.put(wrong, json={}, headers=builder.headers)).status_code == 404
    assert (await client.delete(wrong, headers=builder.headers)).status_code == 404
    right = f"/api/panels/{panel['id']}/datasources/{source['id']}"
    assert (
        await client.put(right, json={"config": {"keyField": "k"}}, headers=builder.headers)
    ).status_code == 200
    assert (
        await client.delete(f"/api/datasources/{source['id']}", headers=builder.headers)
    ).status_code == 204
    assert (await client.delete(right, headers=builder.headers)).status_code == 404


async def test_permissions(
    client: Client, builder: Caller, make_caller: CallerFactory, panel: dict[str, Any], share: Any
) -> None:
    stranger = make_caller("sam", "builder")
    url = f"/api/panels/{panel['id']}/datasources"
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    await share(builder, "panel", panel["id"])
    assert (
        await client.post(url, json={"type": "custom", "config": {}}, headers=stranger.headers)
    ).status_code == 403
    source = await add(client, builder, panel["id"], {"type": "custom", "config": {}})
    assert (await client.get(url, headers=stranger.headers)).status_code == 200
    assert (
        await client.put(f"/api/datasources/{source['id']}", json={}, headers=stranger.headers)
    ).status_code == 403
    assert (
        await client.delete(f"/api/datasources/{source['id']}", headers=stranger.headers)
    ).status_code == 403
    assert (
        await client.get("/api/panels/987654321/datasources", headers=builder.headers)
    ).status_code == 404


async def test_removing_a_source_keeps_its_columns(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    source = await add(client, builder, panel["id"], {"type": "custom", "config": {}})
    columns_url = f"/api/panels/{panel['id']}/columns"
    column = await client.post(
        f"{columns_url}/base",
        json={"name": "MRN", "type": "text", "dataSourceId": source["id"]},
        headers=builder.headers,
    )
    assert column.json()["dataSourceId"] == source["id"]
    await client.get(columns_url, headers=builder.headers)  # cached now
    assert (
        await client.delete(f"/api/datasources/{source['id']}", headers=builder.headers)
    ).status_code == 204
    listed = await client.get(columns_url, headers=builder.headers)
    assert listed.headers["x-cache"] == "MISS"
    assert listed.json()["baseColumns"][0]["dataSourceId"] is None


async def test_change_records(client: Client, builder: Caller, panel: dict[str, Any]) -> None:
    source = await add(client, builder, panel["id"], API_SOURCE)
    config = {**API_SOURCE["config"], "headers": {"Authorization": "Bearer rotated-SECRET"}}
    await client.put(
        f"/api/datasources/{source['id']}", json={"config": config}, headers=builder.headers
    )
    await client.delete(f"/api/datasources/{source['id']}", headers=builder.headers)
    history = (
        await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    ).json()["changes"]
    removed, changed, added = history[:3]
    assert [removed["changeType"], changed["changeType"], added["changeType"]] == [
        "source_removed",
        "source_changed",
        "source_added",
    ]
    for record in (removed, changed, added):
        assert record["entityType"] == "datasource"
        assert record["entityId"] == source["id"]
        assert record["affectedColumn"] is None
    assert added["newValues"]["config"]["headers"] == {"Authorization": "***", "Accept": "***"}
    assert changed["oldValues"]["config"]["headers"] == {"Authorization": "***", "Accept": "***"}
    assert changed["newValues"]["config"]["headers"] == {"Authorization": "***"}
    assert removed["oldValues"]["type"] == "api"
    assert "rotated-SECRET" not in str(history)


async def test_list_is_cached_and_invalidated(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    url = f"/api/panels/{panel['id']}/datasources"
    assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "MISS"
    assert (await client.get(url, headers=builder.headers)).headers["x-cache"] == "HIT"
    await add(client, builder, panel["id"], {"type": "custom", "config": {}})
    again = await client.get(url, headers=builder.headers)
    assert again.headers["x-cache"] == "MISS"
    assert len(again.json()) == 1


async def test_secrets_are_not_kept_when_the_host_changes(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    source = await add(client, builder, panel["id"], API_SOURCE)
    moved = {**source["config"], "url": "https://93.184.215.17/patients?api_key=***"}
    response = await client.put(
        f"/api/datasources/{source['id']}", json={"config": moved}, headers=builder.headers
    )
    assert response.status_code == 400
    assert "none is stored for this URL" in response.json()["message"]
    fresh = {
        **moved,
        "url": "https://93.184.215.17/p?api_key=new",
        "headers": {"Authorization": "Bearer n"},
    }
    ok = await client.put(
        f"/api/datasources/{source['id']}", json={"config": fresh}, headers=builder.headers
    )
    assert ok.status_code == 200
    same_host = {**ok.json()["config"], "method": "GET"}
    assert (
        await client.put(
            f"/api/datasources/{source['id']}", json={"config": same_host}, headers=builder.headers
        )
    ).status_code == 200
