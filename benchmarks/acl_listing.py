"""Listing panels through grants: a user with grants on 500 of 10,000 panels in the tenant.

    uv run python -m benchmarks.acl_listing [--panels 10000] [--granted 500] [--repeat 50]

Seeds one tenant (as the table owner, so row-level security does not apply to the seeding),
then asks `GET /api/panels` in-process, through the real app, PostgreSQL and Redis (the cache
is bypassed so that every request reaches the database): as the user with grants (the list is
filtered by an EXISTS on grants) and as an admin (no filter) for comparison. Reports the
number of SQL statements per request, which must not grow with the grants, and the latency.
Uses DATABASE_URL/REDIS_URL when set, else embedded servers under .panels/bench-acl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from advanced_alchemy.alembic.commands import AlembicCommands
from sqlalchemy import event, text

from panels.app import create_app
from panels.platform.auth import mint_token
from panels.platform.db import migration_config, owner_engine
from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis
from panels.settings import Settings

TENANT = "bench-acl"
SECRET = "benchmark-secret-that-is-long-enough-0123456789"


def services(data_dir: Path) -> tuple[str, str, EmbeddedServices]:
    embedded = EmbeddedServices()
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url:
        embedded.postgres = start_postgres(data_dir)
        database_url = embedded.database_url("panels_bench_acl")
    if not redis_url:
        embedded.redis = start_redis(data_dir)
        redis_url = embedded.redis_url
    AlembicCommands(sqlalchemy_config=migration_config(database_url)).upgrade("head")
    return database_url, redis_url, embedded


async def seed(database_url: str, panels: int, granted: int) -> None:
    engine = owner_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM resource_grant WHERE tenant_id = :t"), {"t": TENANT}
            )
            await connection.execute(text("DELETE FROM panel WHERE tenant_id = :t"), {"t": TENANT})
            await connection.execute(
                text(
                    "INSERT INTO panel (tenant_id, user_id, name) "
                    "SELECT :t, 'someone', 'panel ' || n FROM generate_series(1, :n) n"
                ),
                {"t": TENANT, "n": panels},
            )
            await connection.execute(
                text(
                    "INSERT INTO resource_grant"
                    " (tenant_id, resource_type, resource_id, user_email, permission)"
                    " SELECT tenant_id, 'panel', id, 'lena@example.com', 'viewer' FROM panel"
                    " WHERE tenant_id = :t ORDER BY random() LIMIT :g"
                ),
                {"t": TENANT, "g": granted},
            )
            await connection.execute(text("ANALYZE panel"))
            await connection.execute(text("ANALYZE resource_grant"))
    finally:
        await engine.dispose()


async def measure(settings: Settings, repeat: int, granted: int) -> dict[str, Any]:
    app = create_app(settings)
    runtime = app.state.runtime
    runtime.breaker.cooldown = 10**9
    runtime.breaker.trip(RuntimeError("cache bypassed for the benchmark"))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    results: dict[str, Any] = {}
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client,
    ):
        engine = runtime.db.get_engine().sync_engine
        for label, role, email in (
            ("user with grants", "user", "lena@example.com"),
            ("admin", "admin", None),
        ):
            token = mint_token(
                settings.jwt, tenant=TENANT, user=f"u-{role}", email=email, role=role
            )  # type: ignore[arg-type]
            headers = {"Authorization": f"Bearer {token}"}
            timings = []
            for index in range(repeat + 5):
                statements.clear()
                event.listen(engine, "before_cursor_execute", count)
                started = time.perf_counter()
                response = await client.get("/api/panels", params={"limit": 500}, headers=headers)
                elapsed = time.perf_counter() - started
                event.remove(engine, "before_cursor_execute", count)
                if index >= 5:  # warm-up excluded
                    timings.append(elapsed * 1000)
            queries = [s for s in statements if "set_config" not in s]
            results[label] = {
                "status": response.status_code,
                "total": int(response.headers["x-total-count"]),
                "returned": len(response.json()),
                "queries": len(queries),
                "p50_ms": statistics.median(timings),
                "p99_ms": statistics.quantiles(timings, n=100)[98],
            }
    assert results["user with grants"]["total"] == granted
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=10_000)
    parser.add_argument("--granted", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    database_url, redis_url, embedded = services(Path(".panels/bench-acl").resolve())
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "PANELS_DATA_DIR": ".panels/bench-acl",
        }
    )
    asyncio.run(seed(database_url, args.panels, args.granted))
    results = asyncio.run(measure(settings, args.repeat, args.granted))
    print(f"GET /api/panels?limit=500, tenant of {args.panels} panels, {args.repeat} requests each")
    print("| caller | rows listed | SQL statements | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for label, figures in results.items():
        print(
            f"| {label} | {figures['returned']} of {figures['total']} | {figures['queries']} "
            f"| {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} |"
        )
    del embedded


if __name__ == "__main__":
    main()
