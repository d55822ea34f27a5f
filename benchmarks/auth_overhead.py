"""What verifying the caller costs on a cached read: external JWT, built-in token, API key.

    uv run python -m benchmarks.auth_overhead [--batches 200] [--batch 50]

Runs the real app in-process (PostgreSQL and Redis as the tests use them: DATABASE_URL and
REDIS_URL when set, else embedded ones under .panels/bench-auth) and sends
`GET /api/panels/{id}` with the cache on, one request at a time, as three admins of one tenant:
one with an external JWT, one logged in as a built-in user, one with an API key. Each request's
server CPU is the event-loop thread's CPU time (`time.thread_time`) spent inside the ASGI call:
with one request in flight, that is the server's work for it (routing, authentication, the
cache read and the response), without the client's. The callers take turns in short rounds (in a
shuffled order), so a drift of the machine's load reaches all three alike; the overhead of a
caller is the median, over the rounds, of its round's mean minus the JWT caller's in the same
round (paired, which cancels what the rounds share).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from advanced_alchemy.alembic.commands import AlembicCommands

from panels.app import create_app
from panels.platform.auth import mint_token
from panels.platform.db import migration_config
from panels.platform.embedded import EmbeddedServices, start_postgres, start_redis
from panels.settings import Settings

SECRET = "benchmark-secret-that-is-long-enough-0123456789"
DATA_DIR = Path(".panels/bench-auth").resolve()
TARGET_MICROSECONDS = 20.0


class CpuMeter:
    """ASGI middleware adding up the thread CPU time spent inside the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.thread_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.thread_time() - started


def services() -> tuple[str, str, EmbeddedServices]:
    embedded = EmbeddedServices()
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url:
        embedded.postgres = start_postgres(DATA_DIR)
        database_url = embedded.database_url("panels_bench_auth")
    if not redis_url:
        embedded.redis = start_redis(DATA_DIR)
        redis_url = embedded.redis_url
    AlembicCommands(sqlalchemy_config=migration_config(database_url)).upgrade("head")
    return database_url, redis_url, embedded


async def callers(client: httpx.AsyncClient, settings: Settings) -> tuple[str, dict[str, Any]]:
    """A panel, and the headers of the three admins who read it."""
    tenant = f"bench-auth-{random.randrange(16**8):08x}"
    jwt = mint_token(settings.jwt, tenant=tenant, user="jwt-admin", role="admin")
    external = {"Authorization": f"Bearer {jwt}"}
    panel = await client.post("/api/panels", json={"name": "Ward 7"}, headers=external)
    email, password = f"admin@{tenant}.test", "benchmark password 1234"
    user = await client.post(
        "/api/users", json={"email": email, "password": password, "role": "admin"}, headers=external
    )
    login = await client.post("/api/auth/login", json={"email": email, "password": password})
    key = await client.post(
        "/api/api-keys", json={"name": "bench", "role": "admin"}, headers=external
    )
    for response in (panel, user, login, key):
        response.raise_for_status()
    return f"/api/panels/{panel.json()['id']}", {
        "external JWT": external,
        "built-in token": {"Authorization": f"Bearer {login.json()['accessToken']}"},
        "API key": {"Authorization": f"Bearer {key.json()['key']}"},
    }


async def measure(settings: Settings, batches: int, batch: int) -> dict[str, list[float]]:
    """Per caller, the mean server CPU (µs) of each batch of `batch` requests."""
    app = create_app(settings)
    meter = CpuMeter(app)
    per_caller: dict[str, list[float]] = {}
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=meter), base_url="http://bench"
        ) as client,
    ):
        url, headers_of = await callers(client, settings)
        for headers in headers_of.values():  # fill each caller's cache entry
            for _ in range(200):
                (await client.get(url, headers=headers)).raise_for_status()
        for _ in range(batches):
            order = list(headers_of)
            random.shuffle(order)
            for label in order:
                meter.seconds = 0.0
                for _ in range(batch):
                    response = await client.get(url, headers=headers_of[label])
                    if response.status_code != 200 or response.headers.get("x-cache") != "HIT":
                        raise RuntimeError(f"{label}: {response.status_code} {response.headers}")
                per_caller.setdefault(label, []).append(meter.seconds / batch * 1e6)
    return per_caller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="rounds of the three callers")
    parser.add_argument("--batch", type=int, default=50, help="requests per caller per round")
    args = parser.parse_args()
    database_url, redis_url, embedded = services()
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "CACHE_TTL_SECONDS": "3600",
            "IN_PROCESS_WORKER": "false",
            "PANELS_DATA_DIR": str(DATA_DIR),
        }
    )
    results = asyncio.run(measure(settings, args.batches, args.batch))
    baseline = results["external JWT"]
    print(
        f"GET /api/panels/{{id}}, cache HIT, {args.batches} rounds x {args.batch} requests per "
        "caller; server CPU per request"
    )
    print("| caller | median µs / request | over the external JWT (median of paired rounds) |")
    print("|---|---:|---:|")
    worst = 0.0
    for label in ("external JWT", "built-in token", "API key"):
        figures = results[label]
        extra = statistics.median(f - b for f, b in zip(figures, baseline, strict=True))
        worst = max(worst, extra)
        print(f"| {label} | {statistics.median(figures):.1f} | {extra:+.1f} |")
    verdict = "within" if worst <= TARGET_MICROSECONDS else "OVER"
    print(f"\nLargest overhead {worst:+.1f} µs: {verdict} the {TARGET_MICROSECONDS:.0f} µs target.")
    del embedded


if __name__ == "__main__":
    main()
