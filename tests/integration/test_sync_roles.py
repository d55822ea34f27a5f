"""Syncs under the production roles: a database migrated by an owner that is no superuser,
and an API login that holds only the request role, as in compose.yaml. Its worker takes jobs
from pgqueuer's tables and writes records under the tenant policies; scheduled sources are
found across tenants only through the owner's function."""

from __future__ import annotations

import uuid

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from panels.app import create_app
from panels.platform.db import APP_ROLE, async_url
from tests.conftest import Caller, Services, build_settings
from tests.integration.databases import as_user, migrate
from tests.integration.test_request_role import owned_database  # noqa: F401  (fixture)


async def test_the_api_login_runs_syncs_and_finds_scheduled_ones(
    services: Services,
    owned_database: tuple[str, str],  # noqa: F811
    builder: Caller,
) -> None:
    url, _owner = owned_database
    api_role = f"panels_api_{uuid.uuid4().hex[:8]}"
    postgres = services.embedded.postgres
    postgres.psql(f"CREATE ROLE {api_role} LOGIN; GRANT {APP_ROLE} TO {api_role};")
    api_url = as_user(url, api_role)
    try:
        await migrate(api_url)
        settings = build_settings(
            services,
            DATABASE_URL=api_url,
            IN_PROCESS_WORKER="true",
            ALLOW_PRIVATE_SOURCES="true",
        )
        async with AsyncTestClient(app=create_app(settings)) as client:
            panel = (
                await client.post("/api/panels", json={"name": "P"}, headers=builder.headers)
            ).json()["id"]
            content = msgspec.json.encode([{"id": 1}, {"id": 2}]).decode()
            source = await client.post(
                f"/api/panels/{panel}/datasources",
                json={"type": "file", "config": {"format": "json", "content": content}},
                headers=builder.headers,
            )
            synced = await client.post(
                f"/api/datasources/{source.json()['id']}/sync",
                params={"wait": "true"},
                headers=builder.headers,
            )
            assert synced.status_code == 200, synced.text
            assert (synced.json()["status"], synced.json()["recordsInserted"]) == ("success", 2)
            scheduled = await client.post(
                f"/api/panels/{panel}/datasources",
                json={
                    "type": "api",
                    "config": {"url": "http://127.0.0.1:9/", "syncIntervalMinutes": 5},
                },
                headers=builder.headers,
            )
            assert scheduled.status_code == 201, scheduled.text
        engine = create_async_engine(async_url(api_url))
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f"SET ROLE {APP_ROLE}"))
                assert await connection.scalar(text("SELECT count(*) FROM datasource")) == 0
                due = (
                    await connection.execute(text("SELECT * FROM due_scheduled_syncs(10)"))
                ).all()
                maintenance = await connection.scalar(
                    text("SELECT current_setting('app.maintenance', true)")
                )
        finally:
            await engine.dispose()
        assert [tuple(row) for row in due] == [(builder.tenant, scheduled.json()["id"])]
        assert maintenance in (None, "")  # the function left the caller's setting as it was
    finally:
        postgres.psql(f"DROP ROLE {api_role};")
