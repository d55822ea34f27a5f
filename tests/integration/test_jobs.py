"""The job plumbing (`platform.jobs`) on the real queue: a job past its time limit is retried
with backoff, and its last attempt is reported as the last; a job that succeeds runs once."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from panels.platform.db import owner_engine
from panels.platform.jobs import JobKind, Worker, enqueue
from tests.conftest import Services


async def _enqueue(services: Services, entrypoint: str, payload: bytes) -> None:
    engine = owner_engine(services.database_url)
    try:
        async with AsyncSession(engine) as session:
            await session.execute(text("SELECT 1"))  # opens the transaction the job joins
            await enqueue(session, entrypoint, payload, dedupe_key=f"{entrypoint}:{payload!r}")
            await session.commit()
    finally:
        await engine.dispose()


async def test_a_job_past_its_time_is_retried_then_reported_as_failed(services: Services) -> None:
    entrypoint = f"test.slow.{uuid.uuid4().hex[:8]}"
    attempts: list[int] = []
    failures: list[tuple[int, str, bool]] = []
    finished = asyncio.Event()

    async def run(_payload: bytes, attempt: int) -> None:
        attempts.append(attempt)
        await asyncio.sleep(30)

    async def failed(_payload: bytes, attempt: int, exc: BaseException, last: bool) -> None:
        failures.append((attempt, type(exc).__name__, last))
        if last:
            finished.set()

    kind = JobKind(entrypoint, run, failed, timeout_seconds=0.3, retry_seconds=0.05)
    assert kind.backoff(1).total_seconds() == 0.05
    assert kind.backoff(2).total_seconds() == 0.2
    worker = Worker(services.database_url, [kind], heartbeat_seconds=2)
    worker.start()
    try:
        await _enqueue(services, entrypoint, b"slow")
        await asyncio.wait_for(finished.wait(), 30)
    finally:
        await worker.close()
    assert attempts == [1, 2, 3]
    assert failures == [
        (1, "TimeoutError", False),
        (2, "TimeoutError", False),
        (3, "TimeoutError", True),
    ]


async def test_a_job_that_succeeds_runs_once(services: Services) -> None:
    entrypoint = f"test.quick.{uuid.uuid4().hex[:8]}"
    ran: list[tuple[bytes, int]] = []
    done = asyncio.Event()

    async def run(payload: bytes, attempt: int) -> None:
        ran.append((payload, attempt))
        done.set()

    async def failed(_payload: bytes, _attempt: int, exc: BaseException, _last: bool) -> None:
        raise AssertionError(f"no attempt should fail: {exc!r}")

    worker = Worker(services.database_url, [JobKind(entrypoint, run, failed, timeout_seconds=5)])
    worker.start()
    try:
        await _enqueue(services, entrypoint, b"quick")
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.5)  # room for a wrongful second run
    finally:
        await worker.close()
    assert ran == [(b"quick", 1)]
