"""Issue 9 on data sources: hosts the service may reach, the query check, URLs that do not
parse, incomplete configs replaced as sent, and change records without large inline values."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from tests.conftest import Caller, Services, build_settings

Client = AsyncTestClient[Litestar]
PUBLIC = "93.184.215.14"  # a public address written as such: no test depends on DNS
SELECT = "SELECT id FROM patients"


@pytest.fixture
async def panel(create_panel: Any, builder: Caller) -> dict[str, Any]:
    return dict(await create_panel(builder, name="Trusted sources"))


async def post_source(
    client: Client, caller: Caller, panel: dict[str, Any], body: dict[str, Any]
) -> Any:
    return await client.post(
        f"/api/panels/{panel['id']}/datasources", json=body, headers=caller.headers
    )


def refused_field(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["details"][0]["field"])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://panels@127.0.0.1:5432/panels",  # the service's own database
        "postgresql://panels:pw@localhost/panels",
        "postgres://u@[::1]/db",
        "postgresql://u@[::ffff:127.0.0.1]/db",
        "postgresql://u@[64:ff9b::a00:1]/db",
        "postgresql://u@10.0.0.5/db",
        "postgresql://u@100.64.1.1/db",
        "postgresql://u@169.254.169.254/db",
        "postgresql://u@0.0.0.0/db",
        "postgresql://u@2130706433/db",
        f"postgresql://u@{PUBLIC}/db?host=127.0.0.1",  # libpq takes the host from here
        f"postgresql://u@{PUBLIC}/db?hostaddr=10.0.0.1",
        "postgresql://u@no-such-host.invalid/db",
        "postgresql:///panels",  # a Unix socket of this machine
    ],
)
async def test_database_hosts_are_checked_like_api_hosts(
    client: Client, builder: Caller, panel: dict[str, Any], url: str
) -> None:
    body = {"type": "database", "config": {"url": url, "query": SELECT}}
    assert refused_field(await post_source(client, builder, panel, body)) == "body.config.url"


async def test_a_name_that_does_not_resolve_is_named(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    body = {"type": "api", "config": {"url": "https://no-such-host.invalid/x"}}
    response = await post_source(client, builder, panel, body)
    assert refused_field(response) == "body.config.url"
    assert "does not resolve" in response.json()["message"]


async def test_a_database_source_cannot_be_moved_onto_the_service(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    body = {"type": "database", "config": {"url": f"postgresql://u@{PUBLIC}/db", "query": SELECT}}
    created = await post_source(client, builder, panel, body)
    assert created.status_code == 201, created.text
    moved = await client.put(
        f"/api/datasources/{created.json()['id']}",
        json={"config": {"url": "postgresql://panels@127.0.0.1/panels", "query": SELECT}},
        headers=builder.headers,
    )
    assert refused_field(moved) == "body.config.url"


async def test_private_hosts_are_allowed_when_configured(
    services: Services, builder: Caller, create_panel: Any
) -> None:
    app = create_app(build_settings(services, ALLOW_PRIVATE_SOURCES="true"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        created = await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
        url = f"/api/panels/{created.json()['id']}/datasources"
        for body in (
            {"type": "database", "config": {"url": "postgresql://u@127.0.0.1/db", "query": SELECT}},
            {"type": "api", "config": {"url": "http://localhost:8080/x"}},
        ):
            response = await client.post(url, json=body, headers=builder.headers)
            assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "query",
    [
        "SELECT E'\\''; DELETE FROM patients; --'",  # passed the old word list
        "WITH gone AS (DELETE FROM patients RETURNING *) SELECT * FROM gone",
        "SELECT * FROM patients FOR UPDATE",
        "SELECT * INTO copy FROM patients",
        "SELECT 1 FRO patients",
    ],
)
async def test_queries_other_than_one_plain_select_are_refused(
    client: Client, builder: Caller, panel: dict[str, Any], query: str
) -> None:
    body = {"type": "database", "config": {"url": f"postgresql://u@{PUBLIC}/db", "query": query}}
    assert refused_field(await post_source(client, builder, panel, body)) == "body.config.query"


async def test_a_parse_error_names_the_position_not_the_parser(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    body = {
        "type": "database",
        "config": {"url": f"postgresql://u@{PUBLIC}/db", "query": "SELECT 1 FRO patients"},
    }
    message = (await post_source(client, builder, panel, body)).json()["details"][0]["message"]
    assert message == 'does not parse: syntax error at or near "patients" (at character 14)'


async def test_queries_past_64_kib_are_refused(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    too_long = "SELECT 1 AS id" + " " * 70_000
    body = {"type": "database", "config": {"url": f"postgresql://u@{PUBLIC}/db", "query": too_long}}
    assert refused_field(await post_source(client, builder, panel, body)) == "body.config.query"


async def test_checking_a_query_leaves_the_event_loop_free(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    # The old word list spent seconds of event loop time on 24 KB of these.
    costly = "SELECT 1 " + "/* " * 8_000
    body = {"type": "database", "config": {"url": f"postgresql://u@{PUBLIC}/db", "query": costly}}
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # The test client serves the app on an event loop of its own: the ticker runs there.
    ticker = client.blocking_portal.start_task_soon(tick)
    try:
        response = await post_source(client, builder, panel, body)
        await asyncio.sleep(0.05)  # the ticker records the gap that ends now
    finally:
        ticker.cancel()
    assert max(gaps, default=0.0) < 0.5
    assert refused_field(response) == "body.config.query"


@pytest.mark.parametrize(
    ("source_type", "url"),
    [
        ("api", "http://[::1/x"),
        ("api", "https://[93.184.215.14]/"),
        ("api", f"http://{PUBLIC}:99999/"),
        ("api", f"http://{PUBLIC}:port/"),
        ("database", "postgresql://u@[::1/db"),
        ("database", f"postgresql://u@{PUBLIC}:-1/db"),
    ],
)
async def test_urls_that_do_not_parse_are_400(
    client: Client, builder: Caller, panel: dict[str, Any], source_type: str, url: str
) -> None:
    body = {"type": source_type, "config": {"url": url, "query": SELECT}}
    assert refused_field(await post_source(client, builder, panel, body)) == "body.config.url"
    custom = await post_source(client, builder, panel, {"type": "custom", "config": {}})
    changed = await client.put(
        f"/api/datasources/{custom.json()['id']}",
        json={"type": source_type, "config": {"url": url}},
        headers=builder.headers,
    )
    assert refused_field(changed) == "body.config.url"


async def test_a_source_may_be_saved_incomplete(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    """The web client adds an `api` source as `{endpoint, method}` before it has a URL."""
    api = await post_source(
        client, builder, panel, {"type": "api", "config": {"endpoint": "/x", "method": "GET"}}
    )
    assert api.status_code == 201, api.text
    assert api.json()["config"] == {"method": "GET", "keyField": "id"}
    database = await post_source(client, builder, panel, {"type": "database", "config": {}})
    assert database.status_code == 201, database.text
    assert database.json()["config"] == {"keyField": "id"}
    partial = {"type": "database", "config": {"query": "DELETE FROM t"}}
    assert refused_field(await post_source(client, builder, panel, partial)) == "body.config.query"


async def test_put_replaces_the_config_without_filling_defaults(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    body = {
        "type": "api",
        "config": {
            "url": f"https://{PUBLIC}/patients?token=s3cret",
            "method": "POST",
            "headers": {"Authorization": "Bearer x"},
            "itemsPath": "data",
            "keyField": "mrn",
        },
    }
    created = (await post_source(client, builder, panel, body)).json()
    url = f"/api/datasources/{created['id']}"
    replaced = await client.put(
        url, json={"config": {"url": created["config"]["url"]}}, headers=builder.headers
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["config"] == {
        "url": f"https://{PUBLIC}/patients?token=***",
        "keyField": "id",
    }
    listed = await client.get(f"/api/panels/{panel['id']}/datasources", headers=builder.headers)
    assert listed.json()[0]["config"] == replaced.json()["config"]


async def test_change_records_keep_a_digest_of_large_values(
    client: Client, builder: Caller, panel: dict[str, Any]
) -> None:
    content = "id,note\n" + "".join(f"{i},{'x' * 90}\n" for i in range(2_000))
    small = "id\n1\n"
    created = await post_source(
        client, builder, panel, {"type": "file", "config": {"format": "csv", "content": content}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"]["content"] == content  # the source itself keeps it whole
    await client.put(
        f"/api/datasources/{created.json()['id']}",
        json={"config": {"format": "csv", "content": small}},
        headers=builder.headers,
    )
    history = await client.get(f"/api/panels/{panel['id']}/changes", headers=builder.headers)
    changed, added = history.json()["changes"][:2]
    digest = {"sha256": hashlib.sha256(content.encode()).hexdigest(), "bytes": len(content)}
    assert added["newValues"]["config"]["content"] == digest
    assert changed["oldValues"]["config"]["content"] == digest
    assert changed["newValues"]["config"]["content"] == small
    assert len(history.content) < 10_000
