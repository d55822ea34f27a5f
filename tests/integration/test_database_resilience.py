"""The database under stress: a commit that fails, a server restart, concurrent migrations."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy import text

from panels.app import create_app
from panels.platform.access_log import access_log
from panels.platform.db import MIGRATIONS_DIR, owner_engine
from tests.conftest import ROOT, TEST_SECRET, Caller, Services, build_settings
from tests.integration.clusters import Cluster
from tests.integration.databases import fresh_database, migrate

Client = AsyncTestClient[Litestar]


class AccessLines:
    """The JSON access log's lines, as the service writes them (see `platform.access_log`)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def events(self) -> list[dict[str, Any]]:
        access_log.flush()
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def access_lines(client: Client) -> Iterator[AccessLines]:
    """The access log on (the tests' app logs warnings only) and written here instead."""
    lines = AccessLines()
    access_log.flush()
    stream, enabled = access_log.stream, access_log.enabled
    access_log.stream, access_log.enabled = lines.stream, True
    yield lines
    access_log.flush()
    access_log.stream, access_log.enabled = stream, enabled


@pytest.fixture
async def name_that_fails_at_commit(services: Services) -> AsyncIterator[str]:
    """A panel name that a deferred constraint trigger refuses when the transaction commits."""
    name = f"fails-at-commit-{uuid.uuid4().hex[:8]}"
    function = f"refuse_{name.replace('-', '_')}"
    engine = owner_engine(services.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
                    f" BEGIN IF NEW.name = '{name}' THEN RAISE EXCEPTION 'refused at commit';"
                    " END IF; RETURN NULL; END $$"
                )
            )
            await connection.execute(
                text(
                    f"CREATE CONSTRAINT TRIGGER {function} AFTER INSERT ON panel"
                    f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()"
                )
            )
        yield name
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER IF EXISTS {function} ON panel"))
            await connection.execute(text(f"DROP FUNCTION IF EXISTS {function}()"))
        await engine.dispose()


def requests_counted(status: int) -> float:
    labels = {"method": "POST", "path": "/api/panels", "status_code": str(status)}
    return REGISTRY.get_sample_value("panels_requests_total", {**labels, "app_name": "panels"}) or 0


async def test_a_failed_commit_is_logged_and_counted_as_the_500_the_client_gets(
    client: Client,
    builder: Caller,
    name_that_fails_at_commit: str,
    access_lines: AccessLines,
) -> None:
    errors, successes = requests_counted(500), requests_counted(201)
    response = await client.post(
        "/api/panels", json={"name": name_that_fails_at_commit}, headers=builder.headers
    )
    assert response.status_code == 500
    assert "refused" not in response.text
    request_id = response.headers["x-request-id"]
    logged = [e for e in access_lines.events if e["request_id"] == request_id]
    assert [(e["event"], e["logger"], e["status"]) for e in logged] == [
        ("request", "panels.access", 500)
    ]
    assert requests_counted(500) == errors + 1
    assert requests_counted(201) == successes
    assert (await client.get("/api/panels", headers=builder.headers)).json() == []


async def waiting_on_locks(url: str, database: str, expected: int) -> None:
    engine = owner_engine(url)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                waiting = await connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = :d AND wait_event_type = 'Lock'"
                    ),
                    {"d": database},
                )
            if waiting >= expected:
                return
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    raise AssertionError(f"{expected} upgrades never waited on a lock together")


async def test_two_upgrades_started_together_both_succeed(services: Services) -> None:
    async with fresh_database(services) as url:
        await migrate(url, "20261121_0005")
        database = url.split("/")[-1].split("?")[0]
        environ = {
            **os.environ,
            "PANELS_ENV": "test",
            "DATABASE_URL": url,
            "REDIS_URL": services.redis_url,
            "JWT_SECRET": TEST_SECRET,
            "PANELS_DATA_DIR": str(ROOT / ".panels" / "test"),
        }
        panels = os.path.join(os.path.dirname(sys.executable), "panels")
        engine = owner_engine(url)
        try:
            async with engine.connect() as blocker:
                # Holds both upgrades at the first revision still to apply, so that they
                # overlap whatever the speed of this machine.
                await blocker.execute(text("LOCK TABLE panel IN ACCESS EXCLUSIVE MODE"))
                upgrades = [
                    await asyncio.create_subprocess_exec(
                        panels,
                        "db",
                        "upgrade",
                        env=environ,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                    for _ in range(2)
                ]
                await waiting_on_locks(url, database, expected=2)
                await blocker.rollback()
            outputs = [(await upgrade.communicate())[0].decode() for upgrade in upgrades]
            assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
            async with engine.connect() as connection:
                version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
                forced = await connection.scalar(
                    text("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'panel'")
                )
            assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
            assert forced
        finally:
            await engine.dispose()


@pytest.fixture
async def own_server() -> AsyncIterator[Cluster]:
    """A PostgreSQL server this test may restart, with the schema migrated."""
    cluster = await asyncio.to_thread(Cluster.primary)
    try:
        await asyncio.to_thread(cluster.psql, "CREATE DATABASE panels")
        await migrate(cluster.url("panels"))
        yield cluster
    finally:
        await asyncio.to_thread(cluster.remove)


async def test_requests_survive_a_postgres_restart(
    services: Services, own_server: Cluster, builder: Caller
) -> None:
    settings = build_settings(services, DATABASE_URL=own_server.url("panels"), DB_POOL_SIZE="4")
    async with AsyncTestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        created = await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
        assert created.status_code == 201
        # Every pooled connection in use at once, so that the pool holds several of them.
        warm = await asyncio.gather(
            *(client.get("/api/changes/panels", headers=builder.headers) for _ in range(6))
        )
        assert {r.status_code for r in warm} == {200}
        await asyncio.to_thread(own_server.restart)
        statuses = []
        for index in range(8):
            response = await client.put(
                f"/api/panels/{created.json()['id']}",
                json={"name": f"P{index}"},
                headers=builder.headers,
            )
            statuses.append(response.status_code)
            listed = await client.get("/api/changes/panels", headers=builder.headers)
            statuses.append(listed.status_code)
        assert statuses == [200] * 16
