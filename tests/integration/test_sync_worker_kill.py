"""A worker killed mid-sync (`kill -9`): readers keep the last good records, and once its
heartbeat is stale another worker picks the job up again and finishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from panels.app import create_app
from tests.conftest import ROOT, TEST_SECRET, Caller, Services, build_settings
from tests.integration.sync_helpers import (
    Client,
    SourceServer,
    create_source,
    stored_keys,
    wait_for_job,
)

PANELS = Path(sys.executable).parent / "panels"
HEARTBEAT_SECONDS = "2"


@pytest.fixture(scope="module")
async def workerless_client(services: Services) -> AsyncIterator[Client]:
    app: Litestar = create_app(
        build_settings(services, ALLOW_PRIVATE_SOURCES="true", JOB_HEARTBEAT_SECONDS="2")
    )
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def start_worker(services: Services) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []
    environment = {
        **os.environ,
        "PANELS_ENV": "test",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_SECRET,
        "ALLOW_PRIVATE_SOURCES": "true",
        "JOB_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS,
        "SYNC_RETRY_MS": "50",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "PANELS_DATA_DIR": str(ROOT / ".panels" / "test"),
    }

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [str(PANELS), "worker"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(20)


async def test_a_killed_workers_job_is_picked_up_again(
    workerless_client: Client, services: Services, builder: Caller, start_worker: object
) -> None:
    server = SourceServer()
    try:
        server.routes["/data"] = lambda _: (200, {}, msgspec.json.encode([{"id": "old"}]))
        panel = (
            await workerless_client.post(
                "/api/panels", json={"name": "Ward"}, headers=builder.headers
            )
        ).json()["id"]
        source = await create_source(
            workerless_client, builder, panel, "api", {"url": server.url("/data")}
        )
        sync_url = f"/api/datasources/{source['id']}/sync"
        first = start_worker()  # type: ignore[operator]
        job = (await workerless_client.post(sync_url, headers=builder.headers)).json()
        assert (await wait_for_job(workerless_client, builder, job["jobId"]))["status"] == "success"
        assert await stored_keys(services, source["id"]) == ["old"]

        # The next sync hangs in the source until the worker running it is killed.
        server.hold.clear()
        server.routes["/data"] = lambda _: (200, {}, msgspec.json.encode([{"id": "new"}]))
        requests_before = len(server.requests)
        job = (await workerless_client.post(sync_url, headers=builder.headers)).json()
        for _ in range(200):
            if len(server.requests) > requests_before:
                break
            await asyncio.sleep(0.05)
        running = await workerless_client.get(
            f"/api/sync-jobs/{job['jobId']}", headers=builder.headers
        )
        assert running.json()["status"] == "running"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        server.hold.set()
        assert await stored_keys(services, source["id"]) == ["old"]
        still = await workerless_client.get(
            f"/api/sync-jobs/{job['jobId']}", headers=builder.headers
        )
        assert still.json()["status"] == "running"

        start_worker()  # type: ignore[operator]
        finished = await wait_for_job(workerless_client, builder, job["jobId"], within=30)
        assert (finished["status"], finished["attempts"]) == ("success", 2), finished
        assert await stored_keys(services, source["id"]) == ["new"]
    finally:
        server.close()
