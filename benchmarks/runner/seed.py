"""Seeding panels (and the scenarios' ids), and the other statements sent to PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.runner.common import API_PANELS_PER_TENANT, CEILING_TABLE, PUT_IDS, log
from benchmarks.runner.httpclient import Http
from benchmarks.runner.services import plain_url


@dataclass
class Seed:
    tenants: list[str]
    ids_by_tenant: dict[str, list[int]]
    sql_rows: int


COHORT_RULE = '{"logic": "AND", "conditions": [{"field": "age", "operator": "gte", "value": 65}]}'


def _panel_records(tenant: str, count: int, users: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    records = []
    for i in range(count):
        created = now - timedelta(seconds=count - i)
        records.append(
            (
                tenant,
                f"user-{i % users}",
                f"Cohort {i:05d}",
                "Seeded panel",
                COHORT_RULE,
                f'{{"team": "ward-{i % 9}"}}',
                created,
                created,
            )
        )
    return records


async def seed_database(url: str, tenants: list[str], per_tenant: int) -> Seed:
    """Bulk-load panels with COPY as the URL's own user (the table owner, so RLS is bypassed)."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(plain_url(url))
    try:
        columns = [
            "tenant_id",
            "user_id",
            "name",
            "description",
            "cohort_rule",
            "metadata",
            "created_at",
            "updated_at",
        ]
        for tenant in tenants:
            await conn.copy_records_to_table(
                "panel", records=_panel_records(tenant, per_tenant, users=5), columns=columns
            )
        await conn.execute("ANALYZE panel")
        rows = await conn.fetch(
            "SELECT id, tenant_id FROM panel WHERE tenant_id = ANY($1::text[]) ORDER BY id", tenants
        )
    finally:
        await conn.close()
    ids: dict[str, list[int]] = {t: [] for t in tenants}
    for row in rows:
        ids[row["tenant_id"]].append(row["id"])
    return Seed(tenants=tenants, ids_by_tenant=ids, sql_rows=per_tenant * len(tenants))


async def database_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def postgres_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def remove_seed(url: str, run_prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute("DELETE FROM panel_change WHERE tenant_id LIKE $1", f"{run_prefix}%")
        await conn.execute("DELETE FROM panel WHERE tenant_id LIKE $1", f"{run_prefix}%")
        await conn.execute(f"DROP TABLE IF EXISTS {CEILING_TABLE}")
    finally:
        await conn.close()


@dataclass
class Rows:
    """The wrk input rows (path and token) of each kind of request."""

    read: list[tuple[str, int]]
    read_rows: list[str]
    put_rows: list[str]
    list_rows: list[str]
    post_rows: list[str]


def seed(
    database_url: str, port: int, tokens: dict[str, str], panels: int, read_ids: int
) -> tuple[Seed, Rows]:
    """COPY most panels, POST a few through the service on `port`, split the ids among scenarios.

    `tokens`: tenant -> an admin's token, for every tenant to seed.
    """
    tenants = list(tokens)
    per_tenant = panels // len(tenants) - API_PANELS_PER_TENANT
    log(f"seeding {per_tenant * len(tenants):,} panels by COPY")
    result = asyncio.run(seed_database(database_url, tenants, per_tenant))
    client = Http(port)
    for tenant in tenants:
        for i in range(API_PANELS_PER_TENANT):
            body = json.dumps({"name": f"API panel {i}", "metadata": {"source": "api"}})
            status, headers, content = client.request("POST", "/api/panels", tokens[tenant], body)
            if status != 201 or "location" not in headers:
                raise RuntimeError(f"POST /api/panels answered {status}: {content[:300]!r}")
            result.ids_by_tenant[tenant].append(json.loads(content)["id"])
    client.close()
    log(f"seeded {len(tenants) * API_PANELS_PER_TENANT} more panels through the API")

    rng = random.Random(20261121)
    pool = [(tenant, pid) for tenant in tenants for pid in result.ids_by_tenant[tenant]]
    rng.shuffle(pool)
    n_read = min(read_ids, len(pool) // 2)  # the rest (up to PUT_IDS) is for the PUTs
    read = pool[:n_read]
    put = pool[n_read : n_read + PUT_IDS]
    rows = Rows(
        read=read,
        read_rows=[f"/api/panels/{pid}\t{tokens[t]}" for t, pid in read],
        put_rows=[f"/api/panels/{pid}\t{tokens[t]}" for t, pid in put],
        list_rows=[f"/api/panels?limit=50\t{tokens[t]}" for t in tenants],
        post_rows=[f"/api/panels\t{tokens[t]}" for t in tenants],
    )
    return result, rows
