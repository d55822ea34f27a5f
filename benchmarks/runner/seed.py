"""Seeding panels (and the scenarios' ids), and the other statements sent to PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.runner.common import (
    API_PANELS_PER_TENANT,
    CEILING_TABLE,
    GRANTS_PER_PANEL,
    PUT_IDS,
    log,
)
from benchmarks.runner.httpclient import Http
from benchmarks.runner.services import plain_url


@dataclass
class Seed:
    tenants: list[str]
    ids_by_tenant: dict[str, list[int]]
    owners: dict[int, int]  # panel id -> index of the user who owns it
    sql_rows: int


COHORT_RULE = '{"logic": "AND", "conditions": [{"field": "age", "operator": "gte", "value": 65}]}'


def user_name(index: int) -> str:
    return f"user-{index}"


def builder_name(index: int) -> str:
    return f"builder-{index}"


def _panel_records(tenant: str, count: int, users: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    records = []
    for i in range(count):
        created = now - timedelta(seconds=count - i)
        records.append(
            (
                tenant,
                user_name(i % users),
                f"Cohort {i:05d}",
                "Seeded panel",
                COHORT_RULE,
                f'{{"team": "ward-{i % 9}"}}',
                created,
                created,
            )
        )
    return records


def _grant_records(tenant: str, panels: list[tuple[int, str]], users: int) -> list[tuple[Any, ...]]:
    """The owner grant of each panel's creator and viewer grants for the next users in turn,
    so that each user may read about `GRANTS_PER_PANEL` / `users` of the tenant's panels."""
    records = []
    for panel_id, owner in panels:
        first = int(owner.removeprefix("user-"))
        records.append((tenant, "panel", panel_id, owner, "owner"))
        for step in range(1, GRANTS_PER_PANEL):
            viewer = user_name((first + step) % users)
            records.append((tenant, "panel", panel_id, viewer, "viewer"))
    return records


async def seed_database(url: str, tenants: list[str], per_tenant: int, users: int) -> Seed:
    """Bulk-load panels and their grants with COPY as the URL's own user (the table owner,
    with `app.maintenance` on: the one setting its row-level security lets through)."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(plain_url(url), server_settings={"app.maintenance": "on"})
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
                "panel", records=_panel_records(tenant, per_tenant, users), columns=columns
            )
        rows = await conn.fetch(
            "SELECT id, tenant_id, user_id FROM panel WHERE tenant_id = ANY($1::text[])"
            " ORDER BY id",
            tenants,
        )
        for tenant in tenants:
            owned = [(r["id"], r["user_id"]) for r in rows if r["tenant_id"] == tenant]
            await conn.copy_records_to_table(
                "resource_grant",
                records=_grant_records(tenant, owned, users),
                columns=["tenant_id", "resource_type", "resource_id", "user_email", "permission"],
            )
        await conn.execute("ANALYZE panel")
        await conn.execute("ANALYZE resource_grant")
    finally:
        await conn.close()
    ids: dict[str, list[int]] = {t: [] for t in tenants}
    for row in rows:
        ids[row["tenant_id"]].append(row["id"])
    owners = {row["id"]: int(row["user_id"].removeprefix("user-")) for row in rows}
    return Seed(
        tenants=tenants, ids_by_tenant=ids, owners=owners, sql_rows=per_tenant * len(tenants)
    )


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

    conn = await asyncpg.connect(plain_url(url), server_settings={"app.maintenance": "on"})
    try:
        await conn.execute("DELETE FROM panel_change WHERE tenant_id LIKE $1", f"{run_prefix}%")
        await conn.execute("DELETE FROM resource_grant WHERE tenant_id LIKE $1", f"{run_prefix}%")
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


@dataclass
class Tokens:
    """Bearer tokens of ordinary callers: per tenant, `users[tenant][k]` is `user-k` (role
    user, granted as in `_grant_records`) and `builders[tenant][k]` is `builder-k`."""

    users: dict[str, list[str]]
    builders: dict[str, list[str]]


def seed(
    database_url: str, port: int, tokens: Tokens, panels: int, read_ids: int
) -> tuple[Seed, Rows]:
    """COPY most panels and their grants, POST a few through the service on `port` (as
    builders), and split the ids among scenarios, each with a token of a user granted on it."""
    tenants = list(tokens.users)
    users = len(tokens.users[tenants[0]])
    per_tenant = panels // len(tenants) - API_PANELS_PER_TENANT
    log(f"seeding {per_tenant * len(tenants):,} panels by COPY, readable by {users} users each")
    result = asyncio.run(seed_database(database_url, tenants, per_tenant, users))
    client = Http(port)
    for tenant in tenants:
        for i in range(API_PANELS_PER_TENANT):
            body = json.dumps({"name": f"API panel {i}", "metadata": {"source": "api"}})
            token = tokens.builders[tenant][i]
            status, headers, content = client.request("POST", "/api/panels", token, body)
            if status != 201 or "location" not in headers:
                raise RuntimeError(f"POST /api/panels answered {status}: {content[:300]!r}")
    client.close()
    log(f"seeded {len(tenants) * API_PANELS_PER_TENANT} more panels through the API")

    # The COPY-seeded panels only: each is owned by a `user-k` whose token can read and edit it.
    rng = random.Random(20261121)
    pool = [(tenant, pid) for tenant in tenants for pid in result.ids_by_tenant[tenant]]
    rng.shuffle(pool)
    n_read = min(read_ids, len(pool) // 2)  # the rest (up to PUT_IDS) is for the PUTs
    read = pool[:n_read]
    put = pool[n_read : n_read + PUT_IDS]

    def owner_token(tenant: str, pid: int) -> str:
        return tokens.users[tenant][result.owners[pid]]

    rows = Rows(
        read=read,
        read_rows=[f"/api/panels/{pid}\t{owner_token(t, pid)}" for t, pid in read],
        put_rows=[f"/api/panels/{pid}\t{owner_token(t, pid)}" for t, pid in put],
        list_rows=[f"/api/panels?limit=50\t{token}" for t in tenants for token in tokens.users[t]],
        post_rows=[f"/api/panels\t{token}" for t in tenants for token in tokens.builders[t]],
    )
    return result, rows
